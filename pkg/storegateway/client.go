package storegateway

import (
	"flag"
	"fmt"
	"io"
	"sync"

	"github.com/grafana/dskit/grpcclient"
	"github.com/grafana/dskit/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"

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

// Client is a connection to one store-gateway.
type Client interface {
	meridianpb.StoreGatewayClient
	io.Closer
}

// ClientPool hands out one client per store-gateway address.
type ClientPool struct {
	cfg        ClientConfig
	reqLatency *prometheus.HistogramVec

	mu      sync.Mutex
	clients map[string]*grpcClient
}

// NewClientPool creates a pool.
func NewClientPool(cfg ClientConfig, reg prometheus.Registerer) *ClientPool {
	return &ClientPool{
		cfg:     cfg,
		clients: map[string]*grpcClient{},
		reqLatency: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meridian_storegateway_client_request_duration_seconds",
			Help:    "Time spent on gRPC requests to store-gateways.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"method", "status_code"}),
	}
}

// Get returns the client of a store-gateway address.
func (p *ClientPool) Get(addr string) (meridianpb.StoreGatewayClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[addr]; ok {
		return c, nil
	}
	// Instrument also carries the tenant in the gRPC metadata.
	unary, stream := grpcclient.Instrument(p.reqLatency)
	opts, err := p.cfg.GRPC.DialOption(unary, stream, middleware.NoOpInvalidClusterValidationReporter)
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
	c := &grpcClient{StoreGatewayClient: meridianpb.NewStoreGatewayClient(conn), conn: conn}
	p.clients[addr] = c
	return c, nil
}

// Close closes every connection.
func (p *ClientPool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.clients {
		_ = c.Close()
		delete(p.clients, addr)
	}
	return nil
}

type grpcClient struct {
	meridianpb.StoreGatewayClient
	conn *grpc.ClientConn
}

func (c *grpcClient) Close() error { return c.conn.Close() }
