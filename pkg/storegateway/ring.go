package storegateway

import (
	"flag"
	"fmt"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// RingKey is the key of the store-gateway ring in the KV store.
const RingKey = "store-gateway"

const ringName = "store-gateway"

// RingConfig configures the store-gateway ring.
type RingConfig struct {
	ReplicationFactor int `yaml:"replication_factor"`
	ringutil.Config   `yaml:",inline"`
}

// RegisterFlags registers the ring flags under -store-gateway.ring.
func (c *RingConfig) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.ReplicationFactor, "store-gateway.ring.replication-factor", 1, "How many store-gateways own each block. Queriers ask another owner when one fails, so 2 or more keeps long-term queries answering while a store-gateway is down; use at least 2 in clusters. Set the same value on queriers and store-gateways.")
	c.Config.RegisterFlagsWithPrefix(f, "store-gateway.ring.", ringName, 128)
	f.Lookup("store-gateway.ring.heartbeat-timeout").Usage = "How long after its last heartbeat a store-gateway is no longer asked for blocks. Store-gateways unhealthy for 10 timeouts are removed from the ring."
	f.Lookup("store-gateway.ring.num-tokens").Usage = "Tokens this store-gateway owns in the ring; more tokens spread blocks more evenly."
}

// Validate checks the configuration.
func (c *RingConfig) Validate() error {
	if c.ReplicationFactor < 1 {
		return fmt.Errorf("store-gateway replication factor must be at least 1, got %d", c.ReplicationFactor)
	}
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("store-gateway ring: %w", err)
	}
	return nil
}

// NewRing returns a watcher of the store-gateway ring: queriers route
// blocks with it, store-gateways decide with it which blocks they own (New
// joins through it). Lookups ignore unhealthy members instead of failing
// on them: a block is served as long as one of its owners is alive.
func NewRing(cfg RingConfig, kvCfg kv.Config, logger log.Logger, reg prometheus.Registerer) (*ringutil.Ring, error) {
	return ringutil.NewRing(ringName, RingKey, cfg.Config, kvCfg, ringutil.Options{
		ReplicationFactor: cfg.ReplicationFactor,
	}, logger, reg)
}

// newMembership makes this store-gateway a member of the ring, looking up
// through sgRing's client.
func newMembership(cfg RingConfig, kvCfg kv.Config, sgRing *ringutil.Ring, logger log.Logger, reg prometheus.Registerer) (*ringutil.Ring, error) {
	return ringutil.NewRing(ringName, RingKey, cfg.Config, kvCfg, ringutil.Options{
		Join:   true,
		Client: sgRing.Client(),
	}, logger, reg)
}
