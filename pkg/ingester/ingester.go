// Package ingester keeps one Prometheus TSDB per tenant (WAL + head of
// Gorilla-compressed chunks), cuts 2h blocks, ships them to object storage
// and serves recent data to queriers over gRPC.
package ingester

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/fileutil"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// Config configures the ingester.
type Config struct {
	Lifecycler LifecyclerConfig `yaml:"lifecycler"`
	// RingClient, set by the wiring, is the process' client of the ingester
	// ring, which the ingester's membership shares; nil runs its own.
	RingClient *ring.Ring `yaml:"-"`

	TSDBDir                string        `yaml:"tsdb_dir"`
	ShipInterval           time.Duration `yaml:"ship_interval"`
	ShipConcurrency        int           `yaml:"ship_concurrency"`
	RetentionPeriod        time.Duration `yaml:"retention_period"`
	HeadCompactionInterval time.Duration `yaml:"head_compaction_interval"`
	CloseIdleTSDBTimeout   time.Duration `yaml:"close_idle_tsdb_timeout"`
	FlushOnShutdown        bool          `yaml:"flush_on_shutdown"`
	MaxExemplars           int           `yaml:"max_exemplars"`
	AutoForgetUnhealthy    time.Duration `yaml:"auto_forget_unhealthy_period"`
}

// RegisterFlags registers the ingester flags.
func (c *Config) RegisterFlags(f *flag.FlagSet, logger log.Logger) {
	c.Lifecycler.RegisterFlags(f, logger)
	f.StringVar(&c.TSDBDir, "ingester.tsdb-dir", "", "Directory of the per-tenant TSDBs. Empty means <common.data-dir>/tsdb.")
	f.DurationVar(&c.ShipInterval, "ingester.ship-interval", time.Minute, "How often cut blocks are uploaded to object storage.")
	f.IntVar(&c.ShipConcurrency, "ingester.ship-concurrency", 8, "How many tenants ship their blocks to object storage at the same time.")
	f.DurationVar(&c.RetentionPeriod, "ingester.retention-period", 6*time.Hour, "How long a shipped block stays on the ingester's disk after its end time.")
	f.DurationVar(&c.HeadCompactionInterval, "ingester.head-compaction-interval", time.Minute, "How often the ingester checks each TSDB for a block to cut and for local blocks past retention.")
	f.DurationVar(&c.CloseIdleTSDBTimeout, "ingester.close-idle-tsdb-timeout", 12*time.Hour, "Close a tenant's TSDB after this long without writes, once its head is flushed and shipped; it reopens on the next write or query. 0 disables.")
	f.BoolVar(&c.FlushOnShutdown, "ingester.flush-on-shutdown", true, "On graceful shutdown cut the whole head into blocks and ship them, so no data exists only on this ingester's disk.")
	f.DurationVar(&c.AutoForgetUnhealthy, "ingester.ring.auto-forget-unhealthy-period", 0, "Remove ring members whose last heartbeat is older than this (a crashed ingester that will not come back). 0 disables; when set, use several times -ingester.ring.heartbeat-timeout.")
	f.IntVar(&c.MaxExemplars, "ingester.max-exemplars", 0, "In-memory exemplars kept per tenant. 0 disables exemplar storage.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.ShipInterval <= 0 || c.HeadCompactionInterval <= 0 {
		return errors.New("ingester: ship and head compaction intervals must be positive")
	}
	if c.HeadCompactionInterval < tsdb.MinBlockReloadInterval {
		return fmt.Errorf("ingester: head compaction interval must be at least %s", tsdb.MinBlockReloadInterval)
	}
	if c.AutoForgetUnhealthy != 0 && c.AutoForgetUnhealthy <= c.Lifecycler.RingConfig.HeartbeatTimeout {
		return fmt.Errorf("ingester: -ingester.ring.auto-forget-unhealthy-period (%s) must be 0 or longer than -ingester.ring.heartbeat-timeout (%s)", c.AutoForgetUnhealthy, c.Lifecycler.RingConfig.HeartbeatTimeout)
	}
	if c.ShipConcurrency < 1 {
		return fmt.Errorf("ingester: -ingester.ship-concurrency must be at least 1, got %d", c.ShipConcurrency)
	}
	if c.RetentionPeriod < 0 {
		return errors.New("ingester: retention period must not be negative")
	}
	return nil
}

// Ingester is the ingester service.
type Ingester struct {
	services.Service
	meridianpb.UnimplementedIngesterServer

	cfg             Config
	ring            *ringutil.Ring
	flushOnShutdown atomic.Bool     // POST /ingester/shutdown turns it on
	bucket          objstore.Bucket // nil: shipping disabled
	limits          limits.Source
	logger          log.Logger
	slogger         *slog.Logger
	now             func() time.Time

	mtx     sync.RWMutex
	tsdbs   map[string]*tenantDB
	opening map[string]*openingDB
	// dirLock keeps a second process off the TSDB directory (set while
	// the service runs).
	dirLock fileutil.Releaser

	metrics        *metrics
	shipperMetrics *ShipperMetrics

	// flushMtx guards flushStopped and the Add of backgroundFlushes, so
	// stopping waits for every flush started over HTTP before closing the
	// TSDBs under it.
	flushMtx          sync.Mutex
	flushStopped      bool
	backgroundFlushes sync.WaitGroup
}

type metrics struct {
	appendedSamples *prometheus.CounterVec
	rejectedSamples *prometheus.CounterVec
	tsdbOpened      prometheus.Counter
	tsdbClosed      prometheus.Counter
	flushes         prometheus.Counter
	memorySeries    prometheus.GaugeFunc
	tenants         prometheus.GaugeFunc
	queriedSeries   prometheus.Histogram
	shipFailures    prometheus.Counter
}

// New creates an ingester. bucket may be nil to disable shipping.
func New(cfg Config, lim limits.Source, bucket objstore.Bucket, logger log.Logger, slogger *slog.Logger, reg prometheus.Registerer) (*Ingester, error) {
	i := &Ingester{
		cfg:            cfg,
		bucket:         bucket,
		limits:         lim,
		logger:         logger,
		slogger:        slogger,
		now:            time.Now,
		tsdbs:          map[string]*tenantDB{},
		opening:        map[string]*openingDB{},
		shipperMetrics: NewShipperMetrics(reg),
	}
	f := promauto.With(reg)
	i.metrics = &metrics{
		appendedSamples: f.NewCounterVec(prometheus.CounterOpts{Name: "meridian_ingester_appended_samples_total", Help: "Samples appended to tenants' TSDBs."}, []string{"tenant"}),
		rejectedSamples: f.NewCounterVec(prometheus.CounterOpts{Name: "meridian_ingester_rejected_samples_total", Help: "Samples the ingester rejected, by reason (error ID)."}, []string{"tenant", "reason"}),
		tsdbOpened:      f.NewCounter(prometheus.CounterOpts{Name: "meridian_ingester_tsdb_opened_total", Help: "Tenant TSDBs opened."}),
		tsdbClosed:      f.NewCounter(prometheus.CounterOpts{Name: "meridian_ingester_tsdb_closed_total", Help: "Tenant TSDBs closed after being idle."}),
		flushes:         f.NewCounter(prometheus.CounterOpts{Name: "meridian_ingester_flushes_total", Help: "Full head flushes (shutdown or /ingester/flush)."}),
		queriedSeries:   f.NewHistogram(prometheus.HistogramOpts{Name: "meridian_ingester_queried_series", Help: "Series returned per query stream.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		shipFailures:    f.NewCounter(prometheus.CounterOpts{Name: "meridian_ingester_ship_failures_total", Help: "Block shipping rounds that failed for a tenant."}),
	}
	i.metrics.memorySeries = f.NewGaugeFunc(prometheus.GaugeOpts{Name: "meridian_ingester_memory_series", Help: "In-memory series across all tenants."}, func() float64 {
		var n uint64
		for _, db := range i.openDBs() {
			n += db.db.Head().NumSeries()
		}
		return float64(n)
	})
	i.metrics.tenants = f.NewGaugeFunc(prometheus.GaugeOpts{Name: "meridian_ingester_tenants", Help: "Tenants with an open TSDB."}, func() float64 {
		return float64(len(i.openDBs()))
	})

	if reg != nil {
		if err := reg.Register(newTenantCollector(i)); err != nil {
			return nil, fmt.Errorf("register per-tenant ingester metrics: %w", err)
		}
	}

	i.flushOnShutdown.Store(cfg.FlushOnShutdown)
	r, err := i.newRing(reg)
	if err != nil {
		return nil, err
	}
	i.ring = r
	i.Service = services.NewBasicService(i.starting, i.running, i.stopping)
	return i, nil
}

func (i *Ingester) starting(ctx context.Context) error {
	start := time.Now()
	if err := os.MkdirAll(i.cfg.TSDBDir, 0o755); err != nil {
		return fmt.Errorf("create TSDB directory %s: %w", i.cfg.TSDBDir, err)
	}
	if err := i.lockTSDBDir(); err != nil {
		return err
	}
	started := false
	defer func() {
		if !started {
			i.unlockTSDBDir()
		}
	}()
	raiseFileLimit(i.logger)
	if err := i.openTenantsAtStart(); err != nil {
		return err
	}
	if err := services.StartAndAwaitRunning(ctx, i.ring); err != nil {
		return fmt.Errorf("join the ingester ring: %w", err)
	}
	level.Info(i.logger).Log("msg", "ingester started", "duration", time.Since(start))
	started = true
	return nil
}

func (i *Ingester) running(ctx context.Context) error {
	compactTicker := time.NewTicker(i.cfg.HeadCompactionInterval)
	defer compactTicker.Stop()
	shipTicker := time.NewTicker(i.cfg.ShipInterval)
	defer shipTicker.Stop()
	ringDone := make(chan struct{})
	go func() {
		// A failed membership means we no longer heartbeat the ring: fail loudly.
		_ = i.ring.AwaitTerminated(context.Background())
		close(ringDone)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ringDone:
			if err := i.ring.FailureCase(); err != nil {
				return fmt.Errorf("ingester ring membership failed: %w", err)
			}
			return nil
		case <-compactTicker.C:
			i.compactAndCloseIdle(ctx)
		case <-shipTicker.C:
			i.shipAll(ctx)
		}
	}
}

func (i *Ingester) stopping(_ error) error {
	i.flushMtx.Lock()
	i.flushStopped = true
	i.flushMtx.Unlock()
	i.backgroundFlushes.Wait()
	// The membership turns LEAVING, flushes (flushOnLeaving), then leaves
	// the ring (or keeps its entry, with unregister on shutdown off).
	if err := services.StopAndAwaitTerminated(context.Background(), i.ring); err != nil {
		level.Warn(i.logger).Log("msg", "leaving the ingester ring", "err", err)
	}
	i.mtx.Lock()
	defer i.mtx.Unlock()
	for tenant, db := range i.tsdbs {
		if err := db.db.Close(); err != nil {
			level.Warn(i.logger).Log("msg", "closing TSDB", "tenant", tenant, "err", err)
		}
		delete(i.tsdbs, tenant)
	}
	i.unlockTSDBDir()
	return nil
}

func (i *Ingester) openDBs() []*tenantDB {
	i.mtx.RLock()
	defer i.mtx.RUnlock()
	out := make([]*tenantDB, 0, len(i.tsdbs))
	for _, db := range i.tsdbs {
		out = append(out, db)
	}
	return out
}

// getDB returns the tenant's open TSDB, opening it if it exists on disk.
func (i *Ingester) getDB(tenant string) (*tenantDB, error) {
	i.mtx.RLock()
	db := i.tsdbs[tenant]
	i.mtx.RUnlock()
	if db != nil && !db.closed.Load() {
		return db, nil
	}
	if _, err := os.Stat(filepath.Join(i.cfg.TSDBDir, tenant)); err != nil {
		return nil, nil
	}
	return i.getOrCreateDB(tenant)
}

// getOrCreateDB returns the tenant's open TSDB, opening (or creating) it.
// Tenants open in parallel: the ingester's lock is not held during an
// open (a WAL replay can take seconds), and callers asking for a tenant
// being opened wait for that open.
func (i *Ingester) getOrCreateDB(tenant string) (*tenantDB, error) {
	for {
		i.mtx.RLock()
		db := i.tsdbs[tenant]
		i.mtx.RUnlock()
		if db != nil && !db.closed.Load() {
			return db, nil
		}
		i.mtx.Lock()
		if db := i.tsdbs[tenant]; db != nil && !db.closed.Load() {
			i.mtx.Unlock()
			return db, nil
		}
		if op := i.opening[tenant]; op != nil {
			i.mtx.Unlock()
			<-op.done
			if op.err != nil {
				return nil, op.err
			}
			continue // it may have been closed again meanwhile
		}
		op := &openingDB{done: make(chan struct{})}
		i.opening[tenant] = op
		i.mtx.Unlock()

		db, err := i.openDB(tenant)
		i.mtx.Lock()
		delete(i.opening, tenant)
		if err == nil {
			i.tsdbs[tenant] = db
		}
		i.mtx.Unlock()
		op.err = err
		close(op.done)
		return db, err
	}
}

// openingDB is a tenant's TSDB being opened; done is closed once it is
// open (and in tsdbs) or err is set.
type openingDB struct {
	done chan struct{}
	err  error
}

func (i *Ingester) openDB(tenant string) (*tenantDB, error) {
	start := time.Now()
	dir := filepath.Join(i.cfg.TSDBDir, tenant)
	lim := i.limits.Limits(tenant)
	t := &tenantDB{tenant: tenant, metadata: map[string]metadataEntry{}}
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = tsdb.DefaultBlockDuration
	opts.MaxBlockDuration = tsdb.DefaultBlockDuration // no local compaction beyond 2h: the compactor does that
	opts.RetentionDuration = 0
	opts.OutOfOrderTimeWindow = time.Duration(lim.OutOfOrderTimeWindow).Milliseconds()
	opts.EnableExemplarStorage = i.cfg.MaxExemplars > 0
	opts.MaxExemplars = int64(i.cfg.MaxExemplars)
	opts.BlockReloadInterval = i.cfg.HeadCompactionInterval
	opts.BlocksToDelete = t.blocksToDelete(i)
	opts.EnableOverlappingCompaction = false
	sizeTSDBOptions(opts, dir)
	// Each TSDB registers its metrics with a registerer of its own (a
	// TSDB reopened after being idle registers them again);
	// tenantCollector re-exports the one an operator acts on.
	t.reg = &tsdbRegisterer{}
	// Once open, the WAL may take samples no block has: the tenant must
	// be opened at the next start.
	if err := os.Remove(filepath.Join(dir, closedMarkerFilename)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open TSDB for tenant %s: remove %s: %w", tenant, closedMarkerFilename, err)
	}
	db, err := tsdb.Open(dir, i.slogger.With("tenant", tenant), t.reg, opts, nil)
	if errors.Is(err, syscall.EMFILE) {
		return nil, fmt.Errorf("open TSDB for tenant %s: %w; every open tenant holds up to 4 files: raise the process' open files limit (ulimit -Hn, systemd LimitNOFILE=), lower -ingester.close-idle-tsdb-timeout so idle tenants close, or spread tenants over more ingesters (shuffle sharding)", tenant, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open TSDB for tenant %s: %w", tenant, err)
	}
	t.db = db
	t.oooWindow.Store(opts.OutOfOrderTimeWindow)
	t.lastAppend.Store(i.now().UnixMilli())
	if i.bucket != nil {
		t.shipper = NewShipper(i.bucket, tenant, i.cfg.Lifecycler.InstanceID, dir, i.logger, i.shipperMetrics)
	}
	i.metrics.tsdbOpened.Inc()
	level.Info(i.logger).Log("msg", "opened TSDB", "tenant", tenant, "dir", dir, "stripe_size", opts.StripeSize, "duration", time.Since(start))
	return t, nil
}

// compactAndCloseIdle runs on every head compaction tick: the TSDB compacts
// its own head when it spans more than 1.5 block ranges; here we close
// tenants that have been idle.
func (i *Ingester) compactAndCloseIdle(ctx context.Context) {
	i.applyOutOfOrderWindows()
	if i.cfg.CloseIdleTSDBTimeout <= 0 {
		return
	}
	cutoff := i.now().Add(-i.cfg.CloseIdleTSDBTimeout).UnixMilli()
	for _, db := range i.openDBs() {
		if db.lastAppend.Load() > cutoff {
			continue
		}
		i.closeIdle(ctx, db)
	}
}

// applyOutOfOrderWindows brings each open TSDB's out-of-order window in
// line with the tenant's current limit (the runtime overrides may change it).
func (i *Ingester) applyOutOfOrderWindows() {
	for _, db := range i.openDBs() {
		want := time.Duration(i.limits.Limits(db.tenant).OutOfOrderTimeWindow).Milliseconds()
		if want == db.oooWindow.Load() {
			continue
		}
		cfg := &promconfig.Config{StorageConfig: promconfig.StorageConfig{TSDBConfig: &promconfig.TSDBConfig{OutOfOrderTimeWindow: want}}}
		if err := db.db.ApplyConfig(cfg); err != nil {
			level.Warn(i.logger).Log("msg", "changing the out-of-order window; the old one stays in force", "tenant", db.tenant, "err", err)
			continue
		}
		db.oooWindow.Store(want)
		level.Info(i.logger).Log("msg", "out-of-order window changed", "tenant", db.tenant, "window", time.Duration(want)*time.Millisecond)
	}
}

func (i *Ingester) closeIdle(ctx context.Context, db *tenantDB) {
	db.appendMtx.Lock()
	if db.closed.Load() || db.lastAppend.Load() > i.now().Add(-i.cfg.CloseIdleTSDBTimeout).UnixMilli() {
		db.appendMtx.Unlock()
		return
	}
	err := db.flushHead(ctx)
	if err == nil && db.shipper != nil {
		_, err = db.shipper.Sync(ctx)
	}
	if err != nil {
		db.appendMtx.Unlock()
		level.Warn(i.logger).Log("msg", "flushing or shipping idle TSDB; it stays open", "tenant", db.tenant, "err", err)
		return
	}
	if err := db.db.Close(); err != nil {
		level.Warn(i.logger).Log("msg", "closing idle TSDB", "tenant", db.tenant, "err", err)
	} else if err := writeClosedMarker(db.db.Dir()); err != nil {
		// Harmless: the tenant is opened at the next start.
		level.Warn(i.logger).Log("msg", "recording that an idle TSDB was flushed", "tenant", db.tenant, "err", err)
	}
	db.closed.Store(true)
	db.appendMtx.Unlock()

	i.mtx.Lock()
	if i.tsdbs[db.tenant] == db {
		delete(i.tsdbs, db.tenant)
	}
	i.mtx.Unlock()
	i.metrics.tsdbClosed.Inc()
	level.Info(i.logger).Log("msg", "closed idle TSDB", "tenant", db.tenant)
}

func (i *Ingester) shipAll(ctx context.Context) {
	if i.bucket == nil {
		return
	}
	// Tenants ship side by side: with thousands of tenants, one after the
	// other, the round trips to object storage at a block boundary would
	// take longer than the ship interval.
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, i.cfg.ShipConcurrency))
	for _, db := range i.openDBs() {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			n, err := db.shipper.Sync(ctx)
			if err != nil {
				i.metrics.shipFailures.Inc()
				level.Warn(i.logger).Log("msg", "shipping blocks; will retry at the next interval", "tenant", db.tenant, "err", err)
				return
			}
			if n > 0 {
				level.Info(i.logger).Log("msg", "shipped blocks", "tenant", db.tenant, "blocks", n)
			}
		}()
	}
	wg.Wait()
}

// flushAll cuts every tenant's head into blocks and ships them.
func (i *Ingester) flushAll(ctx context.Context) error {
	var errs []error
	for _, db := range i.openDBs() {
		db.appendMtx.Lock()
		var err error
		if !db.closed.Load() {
			err = db.flushHead(ctx)
		}
		db.appendMtx.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("flush head of tenant %s: %w", db.tenant, err))
			continue
		}
		if db.shipper != nil {
			if _, err := db.shipper.Sync(ctx); err != nil {
				errs = append(errs, fmt.Errorf("ship blocks of tenant %s: %w", db.tenant, err))
			}
		}
	}
	i.metrics.flushes.Inc()
	return errors.Join(errs...)
}

// FlushHandler serves /ingester/flush: cut every head into blocks and ship
// them. With ?wait=true it answers once done (200) or with the error (500).
func (i *Ingester) FlushHandler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("wait") == "true" {
		if err := i.flushAll(r.Context()); err != nil {
			http.Error(w, "flush did not complete: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("flushed and shipped\n"))
		return
	}
	i.flushMtx.Lock()
	if i.flushStopped {
		i.flushMtx.Unlock()
		http.Error(w, "the ingester is stopping; it flushes on the way out if -ingester.flush-on-shutdown is set", http.StatusServiceUnavailable)
		return
	}
	i.backgroundFlushes.Add(1)
	i.flushMtx.Unlock()
	go func() {
		defer i.backgroundFlushes.Done()
		if err := i.flushAll(context.Background()); err != nil {
			level.Error(i.logger).Log("msg", "flush requested over HTTP did not complete", "err", err)
		}
	}()
	w.WriteHeader(http.StatusNoContent)
}

// tenantDB is one tenant's TSDB and what goes with it.
type tenantDB struct {
	tenant     string
	db         *tsdb.DB
	shipper    *Shipper
	reg        *tsdbRegisterer
	lastAppend atomic.Int64
	oooWindow  atomic.Int64 // milliseconds, as applied to db
	closed     atomic.Bool
	// appendMtx is held for reading by appenders and for writing by a flush
	// or close, so no append lands in a head being closed.
	appendMtx sync.RWMutex

	metaMtx  sync.RWMutex
	metadata map[string]metadataEntry
}

// flushHead compacts the whole head into blocks. Caller holds appendMtx.
// The range starts where the blocks already cut end, so the flushed block
// never overlaps them; out-of-order samples are compacted from their own head.
// A cancelled ctx stops it between steps; what was cut stays cut.
func (t *tenantDB) flushHead(ctx context.Context) error {
	h := t.db.Head()
	if h.NumSeries() == 0 {
		return nil
	}
	// First let the TSDB cut the 2h blocks it would cut by itself. Its own
	// compaction runs after any append that makes the head compactable; run
	// concurrently with the flush, it cut blocks over the range the flush
	// had already chosen, and both were shipped (overlapping blocks). After
	// this the head spans less than a compactable range and appends are
	// held off, so the TSDB has nothing left to cut under the flush.
	if err := t.db.Compact(ctx); err != nil {
		return fmt.Errorf("cut the head's complete 2h blocks before the flush: %w", err)
	}
	mint, maxt := h.MinTime(), h.MaxTime()
	for _, b := range t.db.Blocks() {
		if m := b.Meta(); m.MaxTime > mint {
			mint = m.MaxTime
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("flush the head: %w", err)
	}
	if mint <= maxt {
		if err := t.db.CompactHead(tsdb.NewRangeHead(h, mint, maxt)); err != nil {
			return err
		}
	}
	return t.db.CompactOOOHead(ctx)
}

// blocksToDelete keeps local blocks until they are shipped (when shipping is
// on) and older than the retention period.
func (t *tenantDB) blocksToDelete(i *Ingester) tsdb.BlocksToDeleteFunc {
	return func(blocks []*tsdb.Block) map[ulid.ULID]struct{} {
		out := map[ulid.ULID]struct{}{}
		cutoff := i.now().Add(-i.cfg.RetentionPeriod).UnixMilli()
		for _, b := range blocks {
			m := b.Meta()
			if m.MaxTime >= cutoff {
				continue
			}
			if t.shipper != nil && !t.shipper.IsShipped(m.ULID) {
				continue
			}
			if t.shipper == nil && i.cfg.RetentionPeriod == 0 {
				continue
			}
			out[m.ULID] = struct{}{}
		}
		return out
	}
}

// Tenants lists tenants with an open TSDB, sorted.
func (i *Ingester) Tenants() []string {
	dbs := i.openDBs()
	out := make([]string, 0, len(dbs))
	for _, db := range dbs {
		out = append(out, db.tenant)
	}
	sort.Strings(out)
	return out
}

// ShutdownHandler serves /ingester/shutdown for scale-down: the ingester
// flushes and ships its head, leaves the ring and stops, whatever its
// flush-on-shutdown setting. The process keeps serving its other modules
// (and /ready answers 503) until it is terminated.
func (i *Ingester) ShutdownHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "use POST /ingester/shutdown to flush, leave the ring and stop this ingester", http.StatusMethodNotAllowed)
		return
	}
	if st := i.State(); st != services.Running {
		http.Error(w, "the ingester is "+st.String()+", not running", http.StatusServiceUnavailable)
		return
	}
	start := time.Now()
	// Flush and ship first, so a failure is reported and the ingester keeps
	// running with its data; the flush while LEAVING on the way out then
	// only has what arrived meanwhile.
	if err := i.flushAll(r.Context()); err != nil {
		http.Error(w, "the ingester keeps running: its head could not be flushed and shipped: "+err.Error(), http.StatusInternalServerError)
		return
	}
	i.flushOnShutdown.Store(true)
	i.ring.SetUnregisterOnShutdown(true)
	if err := services.StopAndAwaitTerminated(r.Context(), i); err != nil {
		http.Error(w, "ingester shutdown did not complete: "+err.Error(), http.StatusInternalServerError)
		return
	}
	level.Info(i.logger).Log("msg", "ingester shut down over HTTP", "duration", time.Since(start))
	w.WriteHeader(http.StatusNoContent)
}
