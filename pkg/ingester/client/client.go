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
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/clientpool"
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

// Pool hands out one client per ingester address, evicting those that
// left the ingester ring (pkg/util/clientpool). Local is the in-process
// ingester, used without gRPC when its address comes up (monolith mode). It
// is a service: run it to evict connections; stopping it closes them all.
type Pool struct {
	*clientpool.Pool
	cfg Config
}

// NewPool creates a pool of connections to the ingesters of ingesterRing
// (nil: never evict on ring membership). local returns the in-process
// ingester (or nil) and is asked at first use of localAddr; it may be nil.
func NewPool(cfg Config, ingesterRing ring.ReadRing, localAddr string, local func() meridianpb.IngesterServer, logger log.Logger, reg prometheus.Registerer) *Pool {
	target := clientpool.Target{Name: "ingester", MetricNoun: "ingester", Plural: "ingesters"}
	newClient := func(addr string, conn *grpc.ClientConn) (ringclient.PoolClient, error) {
		c := &grpcClient{IngesterClient: meridianpb.NewIngesterClient(conn), HealthClient: grpc_health_v1.NewHealthClient(conn), conn: conn}
		if local != nil && addr == localAddr {
			if l := local(); l != nil {
				// Same process: push without encoding; queries still stream over gRPC.
				return &localClient{grpcClient: c, local: l}, nil
			}
		}
		return c, nil
	}
	return &Pool{Pool: clientpool.New(target, cfg.GRPC, ingesterRing, newClient, logger, reg), cfg: cfg}
}

// Get returns the client for an ingester address.
func (p *Pool) Get(addr string) (Client, error) {
	c, err := p.Pool.Get(addr)
	if err != nil {
		return nil, err
	}
	return c.(Client), nil
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
