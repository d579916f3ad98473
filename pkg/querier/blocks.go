package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path"
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

	"github.com/meridianhq/meridian/pkg/compactor"
)

// Names of a block's objects in the bucket and files in the cache.
const (
	blockMetaFilename  = "meta.json"
	blockIndexFilename = "index"
	blockChunksDirname = "chunks"
	// deletionMarkFilename is the compactor's mark of a block to delete.
	deletionMarkFilename = "deletion-mark.json"
	downloadDirSuffix    = ".tmp-download"
)

// BucketBlocksConfig configures the querier's direct reader of blocks in
// object storage.
type BucketBlocksConfig struct {
	SyncInterval time.Duration `yaml:"sync_interval"`
	// CacheDir holds the downloaded blocks. Empty means
	// <data-dir>/querier-blocks; the caller fills it in.
	CacheDir string `yaml:"cache_dir"`
	// IgnoreDeletionMarksDelay: a block whose deletion mark (as listed in
	// the tenant's bucket index) is older than this is no longer loaded,
	// and dropped if loaded: its replacement has had time to be synced.
	IgnoreDeletionMarksDelay time.Duration `yaml:"ignore_deletion_marks_delay" category:"advanced"`
}

// RegisterFlags registers the flags of the bucket blocks reader.
func (c *BucketBlocksConfig) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.SyncInterval, "querier.bucket-sync-interval", time.Minute, "How often the querier lists object storage for new and deleted blocks.")
	f.StringVar(&c.CacheDir, "querier.blocks-cache-dir", "", "Directory the querier downloads blocks from object storage into. Empty means <data-dir>/querier-blocks.")
	f.DurationVar(&c.IgnoreDeletionMarksDelay, "querier.ignore-deletion-marks-delay", time.Hour, "Blocks the tenant's bucket index shows marked for deletion longer ago than this are not queried: the block that replaced them has had time to be synced. Keep it well below -compactor.deletion-delay.")
}

// Validate checks the configuration.
func (c *BucketBlocksConfig) Validate() error {
	if c.SyncInterval <= 0 {
		return fmt.Errorf("querier bucket sync interval must be positive, got %s", c.SyncInterval)
	}
	if c.IgnoreDeletionMarksDelay < 0 {
		return fmt.Errorf("querier ignore deletion marks delay must not be negative, got %s", c.IgnoreDeletionMarksDelay)
	}
	return nil
}

// BucketBlocks keeps a local copy of every tenant's blocks in object
// storage and queries them. It is a dskit service: the first sync runs
// while starting, then one every SyncInterval.
type BucketBlocks struct {
	services.Service

	cfg     BucketBlocksConfig
	bkt     objstore.Bucket
	logger  log.Logger
	slogger *slog.Logger
	now     func() time.Time

	syncMu sync.Mutex // one sync at a time.

	// mu guards tenants. Queriers are created under the read lock; a block
	// leaves the map under the write lock before it is closed, and Close
	// waits for the queriers already reading it.
	mu      sync.RWMutex
	tenants map[string]map[ulid.ULID]*tsdb.Block
	// indexes are the tenants' bucket indexes as of the last sync that
	// could read them; a tenant without one has no entry.
	indexes map[string]*compactor.BucketIndex
	// failed are the blocks of each tenant the last sync listed as
	// complete but could not load, with the error.
	failed map[string]map[ulid.ULID]error

	blocksLoaded  prometheus.Gauge
	syncFailures  prometheus.Counter
	syncDuration  prometheus.Histogram
	loadFailures  prometheus.Counter
	blocksDropped prometheus.Counter
}

// NewBucketBlocks returns the reader of blocks in bkt, the whole bucket in
// which tenants are top-level prefixes.
func NewBucketBlocks(cfg BucketBlocksConfig, bkt objstore.Bucket, logger log.Logger, slogger *slog.Logger, reg prometheus.Registerer) *BucketBlocks {
	f := promauto.With(reg)
	b := &BucketBlocks{
		cfg:     cfg,
		bkt:     bkt,
		logger:  log.With(logger, "component", "querier-bucket-blocks"),
		slogger: slogger,
		now:     time.Now,
		tenants: map[string]map[ulid.ULID]*tsdb.Block{},
		indexes: map[string]*compactor.BucketIndex{},
		failed:  map[string]map[ulid.ULID]error{},
		blocksLoaded: f.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_querier_bucket_blocks_loaded",
			Help: "Blocks from object storage the querier has downloaded and opened.",
		}),
		syncFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_querier_bucket_sync_failures_total",
			Help: "Syncs with object storage that could not list the bucket or a tenant.",
		}),
		syncDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                            "meridian_querier_bucket_sync_duration_seconds",
			Help:                            "Time to sync the querier's blocks with object storage.",
			Buckets:                         prometheus.ExponentialBuckets(0.01, 4, 8),
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}),
		loadFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_querier_bucket_block_load_failures_total",
			Help: "Blocks that could not be downloaded or opened; each is retried on the next sync.",
		}),
		blocksDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_querier_bucket_blocks_dropped_total",
			Help: "Blocks closed and removed locally because they left object storage.",
		}),
	}
	b.Service = services.NewTimerService(cfg.SyncInterval, b.starting, b.iteration, b.stopping)
	return b
}

func (b *BucketBlocks) starting(ctx context.Context) error {
	if b.cfg.CacheDir == "" {
		return errors.New("querier blocks cache directory is not set")
	}
	if b.cfg.IgnoreDeletionMarksDelay < 0 {
		return fmt.Errorf("querier ignore deletion marks delay must not be negative, got %s", b.cfg.IgnoreDeletionMarksDelay)
	}
	start := time.Now()
	if err := b.SyncNow(ctx); err != nil {
		return fmt.Errorf("initial sync of blocks from object storage: %w", err)
	}
	level.Info(b.logger).Log("msg", "initial sync of blocks from object storage done", "blocks", b.loadedCount(), "duration", time.Since(start))
	return nil
}

func (b *BucketBlocks) iteration(ctx context.Context) error {
	if err := b.SyncNow(ctx); err != nil {
		level.Warn(b.logger).Log("msg", "sync of blocks from object storage incomplete; queries use the blocks already loaded, retrying next interval", "err", err)
	}
	return nil
}

func (b *BucketBlocks) stopping(_ error) error {
	b.mu.Lock()
	tenants := b.tenants
	b.tenants = map[string]map[ulid.ULID]*tsdb.Block{}
	b.mu.Unlock()

	var errs []error
	for tenant, blocks := range tenants {
		for id, blk := range blocks {
			if err := blk.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close block %s of tenant %s: %w", id, tenant, err))
			}
		}
	}
	b.blocksLoaded.Set(0)
	return errors.Join(errs...)
}

// Querier returns a querier over the tenant's blocks that overlap
// [mint, maxt]. The caller must Close it: until then the blocks it reads
// stay open.
func (b *BucketBlocks) Querier(tenant string, mint, maxt int64) (storage.Querier, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()

	if err := b.checkConsistency(tenant, mint, maxt); err != nil {
		return nil, err
	}

	blocks := b.tenants[tenant]
	ids := make([]ulid.ULID, 0, len(blocks))
	for id := range blocks {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })

	var queriers []storage.Querier
	for _, id := range ids {
		blk := blocks[id]
		// A block holds [MinTime, MaxTime); the query asks for [mint, maxt].
		if blk.MinTime() > maxt || blk.MaxTime() <= mint {
			continue
		}
		q, err := tsdb.NewBlockQuerier(blk, mint, maxt)
		if err != nil {
			for _, q := range queriers {
				_ = q.Close()
			}
			return nil, fmt.Errorf("query block %s of tenant %s: %w", id, tenant, err)
		}
		queriers = append(queriers, q)
	}
	if len(queriers) == 0 {
		return storage.NoopQuerier(), nil
	}
	return storage.NewMergeQuerier(queriers, nil, storage.ChainedSeriesMerge), nil
}

// checkConsistency returns an error when the tenant's last-synced bucket
// index lists a block overlapping [mint, maxt], not marked for deletion,
// that the last sync found in the bucket but could not load: a query
// without it would be a silently partial answer. The caller holds mu.
func (b *BucketBlocks) checkConsistency(tenant string, mint, maxt int64) error {
	failed := b.failed[tenant]
	idx := b.indexes[tenant]
	if len(failed) == 0 || idx == nil {
		return nil
	}
	marked := make(map[ulid.ULID]struct{}, len(idx.DeletionMarks))
	for _, m := range idx.DeletionMarks {
		marked[m.ULID] = struct{}{}
	}
	var errs []error
	for _, blk := range idx.Blocks {
		loadErr, ok := failed[blk.ULID]
		if !ok {
			continue
		}
		if _, ok := marked[blk.ULID]; ok {
			continue
		}
		if blk.MinTime > maxt || blk.MaxTime <= mint {
			continue
		}
		errs = append(errs, fmt.Errorf("block %s of tenant %s (%s to %s) is in the bucket index but could not be read: %w",
			blk.ULID, tenant, time.UnixMilli(blk.MinTime).UTC().Format(time.RFC3339), time.UnixMilli(blk.MaxTime).UTC().Format(time.RFC3339), loadErr))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("consistency check failed, refusing a partial answer: %w", errors.Join(errs...))
}

// SyncNow brings the local blocks in line with the bucket: it downloads
// and opens new complete blocks (those with a meta.json) and closes and
// removes those gone from the bucket. A block that cannot be downloaded or
// opened is logged and skipped, and tried again on the next sync. The
// returned error reports listings that did not work.
func (b *BucketBlocks) SyncNow(ctx context.Context) error {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()

	start := time.Now()
	err := b.sync(ctx)
	b.syncDuration.Observe(time.Since(start).Seconds())
	b.blocksLoaded.Set(float64(b.loadedCount()))
	if err != nil {
		b.syncFailures.Inc()
	}
	return err
}

func (b *BucketBlocks) sync(ctx context.Context) error {
	if err := os.MkdirAll(b.cfg.CacheDir, 0o750); err != nil {
		return fmt.Errorf("create blocks cache directory: %w", err)
	}

	var tenants []string
	err := b.bkt.Iter(ctx, "", func(name string) error {
		tenant, ok := strings.CutSuffix(name, objstore.DirDelim)
		if ok && validTenantDir(tenant) {
			tenants = append(tenants, tenant)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list tenants in bucket: %w", err)
	}

	var errs []error
	for _, tenant := range tenants {
		if err := b.syncTenant(ctx, tenant); err != nil {
			errs = append(errs, err)
		}
	}

	// Tenants gone from the bucket.
	b.mu.RLock()
	var gone []string
	for tenant := range b.tenants {
		if !slices.Contains(tenants, tenant) {
			gone = append(gone, tenant)
		}
	}
	b.mu.RUnlock()
	for _, tenant := range gone {
		b.dropBlocks(tenant, func(ulid.ULID) bool { return true })
		b.removeTenantFromMap(tenant)
	}
	b.mu.Lock()
	for tenant := range b.indexes {
		if !slices.Contains(tenants, tenant) {
			delete(b.indexes, tenant)
		}
	}
	for tenant := range b.failed {
		if !slices.Contains(tenants, tenant) {
			delete(b.failed, tenant)
		}
	}
	b.mu.Unlock()
	b.cleanCacheDir(b.cfg.CacheDir, func(name string) bool { return slices.Contains(tenants, name) })

	return errors.Join(errs...)
}

func validTenantDir(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `/\`)
}

// syncTenant loads the tenant's new complete blocks and drops those gone.
func (b *BucketBlocks) syncTenant(ctx context.Context, tenant string) error {
	// The bucket index is read before the listing: a block the index shows
	// marked was replaced before it was marked, so the replacement is in
	// the listing that follows.
	idx, idxErr := compactor.ReadBucketIndex(ctx, b.bkt, tenant)
	switch {
	case idxErr == nil:
	case errors.Is(idxErr, compactor.ErrBucketIndexNotFound):
		idx, idxErr = nil, nil
	default:
		// Keep the index of the last sync: without a fresh one no new
		// block is skipped, which only costs duplicate work.
		level.Warn(b.logger).Log("msg", "reading bucket index failed; using the one of the last sync", "tenant", tenant, "err", idxErr)
		b.mu.RLock()
		idx = b.indexes[tenant]
		b.mu.RUnlock()
	}
	skip := b.ignoredBlocks(idx)

	// One recursive listing shows which blocks exist and which are complete,
	// without a request per block.
	complete := map[ulid.ULID]struct{}{}
	prefix := tenant + objstore.DirDelim
	err := b.bkt.Iter(ctx, prefix, func(name string) error {
		rel := strings.TrimPrefix(name, prefix)
		dir, file, ok := strings.Cut(rel, objstore.DirDelim)
		if !ok || file != blockMetaFilename {
			return nil
		}
		if id, err := ulid.ParseStrict(dir); err == nil {
			if _, ok := skip[id]; !ok {
				complete[id] = struct{}{}
			}
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		// Keep what is loaded: a listing error says nothing about deletions.
		return fmt.Errorf("list blocks of tenant %s: %w", tenant, err)
	}

	ids := make([]ulid.ULID, 0, len(complete))
	for id := range complete {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })

	tenantDir := filepath.Join(b.cfg.CacheDir, tenant)
	failed := map[ulid.ULID]error{}
	defer func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if idx != nil {
			b.indexes[tenant] = idx
		} else {
			delete(b.indexes, tenant)
		}
		if len(failed) > 0 {
			b.failed[tenant] = failed
		} else {
			delete(b.failed, tenant)
		}
	}()
	for _, id := range ids {
		if b.isLoaded(tenant, id) {
			continue
		}
		if err := ctx.Err(); err != nil {
			// Blocks not tried keep their earlier failure, if any.
			b.mu.RLock()
			for fid, ferr := range b.failed[tenant] {
				if _, ok := complete[fid]; ok && !b.isLoadedLocked(tenant, fid) {
					if _, ok := failed[fid]; !ok {
						failed[fid] = ferr
					}
				}
			}
			b.mu.RUnlock()
			return err
		}
		blk, err := b.loadBlock(ctx, tenant, id)
		if err != nil {
			b.loadFailures.Inc()
			if b.beingDeleted(ctx, tenant, id) {
				level.Info(b.logger).Log("msg", "block being deleted could not be loaded; skipping it", "tenant", tenant, "block", id, "err", err)
				continue
			}
			failed[id] = err
			level.Warn(b.logger).Log("msg", "skipping block that could not be loaded; retrying next sync", "tenant", tenant, "block", id, "err", err)
			continue
		}
		b.mu.Lock()
		if b.tenants[tenant] == nil {
			b.tenants[tenant] = map[ulid.ULID]*tsdb.Block{}
		}
		b.tenants[tenant][id] = blk
		b.mu.Unlock()
		level.Info(b.logger).Log("msg", "loaded block", "tenant", tenant, "block", id, "mint", blk.MinTime(), "maxt", blk.MaxTime())
	}

	// Blocks gone from the bucket, and those marked for deletion long
	// enough ago to be ignored.
	b.dropBlocks(tenant, func(id ulid.ULID) bool {
		_, ok := complete[id]
		return !ok
	})
	b.cleanCacheDir(tenantDir, func(name string) bool {
		id, err := ulid.ParseStrict(name)
		return err == nil && b.isLoaded(tenant, id)
	})
	return nil
}

// loadBlock opens the block from the cache directory if an earlier run
// left it there, and otherwise downloads it first.
func (b *BucketBlocks) loadBlock(ctx context.Context, tenant string, id ulid.ULID) (*tsdb.Block, error) {
	dir := filepath.Join(b.cfg.CacheDir, tenant, id.String())
	if _, err := os.Stat(dir); err == nil {
		blk, err := b.openBlock(dir, id)
		if err == nil {
			return blk, nil
		}
		level.Warn(b.logger).Log("msg", "cached block unreadable, downloading it again", "tenant", tenant, "block", id, "err", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("remove cached copy: %w", err)
	}

	tmp := dir + downloadDirSuffix
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("remove leftover download: %w", err)
	}
	if err := b.download(ctx, path.Join(tenant, id.String()), tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("move downloaded block into place: %w", err)
	}
	blk, err := b.openBlock(dir, id)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return blk, nil
}

func (b *BucketBlocks) download(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(dst, 0o750); err != nil {
		return fmt.Errorf("create download directory: %w", err)
	}
	for _, name := range []string{blockMetaFilename, blockIndexFilename} {
		if err := objstore.DownloadFile(ctx, b.logger, b.bkt, path.Join(src, name), filepath.Join(dst, name)); err != nil {
			return fmt.Errorf("download %s: %w", name, err)
		}
	}
	chunks := path.Join(src, blockChunksDirname)
	if err := objstore.DownloadDir(ctx, b.logger, b.bkt, chunks, chunks, filepath.Join(dst, blockChunksDirname)); err != nil {
		return fmt.Errorf("download chunks: %w", err)
	}
	return nil
}

func (b *BucketBlocks) openBlock(dir string, id ulid.ULID) (*tsdb.Block, error) {
	blk, err := tsdb.OpenBlock(b.slogger, dir, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("open block: %w", err)
	}
	if got := blk.Meta().ULID; got != id {
		_ = blk.Close()
		return nil, fmt.Errorf("meta.json names block %s", got)
	}
	return blk, nil
}

// beingDeleted tells whether the block that failed to load has since lost
// its meta.json or gained a deletion mark: then it failed because it is
// going away, not because it is unreadable.
func (b *BucketBlocks) beingDeleted(ctx context.Context, tenant string, id ulid.ULID) bool {
	dir := path.Join(tenant, id.String())
	if ok, err := b.bkt.Exists(ctx, path.Join(dir, blockMetaFilename)); err == nil && !ok {
		return true
	}
	ok, err := b.bkt.Exists(ctx, path.Join(dir, deletionMarkFilename))
	return err == nil && ok
}

// ignoredBlocks returns the blocks idx shows marked for deletion more
// than IgnoreDeletionMarksDelay ago.
func (b *BucketBlocks) ignoredBlocks(idx *compactor.BucketIndex) map[ulid.ULID]struct{} {
	skip := map[ulid.ULID]struct{}{}
	if idx == nil {
		return skip
	}
	now := b.now()
	for _, m := range idx.DeletionMarks {
		if now.Sub(time.Unix(m.DeletionTime, 0)) >= b.cfg.IgnoreDeletionMarksDelay {
			skip[m.ULID] = struct{}{}
		}
	}
	return skip
}

func (b *BucketBlocks) isLoaded(tenant string, id ulid.ULID) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.isLoadedLocked(tenant, id)
}

func (b *BucketBlocks) isLoadedLocked(tenant string, id ulid.ULID) bool {
	_, ok := b.tenants[tenant][id]
	return ok
}

func (b *BucketBlocks) loadedCount() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := 0
	for _, blocks := range b.tenants {
		n += len(blocks)
	}
	return n
}

// dropBlocks closes and removes the tenant's loaded blocks for which drop
// is true. They leave the map first, so no new querier reads them; Close
// then waits for the queriers already reading.
func (b *BucketBlocks) dropBlocks(tenant string, drop func(ulid.ULID) bool) {
	b.mu.Lock()
	var dropped []*tsdb.Block
	for id, blk := range b.tenants[tenant] {
		if drop(id) {
			dropped = append(dropped, blk)
			delete(b.tenants[tenant], id)
		}
	}
	b.mu.Unlock()

	for _, blk := range dropped {
		id := blk.Meta().ULID
		if err := blk.Close(); err != nil {
			level.Warn(b.logger).Log("msg", "closing block gone from object storage", "tenant", tenant, "block", id, "err", err)
		}
		if err := os.RemoveAll(blk.Dir()); err != nil {
			level.Warn(b.logger).Log("msg", "removing local copy of block gone from object storage; removal is retried next sync", "tenant", tenant, "block", id, "err", err)
		}
		b.blocksDropped.Inc()
		level.Info(b.logger).Log("msg", "dropped block gone from object storage", "tenant", tenant, "block", id)
	}
}

func (b *BucketBlocks) removeTenantFromMap(tenant string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.tenants[tenant]) == 0 {
		delete(b.tenants, tenant)
	}
}

// cleanCacheDir removes the entries of dir that keep returns false for:
// leftovers of interrupted downloads and of blocks or tenants that left
// the bucket while the querier was down.
func (b *BucketBlocks) cleanCacheDir(dir string, keep func(name string) bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			level.Warn(b.logger).Log("msg", "listing blocks cache directory; stale entries stay until next sync", "dir", dir, "err", err)
		}
		return
	}
	for _, e := range entries {
		if keep(e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			level.Warn(b.logger).Log("msg", "removing stale entry of blocks cache directory; retrying next sync", "path", filepath.Join(dir, e.Name()), "err", err)
		}
	}
}
