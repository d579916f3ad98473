package ingester

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// RingKey is the key under which the ingester ring lives in the KV store.
const RingKey = "ingester"

// LifecyclerConfig is the ingester's ring membership (YAML
// ingester.lifecycler): the membership every ring has (ringutil.Config),
// what a member holding data adds (ringutil.LifecycleConfig), and the ring
// as distributors and queriers read it (RingConfig). The flags keep the
// names of dskit's classic lifecycler, which the ingester used before.
type LifecyclerConfig struct {
	ringutil.Config          `yaml:",inline"`
	ringutil.LifecycleConfig `yaml:",inline"`
	// RingConfig is read by distributors and queriers (replication factor,
	// zone awareness, heartbeat timeout); its KV store is common.ring's.
	RingConfig ring.Config `yaml:"ring"`

	// ReadinessCheckRingHealth has no effect: /ready of an ingester checks
	// only this ingester. Kept so that existing configurations load.
	ReadinessCheckRingHealth bool `yaml:"readiness_check_ring_health" category:"advanced"`

	// Deprecated YAML keys of dskit's LifecyclerConfig, now instance_id,
	// instance_addr and instance_port; see ResolveDeprecated.
	DeprecatedID   string `yaml:"id,omitempty"`
	DeprecatedAddr string `yaml:"address,omitempty"`
	DeprecatedPort int    `yaml:"port,omitempty"`

	defaultID string // the -ingester.lifecycler.ID default, to tell whether it was set
}

// RegisterFlags registers the flags under their historical -ingester.* names.
func (c *LifecyclerConfig) RegisterFlags(f *flag.FlagSet, logger log.Logger) {
	c.RingConfig.RegisterFlagsWithPrefix("ingester.", f)
	c.LifecycleConfig.RegisterFlagsWithPrefix(f, "ingester.", "ingester", logger)
	c.defaultID, _ = os.Hostname()
	f.IntVar(&c.NumTokens, "ingester.num-tokens", 128, "Tokens this ingester owns in the ingester ring.")
	f.DurationVar(&c.HeartbeatPeriod, "ingester.heartbeat-period", 5*time.Second, "How often this ingester updates its heartbeat in the ingester ring.")
	f.DurationVar(&c.HeartbeatTimeout, "ingester.heartbeat-timeout", time.Minute, "Has no effect: the ingester ring's health and page use -ingester.ring.heartbeat-timeout in every process. Kept so that existing command lines keep working.")
	f.StringVar(&c.InstanceID, "ingester.lifecycler.ID", c.defaultID, "ID of this ingester in the ring; unique in the cluster, stable across restarts for the tokens file and an entry kept in the ring to be reused.")
	f.StringVar(&c.InstanceAddr, "ingester.lifecycler.addr", "", "Address this ingester advertises in the ring. Empty: the gRPC listen address if set, 127.0.0.1 for a lone -target=all process, else the first address of -ingester.lifecycler.interface.")
	f.IntVar(&c.InstancePort, "ingester.lifecycler.port", 0, "Port this ingester advertises in the ring. 0 means the gRPC listen port.")
	f.BoolVar(&c.ReadinessCheckRingHealth, "ingester.readiness-check-ring-health", true, "Has no effect: /ready of an ingester checks only this ingester (ACTIVE for -ingester.min-ready-duration). Kept so that existing command lines keep working.")
}

// Validate checks the membership settings.
func (c *LifecyclerConfig) Validate() error {
	member := c.member()
	if err := member.Validate(); err != nil {
		return err
	}
	return c.LifecycleConfig.Validate()
}

// member is the ring membership as ringutil runs it: one heartbeat
// timeout, the readers' (-ingester.ring.heartbeat-timeout).
func (c *LifecyclerConfig) member() ringutil.Config {
	m := c.Config
	m.HeartbeatTimeout = c.RingConfig.HeartbeatTimeout
	return m
}

// ResolveDeprecated applies the deprecated YAML keys id, address and port
// where instance_id, instance_addr and instance_port (or their flags) were
// not set, and reports each use to warn.
func (c *LifecyclerConfig) ResolveDeprecated(warn func(string)) {
	use := func(old, canonical, flagName string, set, canonicalSet bool, apply func()) {
		switch {
		case !set:
		case canonicalSet:
			warn(fmt.Sprintf("both ingester.lifecycler.%s (deprecated) and ingester.lifecycler.%s or -%s are set; %s is ignored", old, canonical, flagName, old))
		default:
			apply()
			warn(fmt.Sprintf("ingester.lifecycler.%s is deprecated; use ingester.lifecycler.%s or -%s instead", old, canonical, flagName))
		}
	}
	use("id", "instance_id", "ingester.lifecycler.ID", c.DeprecatedID != "", c.InstanceID != c.defaultID, func() { c.InstanceID = c.DeprecatedID })
	use("address", "instance_addr", "ingester.lifecycler.addr", c.DeprecatedAddr != "", c.InstanceAddr != "", func() { c.InstanceAddr = c.DeprecatedAddr })
	use("port", "instance_port", "ingester.lifecycler.port", c.DeprecatedPort != 0, c.InstancePort != 0, func() { c.InstancePort = c.DeprecatedPort })
	c.DeprecatedID, c.DeprecatedAddr, c.DeprecatedPort = "", "", 0
}

// newRing makes this ingester a member of the ingester ring: joining in
// the steps of ringutil.LifecycleConfig, flushing (with flush on shutdown)
// while LEAVING, forgetting dead members after the auto-forget period.
func (i *Ingester) newRing(reg prometheus.Registerer) (*ringutil.Ring, error) {
	lc := i.cfg.Lifecycler
	forgetAfter := i.cfg.AutoForgetUnhealthy
	if forgetAfter <= 0 {
		forgetAfter = -1 // opt-in for the ingester ring
	}
	r, err := ringutil.NewRing("ingester", RingKey, lc.member(), lc.RingConfig.KVStore, ringutil.Options{
		Join:              true,
		Lifecycle:         &lc.LifecycleConfig,
		OnLeaving:         i.flushOnLeaving,
		ForgetAfter:       forgetAfter,
		ReplicationFactor: lc.RingConfig.ReplicationFactor,
		Strategy:          ring.NewDefaultReplicationStrategy(),
		Client:            i.cfg.RingClient,
	}, i.logger, prometheus.WrapRegistererWithPrefix("meridian_", reg))
	if err != nil {
		return nil, fmt.Errorf("create the ingester's ring membership: %w", err)
	}
	return r, nil
}

// flushOnLeaving runs while this ingester is LEAVING, before it leaves the
// ring: with flush on shutdown, every tenant's head is cut into blocks and
// shipped.
func (i *Ingester) flushOnLeaving() {
	if !i.flushOnShutdown.Load() {
		level.Info(i.logger).Log("msg", "not flushing on shutdown; the WAL keeps the head for the next start")
		return
	}
	start := time.Now()
	if err := i.flushAll(context.Background()); err != nil {
		level.Error(i.logger).Log("msg", "flush on shutdown did not complete; the WAL keeps what was not shipped for the next start", "err", err, "duration", time.Since(start))
		return
	}
	level.Info(i.logger).Log("msg", "flushed all tenants", "duration", time.Since(start))
}

// CheckReady tells whether this ingester is ready: ACTIVE in the ring for
// at least -ingester.min-ready-duration.
func (i *Ingester) CheckReady() error { return i.ring.CheckReady() }
