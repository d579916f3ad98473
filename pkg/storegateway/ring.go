package storegateway

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// RingKey is the key of the store-gateway ring in the KV store.
const RingKey = "store-gateway"

const ringName = "store-gateway"

// RingOp selects the store-gateways that own a block: ACTIVE ones, and
// the next instance in the ring in place of one that is not ACTIVE.
var RingOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, func(s ring.InstanceState) bool { return s != ring.ACTIVE })

// RingConfig configures the store-gateway ring. Its KV store is the
// ingester ring's.
type RingConfig struct {
	ReplicationFactor int           `yaml:"replication_factor"`
	HeartbeatPeriod   time.Duration `yaml:"heartbeat_period" category:"advanced"`
	HeartbeatTimeout  time.Duration `yaml:"heartbeat_timeout" category:"advanced"`
	NumTokens         int           `yaml:"num_tokens" category:"advanced"`
	InstanceID        string        `yaml:"instance_id" category:"advanced"`
	InstanceAddr      string        `yaml:"instance_addr" category:"advanced"`
	InstancePort      int           `yaml:"instance_port" category:"advanced"`
}

// RegisterFlags registers the ring flags under -store-gateway.ring.
func (c *RingConfig) RegisterFlags(f *flag.FlagSet) {
	hostname, _ := os.Hostname()
	f.IntVar(&c.ReplicationFactor, "store-gateway.ring.replication-factor", 1, "How many store-gateways own each block. Queriers ask another owner when one fails, so 2 or more keeps long-term queries answering while a store-gateway is down; use at least 2 in clusters. Set the same value on queriers and store-gateways.")
	f.DurationVar(&c.HeartbeatPeriod, "store-gateway.ring.heartbeat-period", 15*time.Second, "How often this store-gateway updates its heartbeat in the ring.")
	f.DurationVar(&c.HeartbeatTimeout, "store-gateway.ring.heartbeat-timeout", time.Minute, "How long after its last heartbeat a store-gateway is no longer asked for blocks.")
	f.IntVar(&c.NumTokens, "store-gateway.ring.num-tokens", 128, "Tokens this store-gateway owns in the ring; more tokens spread blocks more evenly.")
	f.StringVar(&c.InstanceID, "store-gateway.ring.instance-id", hostname, "ID of this store-gateway in the ring; unique in the cluster.")
	f.StringVar(&c.InstanceAddr, "store-gateway.ring.instance-addr", "", "Address this store-gateway advertises in the ring. Empty means the ingester's address setting, else the first private address of the network interfaces.")
	f.IntVar(&c.InstancePort, "store-gateway.ring.instance-port", 0, "Port this store-gateway advertises in the ring. 0 means the gRPC listen port.")
}

// Validate checks the configuration.
func (c *RingConfig) Validate() error {
	if c.ReplicationFactor < 1 {
		return fmt.Errorf("store-gateway replication factor must be at least 1, got %d", c.ReplicationFactor)
	}
	if c.HeartbeatPeriod <= 0 || c.HeartbeatTimeout <= c.HeartbeatPeriod {
		return fmt.Errorf("store-gateway ring heartbeat_timeout (%s) must be longer than heartbeat_period (%s), both positive", c.HeartbeatTimeout, c.HeartbeatPeriod)
	}
	if c.NumTokens < 1 {
		return fmt.Errorf("store-gateway ring num_tokens must be positive, got %d", c.NumTokens)
	}
	if c.InstanceID == "" {
		return errors.New("store-gateway ring instance_id must not be empty")
	}
	return nil
}

// NewRingClient returns a client of the store-gateway ring over kvCfg. It
// ignores unhealthy instances instead of failing a lookup on them: a block
// is served as long as one of its owners is alive.
func NewRingClient(cfg RingConfig, kvCfg kv.Config, logger log.Logger, reg prometheus.Registerer) (*ring.Ring, error) {
	store, err := kv.NewClient(kvCfg, ring.GetCodec(), kv.RegistererWithKVName(reg, ringName+"-client"), logger)
	if err != nil {
		return nil, fmt.Errorf("create the store-gateway ring KV client: %w", err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(ring.Config{
		KVStore:           kvCfg,
		HeartbeatTimeout:  cfg.HeartbeatTimeout,
		ReplicationFactor: cfg.ReplicationFactor,
	}, ringName, RingKey, store, ring.NewIgnoreUnhealthyInstancesReplicationStrategy(), reg, logger)
	if err != nil {
		return nil, fmt.Errorf("create the store-gateway ring client: %w", err)
	}
	return r, nil
}

// newLifecycler registers this store-gateway in the ring, ACTIVE at once:
// blocks are loaded lazily, so there is nothing to wait for.
func newLifecycler(cfg RingConfig, kvCfg kv.Config, logger log.Logger, reg prometheus.Registerer) (*ring.BasicLifecycler, error) {
	return ringutil.NewLifecycler(ringName, RingKey, ringutil.LifecyclerConfig{
		ID: cfg.InstanceID, Addr: cfg.InstanceAddr, Port: cfg.InstancePort, NumTokens: cfg.NumTokens,
		HeartbeatPeriod: cfg.HeartbeatPeriod, HeartbeatTimeout: cfg.HeartbeatTimeout,
	}, kvCfg, logger, reg)
}

// BlockToken is the ring key of a tenant's block.
func BlockToken(tenant string, id ulid.ULID) uint32 {
	return ringutil.Token([]byte(tenant), id[:])
}
