package compactor

import (
	"flag"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// RingKey is the key of the compactor ring in the KV store.
const RingKey = "compactor"

const ringName = "compactor"

// ringOp finds a tenant's compactor among the ACTIVE ones.
var ringOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, func(s ring.InstanceState) bool { return s != ring.ACTIVE })

// RingConfig configures the compactor ring, which shards tenants across
// compactors: each tenant belongs to exactly one.
type RingConfig struct {
	ringutil.Config `yaml:",inline"`
	// WaitActiveTimeout bounds how long starting waits to see itself in the ring.
	WaitActiveTimeout time.Duration `yaml:"wait_active_timeout" category:"advanced"`
}

// RegisterFlags registers the flags under -compactor.ring.
func (c *RingConfig) RegisterFlags(f *flag.FlagSet) {
	c.Config.RegisterFlagsWithPrefix(f, "compactor.ring.", ringName, 128)
	f.Lookup("compactor.ring.heartbeat-timeout").Usage = "How long after its last heartbeat a compactor stops owning tenants. The tenants of a compactor that died without leaving the ring are not compacted until it is back or forgotten (10 timeouts)."
	f.DurationVar(&c.WaitActiveTimeout, "compactor.ring.wait-active-timeout", time.Minute, "How long a starting compactor waits to see itself ACTIVE in the ring before it fails.")
}

// NewRing makes this compactor a member of the compactor ring. The
// compactor runs it: starting waits until this compactor sees itself
// ACTIVE, so its first run already skips the other compactors' tenants.
func NewRing(cfg RingConfig, kvCfg kv.Config, logger log.Logger, reg prometheus.Registerer) (*ringutil.Ring, error) {
	return ringutil.NewRing(ringName, RingKey, cfg.Config, kvCfg, ringutil.Options{
		Join:              true,
		WaitActiveTimeout: cfg.WaitActiveTimeout,
	}, logger, reg)
}
