package distributor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/netutil"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
)

// RingKey is the key of the distributor ring in the KV store. The ring only
// counts the distributors that share the per-tenant ingestion rate limits.
const RingKey = "distributor"

const (
	ringName = "distributor"
	// ringAutoForgetPeriods is how many heartbeat timeouts an instance may
	// miss before a peer removes it from the ring.
	ringAutoForgetPeriods = 10
)

// RingConfig configures this distributor's membership of the distributor
// ring. The KV store is the ingester ring's, given to NewDistributorRing.
type RingConfig struct {
	HeartbeatPeriod  time.Duration `yaml:"heartbeat_period" category:"advanced"`
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout" category:"advanced"`
	InstanceID       string        `yaml:"instance_id" category:"advanced"`
	InstanceAddr     string        `yaml:"instance_addr" category:"advanced"`
	InstancePort     int           `yaml:"instance_port" category:"advanced"`
}

// RegisterFlags registers the flags of RingConfig under "distributor.ring.".
func (c *RingConfig) RegisterFlags(f *flag.FlagSet) {
	hostname, _ := os.Hostname()
	f.DurationVar(&c.HeartbeatPeriod, "distributor.ring.heartbeat-period", 15*time.Second, "How often this distributor updates its heartbeat in the distributor ring.")
	f.DurationVar(&c.HeartbeatTimeout, "distributor.ring.heartbeat-timeout", time.Minute, "How long after its last heartbeat a distributor stops counting as healthy, so the others take over its share of the ingestion rate limits.")
	f.StringVar(&c.InstanceID, "distributor.ring.instance-id", hostname, "ID of this distributor in the distributor ring; unique in the cluster.")
	f.StringVar(&c.InstanceAddr, "distributor.ring.instance-addr", "", "Address this distributor advertises in the distributor ring. Empty means the first private address of the network interfaces.")
	f.IntVar(&c.InstancePort, "distributor.ring.instance-port", 0, "Port this distributor advertises in the distributor ring. 0 means the gRPC listen port.")
}

// Validate checks the config.
func (c *RingConfig) Validate() error {
	if c.HeartbeatPeriod <= 0 {
		return fmt.Errorf("distributor ring heartbeat_period must be positive, got %s", c.HeartbeatPeriod)
	}
	if c.HeartbeatTimeout <= c.HeartbeatPeriod {
		return fmt.Errorf("distributor ring heartbeat_timeout (%s) must be longer than heartbeat_period (%s)", c.HeartbeatTimeout, c.HeartbeatPeriod)
	}
	if c.InstanceID == "" {
		return errors.New("distributor ring instance_id must not be empty")
	}
	if c.InstancePort < 0 || c.InstancePort > 65535 {
		return fmt.Errorf("distributor ring instance_port must be a port number, got %d", c.InstancePort)
	}
	return nil
}

// DistributorRing registers this distributor in the distributor ring and
// watches the ring to count the healthy distributors. It is a service: when
// starting it joins the ring, when stopping it leaves it, so the others take
// over its share of the rate limits at once. Distributors that die without
// leaving stop counting after the heartbeat timeout and are removed from the
// ring after ten of them.
type DistributorRing struct {
	services.Service

	lifecycler *ring.BasicLifecycler
	client     *ring.Ring
	watcher    *services.FailureWatcher
	logger     log.Logger
}

// NewDistributorRing creates the distributor ring membership over the KV store
// kvCfg (the ingester ring's). reg receives the dskit ring metrics, named as
// given (ring_members{name="distributor"}, ...): pass a registerer with the
// process' prefix.
func NewDistributorRing(cfg RingConfig, kvCfg kv.Config, logger log.Logger, reg prometheus.Registerer) (*DistributorRing, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	addr := cfg.InstanceAddr
	if addr == "" {
		var err error
		addr, err = netutil.GetFirstAddressOf(netutil.PrivateNetworkInterfacesWithFallback([]string{"eth0", "en0"}, logger), logger, false)
		if err != nil {
			// The address is only shown on the ring page; the count works without it.
			level.Warn(logger).Log("msg", "no address found for the distributor ring; advertising 127.0.0.1, set -distributor.ring.instance-addr", "err", err)
			addr = "127.0.0.1"
		}
	}

	store, err := kv.NewClient(kvCfg, ring.GetCodec(), kv.RegistererWithKVName(reg, ringName+"-lifecycler"), logger)
	if err != nil {
		return nil, fmt.Errorf("create the distributor ring KV client: %w", err)
	}

	var delegate ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(ring.ACTIVE, 1)
	delegate = ring.NewLeaveOnStoppingDelegate(delegate, logger)
	delegate = ring.NewAutoForgetDelegate(ringAutoForgetPeriods*cfg.HeartbeatTimeout, delegate, logger)
	lc, err := ring.NewBasicLifecycler(ring.BasicLifecyclerConfig{
		ID:               cfg.InstanceID,
		Addr:             net.JoinHostPort(addr, strconv.Itoa(cfg.InstancePort)),
		HeartbeatPeriod:  cfg.HeartbeatPeriod,
		HeartbeatTimeout: cfg.HeartbeatTimeout,
		NumTokens:        1,
	}, ringName, RingKey, store, delegate, logger, reg)
	if err != nil {
		return nil, fmt.Errorf("create the distributor ring lifecycler: %w", err)
	}

	client, err := ring.NewWithStoreClientAndStrategy(ring.Config{
		KVStore:           kvCfg,
		HeartbeatTimeout:  cfg.HeartbeatTimeout,
		ReplicationFactor: 1,
	}, ringName, RingKey, store, ring.NewDefaultReplicationStrategy(), reg, logger)
	if err != nil {
		return nil, fmt.Errorf("create the distributor ring client: %w", err)
	}

	r := &DistributorRing{
		lifecycler: lc,
		client:     client,
		watcher:    services.NewFailureWatcher(),
		logger:     logger,
	}
	r.watcher.WatchService(lc)
	r.watcher.WatchService(client)
	r.Service = services.NewBasicService(r.starting, r.running, r.stopping).WithName("distributor ring")
	return r, nil
}

// starting joins the ring, then starts watching it, so the first count
// already includes this distributor.
func (r *DistributorRing) starting(ctx context.Context) error {
	begin := time.Now()
	if err := services.StartAndAwaitRunning(ctx, r.lifecycler); err != nil {
		return fmt.Errorf("join the distributor ring: %w", err)
	}
	if err := services.StartAndAwaitRunning(ctx, r.client); err != nil {
		// Leave again: stopping is not called when starting fails.
		_ = services.StopAndAwaitTerminated(context.Background(), r.lifecycler)
		return fmt.Errorf("watch the distributor ring: %w", err)
	}
	level.Info(r.logger).Log("msg", "joined the distributor ring", "instance", r.lifecycler.GetInstanceID(), "duration", time.Since(begin))
	return nil
}

func (r *DistributorRing) running(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-r.watcher.Chan():
		return fmt.Errorf("distributor ring: %w", err)
	}
}

// stopping leaves the ring, then stops watching it.
func (r *DistributorRing) stopping(_ error) error {
	begin := time.Now()
	errLC := services.StopAndAwaitTerminated(context.Background(), r.lifecycler)
	errClient := services.StopAndAwaitTerminated(context.Background(), r.client)
	if err := errors.Join(errLC, errClient); err != nil {
		return fmt.Errorf("leave the distributor ring: %w", err)
	}
	level.Info(r.logger).Log("msg", "left the distributor ring", "instance", r.lifecycler.GetInstanceID(), "duration", time.Since(begin))
	return nil
}

// HealthyInstances returns how many distributors are ACTIVE in the ring with
// a recent heartbeat, this one included; at least 1, so a limit is never
// divided by zero, before the first ring update for instance.
func (r *DistributorRing) HealthyInstances() int {
	set, err := r.client.GetAllHealthy(ring.Write)
	if err != nil {
		return 1
	}
	return max(1, len(set.Instances))
}

// ServeHTTP serves the distributor ring status page.
func (r *DistributorRing) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.client.ServeHTTP(w, req)
}

var _ http.Handler = (*DistributorRing)(nil)
