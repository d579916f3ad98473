// Package querier reads a tenant's data: the recent window from the
// ingesters (streamed as compressed chunks) merged with blocks in object
// storage, replicas and overlaps deduplicated sample by sample.
package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/ring"
	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc/mem"

	ingclient "github.com/meridianhq/meridian/pkg/ingester/client"
	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/matchers"
)

// ErrIDMaxSeriesPerQuery is the stable ID of the series-per-query limit.
const ErrIDMaxSeriesPerQuery = "err-meridian-max-series-per-query"

// Config configures the querier's storage side.
type Config struct {
	BucketBlocks BucketBlocksConfig `yaml:"bucket_blocks"`
	// ShuffleShardingIngestersLookback is how long an ingester may hold
	// data of a tenant that is not in object storage yet: queries read the
	// ingesters that were in the tenant's shard within it (ingesterShards).
	ShuffleShardingIngestersLookback time.Duration `yaml:"shuffle_sharding_ingesters_lookback_period" category:"advanced"`
}

// RegisterFlags registers the querier flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.BucketBlocks.RegisterFlags(f)
	f.DurationVar(&c.ShuffleShardingIngestersLookback, "querier.shuffle-sharding-ingesters-lookback-period", 13*time.Hour, "Shuffle sharding on the read path: queries of a tenant with ingestion_tenant_shard_size read the ingesters of its shard, plus those that joined the ring or were in a larger shard of the tenant within this period. It must cover the longest time an ingester holds samples not yet in object storage: the 2h block range × 1.5 plus -ingester.ship-interval for a tenant that writes, up to -ingester.close-idle-tsdb-timeout (12h) for one that stopped, and at least -querier.query-store-after. For this long after it starts, a querier reads every ingester. 0 reads every ingester always.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if err := c.BucketBlocks.Validate(); err != nil {
		return err
	}
	if c.ShuffleShardingIngestersLookback < 0 {
		return fmt.Errorf("querier: -querier.shuffle-sharding-ingesters-lookback-period must not be negative (0 reads every ingester), got %s", c.ShuffleShardingIngestersLookback)
	}
	if c.ShuffleShardingIngestersLookback > 0 && c.ShuffleShardingIngestersLookback < c.BucketBlocks.QueryStoreAfter {
		return fmt.Errorf("querier: -querier.shuffle-sharding-ingesters-lookback-period (%s) must be at least -querier.query-store-after (%s): recent queries read only the ingesters, which must include every one holding the tenant's data", c.ShuffleShardingIngestersLookback, c.BucketBlocks.QueryStoreAfter)
	}
	return nil
}

// ClientPool returns the client of an ingester by address.
type ClientPool interface {
	Get(addr string) (ingclient.Client, error)
	RemoteTimeout() time.Duration
}

// BlockQuerier opens a querier over a tenant's blocks in object storage.
type BlockQuerier interface {
	Querier(tenant string, mint, maxt int64) (storage.Querier, error)
}

// Queryable is the tenant-aware storage.Queryable the PromQL engine runs on.
type Queryable struct {
	shards  *ingesterShards
	clients ClientPool
	blocks  BlockQuerier // nil: ingesters only
	limits  limits.Source
	logger  log.Logger
}

var _ storage.Queryable = (*Queryable)(nil)

// NewQueryable creates the merged queryable. blocks may be nil.
func NewQueryable(cfg Config, ingesterRing ring.ReadRing, clients ClientPool, blocks BlockQuerier, lim limits.Source, logger log.Logger) *Queryable {
	return &Queryable{
		shards:  newIngesterShards(ingesterRing, overridesOf(lim), cfg.ShuffleShardingIngestersLookback, logger, time.Now),
		clients: clients, blocks: blocks, limits: lim, logger: logger,
	}
}

// The runtime overrides are what ingesterShards watches; a method renamed
// there would otherwise turn the watching off without a word.
var _ overriddenTenants = (*limits.Overrides)(nil)

// overridesOf returns lim's runtime overrides, if it has any.
func overridesOf(lim limits.Source) overriddenTenants {
	o, _ := lim.(overriddenTenants)
	return o
}

func (q *Queryable) ingestionShardSize(tenant string) int {
	return q.limits.Limits(tenant).IngestionTenantShardSize
}

// Querier implements storage.Queryable. The tenant is only known per call
// (from the context), so the real queriers are opened lazily.
func (q *Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{q: q, mint: mint, maxt: maxt}, nil
}

type querier struct {
	q          *Queryable
	mint, maxt int64

	mtx     sync.Mutex
	closers []storage.Querier
}

// open builds the merged querier for the context's tenant.
func (qr *querier) open(ctx context.Context) (storage.Querier, string, error) {
	tenant, err := dskittenant.TenantID(ctx)
	if err != nil {
		return nil, "", httpgrpc.Errorf(http.StatusUnauthorized, "no tenant in the request: %v", err)
	}
	parts := []storage.Querier{&ingesterQuerier{q: qr.q, mint: qr.mint, maxt: qr.maxt}}
	if qr.q.blocks != nil {
		bq, err := qr.q.blocks.Querier(tenant, qr.mint, qr.maxt)
		if err != nil {
			return nil, "", fmt.Errorf("open blocks of tenant %s: %w", tenant, err)
		}
		parts = append(parts, bq)
	}
	// mergeSeries keeps the same sample from several replicas, or from an
	// ingester's local block and its shipped copy, once.
	m := storage.NewMergeQuerier(parts, nil, mergeSeries)
	qr.mtx.Lock()
	qr.closers = append(qr.closers, m)
	qr.mtx.Unlock()
	return m, tenant, nil
}

func (qr *querier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	m, tenant, err := qr.open(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	set := m.Select(ctx, sortSeries, hints, ms...)
	if lim := qr.q.limits.Limits(tenant).MaxSeriesPerQuery; lim > 0 {
		set = &limitedSeriesSet{SeriesSet: set, limit: lim}
	}
	return set
}

func (qr *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	m, _, err := qr.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	return m.LabelValues(ctx, name, hints, ms...)
}

func (qr *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	m, _, err := qr.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	return m.LabelNames(ctx, hints, ms...)
}

func (qr *querier) Close() error {
	qr.mtx.Lock()
	defer qr.mtx.Unlock()
	var errs []error
	for _, c := range qr.closers {
		errs = append(errs, c.Close())
	}
	qr.closers = nil
	return errors.Join(errs...)
}

// limitedSeriesSet fails the query once it yields more series than allowed.
type limitedSeriesSet struct {
	storage.SeriesSet
	limit, n int
	err      error
}

func (s *limitedSeriesSet) Next() bool {
	if s.err != nil || !s.SeriesSet.Next() {
		return false
	}
	s.n++
	if s.n > s.limit {
		s.err = httpgrpc.Errorf(http.StatusUnprocessableEntity, "%s: the query fetched more than %d series, the tenant's limit; narrow the selectors or raise -querier.max-fetched-series-per-query (max_fetched_series_per_query)", ErrIDMaxSeriesPerQuery, s.limit)
		return false
	}
	return true
}

func (s *limitedSeriesSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}

// ingesterQuerier asks every ingester of the replication set.
type ingesterQuerier struct {
	q          *Queryable
	mint, maxt int64
	// retained are the received buffers the series of its Selects read.
	retained retained
}

// forEachIngester calls f on each ingester that may hold the tenant's data
// (its shuffle shard, see ingesterShards), tolerating the failures the
// replication factor allows.
func (iq *ingesterQuerier) forEachIngester(ctx context.Context, f func(context.Context, ingclient.Client) (any, error)) ([]any, error) {
	tenant, err := dskittenant.TenantID(ctx)
	if err != nil {
		return nil, httpgrpc.Errorf(http.StatusUnauthorized, "no tenant in the request: %v", err)
	}
	r := iq.q.shards.forTenant(tenant, iq.q.ingestionShardSize)
	rs, err := r.GetReplicationSetForOperation(ring.Read)
	if err != nil {
		return nil, fmt.Errorf("no ingesters can serve the read: %w", err)
	}
	return rs.Do(ctx, 0, func(ctx context.Context, inst *ring.InstanceDesc) (any, error) {
		c, err := iq.q.clients.Get(inst.Addr)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, iq.q.clients.RemoteTimeout())
		defer cancel()
		res, err := f(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("ingester %s: %w", inst.Addr, err)
		}
		return res, nil
	})
}

func (iq *ingesterQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := iq.mint, iq.maxt
	skipChunks := false
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
		skipChunks = hints.Func == "series"
	}
	pms, err := matchers.ToProto(ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	req := &meridianpb.QueryRequest{StartMs: mint, EndMs: maxt, Matchers: pms, SkipChunks: skipChunks}
	results, err := iq.forEachIngester(ctx, func(ctx context.Context, c ingclient.Client) (any, error) {
		stream, err := c.QueryStream(ctx, req)
		if err != nil {
			return nil, err
		}
		res := &receivedSeries{}
		var msg meridianpb.RetainedQueryStreamResponse
		for {
			// RecvMsg into the retaining message: the chunks alias the
			// received buffer, which res keeps (see retained).
			if err := stream.RecvMsg(&msg); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				// Not converted: nothing reads a buffer it may hold.
				freeAll([]mem.Buffer{msg.TakeBuffer()})
				res.discard()
				return nil, err
			}
			if err := res.add(msg.Series, msg.TakeBuffer(), skipChunks); err != nil {
				res.discard()
				return nil, err
			}
		}
		return res, nil
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	sets := make([]storage.SeriesSet, 0, len(results))
	for _, r := range results {
		res := r.(*receivedSeries)
		iq.retained.keep(res.bufs)
		// Each ingester streams its series sorted by labels already.
		sets = append(sets, newListSeriesSet(res.series))
	}
	return storage.NewMergeSeriesSet(sets, 0, mergeSeries)
}

func (iq *ingesterQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	pms, err := matchers.ToProto(ms)
	if err != nil {
		return nil, nil, err
	}
	req := &meridianpb.LabelValuesRequest{Name: name, StartMs: iq.mint, EndMs: iq.maxt, Matchers: pms}
	if hints != nil {
		req.Limit = int64(hints.Limit)
	}
	results, err := iq.forEachIngester(ctx, func(ctx context.Context, c ingclient.Client) (any, error) {
		resp, err := c.LabelValues(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Values, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return mergeStrings(results, hints), nil, nil
}

func (iq *ingesterQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	pms, err := matchers.ToProto(ms)
	if err != nil {
		return nil, nil, err
	}
	req := &meridianpb.LabelNamesRequest{StartMs: iq.mint, EndMs: iq.maxt, Matchers: pms}
	if hints != nil {
		req.Limit = int64(hints.Limit)
	}
	results, err := iq.forEachIngester(ctx, func(ctx context.Context, c ingclient.Client) (any, error) {
		resp, err := c.LabelNames(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Names, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return mergeStrings(results, hints), nil, nil
}

// Close frees the buffers the series of its Selects read: they are not
// read after it.
func (iq *ingesterQuerier) Close() error {
	iq.retained.release()
	return nil
}

func mergeStrings(results []any, hints *storage.LabelHints) []string {
	// Each source answers sorted values (a TSDB's label values are); merging
	// sorted lists is linear, where hashing and sorting 100 000 names (a
	// Graphite find) was most of the querier's work.
	var out []string
	for _, r := range results {
		vals := r.([]string)
		if !slices.IsSorted(vals) {
			vals = slices.Clone(vals)
			slices.Sort(vals)
		}
		out = mergeSorted(out, slices.Compact(vals))
	}
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out
}

// mergeSorted merges two sorted lists without duplicates into one.
func mergeSorted(a, b []string) []string {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make([]string, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// seriesFromWire turns streamed chunks back into a series whose iterator
// decodes them lazily.
func seriesFromWire(cs prompb.ChunkedSeries, labelsOnly bool) (storage.Series, error) {
	var b labels.ScratchBuilder
	for _, l := range cs.Labels {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	lset := b.Labels()
	if labelsOnly {
		return storage.NewListSeries(lset, nil), nil
	}
	chks := make([]chunkenc.Chunk, 0, len(cs.Chunks))
	ordered := true
	for i, c := range cs.Chunks {
		var enc chunkenc.Encoding
		switch c.Type {
		case prompb.Chunk_XOR:
			enc = chunkenc.EncXOR
		case prompb.Chunk_HISTOGRAM:
			enc = chunkenc.EncHistogram
		case prompb.Chunk_FLOAT_HISTOGRAM:
			enc = chunkenc.EncFloatHistogram
		default:
			return nil, fmt.Errorf("ingester sent a chunk of unknown type %v", c.Type)
		}
		chk, err := chunkenc.FromData(enc, c.Data)
		if err != nil {
			return nil, fmt.Errorf("decode chunk from ingester: %w", err)
		}
		if i > 0 && c.MinTimeMs <= cs.Chunks[i-1].MaxTimeMs {
			ordered = false
		}
		chks = append(chks, chk)
	}
	switch {
	case len(chks) == 0:
		return storage.NewListSeries(lset, nil), nil
	case ordered:
		times := make([]chunkTimes, len(cs.Chunks))
		for i, c := range cs.Chunks {
			times[i] = chunkTimes{c.MinTimeMs, c.MaxTimeMs}
		}
		return &OrderedChunksSeries{Lset: lset, chunks: chks, times: times}, nil
	}
	// Chunks that overlap (an out-of-order head) are merged without
	// duplicates.
	return chainedChunksSeries(lset, chks), nil
}

type listSeriesSet struct {
	series []storage.Series
	i      int
}

func newListSeriesSet(s []storage.Series) *listSeriesSet { return &listSeriesSet{series: s, i: -1} }

func (l *listSeriesSet) Next() bool                        { l.i++; return l.i < len(l.series) }
func (l *listSeriesSet) At() storage.Series                { return l.series[l.i] }
func (l *listSeriesSet) Err() error                        { return nil }
func (l *listSeriesSet) Warnings() annotations.Annotations { return nil }

// MetricsMetadata merges the metadata the ingesters hold for the tenant.
func (q *Queryable) MetricsMetadata(ctx context.Context, metric string, limit int) ([]prompb.MetricMetadata, error) {
	iq := &ingesterQuerier{q: q}
	req := &meridianpb.MetadataRequest{Metric: metric, Limit: int32(limit)}
	results, err := iq.forEachIngester(ctx, func(ctx context.Context, c ingclient.Client) (any, error) {
		resp, err := c.MetricsMetadata(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Metadata, nil
	})
	if err != nil {
		return nil, err
	}
	type key struct{ name, typ, help, unit string }
	seen := map[key]struct{}{}
	var out []prompb.MetricMetadata
	for _, r := range results {
		for _, m := range r.([]prompb.MetricMetadata) {
			k := key{m.MetricFamilyName, m.Type.String(), m.Help, m.Unit}
			if _, ok := seen[k]; ok {
				continue
			}
			seen[k] = struct{}{}
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MetricFamilyName < out[j].MetricFamilyName })
	return out, nil
}
