package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/mem"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/storage/bucket"
	sgclient "github.com/meridianhq/meridian/pkg/storegateway/client"
	"github.com/meridianhq/meridian/pkg/util/matchers"
)

// BucketBlocksConfig configures how the querier finds the blocks in
// object storage and reads them through the store-gateways.
type BucketBlocksConfig struct {
	SyncInterval time.Duration `yaml:"sync_interval"`
	// TenantIdleTimeout: a tenant not queried for this long is forgotten.
	TenantIdleTimeout time.Duration `yaml:"tenant_idle_timeout" category:"advanced"`
	// IgnoreDeletionMarksDelay: a block whose deletion mark (as listed in
	// the tenant's bucket index) is older than this is no longer queried:
	// its replacement has had time to be found.
	IgnoreDeletionMarksDelay time.Duration `yaml:"ignore_deletion_marks_delay" category:"advanced"`
	// QueryStoreAfter: queries whose whole range is more recent than this
	// are answered by the ingesters alone.
	QueryStoreAfter time.Duration `yaml:"query_store_after" category:"advanced"`
}

// RegisterFlags registers the flags of the bucket blocks reader.
func (c *BucketBlocksConfig) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.SyncInterval, "querier.bucket-sync-interval", time.Minute, "How long the querier uses its list of a tenant's blocks in object storage before listing them again.")
	f.DurationVar(&c.TenantIdleTimeout, "querier.bucket-tenant-idle-timeout", time.Hour, "The querier lists a tenant's blocks in object storage only when the tenant is queried, and forgets what it read of a tenant not queried for this long.")
	f.DurationVar(&c.IgnoreDeletionMarksDelay, "querier.ignore-deletion-marks-delay", time.Hour, "Blocks the tenant's bucket index shows marked for deletion longer ago than this are not queried: the block that replaced them has had time to be found. Keep it well below -compactor.deletion-delay.")
	f.DurationVar(&c.QueryStoreAfter, "querier.query-store-after", 0, "Queries whose whole time range is more recent than this are answered by the ingesters only, without asking the store-gateways. 0 asks the store-gateways for every query; set it below the time the ingesters keep shipped blocks.")
}

// Validate checks the configuration.
func (c *BucketBlocksConfig) Validate() error {
	if c.SyncInterval <= 0 {
		return fmt.Errorf("querier bucket sync interval must be positive, got %s", c.SyncInterval)
	}
	if c.TenantIdleTimeout <= 0 {
		return fmt.Errorf("querier bucket tenant idle timeout must be positive, got %s", c.TenantIdleTimeout)
	}
	if c.IgnoreDeletionMarksDelay < 0 {
		return fmt.Errorf("querier ignore deletion marks delay must not be negative, got %s", c.IgnoreDeletionMarksDelay)
	}
	if c.QueryStoreAfter < 0 {
		return fmt.Errorf("querier query store after must not be negative, got %s", c.QueryStoreAfter)
	}
	return nil
}

// StoreGatewayClients returns the client of a store-gateway by address.
type StoreGatewayClients interface {
	Get(addr string) (meridianpb.StoreGatewayClient, error)
}

// BlocksStore reads a tenant's blocks in object storage through the
// store-gateways that own them. It finds the blocks itself (bucket index
// plus a listing, refreshed every SyncInterval) and checks that every one
// of them was queried: a block no owner could serve fails the query.
// Only tenants that are queried are listed, never the whole bucket, and a
// tenant not queried for TenantIdleTimeout is forgotten: the cost of the
// bucket's tenants is that of the ones being queried.
type BlocksStore struct {
	cfg     BucketBlocksConfig
	finder  *bucket.BlockFinder
	ring    ring.ReadRing
	shards  sgclient.ShardSizes
	clients StoreGatewayClients
	logger  log.Logger
	now     func() time.Time

	mu        sync.Mutex
	tenants   map[string]*tenantBlocks
	lastSweep time.Time

	tenantsHeld         prometheus.GaugeFunc
	consistencyFailures prometheus.Counter
	retries             prometheus.Counter
	relists             prometheus.Counter
	blocksQueried       prometheus.Counter
	findFailures        prometheus.Counter
}

type tenantBlocks struct {
	// used is when the tenant was last queried, Unix nanoseconds; atomic
	// so that sweeping does not wait for a listing in progress.
	used atomic.Int64

	mu      sync.Mutex
	blocks  *bucket.TenantBlocks
	fetched time.Time
}

// NewBlocksStore returns the reader of blocks in bkt, the whole bucket. A
// tenant's blocks are asked of the store-gateways of its shuffle shard of
// sgRing, sized by shards (the store-gateways shard the same way).
func NewBlocksStore(cfg BucketBlocksConfig, bkt objstore.BucketReader, sgRing ring.ReadRing, shards sgclient.ShardSizes, clients StoreGatewayClients, logger log.Logger, reg prometheus.Registerer) *BlocksStore {
	f := promauto.With(reg)
	b := &BlocksStore{
		cfg: cfg, finder: bucket.NewBlockFinder(bkt), ring: sgRing, shards: shards, clients: clients,
		logger: log.With(logger, "component", "querier-blocks-store"), now: time.Now,
		tenants: map[string]*tenantBlocks{},
		consistencyFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_querier_blocks_consistency_failures_total",
			Help: "Queries that failed because a block in object storage could not be queried on any store-gateway that owns it.",
		}),
		relists: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_querier_storegateway_relists_total",
			Help: "Queries that listed a tenant's blocks again because blocks of a stale list could not be queried (typically replaced by a compaction).",
		}),
		retries: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_querier_storegateway_retries_total",
			Help: "Blocks asked again of another store-gateway because the first one failed or did not have them.",
		}),
		blocksQueried: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_querier_blocks_queried_total",
			Help: "Blocks in object storage queried through the store-gateways.",
		}),
		findFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_querier_bucket_sync_failures_total",
			Help: "Listings of a tenant's blocks in object storage that failed; the query fails with them.",
		}),
	}
	b.tenantsHeld = f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meridian_querier_bucket_tenants",
		Help: "Tenants whose blocks in object storage the querier holds a list of: those queried within -querier.bucket-tenant-idle-timeout.",
	}, func() float64 {
		b.mu.Lock()
		defer b.mu.Unlock()
		return float64(len(b.tenants))
	})
	return b
}

// blocks returns the tenant's blocks, listed at most SyncInterval ago.
func (b *BlocksStore) blocks(ctx context.Context, tenant string) (*bucket.TenantBlocks, error) {
	now := b.now()
	b.mu.Lock()
	b.sweepLocked(now)
	tb, ok := b.tenants[tenant]
	if !ok {
		tb = &tenantBlocks{}
		b.tenants[tenant] = tb
	}
	tb.used.Store(now.UnixNano())
	b.mu.Unlock()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.blocks != nil && b.now().Sub(tb.fetched) < b.cfg.SyncInterval {
		return tb.blocks, nil
	}
	found, err := b.finder.Blocks(ctx, tenant)
	if err != nil {
		b.findFailures.Inc()
		return nil, fmt.Errorf("find blocks of tenant %s in object storage: %w", tenant, err)
	}
	tb.blocks, tb.fetched = found, b.now()
	return found, nil
}

// sweepLocked forgets, at most once per SyncInterval, the tenants not
// queried for TenantIdleTimeout: their block lists and metas. b.mu is held.
func (b *BlocksStore) sweepLocked(now time.Time) {
	if b.cfg.TenantIdleTimeout <= 0 || now.Sub(b.lastSweep) < b.cfg.SyncInterval {
		return
	}
	b.lastSweep = now
	idleSince := now.Add(-b.cfg.TenantIdleTimeout).UnixNano()
	for tenant, tb := range b.tenants {
		if tb.used.Load() < idleSince {
			delete(b.tenants, tenant)
			b.finder.Forget(tenant)
		}
	}
}

// forget drops the tenant's cached block list: the next query lists again.
func (b *BlocksStore) forget(tenant string) {
	b.mu.Lock()
	tb, ok := b.tenants[tenant]
	b.mu.Unlock()
	if ok {
		tb.mu.Lock()
		tb.blocks = nil
		tb.mu.Unlock()
	}
}

// Querier implements BlockQuerier.
func (b *BlocksStore) Querier(tenant string, mint, maxt int64) (storage.Querier, error) {
	return &blocksQuerier{s: b, tenant: tenant, mint: mint, maxt: maxt}, nil
}

type blocksQuerier struct {
	s          *BlocksStore
	tenant     string
	mint, maxt int64
	// retained are the received buffers the series of its Selects read.
	retained retained
}

// queryable returns the blocks to query over [mint, maxt].
func (q *blocksQuerier) queryable(ctx context.Context, mint, maxt int64) ([]tsdb.BlockMeta, error) {
	now := q.s.now()
	if q.s.cfg.QueryStoreAfter > 0 && mint > now.Add(-q.s.cfg.QueryStoreAfter).UnixMilli() {
		return nil, nil
	}
	tb, err := q.s.blocks(ctx, q.tenant)
	if err != nil {
		return nil, err
	}
	return tb.Queryable(mint, maxt, now, q.s.cfg.IgnoreDeletionMarksDelay), nil
}

// fetchFresh is fetch, and when blocks could not be queried, lists the
// tenant's blocks again and, if the list changed, fetches once more over
// the new list: a listing made just before a compaction can name source
// blocks the compactor has since replaced and deleted (a short
// -compactor.deletion-delay), which no store-gateway has any more. An
// unchanged list means the blocks really are unreadable.
func (q *blocksQuerier) fetchFresh(ctx context.Context, blocks []tsdb.BlockMeta, mint, maxt int64, call storeCall) ([]any, error) {
	results, err := q.fetch(ctx, blocks, call)
	var ce consistencyError
	if !errors.As(err, &ce) {
		return results, err
	}
	q.s.forget(q.tenant)
	fresh, ferr := q.queryable(ctx, mint, maxt)
	if ferr != nil || sameBlocks(blocks, fresh) {
		return nil, err
	}
	q.s.relists.Inc()
	return q.fetch(ctx, fresh, call)
}

func sameBlocks(a, b []tsdb.BlockMeta) bool {
	if len(a) != len(b) {
		return false
	}
	ids := make(map[ulid.ULID]struct{}, len(a))
	for _, m := range a {
		ids[m.ULID] = struct{}{}
	}
	for _, m := range b {
		if _, ok := ids[m.ULID]; !ok {
			return false
		}
	}
	return true
}

// storeCall asks one store-gateway about ids and returns its result and
// the blocks it queried. A failed call's result is discarded.
type storeCall func(ctx context.Context, c meridianpb.StoreGatewayClient, ids []string) (any, []string, error)

// fetch asks the owners of blocks, retrying each block not queried on its
// next owner, and returns the results of the successful calls. It fails
// when a block could not be queried on any owner.
func (q *blocksQuerier) fetch(ctx context.Context, blocks []tsdb.BlockMeta, call storeCall) ([]any, error) {
	remaining := make(map[string]tsdb.BlockMeta, len(blocks))
	for _, b := range blocks {
		remaining[b.ULID.String()] = b
	}
	tried := map[string]map[string]struct{}{}
	// ownerErrs are every owner's error per block: the message must show a
	// corrupted block even when another owner was merely unreachable.
	ownerErrs := map[string][]error{}
	var results []any
	owners := sgclient.TenantShard(q.s.ring, q.tenant, q.s.shards.StoreGatewayTenantShardSize(q.tenant))
	for attempt := 0; len(remaining) > 0; attempt++ {
		byAddr := map[string][]string{}
		for id, meta := range remaining {
			rs, err := owners.Get(sgclient.BlockToken(q.tenant, meta.ULID), sgclient.RingOp, nil, nil, nil)
			if err != nil {
				ownerErrs[id] = append(ownerErrs[id], fmt.Errorf("no store-gateway owns it (%w); run at least one with -target=store-gateway", err))
				continue
			}
			for _, inst := range rs.Instances {
				if _, ok := tried[id][inst.Addr]; ok {
					continue
				}
				if tried[id] == nil {
					tried[id] = map[string]struct{}{}
				}
				tried[id][inst.Addr] = struct{}{}
				byAddr[inst.Addr] = append(byAddr[inst.Addr], id)
				break
			}
		}
		if len(byAddr) == 0 {
			break
		}
		if attempt > 0 {
			for _, ids := range byAddr {
				q.s.retries.Add(float64(len(ids)))
			}
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for addr, ids := range byAddr {
			slices.Sort(ids)
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, queried, err := q.callOne(ctx, addr, ids, call)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					for _, id := range ids {
						ownerErrs[id] = append(ownerErrs[id], err)
					}
					level.Warn(q.s.logger).Log("msg", "store-gateway failed; asking the next owner of its blocks", "tenant", q.tenant, "addr", addr, "blocks", len(ids), "err", err)
					return
				}
				results = append(results, res)
				for _, id := range queried {
					delete(remaining, id)
					q.s.blocksQueried.Inc()
				}
				for _, id := range ids {
					if _, ok := remaining[id]; ok {
						ownerErrs[id] = append(ownerErrs[id], fmt.Errorf("store-gateway %s does not have it", addr))
					}
				}
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if len(remaining) == 0 {
		return results, nil
	}
	q.s.consistencyFailures.Inc()
	ids := make([]string, 0, len(remaining))
	for id := range remaining {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	errs := make([]error, 0, len(ids))
	for _, id := range ids {
		m := remaining[id]
		errs = append(errs, fmt.Errorf("block %s of tenant %s (%s to %s) could not be queried: %w", id, q.tenant,
			time.UnixMilli(m.MinTime).UTC().Format(time.RFC3339), time.UnixMilli(m.MaxTime).UTC().Format(time.RFC3339), errors.Join(ownerErrs[id]...)))
	}
	return nil, consistencyError{err: errors.Join(errs...)}
}

// ErrIDStoreConsistency is the stable ID of a query refused because a
// block in object storage could not be read.
const ErrIDStoreConsistency = "err-meridian-store-consistency-check"

// consistencyError is a query refused because blocks the bucket lists for
// its range could not be queried. It answers 503: the data exists but is
// not reachable now.
type consistencyError struct{ err error }

func (e consistencyError) Error() string {
	return ErrIDStoreConsistency + ": consistency check failed, refusing a partial answer: " + e.err.Error()
}
func (e consistencyError) Unwrap() error     { return e.err }
func (e consistencyError) Unavailable() bool { return true }

func (q *blocksQuerier) callOne(ctx context.Context, addr string, ids []string, call storeCall) (any, []string, error) {
	c, err := q.s.clients.Get(addr)
	if err != nil {
		return nil, nil, err
	}
	res, queried, err := call(ctx, c, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("store-gateway %s: %w", addr, err)
	}
	return res, queried, nil
}

func (q *blocksQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	skipChunks := false
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
		skipChunks = hints.Func == "series"
	}
	blocks, err := q.queryable(ctx, mint, maxt)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if len(blocks) == 0 {
		return storage.EmptySeriesSet()
	}
	pms, err := matchers.ToProto(ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	results, err := q.fetchFresh(ctx, blocks, mint, maxt, func(ctx context.Context, c meridianpb.StoreGatewayClient, ids []string) (any, []string, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.Series(ctx, &meridianpb.StoreSeriesRequest{MinTimeMs: mint, MaxTimeMs: maxt, Matchers: pms, BlockIds: ids, SkipChunks: skipChunks})
		if err != nil {
			return nil, nil, err
		}
		res := &receivedSeries{}
		var queried []string
		var msg meridianpb.RetainedStoreSeriesResponse
		for {
			// RecvMsg into the retaining message: the chunks alias the
			// received buffer, which res keeps (see retained).
			err := stream.RecvMsg(&msg)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				// Not converted: nothing reads a buffer it may hold.
				freeAll([]mem.Buffer{msg.TakeBuffer()})
				res.discard()
				return nil, nil, err
			}
			if err := res.add(msg.Series, msg.TakeBuffer(), skipChunks); err != nil {
				res.discard()
				return nil, nil, err
			}
			queried = append(queried, msg.QueriedBlocks...)
		}
		return res, queried, nil
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	sets := make([]storage.SeriesSet, 0, len(results))
	for _, r := range results {
		res := r.(*receivedSeries)
		q.retained.keep(res.bufs)
		// Each store-gateway streams its series sorted by labels.
		sets = append(sets, newListSeriesSet(res.series))
	}
	return storage.NewMergeSeriesSet(sets, 0, mergeSeries)
}

func (q *blocksQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	blocks, err := q.queryable(ctx, q.mint, q.maxt)
	if err != nil || len(blocks) == 0 {
		return nil, nil, err
	}
	pms, err := matchers.ToProto(ms)
	if err != nil {
		return nil, nil, err
	}
	results, err := q.fetchFresh(ctx, blocks, q.mint, q.maxt, func(ctx context.Context, c meridianpb.StoreGatewayClient, ids []string) (any, []string, error) {
		resp, err := c.LabelValues(ctx, &meridianpb.StoreLabelValuesRequest{Name: name, MinTimeMs: q.mint, MaxTimeMs: q.maxt, Matchers: pms, BlockIds: ids})
		if err != nil {
			return nil, nil, err
		}
		return resp.Values, resp.QueriedBlocks, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return mergeStrings(results, hints), nil, nil
}

func (q *blocksQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	blocks, err := q.queryable(ctx, q.mint, q.maxt)
	if err != nil || len(blocks) == 0 {
		return nil, nil, err
	}
	pms, err := matchers.ToProto(ms)
	if err != nil {
		return nil, nil, err
	}
	results, err := q.fetchFresh(ctx, blocks, q.mint, q.maxt, func(ctx context.Context, c meridianpb.StoreGatewayClient, ids []string) (any, []string, error) {
		resp, err := c.LabelNames(ctx, &meridianpb.StoreLabelNamesRequest{MinTimeMs: q.mint, MaxTimeMs: q.maxt, Matchers: pms, BlockIds: ids})
		if err != nil {
			return nil, nil, err
		}
		return resp.Names, resp.QueriedBlocks, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return mergeStrings(results, hints), nil, nil
}

// Close frees the buffers the series of its Selects read: they are not
// read after it.
func (q *blocksQuerier) Close() error {
	q.retained.release()
	return nil
}
