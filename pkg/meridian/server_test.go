package meridian

import (
	"context"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestGRPCServerMakesOneSpanPerCall: dskit's server adds the OpenTelemetry
// stats handler itself, so the wiring must not add a second one.
func TestGRPCServerMakesOneSpanPerCall(t *testing.T) {
	// OpenTelemetry's tracer provider is process-global by design.
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	var cfg Config
	require.NoError(t, ParseArgs(newFlagSet(&cfg), []string{
		"-server.http-listen-port=0", "-server.grpc-listen-port=0",
		"-server.http-listen-address=127.0.0.1", "-server.grpc-listen-address=127.0.0.1",
	}, &cfg))
	m, err := New(cfg, log.NewNopLogger(), nil)
	require.NoError(t, err)
	svc, err := m.initServer() // registers the gRPC health service this test calls
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), svc))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), svc)) })

	conn, err := grpc.NewClient(m.Server.GRPCListenAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)

	// Both handlers started a span, and both ended the inner one only:
	// the outer span was never ended, so count the started ones.
	var started int
	for _, s := range rec.Started() {
		if s.SpanKind() == trace.SpanKindServer {
			started++
		}
	}
	require.Equal(t, 1, started, "server spans started for one gRPC call")
	require.Eventually(t, func() bool { return len(rec.Ended()) == 1 }, time.Second, 10*time.Millisecond, "the server span is ended")
}
