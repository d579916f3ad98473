package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/scheduler"
)

const (
	// maxBackoff caps the wait between retries.
	maxBackoff = time.Second
	// minBackoff is the wait before the first retry.
	minBackoff = 10 * time.Millisecond
	// statusClientClosedRequest is nginx's code for a client that went away,
	// which Prometheus also uses for canceled queries.
	statusClientClosedRequest = 499
)

// answer is an HTTP answer: from downstream, forwarded as it came, or made
// by the frontend.
type answer struct {
	status int
	header http.Header
	body   []byte
	// msg is the message of an error answer the frontend made itself;
	// empty for answers from downstream.
	msg string
}

// errorAnswer is a Prometheus-style error answer made by the frontend.
func errorAnswer(status int, errorType, msg string) *answer {
	b, _ := json.Marshal(apiResponse{Status: "error", ErrorType: errorType, Error: msg})
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return &answer{status: status, header: h, body: b, msg: msg}
}

// plainErrorAnswer is an error answer in plain text, as the Graphite API
// answers errors (http.Error).
func plainErrorAnswer(status int, msg string) *answer {
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	return &answer{status: status, header: h, body: []byte(msg + "\n"), msg: msg}
}

// downstreamRequest is one request the frontend sends to a querier.
type downstreamRequest struct {
	tenant string
	method string
	path   string
	form   url.Values
	// auth is the client's Authorization header, passed on so that
	// queriers that check credentials accept the request.
	auth string
	// maxOutstanding and maxQueriers are the tenant's queue limits when
	// queriers pull.
	maxOutstanding, maxQueriers int
}

// executor runs one attempt of a request on a querier. New picks one of
// three implementations from the configuration, once:
//
//   - httpDownstream (-frontend.downstream-url): the frontend's own fair
//     queue, served by -frontend.max-concurrent workers that send over HTTP;
//   - pulled over the frontend's own scheduler.Queue (the default): served
//     by the queriers that pull from it over gRPC (Frontend.QueueServer);
//   - pulled over a scheduler.Client (-frontend.scheduler-address): a
//     query-scheduler's fair queue, served by the queriers that pull from it.
//
// The fair queue is scheduler.Queue in every case, so all three keep a FIFO
// per tenant served round-robin, answer scheduler.ErrTooManyOutstanding
// when a tenant's queue is full, and drop a queued request whose context
// ends (the error wraps scheduler.ErrCanceledQueued).
type executor interface {
	Do(ctx context.Context, tenant string, req *meridianpb.HTTPRequest, maxOutstanding, maxQueriers int) (*meridianpb.HTTPResponse, error)
	// start starts what serves the queue; stop stops it and lets go of
	// its connections.
	start()
	stop()
}

// roundTrip sends req downstream, retrying 5xx answers and transport errors
// up to MaxRetries times. It returns the last answer.
func (f *Frontend) roundTrip(ctx context.Context, req downstreamRequest) *answer {
	var last *answer
	backoff := minBackoff
	for attempt := 0; attempt <= f.cfg.MaxRetries; attempt++ {
		if attempt > 0 {
			f.retries.Inc()
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return canceledAnswer(ctx)
			case <-t.C:
			}
			backoff = min(2*backoff, maxBackoff)
		}
		ans, err := f.send(ctx, req)
		if ctx.Err() != nil {
			if clientGone(ctx) {
				stage := "in_flight"
				if errors.Is(err, scheduler.ErrCanceledQueued) {
					stage = "queued"
				}
				f.canceled.WithLabelValues(stage).Inc()
			}
			return canceledAnswer(ctx)
		}
		if err != nil {
			level.Warn(f.logger).Log("msg", "downstream request failed; retrying if attempts are left", "tenant", req.tenant, "path", req.path, "attempt", attempt+1, "err", err)
			var unreachable *unreachableError
			switch {
			case errors.Is(err, scheduler.ErrQuerierGone):
				f.queriersGone.Inc()
				last = errorAnswer(http.StatusBadGateway, "unavailable", fmt.Sprintf(
					"%s: the querier running this query died or disconnected before answering, %d time(s) in a row; the query may crash queriers (a query of death), so it is not retried further (-frontend.max-retries=%d) (%s)",
					ErrIDQueryOfDeath, attempt+1, f.cfg.MaxRetries, err))
			case errors.As(err, &unreachable):
				last = errorAnswer(http.StatusBadGateway, "unavailable", fmt.Sprintf("query-frontend could not reach the querier at %s: %v", unreachable.url, unreachable.err))
			default:
				last = errorAnswer(http.StatusBadGateway, "unavailable", fmt.Sprintf("query-frontend could not run the query on a querier: %v", err))
			}
			continue
		}
		if ans.status < 500 {
			return ans
		}
		level.Warn(f.logger).Log("msg", "downstream answered 5xx; retrying if attempts are left", "tenant", req.tenant, "path", req.path, "attempt", attempt+1, "status", ans.status)
		last = ans
	}
	return last
}

func canceledAnswer(ctx context.Context) *answer {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errorAnswer(http.StatusServiceUnavailable, "timeout", "query timed out in the query-frontend: "+context.Cause(ctx).Error())
	}
	return errorAnswer(statusClientClosedRequest, "canceled", "query canceled: "+context.Cause(ctx).Error())
}

// msgFrontendStopping answers the requests queued when the frontend stops.
const msgFrontendStopping = "the query-frontend is stopping"

// send makes one attempt. The queue's refusals are answers, not errors, so
// that they are not retried.
func (f *Frontend) send(ctx context.Context, req downstreamRequest) (*answer, error) {
	hr := &meridianpb.HTTPRequest{Method: req.method, Url: req.path}
	enc := req.form.Encode()
	h := http.Header{}
	if req.method == http.MethodGet {
		hr.Url += "?" + enc
	} else {
		hr.Body = []byte(enc)
		h.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	h.Set(user.OrgIDHeaderName, req.tenant)
	if req.auth != "" {
		h.Set("Authorization", req.auth)
	}
	for k, vs := range h {
		hr.Headers = append(hr.Headers, &meridianpb.HTTPHeader{Key: k, Values: vs})
	}
	resp, err := f.exec.Do(ctx, req.tenant, hr, req.maxOutstanding, req.maxQueriers)
	switch {
	case errors.Is(err, scheduler.ErrTooManyOutstanding):
		f.rejected.WithLabelValues("too_many_outstanding").Inc()
		return tooManyOutstanding(req.tenant, req.maxOutstanding), nil
	case errors.Is(err, scheduler.ErrStopped):
		return errorAnswer(http.StatusServiceUnavailable, "unavailable", msgFrontendStopping), nil
	case err != nil:
		return nil, err
	}
	ah := http.Header{}
	for _, hh := range resp.Headers {
		ah[hh.Key] = hh.Values
	}
	for _, k := range []string{"Content-Length", "Content-Encoding", "Connection", "Transfer-Encoding"} {
		ah.Del(k)
	}
	return &answer{status: int(resp.Code), header: ah, body: resp.Body}, nil
}

// pulled is a queue the queriers pull from: the frontend's own or a
// query-scheduler's. The time of an attempt and its
// timeout include the wait in the queue: the frontend cannot tell when a
// querier takes the request.
type pulled struct {
	queue interface {
		Do(ctx context.Context, tenant string, req *meridianpb.HTTPRequest, maxOutstanding, maxQueriers int) (*meridianpb.HTTPResponse, error)
	}
	close    func()
	timeout  time.Duration
	duration *prometheus.HistogramVec
}

func (p *pulled) Do(ctx context.Context, tenant string, req *meridianpb.HTTPRequest, maxOutstanding, maxQueriers int) (*meridianpb.HTTPResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	resp, err := p.queue.Do(ctx, tenant, req, maxOutstanding, maxQueriers)
	if err != nil {
		p.duration.WithLabelValues("error").Observe(time.Since(start).Seconds())
		return nil, err
	}
	p.duration.WithLabelValues(strconv.Itoa(int(resp.Code))).Observe(time.Since(start).Seconds())
	return resp, nil
}

func (p *pulled) start() {}
func (p *pulled) stop()  { p.close() }

// httpDownstreamID is the one "querier" the HTTP workers pull as: a
// downstream URL has no shuffle shards.
const httpDownstreamID = "downstream-url"

// httpDownstream queues requests in the frontend's fair queue, from which
// its workers send them to one querier (or monolith) over HTTP. The
// timeout and the time of an attempt cover the HTTP request only.
type httpDownstream struct {
	url      *url.URL
	rawURL   string // as configured, for messages
	client   *http.Client
	queue    *scheduler.Queue
	workers  int
	wg       sync.WaitGroup
	timeout  time.Duration
	duration *prometheus.HistogramVec
}

func newHTTPDownstream(cfg Config, duration *prometheus.HistogramVec, reg prometheus.Registerer) (*httpDownstream, error) {
	u, err := url.Parse(cfg.DownstreamURL)
	if err != nil {
		return nil, fmt.Errorf("parse -frontend.downstream-url: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.MaxConcurrent
	// Only the queue length is exported, under the name it always had;
	// the querier-side metrics of the queue say nothing with one URL.
	m := scheduler.NewQueueMetrics(nil)
	m.Length = promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
		Name: "meridian_frontend_queue_length",
		Help: "Downstream requests waiting in the query-frontend queue, per tenant.",
	}, []string{"tenant"})
	return &httpDownstream{
		url: u, rawURL: cfg.DownstreamURL, client: &http.Client{Transport: tr}, queue: scheduler.NewQueue(m),
		workers: cfg.MaxConcurrent, timeout: cfg.DownstreamTimeout, duration: duration,
	}, nil
}

func (d *httpDownstream) Do(ctx context.Context, tenant string, req *meridianpb.HTTPRequest, maxOutstanding, _ int) (*meridianpb.HTTPResponse, error) {
	return d.queue.Do(ctx, tenant, req, maxOutstanding, 0)
}

func (d *httpDownstream) start() {
	for range d.workers {
		d.wg.Go(func() { d.queue.Work(context.Background(), httpDownstreamID, d.send) })
	}
}

// stop lets the workers send what is queued, then closes the connections.
func (d *httpDownstream) stop() {
	d.queue.Drain()
	d.wg.Wait()
	d.client.CloseIdleConnections()
}

// unreachableError is a transport error of the HTTP downstream.
type unreachableError struct {
	url string
	err error
}

func (e *unreachableError) Error() string { return fmt.Sprintf("send to %s: %v", e.url, e.err) }
func (e *unreachableError) Unwrap() error { return e.err }

// send makes one HTTP request.
func (d *httpDownstream) send(ctx context.Context, _ string, req *meridianpb.HTTPRequest) (*meridianpb.HTTPResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	u := *d.url
	path, query, _ := strings.Cut(req.Url, "?")
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query
	var body io.Reader
	if req.Method != http.MethodGet {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u.String(), body)
	if err != nil {
		return nil, &unreachableError{url: d.rawURL, err: err}
	}
	for _, h := range req.Headers {
		hr.Header[h.Key] = h.Values
	}
	start := time.Now()
	resp, err := d.client.Do(hr)
	if err != nil {
		d.duration.WithLabelValues("error").Observe(time.Since(start).Seconds())
		return nil, &unreachableError{url: d.rawURL, err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	d.duration.WithLabelValues(strconv.Itoa(resp.StatusCode)).Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, &unreachableError{url: d.rawURL, err: fmt.Errorf("read the answer: %w", err)}
	}
	out := &meridianpb.HTTPResponse{Code: int32(resp.StatusCode), Body: b}
	for k, vs := range resp.Header {
		out.Headers = append(out.Headers, &meridianpb.HTTPHeader{Key: k, Values: vs})
	}
	return out, nil
}
