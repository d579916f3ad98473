// Package worker connects a querier to a query-frontend or query-scheduler
// and runs the HTTP requests it pulls from their queue against the
// querier's own HTTP handler, in process.
package worker

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/grpccodec"
)

// Config configures the querier's workers.
type Config struct {
	FrontendAddress  string `yaml:"frontend_address"`
	SchedulerAddress string `yaml:"scheduler_address"`
	Parallelism      int    `yaml:"worker_parallelism"`
	QuerierID        string `yaml:"id" category:"advanced"`
}

// RegisterFlags registers the flags under the "querier." prefix.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.FrontendAddress, "querier.frontend-address", "", "gRPC address (host:port) of a query-frontend to pull queries from. Empty: none (unless a query-frontend runs in this process, which is then used over loopback).")
	f.StringVar(&c.SchedulerAddress, "querier.scheduler-address", "", "gRPC address (host:port) of a query-scheduler to pull queries from; takes precedence over -querier.frontend-address.")
	f.IntVar(&c.Parallelism, "querier.worker-parallelism", 4, "Queries this querier runs at once for the query-frontend or query-scheduler: the number of streams it opens.")
	host, _ := os.Hostname()
	f.StringVar(&c.QuerierID, "querier.id", host, "Name of this querier in the query queue, used by shuffle sharding (max_queriers_per_tenant). Defaults to the hostname; must differ between queriers.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Parallelism <= 0 {
		return errors.New("-querier.worker-parallelism must be positive")
	}
	return nil
}

// Address is the queue the worker pulls from: the scheduler if set, else
// the frontend; "" means none.
func (c *Config) Address() string {
	if c.SchedulerAddress != "" {
		return c.SchedulerAddress
	}
	return c.FrontendAddress
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Worker keeps Parallelism streams open to the queue at addr.
type Worker struct {
	services.Service
	cfg     Config
	addr    string
	handler http.Handler
	logger  log.Logger
	conn    *grpc.ClientConn
	wg      sync.WaitGroup

	requests *prometheus.CounterVec
	duration prometheus.Histogram
	streams  prometheus.Gauge
}

// New returns a worker pulling from addr and running requests on handler.
func New(cfg Config, addr string, handler http.Handler, logger log.Logger, reg prometheus.Registerer) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.PooledCodec{})),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to query queue %s: %w", addr, err)
	}
	w := &Worker{
		cfg: cfg, addr: addr, handler: handler, logger: log.With(logger, "queue", addr), conn: conn,
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_querier_worker_requests_total",
			Help: "Requests pulled from the query-frontend or query-scheduler, by outcome: the HTTP status code, or \"canceled\" when the frontend canceled the request (its client went away) while it ran.",
		}, []string{"status_code"}),
		duration: promauto.With(reg).NewHistogram(prometheus.HistogramOpts{
			Name:    "meridian_querier_worker_request_duration_seconds",
			Help:    "Time the querier took to run a pulled request.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 9),
		}),
		streams: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "meridian_querier_worker_streams",
			Help: "Streams open to the query-frontend or query-scheduler.",
		}),
	}
	w.requests.WithLabelValues("canceled")
	w.Service = services.NewBasicService(nil, w.running, w.stopping)
	return w, nil
}

func (w *Worker) running(ctx context.Context) error {
	level.Info(w.logger).Log("msg", "querier worker pulling queries", "parallelism", w.cfg.Parallelism, "querier_id", w.cfg.QuerierID)
	for range w.cfg.Parallelism {
		w.wg.Go(func() { w.loop(ctx) })
	}
	<-ctx.Done()
	return nil
}

func (w *Worker) stopping(error) error {
	w.wg.Wait()
	return w.conn.Close()
}

// loop keeps one stream open, reconnecting with backoff, until ctx is done.
func (w *Worker) loop(ctx context.Context) {
	backoff := minBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := w.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > maxBackoff {
			backoff = minBackoff
		}
		level.Debug(w.logger).Log("msg", "query queue stream ended; reconnecting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// stream runs one QuerierLoop stream: one request at a time. When the queue
// ends the stream (the request's client went away), the running request's
// context is canceled.
func (w *Worker) stream(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := meridianpb.NewQueryQueueClient(w.conn).QuerierLoop(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(&meridianpb.QuerierMessage{QuerierId: w.cfg.QuerierID}); err != nil {
		return err
	}
	w.streams.Inc()
	defer w.streams.Dec()

	reqs := make(chan *meridianpb.QueueRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := s.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		var m *meridianpb.QueueRequest
		select {
		case m = <-reqs:
		case err := <-recvErr:
			return err
		}
		reqCtx, cancelReq := context.WithCancel(ctx)
		done := make(chan *meridianpb.HTTPResponse, 1)
		start := time.Now()
		go func() { done <- w.execute(reqCtx, m.Request) }()
		select {
		case resp := <-done:
			cancelReq()
			w.duration.Observe(time.Since(start).Seconds())
			w.requests.WithLabelValues(strconv.Itoa(int(resp.Code))).Inc()
			if err := s.Send(&meridianpb.QuerierMessage{Response: resp}); err != nil {
				return err
			}
		case err := <-recvErr:
			cancelReq()
			<-done
			w.duration.Observe(time.Since(start).Seconds())
			w.requests.WithLabelValues("canceled").Inc()
			level.Debug(w.logger).Log("msg", "request canceled by the query queue", "tenant", m.Tenant, "err", err)
			return err
		}
	}
}

// execute runs req on the querier's handler. The tenant travels in the
// request's own headers (X-Scope-OrgID, Authorization) and is read by the
// handler's tenant middleware as for any other request.
func (w *Worker) execute(ctx context.Context, req *meridianpb.HTTPRequest) *meridianpb.HTTPResponse {
	hr, err := http.NewRequestWithContext(ctx, req.Method, req.Url, bytes.NewReader(req.Body))
	if err != nil {
		return &meridianpb.HTTPResponse{Code: http.StatusBadRequest, Body: []byte("bad request from the query queue: " + err.Error())}
	}
	for _, h := range req.Headers {
		for _, v := range h.Values {
			hr.Header.Add(h.Key, v)
		}
	}
	hr.RequestURI = req.Url
	hr.RemoteAddr = "query-queue"
	rec := httptest.NewRecorder()
	w.handler.ServeHTTP(rec, hr)
	return &meridianpb.HTTPResponse{Code: int32(rec.Code), Headers: ToHeaders(rec.Header()), Body: rec.Body.Bytes()}
}

// ToHeaders converts HTTP headers to their protobuf form.
func ToHeaders(h http.Header) []*meridianpb.HTTPHeader {
	out := make([]*meridianpb.HTTPHeader, 0, len(h))
	for k, vs := range h {
		out = append(out, &meridianpb.HTTPHeader{Key: k, Values: vs})
	}
	return out
}
