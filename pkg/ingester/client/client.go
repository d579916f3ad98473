// Package client is the gRPC client side of the ingester API, shared by
// distributors and queriers: a pool of connections keyed by address.
package client

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/grafana/dskit/grpcclient"
	"github.com/grafana/dskit/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"

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

// Pool hands out one client per ingester address. Local is the in-process
// ingester, used without gRPC when its address comes up (monolith mode).
type Pool struct {
	cfg        Config
	localAddr  string
	local      func() meridianpb.IngesterServer
	reqLatency *prometheus.HistogramVec

	mtx     sync.Mutex
	clients map[string]Client
}

// NewPool creates a pool. local returns the in-process ingester (or nil)
// and is asked at first use of localAddr; it may be nil.
func NewPool(cfg Config, localAddr string, local func() meridianpb.IngesterServer, reg prometheus.Registerer) *Pool {
	return &Pool{
		cfg:       cfg,
		localAddr: localAddr,
		local:     local,
		clients:   map[string]Client{},
		reqLatency: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meridian_ingester_client_request_duration_seconds",
			Help:    "Time spent on gRPC requests to ingesters.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"method", "status_code"}),
	}
}

// Get returns the client for an ingester address.
func (p *Pool) Get(addr string) (Client, error) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	if c, ok := p.clients[addr]; ok {
		return c, nil
	}
	c, err := p.dial(addr)
	if err != nil {
		return nil, err
	}
	p.clients[addr] = c
	return c, nil
}

func (p *Pool) dial(addr string) (Client, error) {
	// Instrument also carries the tenant in gRPC metadata.
	unary, stream := grpcclient.Instrument(p.reqLatency)
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
	c := &grpcClient{IngesterClient: meridianpb.NewIngesterClient(conn), conn: conn}
	if p.local != nil && addr == p.localAddr {
		if local := p.local(); local != nil {
			// Same process: push without encoding; queries still stream over gRPC.
			return &localClient{grpcClient: c, local: local}, nil
		}
	}
	return c, nil
}

// Close closes every connection.
func (p *Pool) Close() error {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	for addr, c := range p.clients {
		_ = c.Close()
		delete(p.clients, addr)
	}
	return nil
}

// RemoteTimeout is the per-call timeout.
func (p *Pool) RemoteTimeout() time.Duration { return p.cfg.RemoteTimeout }

type grpcClient struct {
	meridianpb.IngesterClient
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
