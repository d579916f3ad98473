package worker

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/scheduler"
	"github.com/meridianhq/meridian/pkg/tenant"
	"github.com/meridianhq/meridian/pkg/util/grpccodec"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startQueue serves a fresh queue over gRPC on loopback, with the tenant
// interceptors of a Meridian server.
func startQueue(t *testing.T) (*scheduler.Queue, string) {
	t.Helper()
	q := scheduler.NewQueue(scheduler.NewQueueMetrics(prometheus.NewRegistry()))
	unary, stream := tenant.GRPCServerInterceptors(scheduler.QuerierLoopMethod)
	srv := grpc.NewServer(grpc.ForceServerCodec(grpccodec.Codec{}), grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream))
	meridianpb.RegisterQueryQueueServer(srv, scheduler.Server{Queue: q})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		q.Close()
		srv.Stop()
	})
	return q, l.Addr().String()
}

func startWorker(t *testing.T, addr string, h http.Handler, reg prometheus.Registerer) *Worker {
	t.Helper()
	w, err := New(Config{Parallelism: 2, QuerierID: "q1"}, addr, h, log.NewNopLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), w))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), w)) })
	return w
}

func TestWorkerAnswersThroughSchedulerClient(t *testing.T) {
	_, addr := startQueue(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Tenant", r.Header.Get(user.OrgIDHeaderName))
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(r.Method + " " + r.URL.String() + " " + string(b)))
	})
	startWorker(t, addr, h, prometheus.NewRegistry())

	c, err := scheduler.NewClient(addr)
	require.NoError(t, err)
	defer c.Close()
	ctx := user.InjectOrgID(context.Background(), "team-a")
	req := &meridianpb.HTTPRequest{Method: "POST", Url: "/prometheus/api/v1/query?x=1", Body: []byte("query=up"),
		Headers: []*meridianpb.HTTPHeader{{Key: user.OrgIDHeaderName, Values: []string{"team-a"}}}}
	resp, err := c.Do(ctx, "team-a", req, 0, 0)
	require.NoError(t, err)
	require.EqualValues(t, http.StatusAccepted, resp.Code)
	require.Equal(t, "POST /prometheus/api/v1/query?x=1 query=up", string(resp.Body))
	hdr := http.Header{}
	for _, h := range resp.Headers {
		hdr[h.Key] = h.Values
	}
	require.Equal(t, "team-a", hdr.Get("X-Tenant"))
}

func TestWorkerCanceledWhenClientGoesAway(t *testing.T) {
	q, addr := startQueue(t)
	started := make(chan struct{}, 1)
	canceled := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			canceled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	})
	reg := prometheus.NewRegistry()
	w := startWorker(t, addr, h, reg)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := q.Do(ctx, "team-a", &meridianpb.HTTPRequest{Method: "GET", Url: "/slow"}, 0, 0)
		errc <- err
	}()
	<-started
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the querier's handler was not canceled")
	}
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(w.requests.WithLabelValues("canceled")) == 1
	}, 5*time.Second, 10*time.Millisecond)
}

// A querier that takes a request and dies fails that request with
// ErrQuerierGone; the next querier answers a retry.
func TestQuerierGone(t *testing.T) {
	q, addr := startQueue(t)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(grpccodec.Codec{})))
	require.NoError(t, err)
	defer conn.Close()
	ctx, die := context.WithCancel(context.Background())
	s, err := meridianpb.NewQueryQueueClient(conn).QuerierLoop(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Send(&meridianpb.QuerierMessage{QuerierId: "doomed"}))

	errc := make(chan error, 1)
	go func() {
		_, err := q.Do(context.Background(), "team-a", &meridianpb.HTTPRequest{Url: "/death"}, 0, 0)
		errc <- err
	}()
	got, err := s.Recv()
	require.NoError(t, err)
	require.Equal(t, "/death", got.Request.Url)
	die() // the querier "crashes" mid-request
	require.ErrorIs(t, <-errc, scheduler.ErrQuerierGone)

	startWorker(t, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }), prometheus.NewRegistry())
	resp, err := q.Do(context.Background(), "team-a", &meridianpb.HTTPRequest{Method: "GET", Url: "/death"}, 0, 0)
	require.NoError(t, err)
	require.Equal(t, "ok", string(resp.Body))
}
