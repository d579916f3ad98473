// Package client is the gRPC client side of the ingester API, shared by
// distributors and queriers: a pool of connections keyed by address.
package client

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/grpcclient"
	"github.com/grafana/dskit/middleware"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/grpccodec"
)

// Config configures connections to ingesters.
type Config struct {
	GRPC          grpcclient.Config `yaml:"grpc_client_config"`
	RemoteTimeout time.Duration     `yaml:"remote_timeout"`
}

// RegisterFlags registers the client flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.GRPC.RegisterFlagsWithPrefix("ingester.client", f)
	f.DurationVar(&c.RemoteTimeout, "ingester.client.remote-timeout", 20*time.Second, "Timeout of one push or query to an ingester.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if err := c.GRPC.Validate(); err != nil {
		return fmt.Errorf("ingester client: %w", err)
	}
	return nil
}

// Client is what distributors and queriers call on an ingester.
type Client interface {
	meridianpb.IngesterClient
	io.Closer
}

// Pool hands out one client per ingester address. It is dskit's ring
// client pool: every poolCheckInterval it closes the connections of
// addresses that left the ingester ring and of ingesters that failed their
// gRPC health check for poolHealthCheckGracePeriod. Local is the
// in-process ingester, used without gRPC when its address comes up
// (monolith mode). It is a service: run it to evict connections; stopping
// it closes them all.
type Pool struct {
	services.Service
	pool *ringclient.Pool

	cfg       Config
	localAddr string
	local     func() meridianpb.IngesterServer
}

// Timing of the pool's eviction of connections: a failing ingester keeps
// its connection for a minute (a restart), one that left the ring loses
// it at the next check.
const (
	poolCheckInterval          = 15 * time.Second
	poolHealthCheckTimeout     = 5 * time.Second
	poolHealthCheckGracePeriod = time.Minute
)

// NewPool creates a pool of connections to the ingesters of ingesterRing
// (nil: never evict on ring membership). local returns the in-process
// ingester (or nil) and is asked at first use of localAddr; it may be nil.
func NewPool(cfg Config, ingesterRing ring.ReadRing, localAddr string, local func() meridianpb.IngesterServer, logger log.Logger, reg prometheus.Registerer) *Pool {
	f := promauto.With(reg)
	reqLatency := f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "meridian_ingester_client_request_duration_seconds",
		Help:    "Time spent on gRPC requests to ingesters.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
	}, []string{"method", "status_code"})
	clients := f.NewGauge(prometheus.GaugeOpts{
		Name: "meridian_ingester_clients",
		Help: "Open connections to ingesters.",
	})
	p := &Pool{cfg: cfg, localAddr: localAddr, local: local}
	var discovery ringclient.PoolServiceDiscovery
	if ingesterRing != nil {
		discovery = ringclient.NewRingServiceDiscovery(ingesterRing)
	}
	p.pool = ringclient.NewPool("ingester", ringclient.PoolConfig{
		CheckInterval:          poolCheckInterval,
		HealthCheckEnabled:     true,
		HealthCheckTimeout:     poolHealthCheckTimeout,
		HealthCheckGracePeriod: poolHealthCheckGracePeriod,
	}, discovery, ringclient.PoolAddrFunc(func(addr string) (ringclient.PoolClient, error) {
		return p.dial(addr, reqLatency)
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

// Get returns the client for an ingester address.
func (p *Pool) Get(addr string) (Client, error) {
	c, err := p.pool.GetClientFor(addr)
	if err != nil {
		return nil, err
	}
	return c.(Client), nil
}

func (p *Pool) dial(addr string, reqLatency *prometheus.HistogramVec) (ringclient.PoolClient, error) {
	// Instrument also carries the tenant in gRPC metadata.
	unary, stream := grpcclient.Instrument(reqLatency)
	opts, err := p.cfg.GRPC.DialOption(unary, stream, middleware.NoOpInvalidClusterValidationReporter)
	if err != nil {
		return nil, fmt.Errorf("ingester client options: %w", err)
	}
	opts = append(opts,
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.PooledCodec{})),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
	)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to ingester %s: %w", addr, err)
	}
	c := &grpcClient{IngesterClient: meridianpb.NewIngesterClient(conn), HealthClient: grpc_health_v1.NewHealthClient(conn), conn: conn}
	if p.local != nil && addr == p.localAddr {
		if local := p.local(); local != nil {
			// Same process: push without encoding; queries still stream over gRPC.
			return &localClient{grpcClient: c, local: local}, nil
		}
	}
	return c, nil
}

// Close closes every connection.
func (p *Pool) Close() {
	for _, addr := range p.pool.RegisteredAddresses() {
		p.pool.RemoveClientFor(addr)
	}
}

// RemoteTimeout is the per-call timeout.
func (p *Pool) RemoteTimeout() time.Duration { return p.cfg.RemoteTimeout }

type grpcClient struct {
	meridianpb.IngesterClient
	grpc_health_v1.HealthClient
	conn *grpc.ClientConn
}

func (c *grpcClient) Close() error { return c.conn.Close() }

type localClient struct {
	*grpcClient
	local meridianpb.IngesterServer
}

func (c *localClient) Push(ctx context.Context, req *prompb.WriteRequest, _ ...grpc.CallOption) (*meridianpb.PushResponse, error) {
	return c.local.Push(ctx, req)
}
