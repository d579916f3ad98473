package storegateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.uber.org/goleak"

	"github.com/meridianhq/meridian/pkg/ingester"
	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/matchers"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	hourMs     = int64(time.Hour / time.Millisecond)
	scrapeMs   = int64(15_000)
	testTenant = "team-a"
	numSeries  = 200
)

type sample struct {
	t int64
	v float64
}

// shipBlocks writes numSeries series, one sample every 15s over [0, 6h),
// into a fresh TSDB with 2h blocks, compacts it and ships the two full
// blocks into bkt with the ingester's shipper. It returns the TSDB
// directory holding the same blocks locally, and their metas.
func shipBlocks(t testing.TB, bkt objstore.Bucket, tenant string) (string, []tsdb.BlockMeta) {
	t.Helper()
	dir := t.TempDir()
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = 2 * hourMs
	opts.MaxBlockDuration = opts.MinBlockDuration
	opts.RetentionDuration = 0
	db, err := tsdb.Open(dir, promslog.NewNopLogger(), nil, opts, nil)
	require.NoError(t, err)
	ctx := context.Background()
	app := db.AppenderV2(ctx)
	for ts := int64(0); ts < 6*hourMs; ts += scrapeMs {
		for s := 0; s < numSeries; s++ {
			ls := labels.FromStrings("__name__", "requests_total", "job", fmt.Sprintf("job-%d", s%7), "instance", fmt.Sprintf("i-%03d", s))
			_, err := app.Append(0, ls, 0, ts, float64(ts/1000+int64(s)), nil, nil, storage.AOptions{})
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	require.NoError(t, db.Compact(ctx))
	var metas []tsdb.BlockMeta
	for _, b := range db.Blocks() {
		metas = append(metas, b.Meta())
	}
	require.NoError(t, db.Close())
	require.Len(t, metas, 2)

	s := ingester.NewShipper(bkt, tenant, "ingester-1", dir, log.NewNopLogger(), ingester.NewShipperMetrics(prometheus.NewPedanticRegistry()))
	n, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	return dir, metas
}

type fixture struct {
	bkt     objstore.Bucket
	bktDir  string
	tsdbDir string
	metas   []tsdb.BlockMeta
	store   *Store
	m       *metrics
	reg     *prometheus.Registry
}

func newFixture(t testing.TB, maxBytes int64) *fixture {
	t.Helper()
	bktDir := t.TempDir()
	bkt, err := filesystem.NewBucket(bktDir)
	require.NoError(t, err)
	tsdbDir, metas := shipBlocks(t, bkt, testTenant)
	reg := prometheus.NewPedanticRegistry()
	m := newMetrics(reg)
	st := NewStore(bkt, NewLRUCache(64<<20), t.TempDir(), maxBytes, log.NewNopLogger(), m)
	return &fixture{bkt: bkt, bktDir: bktDir, tsdbDir: tsdbDir, metas: metas, store: st, m: m, reg: reg}
}

// object is the file of an object of the filesystem bucket.
func (f *fixture) object(name string) string {
	return filepath.Join(f.bktDir, filepath.FromSlash(name))
}

func (f *fixture) ids(metas ...tsdb.BlockMeta) []string {
	var out []string
	for _, m := range metas {
		out = append(out, m.ULID.String())
	}
	return out
}

// series asks the store and decodes the answer into samples per series.
func (f *fixture) series(t testing.TB, mint, maxt int64, ids []string, ms ...*labels.Matcher) (map[string][]sample, []string, error) {
	t.Helper()
	pms, err := matchers.ToProto(ms)
	require.NoError(t, err)
	out := map[string][]sample{}
	var queried []string
	err = f.store.Series(context.Background(), testTenant, &meridianpb.StoreSeriesRequest{MinTimeMs: mint, MaxTimeMs: maxt, Matchers: pms, BlockIds: ids},
		func(r *meridianpb.StoreSeriesResponse) error {
			for _, cs := range r.Series {
				key := labelsOf(cs).String()
				for _, c := range cs.Chunks {
					chk, err := chunkenc.FromData(chunkenc.EncXOR, c.Data)
					if err != nil {
						return err
					}
					it := chk.Iterator(nil)
					for it.Next() == chunkenc.ValFloat {
						ts, v := it.At()
						if ts >= mint && ts <= maxt {
							out[key] = append(out[key], sample{ts, v})
						}
					}
				}
			}
			queried = append(queried, r.QueriedBlocks...)
			return nil
		})
	return out, queried, err
}

func labelsOf(cs prompb.ChunkedSeries) labels.Labels {
	var b labels.ScratchBuilder
	for _, l := range cs.Labels {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels()
}

// local reads the same blocks from the TSDB directory with Prometheus'
// own block reader.
func (f *fixture) local(t testing.TB, mint, maxt int64, ms ...*labels.Matcher) map[string][]sample {
	t.Helper()
	out := map[string][]sample{}
	f.eachLocalBlock(t, func(blk *tsdb.Block) {
		q, err := tsdb.NewBlockQuerier(blk, mint, maxt)
		require.NoError(t, err)
		set := q.Select(context.Background(), true, nil, ms...)
		for set.Next() {
			s := set.At()
			it := s.Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				ts, v := it.At()
				out[s.Labels().String()] = append(out[s.Labels().String()], sample{ts, v})
			}
			require.NoError(t, it.Err())
		}
		require.NoError(t, set.Err())
		require.NoError(t, q.Close())
	})
	return out
}

// eachLocalBlock opens each of the fixture's blocks in its TSDB directory
// with Prometheus' own block reader and passes it to fn.
func (f *fixture) eachLocalBlock(t testing.TB, fn func(blk *tsdb.Block)) {
	t.Helper()
	for _, meta := range f.metas {
		blk, err := tsdb.OpenBlock(promslog.NewNopLogger(), filepath.Join(f.tsdbDir, meta.ULID.String()), nil, nil)
		require.NoError(t, err)
		fn(blk)
		require.NoError(t, blk.Close())
	}
}

func TestSeriesIdenticalToLocalBlocks(t *testing.T) {
	f := newFixture(t, 1<<30)
	cases := []struct {
		name       string
		mint, maxt int64
		ms         []*labels.Matcher
	}{
		{"all", 0, 6 * hourMs, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "requests_total")}},
		{"regexp across blocks", hourMs, 3 * hourMs, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "job", "job-[13]")}},
		{"one series", 0, 4 * hourMs, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "instance", "i-042")}},
		{"negative", 30 * 60 * 1000, 90 * 60 * 1000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchNotEqual, "job", "job-0"), labels.MustNewMatcher(labels.MatchNotRegexp, "instance", "i-1.*")}},
		{"nothing", 0, 6 * hourMs, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "nope")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := f.local(t, c.mint, c.maxt, c.ms...)
			got, queried, err := f.series(t, c.mint, c.maxt, f.ids(f.metas...), c.ms...)
			require.NoError(t, err)
			require.ElementsMatch(t, f.ids(f.metas...), queried)
			require.Equal(t, len(want), len(got))
			require.Equal(t, want, got)
		})
	}

	// Label names and values answer like the local blocks too.
	names, err := f.store.LabelNames(context.Background(), testTenant, &meridianpb.StoreLabelNamesRequest{MinTimeMs: 0, MaxTimeMs: 6 * hourMs, BlockIds: f.ids(f.metas...)})
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "instance", "job"}, names.Names)
	vals, err := f.store.LabelValues(context.Background(), testTenant, &meridianpb.StoreLabelValuesRequest{Name: "job", MinTimeMs: 0, MaxTimeMs: 6 * hourMs, BlockIds: f.ids(f.metas...)})
	require.NoError(t, err)
	require.Len(t, vals.Values, 7)
	// With matchers, as the querier sends them.
	vals, err = f.store.LabelValues(context.Background(), testTenant, &meridianpb.StoreLabelValuesRequest{Name: "job", MinTimeMs: 0, MaxTimeMs: 6 * hourMs, BlockIds: f.ids(f.metas...),
		Matchers: []prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "instance", Value: "i-00[0-2]"}}})
	require.NoError(t, err)
	require.Equal(t, []string{"job-0", "job-1", "job-2"}, vals.Values)
	names, err = f.store.LabelNames(context.Background(), testTenant, &meridianpb.StoreLabelNamesRequest{MinTimeMs: 0, MaxTimeMs: 6 * hourMs, BlockIds: f.ids(f.metas...),
		Matchers: []prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "job", Value: "job-3"}}})
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "instance", "job"}, names.Names)

	// The index header holds only part of the index.
	for _, meta := range f.metas {
		hdr, err := os.Stat(filepath.Join(f.store.dir, testTenant, meta.ULID.String(), indexHeaderFilename))
		require.NoError(t, err)
		idx, err := os.Stat(f.object(bucket.IndexName(testTenant, meta.ULID)))
		require.NoError(t, err)
		require.Less(t, hdr.Size(), idx.Size(), "index header of %s is smaller than the index", meta.ULID)
	}
}

func TestSecondReadServedFromCache(t *testing.T) {
	f := newFixture(t, 1<<30)
	ms := labels.MustNewMatcher(labels.MatchRegexp, "job", "job-[25]")
	first, _, err := f.series(t, 0, 6*hourMs, f.ids(f.metas...), ms)
	require.NoError(t, err)
	fetched := testutil.ToFloat64(f.m.bytesFetched.WithLabelValues(kindIndex)) + testutil.ToFloat64(f.m.bytesFetched.WithLabelValues(kindChunks))
	requests := testutil.ToFloat64(f.m.getRangeRequests.WithLabelValues(kindIndex)) + testutil.ToFloat64(f.m.getRangeRequests.WithLabelValues(kindChunks))
	require.Positive(t, fetched)
	hits := testutil.ToFloat64(f.m.cacheHits.WithLabelValues(kindChunks))

	second, _, err := f.series(t, 0, 6*hourMs, f.ids(f.metas...), ms)
	require.NoError(t, err)
	require.Equal(t, first, second)
	require.Equal(t, fetched, testutil.ToFloat64(f.m.bytesFetched.WithLabelValues(kindIndex))+testutil.ToFloat64(f.m.bytesFetched.WithLabelValues(kindChunks)), "no byte fetched again")
	require.Equal(t, requests, testutil.ToFloat64(f.m.getRangeRequests.WithLabelValues(kindIndex))+testutil.ToFloat64(f.m.getRangeRequests.WithLabelValues(kindChunks)))
	require.Greater(t, testutil.ToFloat64(f.m.cacheHits.WithLabelValues(kindChunks)), hits, "chunk pages came from the cache")

	// A one-series query reads far less than the blocks' size.
	f2 := newFixture(t, 1<<30)
	_, _, err = f2.series(t, 0, 6*hourMs, f2.ids(f2.metas...), labels.MustNewMatcher(labels.MatchEqual, "instance", "i-042"))
	require.NoError(t, err)
	oneSeries := testutil.ToFloat64(f2.m.bytesFetched.WithLabelValues(kindIndex)) + testutil.ToFloat64(f2.m.bytesFetched.WithLabelValues(kindChunks))
	var total int64
	for _, meta := range f2.metas {
		_ = filepath.Walk(filepath.Join(f2.bktDir, testTenant, meta.ULID.String()), func(_ string, fi os.FileInfo, _ error) error {
			if fi != nil && !fi.IsDir() {
				total += fi.Size()
			}
			return nil
		})
	}
	require.Less(t, oneSeries, float64(total)/2, "ranged reads fetch a fraction of the blocks")
}

func TestLazyLoadAndEviction(t *testing.T) {
	f := newFixture(t, 1) // room for one block only
	require.Equal(t, 0, f.store.LoadedBlocks(), "nothing loaded before a query")
	ms := labels.MustNewMatcher(labels.MatchEqual, "instance", "i-007")

	for i, meta := range f.metas {
		_, queried, err := f.series(t, 0, 6*hourMs, f.ids(meta), ms)
		require.NoError(t, err)
		require.Equal(t, f.ids(meta), queried)
		require.Equal(t, 1, f.store.LoadedBlocks(), "after block %d", i)
	}
	require.EqualValues(t, 1, testutil.ToFloat64(f.m.blockEvictions))
	require.EqualValues(t, 2, testutil.ToFloat64(f.m.blockLoads))

	// The evicted block loads again from its header on local disk: the
	// index sections are not fetched again.
	before := testutil.ToFloat64(f.m.getRangeRequests.WithLabelValues(kindIndex))
	hdrBefore := testutil.ToFloat64(f.m.bytesFetched.WithLabelValues(kindIndex))
	_, _, err := f.series(t, 0, 6*hourMs, f.ids(f.metas[0]), ms)
	require.NoError(t, err)
	require.EqualValues(t, 3, testutil.ToFloat64(f.m.blockLoads))
	require.Equal(t, before, testutil.ToFloat64(f.m.getRangeRequests.WithLabelValues(kindIndex)), "postings and series pages are cached, the header read from disk")
	require.Equal(t, hdrBefore, testutil.ToFloat64(f.m.bytesFetched.WithLabelValues(kindIndex)))

	// All blocks answer together under the budget.
	got, _, err := f.series(t, 0, 6*hourMs, f.ids(f.metas...), ms)
	require.NoError(t, err)
	require.Equal(t, f.local(t, 0, 6*hourMs, ms), got)
}

func TestUnknownBlockIsNotReportedQueried(t *testing.T) {
	f := newFixture(t, 1<<30)
	missing := ulid.MustNew(1, nil).String()
	_, queried, err := f.series(t, 0, 6*hourMs, append(f.ids(f.metas[0]), missing), labels.MustNewMatcher(labels.MatchEqual, "job", "job-1"))
	require.NoError(t, err)
	require.Equal(t, f.ids(f.metas[0]), queried)
}

func TestCorruptedBlocks(t *testing.T) {
	ms := labels.MustNewMatcher(labels.MatchEqual, "job", "job-3")
	cases := []struct {
		name    string
		corrupt func(t *testing.T, f *fixture, id ulid.ULID)
	}{
		{"truncated index", func(t *testing.T, f *fixture, id ulid.ULID) {
			truncate(t, f.object(bucket.IndexName(testTenant, id)), 0.5)
		}},
		{"garbage index", func(t *testing.T, f *fixture, id ulid.ULID) {
			require.NoError(t, os.WriteFile(f.object(bucket.IndexName(testTenant, id)), []byte(strings.Repeat("garbage!", 512)), 0o644))
		}},
		{"truncated chunks", func(t *testing.T, f *fixture, id ulid.ULID) {
			truncate(t, f.object(bucket.ChunksPrefix(testTenant, id)+"000001"), 0.3)
		}},
		{"flipped chunk bytes", func(t *testing.T, f *fixture, id ulid.ULID) {
			p := f.object(bucket.ChunksPrefix(testTenant, id) + "000001")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			for i := 64; i < len(b); i += 97 {
				b[i] ^= 0xff
			}
			require.NoError(t, os.WriteFile(p, b, 0o644))
		}},
		{"index deleted after load", func(t *testing.T, f *fixture, id ulid.ULID) {
			// Load the header, then lose the rest of the index.
			_, _, err := f.series(t, 0, 1, f.ids(f.metas[1]), labels.MustNewMatcher(labels.MatchEqual, "job", "none"))
			require.NoError(t, err)
			require.NoError(t, os.Remove(f.object(bucket.IndexName(testTenant, id))))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 1<<30)
			bad := f.metas[1]
			c.corrupt(t, f, bad.ULID)

			_, _, err := f.series(t, 0, 6*hourMs, f.ids(f.metas...), ms)
			require.Error(t, err)
			require.Contains(t, err.Error(), bad.ULID.String(), "the error names the block")
			require.Contains(t, err.Error(), testTenant, "the error names the tenant")
			require.Positive(t, testutil.ToFloat64(f.m.readErrors)+testutil.ToFloat64(f.m.blockLoadFailed), "counted")

			// The good block still answers in full.
			got, _, err := f.series(t, 0, 6*hourMs, f.ids(f.metas[0]), ms)
			require.NoError(t, err)
			want := f.local(t, f.metas[0].MinTime, f.metas[0].MaxTime-1, ms)
			require.Equal(t, want, got)
		})
	}
}

func truncate(t *testing.T, p string, frac float64) {
	t.Helper()
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(p, int64(float64(fi.Size())*frac)))
}

func TestLRUCacheBound(t *testing.T) {
	c := NewLRUCache(100)
	for i := 0; i < 10; i++ {
		c.Store(fmt.Sprintf("k%d", i), make([]byte, 30))
	}
	require.LessOrEqual(t, c.Size(), int64(100))
	got := c.Fetch(context.Background(), []string{"k9", "k0"})
	require.Contains(t, got, "k9", "the newest stays")
	require.NotContains(t, got, "k0", "the oldest went")

	// Get finds what Fetch finds, and a hit makes the key the newest.
	_, ok := c.getBytes([]byte("k0"))
	require.False(t, ok)
	v, ok := c.getBytes([]byte("k7"))
	require.True(t, ok)
	require.Len(t, v, 30)
	c.Store("k10", make([]byte, 30))
	c.Store("k11", make([]byte, 30))
	_, ok = c.getBytes([]byte("k7"))
	require.True(t, ok, "k7 was used last, so k8 and k9 went first")
	_, ok = c.getBytes([]byte("k8"))
	require.False(t, ok)
}
