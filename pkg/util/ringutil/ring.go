package ringutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
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
	// Join makes this process a member: registered, heartbeating, leaving
	// the ring when stopped and forgetting long-dead members (see
	// ForgetAfter). Without it the process only watches the ring.
	Join bool
	// Lifecycle, when set, makes the member join in steps, keep its tokens
	// in a file, and so on (see LifecycleConfig): the ingester ring's. nil
	// registers it ACTIVE at once and removes it from the ring when stopped.
	Lifecycle *LifecycleConfig
	// OnLeaving, when set, is called while the member stops: after it
	// turned LEAVING and before it leaves the ring. The member keeps
	// heartbeating meanwhile. The ingester flushes here.
	OnLeaving func()
	// ForgetAfter: members whose last heartbeat is older than this are
	// removed from the ring by this member's heartbeats. 0 means
	// AutoForgetPeriods heartbeat timeouts; negative never forgets.
	ForgetAfter time.Duration
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

	minReady    time.Duration
	readyMtx    sync.Mutex
	activeSince time.Time // when CheckReady first saw this member ACTIVE
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
		if opts.Lifecycle != nil {
			if err := opts.Lifecycle.Validate(); err != nil {
				return nil, fmt.Errorf("%s ring: %w", name, err)
			}
			r.minReady = opts.Lifecycle.MinReadyDuration
		}
		lc, err := newLifecycler(name, key, cfg, kvCfg, opts, logger, reg)
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

// newLifecycler makes this process a member: see Options.Join and
// Options.Lifecycle.
func newLifecycler(name, key string, cfg Config, kvCfg kv.Config, opts Options, logger log.Logger, reg prometheus.Registerer) (*ring.BasicLifecycler, error) {
	lcfg := LifecycleConfig{UnregisterOnShutdown: true}
	if opts.Lifecycle != nil {
		lcfg = *opts.Lifecycle
	}
	addr := cfg.InstanceAddr
	if addr == "" {
		names := lcfg.InterfaceNames
		if len(names) == 0 {
			names = netutil.PrivateNetworkInterfacesWithFallback([]string{"eth0", "en0"}, logger)
		}
		var err error
		addr, err = netutil.GetFirstAddressOf(names, logger, lcfg.EnableInet6)
		if err != nil {
			level.Warn(logger).Log("msg", "no address found for the ring; advertising 127.0.0.1, set the ring's instance address", "ring", name, "err", err)
			addr = "127.0.0.1"
		}
	}
	store, err := kv.NewClient(kvCfg, ring.GetCodec(), kv.RegistererWithKVName(reg, name+"-lifecycler"), logger)
	if err != nil {
		return nil, fmt.Errorf("create the %s ring KV client: %w", name, err)
	}
	forgetAfter := opts.ForgetAfter
	if forgetAfter == 0 {
		forgetAfter = AutoForgetPeriods * cfg.HeartbeatTimeout
	}
	var forget *forgetter
	if forgetAfter > 0 {
		forget = newForgetter(name, forgetAfter, logger, reg)
	}
	delegate := newMemberDelegate(lcfg, cfg.NumTokens, opts.OnLeaving, forget, log.With(logger, "ring", name))
	lc, err := ring.NewBasicLifecycler(ring.BasicLifecyclerConfig{
		ID:                              cfg.InstanceID,
		Addr:                            net.JoinHostPort(addr, strconv.Itoa(cfg.InstancePort)),
		Zone:                            lcfg.Zone,
		HeartbeatPeriod:                 cfg.HeartbeatPeriod,
		HeartbeatTimeout:                cfg.HeartbeatTimeout,
		NumTokens:                       cfg.NumTokens,
		KeepInstanceInTheRingOnShutdown: !lcfg.UnregisterOnShutdown,
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

// MemberState is this member's state in the ring; PENDING when it is not one.
func (r *Ring) MemberState() ring.InstanceState {
	if r.lifecycler == nil {
		return ring.PENDING
	}
	return r.lifecycler.GetState()
}

// CheckReady tells whether this member is ready to serve: ACTIVE, for at
// least the min ready duration (counted from the first check that saw it
// ACTIVE). A process that is not a member is always ready.
func (r *Ring) CheckReady() error {
	if r.lifecycler == nil {
		return nil
	}
	r.readyMtx.Lock()
	defer r.readyMtx.Unlock()
	if st := r.lifecycler.GetState(); st != ring.ACTIVE {
		r.activeSince = time.Time{}
		return fmt.Errorf("this %s is %s in the ring, not ACTIVE", r.name, st)
	}
	if r.activeSince.IsZero() {
		r.activeSince = time.Now()
	}
	if wait := r.minReady - time.Since(r.activeSince); wait > 0 {
		return fmt.Errorf("this %s is ACTIVE in the ring and reports ready in %s (min ready duration %s)", r.name, wait.Round(time.Millisecond), r.minReady)
	}
	return nil
}

// SetUnregisterOnShutdown changes, until the member stops, whether it
// removes its entry from the ring when it stops.
func (r *Ring) SetUnregisterOnShutdown(unregister bool) {
	if r.lifecycler != nil {
		r.lifecycler.SetKeepInstanceInTheRingOnShutdown(!unregister)
	}
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
