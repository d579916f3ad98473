// Package client is the querier's side of the store-gateway API: the
// connection pool, and which store-gateways own a block (the ring key and
// operation both sides must agree on).
package client

import (
	"flag"
	"fmt"

	"github.com/oklog/ulid/v2"

	"github.com/go-kit/log"

	"github.com/grafana/dskit/grpcclient"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/clientpool"
	"github.com/meridianhq/meridian/pkg/util/ringutil"
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

// ClientPool hands out one client per store-gateway address, evicting
// those that left the store-gateway ring (pkg/util/clientpool). It is a
// service: run it to evict connections; stopping it closes them all.
type ClientPool struct {
	*clientpool.Pool
}

// NewClientPool creates a pool of connections to the store-gateways of
// sgRing (nil: never evict on ring membership).
func NewClientPool(cfg ClientConfig, sgRing ring.ReadRing, logger log.Logger, reg prometheus.Registerer) *ClientPool {
	target := clientpool.Target{Name: "store-gateway", MetricNoun: "storegateway", Plural: "store-gateways"}
	newClient := func(_ string, conn *grpc.ClientConn) (ringclient.PoolClient, error) {
		return &grpcClient{StoreGatewayClient: meridianpb.NewStoreGatewayClient(conn), HealthClient: grpc_health_v1.NewHealthClient(conn), conn: conn}, nil
	}
	return &ClientPool{Pool: clientpool.New(target, cfg.GRPC, sgRing, newClient, logger, reg)}
}

// Get returns the client of a store-gateway address.
func (p *ClientPool) Get(addr string) (meridianpb.StoreGatewayClient, error) {
	c, err := p.Pool.Get(addr)
	if err != nil {
		return nil, err
	}
	return c.(*grpcClient), nil
}

type grpcClient struct {
	meridianpb.StoreGatewayClient
	grpc_health_v1.HealthClient
	conn *grpc.ClientConn
}

func (c *grpcClient) Close() error { return c.conn.Close() }

// RingOp selects the store-gateways that own a block: ACTIVE ones, and
// the next instance in the ring in place of one that is not ACTIVE.
var RingOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, func(s ring.InstanceState) bool { return s != ring.ACTIVE })

// BlockToken is the ring key of a tenant's block.
func BlockToken(tenant string, id ulid.ULID) uint32 {
	return ringutil.Token([]byte(tenant), id[:])
}

// TenantShard is the part of the store-gateway ring that serves the
// tenant's blocks: its shuffle shard of size (dskit's ShuffleShard, the
// same on queriers and store-gateways; never fewer members than the
// replication factor), or the whole ring when size is 0.
func TenantShard(r ring.ReadRing, tenant string, size int) ring.ReadRing {
	size = ringutil.ShuffleShardSize(size, r.ReplicationFactor())
	if size == 0 {
		return r
	}
	return r.ShuffleShard(tenant, size)
}

// ShardSizes gives a tenant's store-gateway shard size (0: every
// store-gateway), read on each use so runtime overrides apply at once.
type ShardSizes interface {
	StoreGatewayTenantShardSize(tenant string) int
}
