package storegateway

import (
	"context"
	"flag"
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
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/grpccodec"
)

// ClientConfig configures the queriers' connections to store-gateways.
type ClientConfig struct {
	GRPC grpcclient.Config `yaml:"grpc_client_config"`
}

// RegisterFlags registers the client flags under -store-gateway.client.
func (c *ClientConfig) RegisterFlags(f *flag.FlagSet) {
	c.GRPC.RegisterFlagsWithPrefix("store-gateway.client", f)
}

// Validate checks the configuration.
func (c *ClientConfig) Validate() error {
	if err := c.GRPC.Validate(); err != nil {
		return fmt.Errorf("store-gateway client: %w", err)
	}
	return nil
}

// ClientPool hands out one client per store-gateway address. It is
// dskit's ring client pool: every clientCheckInterval it closes the
// connections of addresses that left the store-gateway ring and of
// store-gateways that failed their gRPC health check for
// clientHealthCheckGracePeriod. It is a service: run it to evict
// connections; stopping it closes them all.
type ClientPool struct {
	services.Service
	pool *ringclient.Pool
}

// Timing of the pool's eviction of connections, as for the ingester pool.
const (
	clientCheckInterval          = 15 * time.Second
	clientHealthCheckTimeout     = 5 * time.Second
	clientHealthCheckGracePeriod = time.Minute
)

// NewClientPool creates a pool of connections to the store-gateways of
// sgRing (nil: never evict on ring membership).
func NewClientPool(cfg ClientConfig, sgRing ring.ReadRing, logger log.Logger, reg prometheus.Registerer) *ClientPool {
	var discovery ringclient.PoolServiceDiscovery
	if sgRing != nil {
		discovery = ringclient.NewRingServiceDiscovery(sgRing)
	}
	return newClientPool(cfg, discovery, ringclient.PoolConfig{
		CheckInterval:          clientCheckInterval,
		HealthCheckEnabled:     true,
		HealthCheckTimeout:     clientHealthCheckTimeout,
		HealthCheckGracePeriod: clientHealthCheckGracePeriod,
	}, logger, reg)
}

func newClientPool(cfg ClientConfig, discovery ringclient.PoolServiceDiscovery, poolCfg ringclient.PoolConfig, logger log.Logger, reg prometheus.Registerer) *ClientPool {
	f := promauto.With(reg)
	reqLatency := f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "meridian_storegateway_client_request_duration_seconds",
		Help:    "Time spent on gRPC requests to store-gateways.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
	}, []string{"method", "status_code"})
	clients := f.NewGauge(prometheus.GaugeOpts{
		Name: "meridian_storegateway_clients",
		Help: "Open connections to store-gateways.",
	})
	p := &ClientPool{}
	p.pool = ringclient.NewPool("store-gateway", poolCfg, discovery, ringclient.PoolAddrFunc(func(addr string) (ringclient.PoolClient, error) {
		return dial(cfg, addr, reqLatency)
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

// Get returns the client of a store-gateway address.
func (p *ClientPool) Get(addr string) (meridianpb.StoreGatewayClient, error) {
	c, err := p.pool.GetClientFor(addr)
	if err != nil {
		return nil, err
	}
	return c.(*grpcClient), nil
}

// Close closes every connection.
func (p *ClientPool) Close() {
	for _, addr := range p.pool.RegisteredAddresses() {
		p.pool.RemoveClientFor(addr)
	}
}

func dial(cfg ClientConfig, addr string, reqLatency *prometheus.HistogramVec) (*grpcClient, error) {
	// Instrument also carries the tenant in the gRPC metadata.
	unary, stream := grpcclient.Instrument(reqLatency)
	opts, err := cfg.GRPC.DialOption(unary, stream, middleware.NoOpInvalidClusterValidationReporter)
	if err != nil {
		return nil, fmt.Errorf("store-gateway client options: %w", err)
	}
	opts = append(opts,
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.PooledCodec{})),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
	)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to store-gateway %s: %w", addr, err)
	}
	return &grpcClient{StoreGatewayClient: meridianpb.NewStoreGatewayClient(conn), HealthClient: grpc_health_v1.NewHealthClient(conn), conn: conn}, nil
}

type grpcClient struct {
	meridianpb.StoreGatewayClient
	grpc_health_v1.HealthClient
	conn *grpc.ClientConn
}

func (c *grpcClient) Close() error { return c.conn.Close() }
