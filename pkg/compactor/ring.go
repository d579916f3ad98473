package compactor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// RingKey is the key of the compactor ring in the KV store.
const RingKey = "compactor"

const ringName = "compactor"

// ringOp finds a tenant's compactor among the ACTIVE ones.
var ringOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, func(s ring.InstanceState) bool { return s != ring.ACTIVE })

// RingConfig configures the compactor ring, which shards tenants across
// compactors: each tenant belongs to exactly one. Its KV store is the
// ingester ring's.
type RingConfig struct {
	HeartbeatPeriod  time.Duration `yaml:"heartbeat_period" category:"advanced"`
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout" category:"advanced"`
	NumTokens        int           `yaml:"num_tokens" category:"advanced"`
	InstanceID       string        `yaml:"instance_id" category:"advanced"`
	InstanceAddr     string        `yaml:"instance_addr" category:"advanced"`
	InstancePort     int           `yaml:"instance_port" category:"advanced"`
	// WaitActiveTimeout bounds how long starting waits to see itself in the ring.
	WaitActiveTimeout time.Duration `yaml:"wait_active_timeout" category:"advanced"`
}

// RegisterFlags registers the flags under -compactor.ring.
func (c *RingConfig) RegisterFlags(f *flag.FlagSet) {
	hostname, _ := os.Hostname()
	f.DurationVar(&c.HeartbeatPeriod, "compactor.ring.heartbeat-period", 15*time.Second, "How often this compactor updates its heartbeat in the compactor ring.")
	f.DurationVar(&c.HeartbeatTimeout, "compactor.ring.heartbeat-timeout", time.Minute, "How long after its last heartbeat a compactor stops owning tenants. The tenants of a compactor that died without leaving the ring are not compacted until it is back or forgotten (10 timeouts).")
	f.IntVar(&c.NumTokens, "compactor.ring.num-tokens", 128, "Tokens this compactor owns in the compactor ring.")
	f.StringVar(&c.InstanceID, "compactor.ring.instance-id", hostname, "ID of this compactor in the compactor ring; unique in the cluster.")
	f.StringVar(&c.InstanceAddr, "compactor.ring.instance-addr", "", "Address this compactor advertises in the compactor ring. Empty means the ingester's address setting, else the first private address.")
	f.IntVar(&c.InstancePort, "compactor.ring.instance-port", 0, "Port this compactor advertises in the compactor ring. 0 means the gRPC listen port.")
	f.DurationVar(&c.WaitActiveTimeout, "compactor.ring.wait-active-timeout", time.Minute, "How long a starting compactor waits to see itself ACTIVE in the ring before it fails.")
}

// Validate checks the configuration.
func (c *RingConfig) Validate() error {
	if c.HeartbeatPeriod <= 0 || c.HeartbeatTimeout <= c.HeartbeatPeriod {
		return fmt.Errorf("compactor ring heartbeat_timeout (%s) must be longer than heartbeat_period (%s), both positive", c.HeartbeatTimeout, c.HeartbeatPeriod)
	}
	if c.NumTokens < 1 {
		return fmt.Errorf("compactor ring num_tokens must be positive, got %d", c.NumTokens)
	}
	if c.InstanceID == "" {
		return errors.New("compactor ring instance_id must not be empty")
	}
	return nil
}

// Ring is this compactor's membership of the compactor ring and its view
// of it. It is started and stopped by the compactor.
type Ring struct {
	cfg        RingConfig
	lifecycler *ring.BasicLifecycler
	client     *ring.Ring
	logger     log.Logger
}

// NewRing creates the compactor ring membership over kvCfg.
func NewRing(cfg RingConfig, kvCfg kv.Config, logger log.Logger, reg prometheus.Registerer) (*Ring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lc, err := ringutil.NewLifecycler(ringName, RingKey, ringutil.LifecyclerConfig{
		ID: cfg.InstanceID, Addr: cfg.InstanceAddr, Port: cfg.InstancePort, NumTokens: cfg.NumTokens,
		HeartbeatPeriod: cfg.HeartbeatPeriod, HeartbeatTimeout: cfg.HeartbeatTimeout,
	}, kvCfg, logger, reg)
	if err != nil {
		return nil, err
	}
	store, err := kv.NewClient(kvCfg, ring.GetCodec(), kv.RegistererWithKVName(reg, ringName+"-client"), logger)
	if err != nil {
		return nil, fmt.Errorf("create the compactor ring KV client: %w", err)
	}
	client, err := ring.NewWithStoreClientAndStrategy(ring.Config{
		KVStore: kvCfg, HeartbeatTimeout: cfg.HeartbeatTimeout, ReplicationFactor: 1,
	}, ringName, RingKey, store, ring.NewIgnoreUnhealthyInstancesReplicationStrategy(), reg, logger)
	if err != nil {
		return nil, fmt.Errorf("create the compactor ring client: %w", err)
	}
	return &Ring{cfg: cfg, lifecycler: lc, client: client, logger: logger}, nil
}

// start joins the ring and waits until this compactor sees itself ACTIVE.
func (r *Ring) start(ctx context.Context) error {
	if err := services.StartAndAwaitRunning(ctx, r.lifecycler); err != nil {
		return fmt.Errorf("join the compactor ring: %w", err)
	}
	if err := services.StartAndAwaitRunning(ctx, r.client); err != nil {
		_ = services.StopAndAwaitTerminated(context.Background(), r.lifecycler)
		return fmt.Errorf("watch the compactor ring: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.WaitActiveTimeout)
	defer cancel()
	if err := ring.WaitInstanceState(wctx, r.client, r.lifecycler.GetInstanceID(), ring.ACTIVE); err != nil {
		_ = r.stop()
		return fmt.Errorf("wait to be ACTIVE in the compactor ring: %w", err)
	}
	level.Info(r.logger).Log("msg", "joined the compactor ring", "instance", r.lifecycler.GetInstanceID())
	return nil
}

func (r *Ring) stop() error {
	errLC := services.StopAndAwaitTerminated(context.Background(), r.lifecycler)
	errClient := services.StopAndAwaitTerminated(context.Background(), r.client)
	return errors.Join(errLC, errClient)
}

// OwnsTenant tells whether the tenant belongs to this compactor.
func (r *Ring) OwnsTenant(tenant string) (bool, error) {
	rs, err := r.client.Get(ringutil.Token([]byte(tenant)), ringOp, nil, nil, nil)
	if err != nil {
		return false, fmt.Errorf("look up tenant %s in the compactor ring: %w", tenant, err)
	}
	return rs.Includes(r.lifecycler.GetInstanceAddr()), nil
}

// ServeHTTP serves the compactor ring page.
func (r *Ring) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.client.ServeHTTP(w, req) }
