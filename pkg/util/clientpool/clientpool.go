// Package clientpool is the gRPC connection pool every Meridian component
// uses to reach another (distributors and queriers to ingesters, queriers to
// store-gateways). It is dskit's ring client pool with one eviction policy
// and one way of dialling, so both pools behave and are observed alike:
// every checkInterval it closes the connections of addresses that left the
// ring, and of instances whose gRPC health check failed for
// healthCheckGracePeriod (a restart keeps its connection).
package clientpool

import (
	"context"
	"fmt"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/grpcclient"
	"github.com/grafana/dskit/middleware"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"

	"github.com/meridianhq/meridian/pkg/util/grpccodec"
)

// Eviction timing, the same for every pool.
const (
	checkInterval          = 15 * time.Second
	healthCheckTimeout     = 5 * time.Second
	healthCheckGracePeriod = time.Minute
)

// Target names what a pool connects to.
type Target struct {
	// Name is the component in logs and errors: "ingester".
	Name string
	// MetricNoun starts the pool's metric names:
	// meridian_<noun>_client_request_duration_seconds and meridian_<noun>_clients.
	MetricNoun string
	// Plural is used in the metrics' help: "ingesters".
	Plural string
}

// NewClientFunc wraps a new connection to addr in the component's client,
// which must answer gRPC health checks and close the connection on Close.
type NewClientFunc func(addr string, conn *grpc.ClientConn) (ringclient.PoolClient, error)

// Pool hands out one client per address. It is a service: run it to evict
// connections; stopping it closes them all.
type Pool struct {
	services.Service
	pool *ringclient.Pool
}

// New creates a pool of connections to the instances of r (nil: never
// evict on ring membership).
func New(target Target, cfg grpcclient.Config, r ring.ReadRing, newClient NewClientFunc, logger log.Logger, reg prometheus.Registerer) *Pool {
	var discovery ringclient.PoolServiceDiscovery
	if r != nil {
		discovery = ringclient.NewRingServiceDiscovery(r)
	}
	return newPool(target, cfg, discovery, ringclient.PoolConfig{
		CheckInterval:          checkInterval,
		HealthCheckEnabled:     true,
		HealthCheckTimeout:     healthCheckTimeout,
		HealthCheckGracePeriod: healthCheckGracePeriod,
	}, newClient, logger, reg)
}

func newPool(target Target, cfg grpcclient.Config, discovery ringclient.PoolServiceDiscovery, poolCfg ringclient.PoolConfig, newClient NewClientFunc, logger log.Logger, reg prometheus.Registerer) *Pool {
	f := promauto.With(reg)
	reqLatency := f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "meridian_" + target.MetricNoun + "_client_request_duration_seconds",
		Help:    "Time spent on gRPC requests to " + target.Plural + ".",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
	}, []string{"method", "status_code"})
	clients := f.NewGauge(prometheus.GaugeOpts{
		Name: "meridian_" + target.MetricNoun + "_clients",
		Help: "Open connections to " + target.Plural + ".",
	})
	p := &Pool{}
	p.pool = ringclient.NewPool(target.Name, poolCfg, discovery, ringclient.PoolAddrFunc(func(addr string) (ringclient.PoolClient, error) {
		conn, err := dial(target, cfg, addr, reqLatency)
		if err != nil {
			return nil, err
		}
		c, err := newClient(addr, conn)
		if err != nil {
			_ = conn.Close()
			return nil, err
		}
		return c, nil
	}), clients, logger)
	p.Service = services.NewIdleService(
		func(ctx context.Context) error { return services.StartAndAwaitRunning(ctx, p.pool) },
		func(error) error {
			err := services.StopAndAwaitTerminated(context.Background(), p.pool)
			p.Close()
			return err
		})
	return p
}

// Get returns the client of an address, connecting on first use.
func (p *Pool) Get(addr string) (ringclient.PoolClient, error) {
	return p.pool.GetClientFor(addr)
}

// Close closes every connection.
func (p *Pool) Close() {
	for _, addr := range p.pool.RegisteredAddresses() {
		p.pool.RemoveClientFor(addr)
	}
}

func dial(target Target, cfg grpcclient.Config, addr string, reqLatency *prometheus.HistogramVec) (*grpc.ClientConn, error) {
	// Instrument also carries the tenant in the gRPC metadata.
	unary, stream := grpcclient.Instrument(reqLatency)
	opts, err := cfg.DialOption(unary, stream, middleware.NoOpInvalidClusterValidationReporter)
	if err != nil {
		return nil, fmt.Errorf("%s client options: %w", target.Name, err)
	}
	opts = append(opts,
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.PooledCodec{})),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
	)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s %s: %w", target.Name, addr, err)
	}
	return conn, nil
}
