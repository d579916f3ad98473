package compactor

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.uber.org/goleak"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	hour = int64(time.Hour / time.Millisecond)
	min_ = int64(time.Minute / time.Millisecond)
)

// sample is a float sample; it implements chunks.Sample.
type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }

// seriesData maps a label set's String() to its samples.
type seriesData map[string][]sample

// genSeries makes n series "test_metric{series="i"}" with a sample every
// step in [mint, maxt), minus those for which drop is true.
func genSeries(n int, mint, maxt, step int64, drop func(i int, t int64) bool) seriesData {
	d := seriesData{}
	for i := range n {
		lset := labels.FromStrings("__name__", "test_metric", "series", fmt.Sprint(i))
		var ss []sample
		for t := mint; t < maxt; t += step {
			if drop != nil && drop(i, t) {
				continue
			}
			ss = append(ss, sample{t: t, f: float64(i*1000) + float64(t)/1000})
		}
		if len(ss) > 0 {
			d[lset.String()] = ss
		}
	}
	return d
}

func (d seriesData) numSamples() uint64 {
	n := uint64(0)
	for _, ss := range d {
		n += uint64(len(ss))
	}
	return n
}

func (d seriesData) merge(o seriesData) seriesData {
	out := seriesData{}
	for k, v := range d {
		out[k] = slices.Clone(v)
	}
	for k, v := range o {
		out[k] = append(out[k], v...)
		slices.SortFunc(out[k], func(a, b sample) int { return int(a.t - b.t) })
	}
	return out
}

func (d seriesData) storageSeries(t testing.TB) []storage.Series {
	t.Helper()
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]storage.Series, 0, len(d))
	for _, k := range keys {
		lset, err := parseLabels(k)
		require.NoError(t, err)
		ss := make([]chunks.Sample, len(d[k]))
		for i, s := range d[k] {
			ss[i] = s
		}
		out = append(out, storage.NewListSeries(lset, ss))
	}
	return out
}

// parseLabels parses the output of labels.Labels.String() for the simple
// values the tests use.
func parseLabels(s string) (labels.Labels, error) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	b := labels.NewScratchBuilder(4)
	for _, kv := range strings.Split(s, ", ") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return labels.EmptyLabels(), fmt.Errorf("bad label %q", kv)
		}
		b.Add(k, strings.Trim(v, `"`))
	}
	b.Sort()
	return b.Labels(), nil
}

type fakeLimits map[string]time.Duration

func (f fakeLimits) BlocksRetention(tenant string) time.Duration { return f[tenant] }

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testEnv struct {
	t    testing.TB
	ctx  context.Context
	bkt  objstore.Bucket
	dir  string // the filesystem bucket's root
	reg  *prometheus.Registry
	c    *Compactor
	now  time.Time
	logs *syncBuffer
}

func defaultConfig(t testing.TB) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	cfg.DataDir = t.TempDir()
	return cfg
}

func newTestEnv(t testing.TB, limits TenantLimits, mutate func(*Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	bkt, err := filesystem.NewBucket(dir)
	require.NoError(t, err)
	cfg := defaultConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	e := &testEnv{
		t:    t,
		ctx:  context.Background(),
		bkt:  bkt,
		dir:  dir,
		reg:  prometheus.NewRegistry(),
		now:  time.UnixMilli(100 * hour),
		logs: &syncBuffer{},
	}
	c, err := New(cfg, bkt, limits, nil, log.NewLogfmtLogger(e.logs), slog.New(slog.DiscardHandler), e.reg)
	require.NoError(t, err)
	c.now = func() time.Time { return e.now }
	e.c = c
	return e
}

// uploadBlock writes the series into a real TSDB block and uploads it in
// Meridian's layout (chunks, index, meta.json last), as a shipper of
// ingester would. maxTime > 0 replaces the block's end, as a head block's
// end is aligned to the block range.
func (e *testEnv) uploadBlock(tenant, ingester string, d seriesData, maxTime int64) tsdb.BlockMeta {
	t := e.t
	t.Helper()
	dir, err := tsdb.CreateBlock(d.storageSeries(t), t.TempDir(), 0, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	meta, err := bucket.ReadLocalMeta(dir)
	require.NoError(t, err)
	if maxTime > 0 {
		require.GreaterOrEqual(t, maxTime, meta.MaxTime)
		meta.MaxTime = maxTime
	}
	require.NoError(t, bucket.UploadBlock(e.ctx, log.NewNopLogger(), e.bkt, tenant, dir, &bucket.BlockMeta{
		BlockMeta: meta,
		Meridian:  bucket.MeridianMeta{Tenant: tenant, Ingester: ingester, Source: bucket.SourceIngester},
	}))
	return meta
}

// state lists the tenant as the compactor sees it.
func (e *testEnv) state(tenant string) *tenantState {
	e.t.Helper()
	listed, err := bucket.ListBlocks(e.ctx, e.bkt, tenant)
	require.NoError(e.t, err)
	s, err := e.c.listTenant(e.ctx, tenant, listed, nil, log.NewNopLogger())
	require.NoError(e.t, err)
	return s
}

// live returns the tenant's complete blocks without a deletion mark.
func (e *testEnv) live(tenant string) []*bucket.BlockMeta {
	e.t.Helper()
	out := e.state(tenant).unmarked()
	slices.SortFunc(out, func(a, b *bucket.BlockMeta) int { return int(a.MinTime - b.MinTime) })
	return out
}

// objects lists every object under prefix.
func (e *testEnv) objects(prefix string) []string {
	e.t.Helper()
	var names []string
	require.NoError(e.t, e.bkt.Iter(e.ctx, prefix, func(name string) error {
		names = append(names, name)
		return nil
	}, objstore.WithRecursiveIter()))
	slices.Sort(names)
	return names
}

// readBlock downloads the block and reads every sample of it.
func (e *testEnv) readBlock(tenant string, id ulid.ULID) seriesData {
	t := e.t
	t.Helper()
	dir := filepath.Join(t.TempDir(), id.String())
	require.NoError(t, bucket.DownloadBlock(e.ctx, log.NewNopLogger(), e.bkt, tenant, id, dir))
	b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), dir, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	q, err := tsdb.NewBlockQuerier(b, math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()

	out := seriesData{}
	ss := q.Select(e.ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		var samples []sample
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			samples = append(samples, sample{t: ts, f: v})
		}
		require.NoError(t, it.Err())
		out[s.Labels().String()] = samples
	}
	require.NoError(t, ss.Err())
	return out
}

func idsOf(metas ...tsdb.BlockMeta) []ulid.ULID {
	ids := make([]ulid.ULID, len(metas))
	for i, m := range metas {
		ids[i] = m.ULID
	}
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })
	return ids
}
