package compactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// Reasons a block is marked for deletion (label of
// meridian_compactor_blocks_marked_for_deletion_total).
const (
	reasonCompaction = "compaction"
	reasonRetention  = "retention"
)

// TenantLimits gives the compactor its per-tenant limits.
type TenantLimits interface {
	// BlocksRetention is how long the tenant's blocks are kept, measured
	// from their end; 0 keeps them forever.
	BlocksRetention(tenant string) time.Duration
}

// Compactor compacts every tenant's blocks in object storage. It is a
// dskit service that runs once at start and then every CompactionInterval.
type Compactor struct {
	services.Service

	cfg    Config
	shards *ringutil.Ring // nil: every tenant
	// watcher fails the compactor when its ring membership fails.
	watcher *services.FailureWatcher
	ranges  []int64
	bkt     objstore.Bucket
	limits  TenantLimits
	logger  log.Logger
	slogger *slog.Logger
	now     func() time.Time

	runMu sync.Mutex // one run at a time.

	memoMu sync.Mutex
	// memos are the owned tenants' states after their last successful
	// processing, so a run skips the tenants where nothing changed.
	memos map[string]*tenantMemo

	runs                 *prometheus.CounterVec
	lastSuccessfulRun    prometheus.Gauge
	blocksCompacted      prometheus.Counter
	blocksMarked         *prometheus.CounterVec
	blocksDeleted        prometheus.Counter
	partialBlocksDeleted prometheus.Counter
	brokenBlocks         prometheus.Gauge
	blockFailures        prometheus.Counter
	tenantsProcessed     *prometheus.CounterVec
	tenantsSkipped       prometheus.Counter
	tenantsUnchanged     prometheus.Counter
	compactionDuration   prometheus.Histogram
}

// New returns a compactor of the blocks in bkt, the whole bucket in which
// tenants are top-level prefixes. limits may be nil: no retention.
//
// shards is the compactor ring, or nil to process every tenant (one
// compactor, tests).
func New(cfg Config, bkt objstore.Bucket, limits TenantLimits, shards *ringutil.Ring, logger log.Logger, slogger *slog.Logger, reg prometheus.Registerer) (*Compactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("compactor config: %w", err)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("compactor data directory is not set")
	}
	if slogger == nil {
		slogger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	c := &Compactor{
		cfg:     cfg,
		shards:  shards,
		watcher: services.NewFailureWatcher(),
		ranges:  cfg.rangesMillis(),
		bkt:     bkt,
		limits:  limits,
		logger:  log.With(logger, "component", "compactor"),
		slogger: slogger,
		now:     time.Now,
		memos:   map[string]*tenantMemo{},
		runs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_compactor_runs_total",
			Help: "Compactor runs over all tenants, by status: success, or failure when any tenant was not fully processed.",
		}, []string{"status"}),
		lastSuccessfulRun: f.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_compactor_last_successful_run_timestamp_seconds",
			Help: "Unix time at which the last fully successful compactor run ended.",
		}),
		blocksCompacted: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_compactor_blocks_compacted_total",
			Help: "Source blocks compacted into a new block.",
		}),
		blocksMarked: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_compactor_blocks_marked_for_deletion_total",
			Help: "Blocks marked for deletion, by reason: compaction (replaced by a compacted block) or retention.",
		}, []string{"reason"}),
		blocksDeleted: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_compactor_blocks_deleted_total",
			Help: "Blocks deleted from object storage.",
		}),
		partialBlocksDeleted: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_compactor_partial_blocks_deleted_total",
			Help: "Partial blocks (no meta.json, left by a killed upload) deleted after -compactor.partial-block-deletion-delay without writes.",
		}),
		brokenBlocks: f.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_compactor_broken_blocks",
			Help: "Blocks the bucket index lists whose meta.json went bad or missing, as the last run found them; they stay until an operator restores their meta.json or deletes them.",
		}),
		blockFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_compactor_block_failures_total",
			Help: "Compactions that failed on an unreadable block or group; the blocks are skipped until the next run.",
		}),
		tenantsProcessed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_compactor_tenants_processed_total",
			Help: "Tenants processed by the compactor, by status. A tenant found with nothing to do (meridian_compactor_tenants_unchanged_total) counts as a success.",
		}, []string{"status"}),
		tenantsSkipped: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_compactor_tenants_skipped_total",
			Help: "Tenants left alone because another compactor owns them in the compactor ring.",
		}),
		tenantsUnchanged: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_compactor_tenants_unchanged_total",
			Help: "Tenants a run left alone without a bucket operation: their blocks had not changed since they were last processed and no deletion, retention or compaction was due.",
		}),
		compactionDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                            "meridian_compactor_compaction_duration_seconds",
			Help:                            "Time to download, compact and upload one group of blocks.",
			Buckets:                         prometheus.ExponentialBuckets(0.1, 4, 8),
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}),
	}
	for _, s := range []string{"success", "failure"} {
		c.runs.WithLabelValues(s)
		c.tenantsProcessed.WithLabelValues(s)
	}
	for _, r := range []string{reasonCompaction, reasonRetention} {
		c.blocksMarked.WithLabelValues(r)
	}
	c.Service = services.NewBasicService(c.starting, c.running, c.stopping)
	return c, nil
}

func (c *Compactor) stopping(error) error {
	if c.shards == nil {
		return nil
	}
	return services.StopAndAwaitTerminated(context.Background(), c.shards)
}

func (c *Compactor) workDir() string { return filepath.Join(c.cfg.DataDir, compactorWorkDirname) }

func (c *Compactor) starting(ctx context.Context) error {
	if err := os.MkdirAll(c.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create compactor data directory: %w", err)
	}
	// Leftovers of a compactor killed mid-run.
	if err := os.RemoveAll(c.workDir()); err != nil {
		return fmt.Errorf("remove leftover compactor work directory: %w", err)
	}
	// Joined last: stopping, which leaves the ring, is not called when
	// starting fails.
	if c.shards != nil {
		if err := services.StartAndAwaitRunning(ctx, c.shards); err != nil {
			return err
		}
		c.watcher.WatchService(c.shards)
	}
	return nil
}

func (c *Compactor) running(ctx context.Context) error {
	c.runAndLog(ctx)
	t := time.NewTicker(c.cfg.CompactionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-c.watcher.Chan():
			return err
		case <-t.C:
			c.runAndLog(ctx)
		}
	}
}

func (c *Compactor) runAndLog(ctx context.Context) {
	if err := c.RunOnce(ctx); err != nil && ctx.Err() == nil {
		level.Error(c.logger).Log("msg", "compactor run incomplete; what failed is retried on the next run", "err", err)
	}
}

// RunOnce processes every tenant once: deletion of marked blocks whose
// delay passed, retention, compaction, bucket index; or, for a tenant
// marked for deletion, deletion of its objects. A tenant that fails does
// not stop the others; the returned error names every failure.
func (c *Compactor) RunOnce(ctx context.Context) error {
	c.runMu.Lock()
	defer c.runMu.Unlock()

	start := time.Now()
	err := c.runOnce(ctx)
	if err != nil {
		c.runs.WithLabelValues("failure").Inc()
		return err
	}
	c.runs.WithLabelValues("success").Inc()
	c.lastSuccessfulRun.Set(float64(c.now().UnixNano()) / 1e9)
	level.Info(c.logger).Log("msg", "compactor run done", "duration", time.Since(start))
	return nil
}

func (c *Compactor) runOnce(ctx context.Context) error {
	if err := os.RemoveAll(c.workDir()); err != nil {
		return fmt.Errorf("clean compactor work directory: %w", err)
	}
	listed, modified, err := bucket.ListAllTenants(ctx, c.bkt)
	if err != nil {
		return err
	}
	tenants := slices.Sorted(maps.Keys(listed))

	var (
		mu        sync.Mutex
		errs      []error
		broken    int
		processed int
		idle      int
	)
	defer func() { c.brokenBlocks.Set(float64(broken)) }()
	mine := make(chan string)
	var wg sync.WaitGroup
	for range max(1, c.cfg.TenantConcurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tenant := range mine {
				n, skipped, err := c.compactTenantIfDue(ctx, tenant, listed[tenant], modified)
				mu.Lock()
				broken += n
				switch {
				case skipped:
					idle++
				case err != nil:
					errs = append(errs, fmt.Errorf("tenant %s: %w", tenant, err))
					processed++
				default:
					processed++
				}
				mu.Unlock()
			}
		}()
	}
	owned := make(map[string]struct{}, len(tenants))
	for _, tenant := range tenants {
		if err := ctx.Err(); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			break
		}
		if c.shards != nil {
			own, err := c.shards.Owns(ringutil.Token([]byte(tenant)), ringOp)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("look up tenant %s in the compactor ring: %w", tenant, err))
				mu.Unlock()
				continue
			}
			if !own {
				c.tenantsSkipped.Inc()
				continue
			}
		}
		owned[tenant] = struct{}{}
		mine <- tenant
	}
	close(mine)
	wg.Wait()
	c.forgetTenantsExcept(owned)
	level.Info(c.logger).Log("msg", "compactor run over the bucket", "tenants", len(tenants), "owned", len(owned), "processed", processed, "unchanged", idle)
	return errors.Join(errs...)
}

// compactTenantIfDue processes the tenant unless nothing changed in its
// listing since it was last processed and nothing is due (see due). It
// returns how many broken blocks the tenant has and whether it was skipped.
func (c *Compactor) compactTenantIfDue(ctx context.Context, tenant string, listed *bucket.TenantObjects, modified bool) (broken int, skipped bool, err error) {
	c.memoMu.Lock()
	memo := c.memos[tenant]
	c.memoMu.Unlock()
	if modified && memo != nil && !c.due(tenant, listed, memo) {
		c.tenantsUnchanged.Inc()
		c.tenantsProcessed.WithLabelValues("success").Inc()
		return len(memo.state.broken), true, nil
	}
	logger := log.With(c.logger, "tenant", tenant)
	state, err := c.processTenant(ctx, tenant, listed, memo, logger)
	var n int
	if state != nil {
		n = len(state.broken)
	}
	c.memoMu.Lock()
	if err == nil && state != nil && !state.partialUnknown {
		c.memos[tenant] = &tenantMemo{listed: listed.Blocks, state: state}
	} else {
		delete(c.memos, tenant) // processed in full again next run.
	}
	c.memoMu.Unlock()
	if err != nil {
		c.tenantsProcessed.WithLabelValues("failure").Inc()
		level.Warn(logger).Log("msg", "tenant not fully processed; other tenants continue, the rest is retried on the next run", "err", err)
		return n, false, err
	}
	c.tenantsProcessed.WithLabelValues("success").Inc()
	return n, false, nil
}

// forgetTenantsExcept drops what the compactor remembers of the tenants it
// no longer processes: gone from the bucket, or owned by another compactor
// (which may change their blocks while they are not ours).
func (c *Compactor) forgetTenantsExcept(owned map[string]struct{}) {
	c.memoMu.Lock()
	defer c.memoMu.Unlock()
	for tenant := range c.memos {
		if _, ok := owned[tenant]; !ok {
			delete(c.memos, tenant)
		}
	}
}

// due reports whether the tenant needs processing although it was
// processed before: its listing changed since (new, deleted or rewritten
// meta.json or deletion marks, a tenant deletion mark, a missing bucket
// index), or time made something due: a deletion after the deletion delay,
// a partial block past its delay, retention, or a compaction whose window
// is now complete. Nothing else changes what processing would do, so a
// tenant that is not due costs no bucket operation.
func (c *Compactor) due(tenant string, listed *bucket.TenantObjects, memo *tenantMemo) bool {
	if listed.DeletionMark || !listed.Index || !maps.EqualFunc(listed.Blocks, memo.listed, sameObjects) {
		return true
	}
	now := c.now()
	s := memo.state
	for _, mk := range s.marks {
		if now.Sub(time.Unix(mk.DeletionTime, 0)) >= c.cfg.DeletionDelay {
			return true
		}
	}
	if c.cfg.PartialBlockDeletionDelay > 0 {
		for id := range s.partial {
			if now.Sub(ulid.Time(id.Time())) >= c.cfg.PartialBlockDeletionDelay {
				return true
			}
		}
	}
	unmarked := s.unmarked()
	if c.limits != nil {
		if retention := c.limits.BlocksRetention(tenant); retention > 0 {
			cutoff := now.Add(-retention).UnixMilli()
			for _, m := range unmarked {
				if m.MaxTime <= cutoff {
					return true
				}
			}
		}
	}
	return plan(unmarked, c.ranges, now.UnixMilli()) != nil
}

func sameObjects(a, b bucket.BlockObjects) bool {
	return a.Meta == b.Meta && a.DeletionMark == b.DeletionMark &&
		a.MetaModified.Equal(b.MetaModified) && a.MarkModified.Equal(b.MarkModified)
}

// processTenant runs every step for one tenant and returns the state it
// left the tenant in. Errors of one step are collected and the later steps
// still run where that is safe. memo, when not nil, is the tenant's state
// after its last processing: meta.json and deletion marks not rewritten
// since are not read again.
func (c *Compactor) processTenant(ctx context.Context, tenant string, listed *bucket.TenantObjects, memo *tenantMemo, logger log.Logger) (*tenantState, error) {
	if listed.DeletionMark {
		tmark, marked, err := bucket.ReadTenantDeletionMark(ctx, c.bkt, tenant)
		switch {
		case err != nil:
			return nil, fmt.Errorf("read tenant deletion mark: %w", err)
		case marked:
			return nil, c.deleteTenantObjects(ctx, tenant, tmark, logger)
		}
	}

	state, err := c.listTenant(ctx, tenant, listed.Blocks, memo, logger)
	if err != nil {
		return nil, err
	}

	var errs []error
	if err := c.deleteMarkedBlocks(ctx, tenant, state, logger); err != nil {
		errs = append(errs, err)
	}
	if err := c.deletePartialBlocks(ctx, tenant, state, logger); err != nil {
		errs = append(errs, err)
	}
	if err := c.applyRetention(ctx, tenant, state, logger); err != nil {
		errs = append(errs, err)
	}
	if err := c.markSuperseded(ctx, tenant, state, logger); err != nil {
		// Compacting now could compact the same sources twice.
		errs = append(errs, err)
	} else if err := c.compactTenant(ctx, tenant, state, logger); err != nil {
		errs = append(errs, err)
	}
	if err := bucket.WriteIndex(ctx, c.bkt, tenant, newBucketIndex(state, c.now().Unix())); err != nil {
		errs = append(errs, err)
	}
	return state, errors.Join(errs...)
}

// listTenant reads the meta.json and deletion marks of the tenant's listed
// blocks. Blocks without meta.json (uploads in progress or interrupted) are
// not complete: they are only listed as partial. A meta.json or mark
// whose modification time is the one memo saw is taken from memo (blocks
// are immutable; a rewritten one, e.g. damaged, is read again).
func (c *Compactor) listTenant(ctx context.Context, tenant string, listed map[ulid.ULID]bucket.BlockObjects, memo *tenantMemo, logger log.Logger) (*tenantState, error) {
	s := &tenantState{
		metas:   map[ulid.ULID]*bucket.BlockMeta{},
		marks:   map[ulid.ULID]*bucket.DeletionMark{},
		partial: map[ulid.ULID]struct{}{},
		broken:  map[ulid.ULID]bucket.IndexBlock{},
	}
	// The index of the last run tells a block that was complete from an
	// upload that never finished. When it cannot be read, no block counts
	// as partial.
	indexed := map[ulid.ULID]bucket.IndexBlock{}
	prev, err := bucket.ReadIndex(ctx, c.bkt, tenant)
	knowIndexed := err == nil || errors.Is(err, bucket.ErrIndexNotFound)
	if err == nil {
		for _, b := range prev.Blocks {
			indexed[b.ULID] = b
		}
	} else if !knowIndexed {
		level.Warn(logger).Log("msg", "unreadable bucket index; no partial block is deleted in this run", "err", err)
		s.partialUnknown = true
	}
	unreadable := map[ulid.ULID]error{}
	for id, objs := range listed {
		if !objs.DeletionMark {
			continue
		}
		if mk, ok := memo.mark(id, objs); ok {
			s.marks[id] = mk
			continue
		}
		mk, found, err := bucket.ReadDeletionMark(ctx, c.bkt, tenant, id)
		switch {
		case errors.Is(err, bucket.ErrCorrupted):
			// Somebody meant to delete the block; a truncated mark must not keep it forever.
			level.Warn(logger).Log("msg", "unreadable deletion mark; treating the block as marked long ago", "block", id, "err", err)
			mk = bucket.NewDeletionMark(id, 0)
		case err != nil:
			return nil, fmt.Errorf("read deletion mark of block %s: %w", id, err)
		case !found:
			continue // deleted since the listing.
		}
		s.marks[id] = mk
	}

	for id, objs := range listed {
		if !objs.Meta {
			continue
		}
		if m, ok := memo.meta(id, objs); ok {
			s.metas[id] = m
			continue
		}
		m, err := bucket.ReadMeta(ctx, c.bkt, tenant, id)
		switch {
		case err == nil:
		case errors.Is(err, bucket.ErrBlockNotFound):
			continue
		case errors.Is(err, bucket.ErrCorrupted):
			// The filesystem bucket writes in place: a meta.json cut short
			// by a killed uploader never decodes. Classified below.
			unreadable[id] = err
			continue
		default:
			return nil, err
		}
		if m.ULID != id {
			level.Warn(logger).Log("msg", "skipping block whose meta.json names another block", "block", id, "meta_ulid", m.ULID)
			continue
		}
		if m.Meridian.Tenant != "" && m.Meridian.Tenant != tenant {
			level.Warn(logger).Log("msg", "skipping block whose meta.json names another tenant", "block", id, "meta_tenant", m.Meridian.Tenant)
			continue
		}
		s.metas[id] = m
	}
	// A block without a readable meta.json and without a deletion mark
	// (with one it is on its way out) is broken if the last index listed
	// it, as it was complete then: it keeps its entry, so readers fail on
	// it loudly instead of silently answering without its samples.
	// Otherwise it is a partial upload.
	for id, objs := range listed {
		metaErr, bad := unreadable[id]
		if objs.DeletionMark || objs.Meta && !bad {
			continue
		}
		b, wasIndexed := indexed[id]
		switch {
		case wasIndexed && bad:
			level.Error(logger).Log("msg", "block in the bucket index has an unreadable meta.json; the tenant's queries of object storage fail until its meta.json is restored or the block is deleted", "block", id, "err", metaErr)
			s.broken[id] = b
		case wasIndexed:
			level.Error(logger).Log("msg", "block in the bucket index lost its meta.json; it is neither used nor deleted until its meta.json is restored or the block is deleted", "block", id)
			s.broken[id] = b
		default:
			if bad {
				level.Warn(logger).Log("msg", "skipping block with unreadable meta.json", "block", id, "err", metaErr)
			}
			if knowIndexed {
				s.partial[id] = struct{}{}
			}
		}
	}
	return s, nil
}

// deletePartialBlocks deletes the partial blocks (no readable meta.json,
// no deletion mark, not in the bucket index) that nobody has written to for
// PartialBlockDeletionDelay: uploads cut short by a killed ingester or
// compactor, which no reader ever loads and which would otherwise stay
// forever. The delay protects uploads still in progress; a block's ULID,
// made when the block was cut, rules out young blocks without listing
// their objects.
func (c *Compactor) deletePartialBlocks(ctx context.Context, tenant string, s *tenantState, logger log.Logger) error {
	if c.cfg.PartialBlockDeletionDelay <= 0 {
		return nil
	}
	now := c.now()
	var errs []error
	for id := range s.partial {
		if now.Sub(ulid.Time(id.Time())) < c.cfg.PartialBlockDeletionDelay {
			continue
		}
		lastWrite, err := c.lastModified(ctx, bucket.BlockPrefix(tenant, id))
		if err != nil {
			errs = append(errs, fmt.Errorf("partial block %s: %w", id, err))
			continue
		}
		if lastWrite.IsZero() || now.Sub(lastWrite) < c.cfg.PartialBlockDeletionDelay {
			continue // gone since the listing, or written to recently.
		}
		if err := bucket.DeleteBlock(ctx, c.bkt, tenant, id); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(s.partial, id)
		c.partialBlocksDeleted.Inc()
		level.Info(logger).Log("msg", "deleted partial block: no meta.json and no writes for the partial block deletion delay", "block", id, "last_write", lastWrite.UTC())
	}
	return errors.Join(errs...)
}

// lastModified is the newest modification time of the objects under dir.
// It lists dir again rather than reuse the tenant's listing: an uploader
// may have written more since, and that must keep the block.
func (c *Compactor) lastModified(ctx context.Context, dir string) (time.Time, error) {
	var names []string
	if err := c.bkt.Iter(ctx, dir, func(name string) error {
		names = append(names, name)
		return nil
	}, objstore.WithRecursiveIter()); err != nil {
		return time.Time{}, fmt.Errorf("list objects: %w", err)
	}
	var newest time.Time
	for _, name := range names {
		attrs, err := c.bkt.Attributes(ctx, name)
		if err != nil {
			if c.bkt.IsObjNotFoundErr(err) {
				continue
			}
			return time.Time{}, fmt.Errorf("attributes of %s: %w", name, err)
		}
		if attrs.LastModified.After(newest) {
			newest = attrs.LastModified
		}
	}
	return newest, nil
}

// deleteMarkedBlocks deletes the blocks marked at least DeletionDelay ago.
func (c *Compactor) deleteMarkedBlocks(ctx context.Context, tenant string, s *tenantState, logger log.Logger) error {
	now := c.now()
	var errs []error
	for id, mk := range s.marks {
		if now.Sub(time.Unix(mk.DeletionTime, 0)) < c.cfg.DeletionDelay {
			continue
		}
		if err := bucket.DeleteBlock(ctx, c.bkt, tenant, id); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(s.metas, id)
		delete(s.marks, id)
		c.blocksDeleted.Inc()
		level.Info(logger).Log("msg", "deleted block marked for deletion", "block", id, "marked_at", time.Unix(mk.DeletionTime, 0).UTC())
	}
	return errors.Join(errs...)
}

// markBlock writes the block's deletion mark.
func (c *Compactor) markBlock(ctx context.Context, tenant string, id ulid.ULID, reason string, s *tenantState) error {
	mk := bucket.NewDeletionMark(id, c.now().Unix())
	if err := bucket.WriteDeletionMark(ctx, c.bkt, tenant, mk); err != nil {
		return fmt.Errorf("mark block %s for deletion: %w", id, err)
	}
	s.marks[id] = mk
	c.blocksMarked.WithLabelValues(reason).Inc()
	return nil
}

// applyRetention marks the blocks whose samples are all older than the
// tenant's retention period: MaxTime (exclusive) <= now - retention.
func (c *Compactor) applyRetention(ctx context.Context, tenant string, s *tenantState, logger log.Logger) error {
	if c.limits == nil {
		return nil
	}
	retention := c.limits.BlocksRetention(tenant)
	if retention <= 0 {
		return nil
	}
	cutoff := c.now().Add(-retention).UnixMilli()
	var errs []error
	for _, m := range s.unmarked() {
		// MaxTime is exclusive: every sample of the block is older.
		if m.MaxTime > cutoff {
			continue
		}
		if err := c.markBlock(ctx, tenant, m.ULID, reasonRetention, s); err != nil {
			errs = append(errs, err)
			continue
		}
		level.Info(logger).Log("msg", "marked block past retention for deletion", "block", m.ULID, "maxt", m.MaxTime, "retention", retention)
	}
	return errors.Join(errs...)
}

// markSuperseded marks the blocks whose data is in another block: its
// compaction sources are a subset of the other's. That happens when a
// compactor uploaded a compacted block and stopped before marking the
// sources; marking them now finishes that compaction instead of redoing
// it. Of two blocks with the same sources the newer ULID is kept.
func (c *Compactor) markSuperseded(ctx context.Context, tenant string, s *tenantState, logger log.Logger) error {
	metas := s.unmarked()
	bySource := map[ulid.ULID][]*bucket.BlockMeta{}
	for _, m := range metas {
		for _, src := range m.Compaction.Sources {
			bySource[src] = append(bySource[src], m)
		}
	}
	var errs []error
	for _, b := range metas {
		if len(b.Compaction.Sources) == 0 {
			continue
		}
		for _, a := range bySource[b.Compaction.Sources[0]] {
			if a == b || !supersedes(a, b) {
				continue
			}
			if err := c.markBlock(ctx, tenant, b.ULID, reasonCompaction, s); err != nil {
				errs = append(errs, err)
			} else {
				level.Info(logger).Log("msg", "marked block already compacted into another for deletion", "block", b.ULID, "compacted_into", a.ULID)
			}
			break
		}
	}
	return errors.Join(errs...)
}

// supersedes reports whether a holds all of b's sources: more of them, or
// the same ones and a newer ULID.
func supersedes(a, b *bucket.BlockMeta) bool {
	if len(a.Compaction.Sources) < len(b.Compaction.Sources) {
		return false
	}
	for _, src := range b.Compaction.Sources {
		if !slices.Contains(a.Compaction.Sources, src) {
			return false
		}
	}
	return len(a.Compaction.Sources) > len(b.Compaction.Sources) || a.ULID.Compare(b.ULID) > 0
}

// blockError is a compaction failure caused by one source block.
type blockError struct {
	id  ulid.ULID
	err error
}

func (e *blockError) Error() string { return e.err.Error() }
func (e *blockError) Unwrap() error { return e.err }

// compactTenant compacts the tenant's blocks group by group until the plan
// has nothing left. A group that fails is reported and its blocks (or the
// one block at fault) are left out for the rest of the run.
func (c *Compactor) compactTenant(ctx context.Context, tenant string, s *tenantState, logger log.Logger) error {
	skip := map[ulid.ULID]struct{}{}
	var errs []error
	for range maxCompactionsPerTenant {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		var candidates []*bucket.BlockMeta
		for _, m := range s.unmarked() {
			if _, ok := skip[m.ULID]; !ok {
				candidates = append(candidates, m)
			}
		}
		group := plan(candidates, c.ranges, c.now().UnixMilli())
		if group == nil {
			break
		}
		err := c.compactGroup(ctx, tenant, group, s, logger)
		if err == nil {
			continue
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
		c.blockFailures.Inc()
		if be := (*blockError)(nil); errors.As(err, &be) {
			skip[be.id] = struct{}{}
			level.Error(logger).Log("msg", "skipping unreadable block until the next run; other blocks are still compacted", "block", be.id, "err", err)
			continue
		}
		for _, m := range group {
			skip[m.ULID] = struct{}{}
		}
		level.Error(logger).Log("msg", "skipping blocks of a failed compaction until the next run", "blocks", ulids(group), "err", err)
	}
	return errors.Join(errs...)
}

func ulids(group []*bucket.BlockMeta) string {
	ids := make([]string, len(group))
	for i, m := range group {
		ids[i] = m.ULID.String()
	}
	return strings.Join(ids, ",")
}

// compactGroup downloads the group, compacts it into one block, uploads
// that block (meta.json last) and marks the group for deletion.
func (c *Compactor) compactGroup(ctx context.Context, tenant string, group []*bucket.BlockMeta, s *tenantState, logger log.Logger) error {
	start := time.Now()
	defer func() { c.compactionDuration.Observe(time.Since(start).Seconds()) }()

	work := filepath.Join(c.workDir(), tenant)
	if err := os.RemoveAll(work); err != nil {
		return fmt.Errorf("clean work directory: %w", err)
	}
	outDir := filepath.Join(work, "out")
	if err := os.MkdirAll(outDir, 0o750); err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer func() {
		if err := os.RemoveAll(work); err != nil {
			level.Warn(logger).Log("msg", "removing compaction work directory; it is removed at the next run", "dir", work, "err", err)
		}
	}()

	dirs := make([]string, 0, len(group))
	open := make([]*tsdb.Block, 0, len(group))
	defer func() {
		for _, b := range open {
			_ = b.Close()
		}
	}()
	for _, m := range group {
		dir := filepath.Join(work, m.ULID.String())
		if err := bucket.DownloadBlock(ctx, c.logger, c.bkt, tenant, m.ULID, dir); err != nil {
			return &blockError{id: m.ULID, err: fmt.Errorf("download block %s: %w", m.ULID, err)}
		}
		b, err := tsdb.OpenBlock(c.slogger, dir, nil, nil)
		if err != nil {
			return &blockError{id: m.ULID, err: fmt.Errorf("open block %s: %w", m.ULID, err)}
		}
		open = append(open, b)
		dirs = append(dirs, dir)
	}

	comp, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, c.slogger, c.ranges, nil, tsdb.LeveledCompactorOptions{
		MergeFunc:                   storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge),
		EnableOverlappingCompaction: true,
	})
	if err != nil {
		return fmt.Errorf("create compactor: %w", err)
	}
	ids, err := comp.Compact(outDir, dirs, open)
	if err != nil {
		return fmt.Errorf("compact blocks %s: %w", ulids(group), err)
	}

	var result *bucket.BlockMeta
	if len(ids) > 0 {
		result, err = c.upload(ctx, tenant, filepath.Join(outDir, ids[0].String()), logger)
		if err != nil {
			return err
		}
		s.metas[result.ULID] = result
	}

	var errs []error
	for _, m := range group {
		if err := c.markBlock(ctx, tenant, m.ULID, reasonCompaction, s); err != nil {
			errs = append(errs, err)
		}
	}
	c.blocksCompacted.Add(float64(len(group)))
	if result == nil {
		level.Info(logger).Log("msg", "compacted blocks without samples; marked them for deletion", "sources", ulids(group), "duration", time.Since(start))
	} else {
		level.Info(logger).Log("msg", "compacted blocks", "block", result.ULID, "sources", ulids(group), "mint", result.MinTime, "maxt", result.MaxTime, "level", result.Compaction.Level, "samples", result.Stats.NumSamples, "duration", time.Since(start))
	}
	return errors.Join(errs...)
}

// upload copies the compacted block in dir to the bucket: chunks, index,
// then meta.json with the Meridian section, last. If the upload fails the
// objects already uploaded are removed; if the compactor dies instead, they
// stay invisible to readers (no meta.json) and the next run compacts again.
func (c *Compactor) upload(ctx context.Context, tenant, dir string, logger log.Logger) (_ *bucket.BlockMeta, err error) {
	meta, err := bucket.ReadLocalMeta(dir)
	if err != nil {
		return nil, fmt.Errorf("read meta.json of compacted block: %w", err)
	}
	id := meta.ULID
	defer func() {
		if err == nil {
			return
		}
		cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := bucket.DeleteBlock(cleanupCtx, c.bkt, tenant, id); derr != nil {
			level.Warn(logger).Log("msg", "removing partial upload of compacted block; it stays invisible without meta.json", "block", id, "err", derr)
		}
	}()

	result := &bucket.BlockMeta{
		BlockMeta: meta,
		Meridian:  bucket.MeridianMeta{Tenant: tenant, Source: bucket.SourceCompactor},
	}
	if err := bucket.UploadBlock(ctx, c.logger, c.bkt, tenant, dir, result); err != nil {
		return nil, fmt.Errorf("upload compacted block %s: %w", id, err)
	}
	return result, nil
}
