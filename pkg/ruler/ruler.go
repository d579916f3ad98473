// Package ruler evaluates each tenant's recording and alerting rules with
// the Prometheus rules engine.
//
// Rule groups are kept in object storage (Store) and managed through the
// Cortex/Mimir configuration API (api.go). Every ruler is a member of the
// ruler ring; a group belongs to the first healthy ruler found walking the
// ring from the token of tenant/namespace/group. Each ruler syncs on start,
// on a timer, after a change through its own API and whenever the set of
// healthy rulers changes, and runs one rules.Manager per tenant with the
// groups it owns. Because every ruler computes ownership from the same ring
// with the same rule, a group is evaluated by one ruler at a time (for as
// long as the rulers agree on the ring: a few gossip rounds after a change),
// and the groups of a ruler that stops heartbeating move to the others once
// its heartbeat is older than the heartbeat timeout.
//
// Rules query the querier's read path (ingesters and store-gateways) and
// write their results through the distributor's write path, both in
// process, with the tenant in the context, so recorded series are
// validated, limited and replicated like any remote write. Alert state
// survives a restart or a move to another ruler: the manager restores the
// 'for' state from ALERTS_FOR_STATE.
package ruler

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/util/logging"
	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// ringOp finds the healthy ACTIVE rulers.
var ringOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)

// Ruler is the ruler service.
type Ruler struct {
	services.Service

	cfg        Config
	store      *Store
	ring       *ringutil.Ring
	instanceID string
	queryable  storage.Queryable
	writer     Writer
	limits     limits.Source
	notifier   *notifier
	parser     parser.Parser
	engines    *engines
	logger     log.Logger
	reg        prometheus.Registerer

	syncNow chan struct{}

	mtx     sync.RWMutex
	tenants map[string]*tenantRules

	syncs        *prometheus.CounterVec
	syncDuration prometheus.Histogram
	ownedGauge   prometheus.Gauge
}

// tenantRules is one tenant's rules manager and the groups it evaluates.
type tenantRules struct {
	manager *rules.Manager
	loader  *groupLoader
	metrics *trackingRegisterer
	done    chan struct{}
}

// New creates the ruler. ringSvc makes this process a member of the ruler
// ring (see NewRing); the ruler starts and stops it.
// lookbackDelta is the querier's (-querier.lookback-delta), so rules see
// what queries see.
func New(cfg Config, store *Store, ringSvc *ringutil.Ring, q storage.Queryable, w Writer, lim limits.Source, lookbackDelta time.Duration, logger log.Logger, reg prometheus.Registerer) *Ruler {
	p := parser.NewParser(parser.Options{})
	r := &Ruler{
		cfg:        cfg,
		store:      store,
		ring:       ringSvc,
		instanceID: cfg.Ring.InstanceID,
		queryable:  q,
		writer:     w,
		limits:     lim,
		notifier:   newNotifier(cfg, logger, reg),
		parser:     p,
		engines:    newEngines(p, lookbackDelta, logger),
		logger:     log.With(logger, "component", "ruler"),
		reg:        reg,
		syncNow:    make(chan struct{}, 1),
		tenants:    map[string]*tenantRules{},
		syncs: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_ruler_sync_rules_total",
			Help: "Syncs of the ruler with the rule store and the ring, by reason and status.",
		}, []string{"reason", "status"}),
		syncDuration: promauto.With(reg).NewHistogram(prometheus.HistogramOpts{
			Name:    "meridian_ruler_sync_rules_duration_seconds",
			Help:    "Time one sync of the ruler with the rule store and the ring took.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8),
		}),
		ownedGauge: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "meridian_ruler_owned_rule_groups",
			Help: "Rule groups this ruler evaluates.",
		}),
	}
	r.Service = services.NewBasicService(r.starting, r.running, r.stopping).WithName("ruler")
	return r
}

func (r *Ruler) starting(ctx context.Context) error {
	if err := services.StartAndAwaitRunning(ctx, r.ring); err != nil {
		return fmt.Errorf("start the ruler ring: %w", err)
	}
	r.notifier.start()
	// Wait until this ruler sees itself in the ring, so the first sync
	// already takes its share.
	if err := ring.WaitInstanceState(ctx, r.ring.Client(), r.instanceID, ring.ACTIVE); err != nil {
		return fmt.Errorf("wait to be ACTIVE in the ruler ring: %w", err)
	}
	r.sync(ctx, "initial")
	return nil
}

func (r *Ruler) running(ctx context.Context) error {
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	// The ring is checked at the heartbeat period: a change of the healthy
	// members (one joined, left, or stopped heartbeating) moves groups.
	ringCheck := time.NewTicker(max(r.cfg.Ring.HeartbeatPeriod/2, 100*time.Millisecond))
	defer ringCheck.Stop()
	lastRing := r.healthyRulers()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			r.sync(ctx, "periodic")
		case <-r.syncNow:
			r.sync(ctx, "api-change")
		case <-ringCheck.C:
			if cur := r.healthyRulers(); cur != lastRing {
				lastRing = cur
				r.sync(ctx, "ring-change")
			}
		}
	}
}

func (r *Ruler) stopping(_ error) error {
	r.mtx.Lock()
	for tenant, tr := range r.tenants {
		r.stopTenant(tenant, tr)
	}
	r.tenants = map[string]*tenantRules{}
	r.mtx.Unlock()
	r.notifier.stop()
	return services.StopAndAwaitTerminated(context.Background(), r.ring)
}

// healthyRulers is a fingerprint of the healthy members of the ring.
func (r *Ruler) healthyRulers() string {
	rs, err := r.ring.Client().GetAllHealthy(ringOp)
	if err != nil {
		return ""
	}
	ids := make([]string, 0, len(rs.Instances))
	for _, in := range rs.Instances {
		ids = append(ids, in.Id)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// triggerSync asks the running loop to sync soon.
func (r *Ruler) triggerSync() {
	select {
	case r.syncNow <- struct{}{}:
	default:
	}
}

// owns tells whether this ruler evaluates the group: the first healthy
// ruler walking the ring from the group's token. Asking for every member
// (an expanded replication factor) returns them in ring order with the
// unhealthy ones left out.
func (r *Ruler) owns(tenant, namespace, group string) (bool, error) {
	c := r.ring.Client()
	token := ringutil.Token([]byte(tenant), []byte(namespace), []byte(group))
	rs, err := c.GetWithOptions(token, ringOp, ring.WithReplicationFactor(max(c.InstancesCount(), 1)))
	if err != nil {
		return false, err
	}
	return len(rs.Instances) > 0 && rs.Instances[0].Id == r.instanceID, nil
}

// sync reads the rule store, keeps the groups this ruler owns and applies
// them to the tenants' managers. A tenant whose groups could not be read
// keeps what it evaluates.
func (r *Ruler) sync(ctx context.Context, reason string) {
	start := time.Now()
	status := "success"
	defer func() {
		r.syncs.WithLabelValues(reason, status).Inc()
		r.syncDuration.Observe(time.Since(start).Seconds())
	}()
	tenants, err := r.store.Tenants(ctx)
	if err != nil {
		status = "failure"
		level.Warn(r.logger).Log("msg", "sync rules: list tenants; keeping the rules evaluated now", "reason", reason, "err", err)
		return
	}
	owned := map[string]map[string][]rulefmt.RuleGroup{}
	failed := map[string]bool{}
	total := 0
	for _, tenant := range tenants {
		groups, n, err := r.ownedGroups(ctx, tenant)
		if err != nil {
			status = "failure"
			failed[tenant] = true
			level.Warn(r.logger).Log("msg", "sync rules: read the tenant's rule groups; keeping its rules evaluated now", "tenant", tenant, "err", err)
			continue
		}
		if n > 0 {
			owned[tenant] = groups
			total += n
		}
	}
	r.apply(ctx, owned, failed)
	r.ownedGauge.Set(float64(total))
	level.Debug(r.logger).Log("msg", "synced rules", "reason", reason, "tenants", len(owned), "groups", total, "duration", time.Since(start))
}

// ownedGroups reads the tenant's groups this ruler owns, by namespace.
func (r *Ruler) ownedGroups(ctx context.Context, tenant string) (map[string][]rulefmt.RuleGroup, int, error) {
	keys, err := r.store.List(ctx, tenant, "")
	if err != nil {
		return nil, 0, err
	}
	out := map[string][]rulefmt.RuleGroup{}
	n := 0
	for _, k := range keys {
		ok, err := r.owns(tenant, k.Namespace, k.Group)
		if err != nil {
			return nil, 0, fmt.Errorf("look up the owner of group %q/%q in the ruler ring: %w", k.Namespace, k.Group, err)
		}
		if !ok {
			continue
		}
		g, err := r.store.Get(ctx, tenant, k.Namespace, k.Group)
		if r.store.IsNotFound(err) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, 0, err
		}
		out[k.Namespace] = append(out[k.Namespace], g)
		n++
	}
	return out, n, nil
}

// apply makes each tenant's manager evaluate exactly its owned groups.
func (r *Ruler) apply(ctx context.Context, owned map[string]map[string][]rulefmt.RuleGroup, failed map[string]bool) {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	for tenant, tr := range r.tenants {
		if _, ok := owned[tenant]; !ok && !failed[tenant] {
			r.stopTenant(tenant, tr)
			delete(r.tenants, tenant)
		}
	}
	for tenant, groups := range owned {
		tr := r.tenants[tenant]
		if tr == nil {
			tr = r.newTenant(ctx, tenant)
			r.tenants[tenant] = tr
		}
		namespaces := tr.loader.set(groups)
		if err := tr.manager.Update(r.cfg.EvaluationInterval, namespaces, labels.EmptyLabels(), r.cfg.ExternalURL, nil); err != nil {
			level.Error(r.logger).Log("msg", "update the tenant's rules; keeping the previous ones", "tenant", tenant, "err", err)
		}
	}
}

func (r *Ruler) newTenant(ctx context.Context, tenant string) *tenantRules {
	treg := newTrackingRegisterer(prometheus.WrapRegistererWith(prometheus.Labels{"tenant": tenant}, r.reg))
	loader := &groupLoader{parser: r.parser}
	tctx := user.InjectOrgID(context.WithoutCancel(ctx), tenant)
	m := rules.NewManager(&rules.ManagerOptions{
		ExternalURL:          nil,
		QueryFunc:            r.queryFunc(tenant),
		NotifyFunc:           r.notifier.notifyFunc(tenant, r.cfg.ExternalURL),
		Context:              tctx,
		AppendableV2:         &appendable{writer: r.writer},
		Queryable:            r.queryable,
		Logger:               logging.Slog(log.With(r.logger, "tenant", tenant)),
		Registerer:           treg,
		OutageTolerance:      r.cfg.OutageTolerance,
		ForGracePeriod:       r.cfg.ForGracePeriod,
		ResendDelay:          r.cfg.ResendDelay,
		GroupLoader:          loader,
		RestoreNewRuleGroups: true, // a group that moves here keeps its alerts' 'for' state
		Parser:               r.parser,
	})
	tr := &tenantRules{manager: m, loader: loader, metrics: treg, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		m.Run()
	}()
	return tr
}

func (r *Ruler) stopTenant(tenant string, tr *tenantRules) {
	tr.manager.Stop()
	<-tr.done
	tr.metrics.unregisterAll()
	level.Debug(r.logger).Log("msg", "stopped evaluating the tenant's rules", "tenant", tenant)
}

// queryFunc evaluates a rule's query for the tenant with its limits.
func (r *Ruler) queryFunc(tenant string) rules.QueryFunc {
	return func(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
		l := r.limits.Limits(tenant)
		timeout := time.Duration(l.RulerQueryTimeout)
		if timeout <= 0 {
			timeout = time.Duration(l.QueryTimeout)
		}
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return rules.EngineQueryFunc(r.engines.get(l.MaxSamplesPerQuery), r.queryable)(ctx, q, t)
	}
}

// groups returns the tenant's groups this ruler evaluates.
func (r *Ruler) groups(tenant string) []*rules.Group {
	r.mtx.RLock()
	tr := r.tenants[tenant]
	r.mtx.RUnlock()
	if tr == nil {
		return nil
	}
	return tr.manager.RuleGroups()
}

// groupLoader hands the rules manager the groups of the last sync: a
// namespace is the manager's "file".
type groupLoader struct {
	parser parser.Parser
	mtx    sync.Mutex
	byNS   map[string][]rulefmt.RuleGroup
}

// set replaces the groups and returns the namespaces, sorted.
func (l *groupLoader) set(groups map[string][]rulefmt.RuleGroup) []string {
	l.mtx.Lock()
	defer l.mtx.Unlock()
	l.byNS = groups
	ns := make([]string, 0, len(groups))
	for n := range groups {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

func (l *groupLoader) Load(namespace string, _ bool, _ model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	l.mtx.Lock()
	defer l.mtx.Unlock()
	gs, ok := l.byNS[namespace]
	if !ok {
		return nil, []error{fmt.Errorf("namespace %q is not loaded", namespace)}
	}
	return &rulefmt.RuleGroups{Groups: gs}, nil
}

func (l *groupLoader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }

// trackingRegisterer registers a tenant's rule metrics and unregisters
// them all when the tenant's manager stops.
type trackingRegisterer struct {
	next prometheus.Registerer
	mtx  sync.Mutex
	cs   []prometheus.Collector
}

func newTrackingRegisterer(next prometheus.Registerer) *trackingRegisterer {
	return &trackingRegisterer{next: next}
}

func (t *trackingRegisterer) Register(c prometheus.Collector) error {
	if err := t.next.Register(c); err != nil {
		return err
	}
	t.mtx.Lock()
	t.cs = append(t.cs, c)
	t.mtx.Unlock()
	return nil
}

func (t *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

func (t *trackingRegisterer) Unregister(c prometheus.Collector) bool { return t.next.Unregister(c) }

func (t *trackingRegisterer) unregisterAll() {
	t.mtx.Lock()
	defer t.mtx.Unlock()
	for _, c := range t.cs {
		t.next.Unregister(c)
	}
	t.cs = nil
}

// engines holds a PromQL engine per max-samples value, as the querier's
// API does: the engine's limit is fixed when it is built.
type engines struct {
	opts  promql.EngineOpts
	mtx   sync.Mutex
	byMax map[int]*promql.Engine
}

func newEngines(p parser.Parser, lookbackDelta time.Duration, logger log.Logger) *engines {
	return &engines{
		opts: promql.EngineOpts{
			Logger:                   logging.Slog(logger),
			Timeout:                  100 * 365 * 24 * time.Hour, // the real deadline is on the context
			LookbackDelta:            lookbackDelta,
			NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
			EnableAtModifier:         true,
			EnableNegativeOffset:     true,
			Parser:                   p,
		},
		byMax: map[int]*promql.Engine{},
	}
}

func (e *engines) get(maxSamples int) *promql.Engine {
	if maxSamples <= 0 { // no limit
		maxSamples = math.MaxInt
	}
	e.mtx.Lock()
	defer e.mtx.Unlock()
	if ng, ok := e.byMax[maxSamples]; ok {
		return ng
	}
	opts := e.opts
	opts.MaxSamples = maxSamples
	ng := promql.NewEngine(opts)
	if len(e.byMax) < 16 {
		e.byMax[maxSamples] = ng
	}
	return ng
}
