package ringutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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

// AutoForgetPeriods is how many heartbeat timeouts a member may miss
// before a peer removes it from the ring.
const AutoForgetPeriods = 10

// Options says how a process takes part in a ring.
type Options struct {
	// Join makes this process a member: registered ACTIVE at once,
	// heartbeating, leaving the ring when stopped and forgetting members
	// unhealthy for AutoForgetPeriods heartbeat timeouts (dskit's
	// AutoForgetDelegate). Without it the process only watches the ring.
	Join bool
	// WaitActiveTimeout > 0 makes starting wait, at most this long, until
	// the ring client sees this member ACTIVE: for callers that must not
	// act on a ring that does not include them yet.
	WaitActiveTimeout time.Duration
	// ReplicationFactor of lookups; 0 means 1.
	ReplicationFactor int
	// Strategy of lookups; nil means ignoring unhealthy members, so a key
	// is served as long as one of its owners is alive.
	Strategy ring.ReplicationStrategy
	// Client, when set, is a client of the same ring that its owner runs
	// and watches (a process registers one client per ring name): the Ring
	// looks up through it instead of running its own, and ReplicationFactor
	// and Strategy are the client's.
	Client *ring.Ring
}

// Ring is a process' view of one ring and, with Options.Join, its
// membership. It is a service: starting joins (then watches), stopping
// leaves (then stops watching), and it fails when the lifecycler or the
// ring client fails.
type Ring struct {
	services.Service

	name       string
	opts       Options
	lifecycler *ring.BasicLifecycler // nil: not a member
	client     *ring.Ring
	ownClient  bool // started, stopped and watched here
	watcher    *services.FailureWatcher
	logger     log.Logger
}

// NewRing creates the ring stored under key in the KV store kvCfg. name
// labels metrics, logs and errors (ring_members{name="compactor"}, ...):
// pass a registerer with the process' prefix.
func NewRing(name, key string, cfg Config, kvCfg kv.Config, opts Options, logger log.Logger, reg prometheus.Registerer) (*Ring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s ring: %w", name, err)
	}
	if opts.ReplicationFactor == 0 {
		opts.ReplicationFactor = 1
	}
	if opts.Strategy == nil {
		opts.Strategy = ring.NewIgnoreUnhealthyInstancesReplicationStrategy()
	}
	r := &Ring{name: name, opts: opts, watcher: services.NewFailureWatcher(), logger: logger}
	if opts.Join {
		lc, err := newLifecycler(name, key, cfg, kvCfg, logger, reg)
		if err != nil {
			return nil, err
		}
		r.lifecycler = lc
		r.watcher.WatchService(lc)
	}
	if opts.Client != nil {
		r.client = opts.Client
	} else {
		store, err := kv.NewClient(kvCfg, ring.GetCodec(), kv.RegistererWithKVName(reg, name+"-client"), logger)
		if err != nil {
			return nil, fmt.Errorf("create the %s ring KV client: %w", name, err)
		}
		r.client, err = ring.NewWithStoreClientAndStrategy(ring.Config{
			KVStore:           kvCfg,
			HeartbeatTimeout:  cfg.HeartbeatTimeout,
			ReplicationFactor: opts.ReplicationFactor,
		}, name, key, store, opts.Strategy, reg, logger)
		if err != nil {
			return nil, fmt.Errorf("create the %s ring client: %w", name, err)
		}
		r.ownClient = true
		r.watcher.WatchService(r.client)
	}
	r.Service = services.NewBasicService(r.starting, r.running, r.stopping).WithName(name + " ring")
	return r, nil
}

// newLifecycler registers this process ACTIVE at once with cfg.NumTokens
// random tokens, leaving the ring when stopped.
func newLifecycler(name, key string, cfg Config, kvCfg kv.Config, logger log.Logger, reg prometheus.Registerer) (*ring.BasicLifecycler, error) {
	addr := cfg.InstanceAddr
	if addr == "" {
		var err error
		addr, err = netutil.GetFirstAddressOf(netutil.PrivateNetworkInterfacesWithFallback([]string{"eth0", "en0"}, logger), logger, false)
		if err != nil {
			level.Warn(logger).Log("msg", "no address found for the ring; advertising 127.0.0.1, set the ring's instance-addr flag", "ring", name, "err", err)
			addr = "127.0.0.1"
		}
	}
	store, err := kv.NewClient(kvCfg, ring.GetCodec(), kv.RegistererWithKVName(reg, name+"-lifecycler"), logger)
	if err != nil {
		return nil, fmt.Errorf("create the %s ring KV client: %w", name, err)
	}
	var delegate ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(ring.ACTIVE, cfg.NumTokens)
	delegate = ring.NewLeaveOnStoppingDelegate(delegate, logger)
	delegate = ring.NewAutoForgetDelegate(AutoForgetPeriods*cfg.HeartbeatTimeout, delegate, logger)
	lc, err := ring.NewBasicLifecycler(ring.BasicLifecyclerConfig{
		ID:               cfg.InstanceID,
		Addr:             net.JoinHostPort(addr, strconv.Itoa(cfg.InstancePort)),
		HeartbeatPeriod:  cfg.HeartbeatPeriod,
		HeartbeatTimeout: cfg.HeartbeatTimeout,
		NumTokens:        cfg.NumTokens,
	}, name, key, store, delegate, logger, reg)
	if err != nil {
		return nil, fmt.Errorf("create the %s ring lifecycler: %w", name, err)
	}
	return lc, nil
}

// starting joins the ring, then starts watching it, so the first view
// already includes this member.
func (r *Ring) starting(ctx context.Context) error {
	begin := time.Now()
	if r.lifecycler != nil {
		if err := services.StartAndAwaitRunning(ctx, r.lifecycler); err != nil {
			return fmt.Errorf("join the %s ring: %w", r.name, err)
		}
	}
	if r.ownClient {
		if err := services.StartAndAwaitRunning(ctx, r.client); err != nil {
			// Leave again: stopping is not called when starting fails.
			_ = r.stopLifecycler()
			return fmt.Errorf("watch the %s ring: %w", r.name, err)
		}
	}
	if r.lifecycler == nil {
		return nil
	}
	if r.opts.WaitActiveTimeout > 0 {
		wctx, cancel := context.WithTimeout(ctx, r.opts.WaitActiveTimeout)
		defer cancel()
		if err := ring.WaitInstanceState(wctx, r.client, r.lifecycler.GetInstanceID(), ring.ACTIVE); err != nil {
			_ = r.stopping(nil)
			return fmt.Errorf("wait to be ACTIVE in the %s ring: %w", r.name, err)
		}
	}
	level.Info(r.logger).Log("msg", "joined the ring", "ring", r.name, "instance", r.lifecycler.GetInstanceID(), "duration", time.Since(begin))
	return nil
}

func (r *Ring) running(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-r.watcher.Chan():
		return fmt.Errorf("%s ring: %w", r.name, err)
	}
}

// stopping leaves the ring, then stops watching it.
func (r *Ring) stopping(_ error) error {
	begin := time.Now()
	errLC := r.stopLifecycler()
	var errClient error
	if r.ownClient {
		errClient = services.StopAndAwaitTerminated(context.Background(), r.client)
	}
	if err := errors.Join(errLC, errClient); err != nil {
		return fmt.Errorf("leave the %s ring: %w", r.name, err)
	}
	if r.lifecycler != nil {
		level.Info(r.logger).Log("msg", "left the ring", "ring", r.name, "instance", r.lifecycler.GetInstanceID(), "duration", time.Since(begin))
	}
	return nil
}

func (r *Ring) stopLifecycler() error {
	if r.lifecycler == nil {
		return nil
	}
	return services.StopAndAwaitTerminated(context.Background(), r.lifecycler)
}

// Client is the ring client, for lookups.
func (r *Ring) Client() *ring.Ring { return r.client }

// Owns tells whether this member is among the owners of token for op. A
// process that is not a member owns nothing.
func (r *Ring) Owns(token uint32, op ring.Operation) (bool, error) {
	return r.OwnsIn(r.client, token, op)
}

// OwnsIn is Owns within sub, a subring of this ring (a tenant's shuffle
// shard).
func (r *Ring) OwnsIn(sub ring.ReadRing, token uint32, op ring.Operation) (bool, error) {
	if r.lifecycler == nil {
		return false, nil
	}
	rs, err := sub.Get(token, op, nil, nil, nil)
	if err != nil {
		return false, fmt.Errorf("look up token %d in the %s ring: %w", token, r.name, err)
	}
	return rs.Includes(r.lifecycler.GetInstanceAddr()), nil
}

// MemberOf tells whether this member is in sub, a subring of this ring (a
// tenant's shuffle shard).
func (r *Ring) MemberOf(sub ring.ReadRing) bool {
	return r.lifecycler != nil && sub.HasInstance(r.lifecycler.GetInstanceID())
}

// HealthyMembers returns how many members are ACTIVE with a recent
// heartbeat.
func (r *Ring) HealthyMembers() (int, error) {
	set, err := r.client.GetAllHealthy(ring.Write)
	if err != nil {
		return 0, err
	}
	return len(set.Instances), nil
}

// ServeHTTP serves the ring's status page, with its Forget buttons.
func (r *Ring) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.client.ServeHTTP(w, req) }

var _ http.Handler = (*Ring)(nil)
