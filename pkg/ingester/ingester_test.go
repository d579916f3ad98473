package ingester

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"google.golang.org/grpc"

	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/meridianpb"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

type fixedLimits struct{ l limits.Limits }

func (f fixedLimits) Limits(string) limits.Limits { return f.l }

func defaultLimits(t testing.TB) limits.Limits {
	t.Helper()
	var l limits.Limits
	flagext.DefaultValues(&l)
	return l
}

func testConfig(t testing.TB, dir string) Config {
	t.Helper()
	var cfg Config
	fs := flagSetFor(t, &cfg)
	require.NoError(t, fs.Parse(nil))
	cfg.TSDBDir = dir
	cfg.Lifecycler.RingConfig.KVStore.Store = "inmemory"
	cfg.Lifecycler.RingConfig.ReplicationFactor = 1
	cfg.Lifecycler.InstanceAddr = "127.0.0.1"
	cfg.Lifecycler.InstancePort = 19095
	cfg.Lifecycler.InstanceID = "ingester-test-" + filepath.Base(dir)
	cfg.Lifecycler.MinReadyDuration = 0
	cfg.Lifecycler.FinalSleep = 0
	return cfg
}

func startIngester(t testing.TB, cfg Config, lim limits.Limits, bkt objstore.Bucket) *Ingester {
	t.Helper()
	ing, err := New(cfg, fixedLimits{lim}, bkt, log.NewNopLogger(), promslog.NewNopLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	return ing
}

func series(name string, samples ...prompb.Sample) prompb.TimeSeries {
	return prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "test"}}, Samples: samples}
}

// fakeStream collects what QueryStream sends.
type fakeStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent []*meridianpb.QueryStreamResponse
}

func (f *fakeStream) Context() context.Context { return f.ctx }

// Send keeps a copy, as gRPC marshals the message before Send returns and
// QueryStream reuses its buffers afterwards.
func (f *fakeStream) Send(r *meridianpb.QueryStreamResponse) error {
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	var cp meridianpb.QueryStreamResponse
	if err := cp.Unmarshal(b); err != nil {
		return err
	}
	f.sent = append(f.sent, &cp)
	return nil
}

// queryAll returns every float sample of every series, decoded from the chunks.
func queryAll(t testing.TB, ing *Ingester, tenant string, mint, maxt int64) map[string][]prompb.Sample {
	t.Helper()
	out, err := queryAllErr(ing, tenant, mint, maxt)
	require.NoError(t, err)
	return out
}

// queryAllErr is queryAll returning the error, for goroutines and for
// errors a test expects.
func queryAllErr(ing *Ingester, tenant string, mint, maxt int64) (map[string][]prompb.Sample, error) {
	ms := []prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: ".+"}}
	st := &fakeStream{ctx: user.InjectOrgID(context.Background(), tenant)}
	if err := ing.QueryStream(&meridianpb.QueryRequest{StartMs: mint, EndMs: maxt, Matchers: ms}, st); err != nil {
		return nil, err
	}
	out := map[string][]prompb.Sample{}
	for _, r := range st.sent {
		for _, s := range r.Series {
			key := labels.New(prompbLabels(s.Labels)...).String()
			for _, c := range s.Chunks {
				if c.Type != prompb.Chunk_XOR {
					return nil, fmt.Errorf("series %s: chunk of type %s, want XOR", key, c.Type)
				}
				chk, err := chunkenc.FromData(chunkenc.EncXOR, c.Data)
				if err != nil {
					return nil, fmt.Errorf("series %s: decode chunk: %w", key, err)
				}
				it := chk.Iterator(nil)
				for it.Next() == chunkenc.ValFloat {
					ts, v := it.At()
					out[key] = append(out[key], prompb.Sample{Timestamp: ts, Value: v})
				}
			}
		}
	}
	return out, nil
}

func prompbLabels(ls []prompb.Label) []labels.Label {
	out := make([]labels.Label, len(ls))
	for i, l := range ls {
		out[i] = labels.Label{Name: l.Name, Value: l.Value}
	}
	return out
}

func TestPushAndQueryStream(t *testing.T) {
	ing := startIngester(t, testConfig(t, t.TempDir()), defaultLimits(t), nil)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck

	// In the middle of a 2h block range: the TSDB cuts a head chunk at a
	// range boundary and evens out the chunks before it, so 5 minutes of
	// samples crossing one (a run just before an even hour, UTC) made
	// chunks of up to 150 samples and the chunk count below wrong.
	now := time.Now().Truncate(2 * time.Hour).Add(time.Hour).UnixMilli()
	var samples []prompb.Sample
	for i := 0; i < 300; i++ { // more than one chunk (120 samples each)
		samples = append(samples, prompb.Sample{Timestamp: now - int64(300-i)*1000, Value: float64(i)})
	}
	ctx := user.InjectOrgID(context.Background(), "team-a")
	resp, err := ing.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a_total", samples...), series("b", samples[:10]...)}})
	require.NoError(t, err)
	require.Empty(t, resp.Errors)

	got := queryAll(t, ing, "team-a", now-time.Hour.Milliseconds(), now)
	require.Equal(t, samples, got[`{__name__="a_total", job="test"}`])
	require.Equal(t, samples[:10], got[`{__name__="b", job="test"}`])

	// Another tenant sees nothing.
	require.Empty(t, queryAll(t, ing, "team-b", 0, now))

	// Time range is honoured.
	got = queryAll(t, ing, "team-a", samples[299].Timestamp-5000, now)
	require.LessOrEqual(t, len(got[`{__name__="a_total", job="test"}`]), 120+6, "only chunks overlapping the range are sent")
}

func TestPushRejectionsArePerSeries(t *testing.T) {
	lim := defaultLimits(t)
	lim.MaxGlobalSeriesPerTenant = 2
	ing := startIngester(t, testConfig(t, t.TempDir()), lim, nil)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	ctx := user.InjectOrgID(context.Background(), "team-a")
	now := time.Now().UnixMilli()

	_, err := ing.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("x", prompb.Sample{Timestamp: now, Value: 1})}})
	require.NoError(t, err)

	resp, err := ing.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("x", prompb.Sample{Timestamp: now - 1000, Value: 2}), // out of order
		series("x", prompb.Sample{Timestamp: now, Value: 5}),        // duplicate timestamp, new value
		series("y", prompb.Sample{Timestamp: now, Value: 3}),        // new series, within the limit
		series("z", prompb.Sample{Timestamp: now, Value: 4}),        // over the series limit
	}})
	require.NoError(t, err)
	ids := map[int32]string{}
	for _, e := range resp.Errors {
		require.EqualValues(t, 400, e.HttpStatus)
		require.NotEmpty(t, e.Message)
		ids[e.Index] = e.ErrorId
	}
	require.Equal(t, map[int32]string{0: ErrIDSampleOutOfOrder, 1: ErrIDDuplicateTimestamp, 3: ErrIDMaxSeriesPerTenant}, ids)

	got := queryAll(t, ing, "team-a", 0, now+1)
	require.Equal(t, []prompb.Sample{{Timestamp: now, Value: 1}}, got[`{__name__="x", job="test"}`])
	require.Equal(t, []prompb.Sample{{Timestamp: now, Value: 3}}, got[`{__name__="y", job="test"}`])
	require.NotContains(t, got, `{__name__="z", job="test"}`)
}

func TestWALReplayAfterUncleanStop(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.FlushOnShutdown = false // a crash: nothing is flushed, only the WAL remains
	ing := startIngester(t, cfg, defaultLimits(t), nil)
	ctx := user.InjectOrgID(context.Background(), "team-a")
	now := time.Now().UnixMilli()
	var samples []prompb.Sample
	for i := 0; i < 50; i++ {
		samples = append(samples, prompb.Sample{Timestamp: now - int64(50-i)*1000, Value: float64(i * i)})
	}
	_, err := ing.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("c", samples...)}})
	require.NoError(t, err)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
	entries, err := os.ReadDir(filepath.Join(dir, "team-a"))
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, isULID(e.Name()), "no block may be cut when flush on shutdown is off")
	}

	ing = startIngester(t, cfg, defaultLimits(t), nil)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	require.Equal(t, []string{"team-a"}, ing.Tenants(), "tenants on disk are opened at start")
	require.Equal(t, samples, queryAll(t, ing, "team-a", 0, now)[`{__name__="c", job="test"}`])
}

func TestFlushShipsHeadAndKeepsItQueryable(t *testing.T) {
	dir := t.TempDir()
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	cfg := testConfig(t, dir)
	ing := startIngester(t, cfg, defaultLimits(t), bkt)
	ctx := user.InjectOrgID(context.Background(), "team-a")
	now := time.Now().UnixMilli()
	_, err = ing.Push(ctx, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{series("d", prompb.Sample{Timestamp: now - 2000, Value: 1}, prompb.Sample{Timestamp: now, Value: 2})},
		Metadata:   []prompb.MetricMetadata{{MetricFamilyName: "d", Type: prompb.MetricMetadata_GAUGE, Help: "a gauge"}},
	})
	require.NoError(t, err)

	require.NoError(t, ing.flushAll(context.Background()))
	var blocks []string
	require.NoError(t, bkt.Iter(context.Background(), "team-a/", func(name string) error {
		blocks = append(blocks, name)
		return nil
	}))
	require.Len(t, blocks, 1)
	id, isBlock := bucket.BlockOf("team-a", blocks[0])
	require.True(t, isBlock, blocks[0])
	ok, err := bkt.Exists(context.Background(), bucket.MetaName("team-a", id))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []prompb.Sample{{Timestamp: now - 2000, Value: 1}, {Timestamp: now, Value: 2}}, queryAll(t, ing, "team-a", 0, now)[`{__name__="d", job="test"}`])

	md, err := ing.MetricsMetadata(ctx, &meridianpb.MetadataRequest{})
	require.NoError(t, err)
	require.Equal(t, []prompb.MetricMetadata{{MetricFamilyName: "d", Type: prompb.MetricMetadata_GAUGE, Help: "a gauge"}}, md.Metadata)

	names, err := ing.LabelNames(ctx, &meridianpb.LabelNamesRequest{StartMs: 0, EndMs: now})
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "job"}, names.Names)
	values, err := ing.LabelValues(ctx, &meridianpb.LabelValuesRequest{Name: "__name__", StartMs: 0, EndMs: now})
	require.NoError(t, err)
	require.Equal(t, []string{"d"}, values.Values)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
}

func isULID(s string) bool { return len(s) == 26 }

func TestIdleTSDBIsFlushedShippedAndClosed(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	cfg := testConfig(t, t.TempDir())
	cfg.CloseIdleTSDBTimeout = time.Minute
	ing := startIngester(t, cfg, defaultLimits(t), bkt)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	now := time.Now()
	ing.now = func() time.Time { return now }
	ctx := user.InjectOrgID(context.Background(), "idle")
	ts := now.UnixMilli()
	_, err = ing.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("e", prompb.Sample{Timestamp: ts, Value: 9})}})
	require.NoError(t, err)

	ing.compactAndCloseIdle(context.Background())
	require.Equal(t, []string{"idle"}, ing.Tenants(), "not idle yet")

	now = now.Add(2 * time.Minute)
	ing.compactAndCloseIdle(context.Background())
	require.Empty(t, ing.Tenants(), "idle TSDB closed")
	shipped := 0
	require.NoError(t, bkt.Iter(context.Background(), "idle/", func(string) error { shipped++; return nil }))
	require.Equal(t, 1, shipped, "its head was flushed and shipped before closing")

	// A query reopens it from disk; a write works again.
	require.Equal(t, []prompb.Sample{{Timestamp: ts, Value: 9}}, queryAll(t, ing, "idle", 0, ts+1)[`{__name__="e", job="test"}`])
	_, err = ing.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("e", prompb.Sample{Timestamp: ts + 1000, Value: 10})}})
	require.NoError(t, err)
}

type mutableLimits struct{ l *limits.Limits }

func (m mutableLimits) Limits(string) limits.Limits { return *m.l }

func TestOutOfOrderWindowFollowsRuntimeLimits(t *testing.T) {
	lim := defaultLimits(t)
	ing, err := New(testConfig(t, t.TempDir()), mutableLimits{&lim}, nil, log.NewNopLogger(), promslog.NewNopLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	ctx := user.InjectOrgID(context.Background(), "team-a")
	now := time.Now().UnixMilli()
	_, err = ing.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("o", prompb.Sample{Timestamp: now, Value: 1})}})
	require.NoError(t, err)

	late := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("o", prompb.Sample{Timestamp: now - 60_000, Value: 0})}}
	resp, err := ing.Push(ctx, late)
	require.NoError(t, err)
	require.Len(t, resp.Errors, 1)
	require.Equal(t, ErrIDSampleOutOfOrder, resp.Errors[0].ErrorId)

	lim.OutOfOrderTimeWindow = model.Duration(10 * time.Minute)
	ing.compactAndCloseIdle(context.Background())
	resp, err = ing.Push(ctx, late)
	require.NoError(t, err)
	require.Empty(t, resp.Errors, "accepted once the tenant's window allows it")
	require.Equal(t, []prompb.Sample{{Timestamp: now - 60_000, Value: 0}, {Timestamp: now, Value: 1}}, queryAll(t, ing, "team-a", 0, now)[`{__name__="o", job="test"}`])
}

func TestShutdownHandlerFlushesAndLeaves(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	cfg := testConfig(t, t.TempDir())
	cfg.FlushOnShutdown = false
	ing := startIngester(t, cfg, defaultLimits(t), bkt)
	ctx := user.InjectOrgID(context.Background(), "team-a")
	_, err = ing.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("s", prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1})}})
	require.NoError(t, err)

	rec := httptest.NewRecorder()
	ing.ShutdownHandler(rec, httptest.NewRequest(http.MethodGet, "/ingester/shutdown", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)

	rec = httptest.NewRecorder()
	ing.ShutdownHandler(rec, httptest.NewRequest(http.MethodPost, "/ingester/shutdown", nil))
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	require.Equal(t, services.Terminated, ing.State())
	shipped := 0
	require.NoError(t, bkt.Iter(context.Background(), "team-a/", func(string) error { shipped++; return nil }))
	require.Equal(t, 1, shipped, "the head was flushed and shipped although flush on shutdown was off")

	rec = httptest.NewRecorder()
	ing.ShutdownHandler(rec, httptest.NewRequest(http.MethodPost, "/ingester/shutdown", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
}

func TestPerTenantMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	lim := defaultLimits(t)
	lim.MaxGlobalSeriesPerTenant = 1000
	ing, err := New(testConfig(t, t.TempDir()), fixedLimits{lim}, nil, log.NewNopLogger(), promslog.NewNopLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	now := time.Now().UnixMilli()
	_, err = ing.Push(user.InjectOrgID(context.Background(), "team-m"), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("m1", prompb.Sample{Timestamp: now, Value: 1}), series("m2", prompb.Sample{Timestamp: now, Value: 1}),
	}})
	require.NoError(t, err)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP meridian_ingester_tenant_memory_series In-memory series of a tenant in this ingester.
# TYPE meridian_ingester_tenant_memory_series gauge
meridian_ingester_tenant_memory_series{tenant="team-m"} 2
# HELP meridian_ingester_tenant_series_limit This ingester's share of the tenant's series limit (0: no limit).
# TYPE meridian_ingester_tenant_series_limit gauge
meridian_ingester_tenant_series_limit{tenant="team-m"} 1000
# HELP meridian_ingester_tsdb_wal_corruptions_total WAL corruptions found (and repaired) when the tenant's TSDB was opened since it was last opened.
# TYPE meridian_ingester_tsdb_wal_corruptions_total counter
meridian_ingester_tsdb_wal_corruptions_total{tenant="team-m"} 0
`), "meridian_ingester_tenant_memory_series", "meridian_ingester_tenant_series_limit", "meridian_ingester_tsdb_wal_corruptions_total"))
}

// TestQueriesDuringFlushes: a flush truncates the head it compacts; queries
// running at the same time must neither fail nor lose samples.
func TestQueriesDuringFlushes(t *testing.T) {
	ing := startIngester(t, testConfig(t, t.TempDir()), defaultLimits(t), nil)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	ctx := user.InjectOrgID(context.Background(), "team-f")
	now := time.Now().UnixMilli()
	var want []prompb.Sample
	for round := 0; round < 20; round++ {
		var samples []prompb.Sample
		for k := 0; k < 30; k++ {
			s := prompb.Sample{Timestamp: now - int64(20-round)*60_000 + int64(k)*1000, Value: float64(round*100 + k)}
			samples = append(samples, s)
		}
		want = append(want, samples...)
		_, err := ing.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("f", samples...)}})
		require.NoError(t, err)

		done := make(chan error, 1)
		go func() { done <- ing.flushAll(context.Background()) }()
		for q := 0; q < 5; q++ {
			st := &fakeStream{ctx: ctx}
			require.NoError(t, ing.QueryStream(&meridianpb.QueryRequest{StartMs: 0, EndMs: now + 1, Matchers: []prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "f"}}}, st))
		}
		require.NoError(t, <-done)
		require.Equal(t, want, queryAll(t, ing, "team-f", 0, now+1)[`{__name__="f", job="test"}`], "round %d", round)
	}
}

// gatedBucket holds every upload until release is closed.
type gatedBucket struct {
	objstore.Bucket
	uploading chan struct{} // closed at the first upload
	once      sync.Once
	release   chan struct{}
}

func (b *gatedBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.once.Do(func() { close(b.uploading) })
	<-b.release
	return b.Bucket.Upload(ctx, name, r, opts...)
}

// TestStoppingWaitsForFlushStartedOverHTTP: /ingester/flush without
// wait=true flushes in the background; stopping must not close the TSDBs
// under that flush, and later requests are refused.
func TestStoppingWaitsForFlushStartedOverHTTP(t *testing.T) {
	fs, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	bkt := &gatedBucket{Bucket: fs, uploading: make(chan struct{}), release: make(chan struct{})}
	cfg := testConfig(t, t.TempDir())
	cfg.FlushOnShutdown = false
	ing := startIngester(t, cfg, defaultLimits(t), bkt)
	now := time.Now().UnixMilli()
	_, err = ing.Push(user.InjectOrgID(context.Background(), "team-a"), &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{series("d", prompb.Sample{Timestamp: now, Value: 1})},
	})
	require.NoError(t, err)

	w := httptest.NewRecorder()
	ing.FlushHandler(w, httptest.NewRequest(http.MethodPost, "/ingester/flush", nil))
	require.Equal(t, http.StatusNoContent, w.Code)
	<-bkt.uploading

	ing.StopAsync()
	require.Never(t, func() bool { return ing.State() == services.Terminated }, 300*time.Millisecond, 10*time.Millisecond,
		"stopping returned while a flush was shipping")
	w = httptest.NewRecorder()
	ing.FlushHandler(w, httptest.NewRequest(http.MethodPost, "/ingester/flush", nil))
	require.Equal(t, http.StatusServiceUnavailable, w.Code, "a stopping ingester starts no new flush")

	close(bkt.release)
	require.NoError(t, ing.AwaitTerminated(context.Background()))
	var blocks []string
	require.NoError(t, fs.Iter(context.Background(), "team-a/", func(name string) error {
		blocks = append(blocks, name)
		return nil
	}))
	require.Len(t, blocks, 1, "the background flush shipped its block")
}

func TestFlushHeadHonoursContext(t *testing.T) {
	ing := startIngester(t, testConfig(t, t.TempDir()), defaultLimits(t), nil)
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing)) })
	now := time.Now().UnixMilli()
	_, err := ing.Push(user.InjectOrgID(context.Background(), "team-a"), &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{series("d", prompb.Sample{Timestamp: now, Value: 1})},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, ing.flushAll(ctx), context.Canceled)
	db, err := ing.getDB("team-a")
	require.NoError(t, err)
	require.Empty(t, db.db.Blocks(), "a cancelled flush cuts no block")
	require.NoError(t, ing.flushAll(context.Background()))
	require.Len(t, db.db.Blocks(), 1)
}

func TestSeriesShare(t *testing.T) {
	for _, c := range []struct {
		name                             string
		global, rf, healthy, shard, want int
	}{
		{"every ingester", 600, 3, 6, 0, 300},
		{"a shard of 3 on 6 holds every series", 600, 3, 6, 3, 600},
		{"a shard of 4 on 8", 800, 2, 8, 4, 400},
		{"a shard larger than the healthy ingesters", 600, 3, 6, 9, 300},
		{"rf covers every ingester", 600, 3, 3, 0, 600},
		{"empty ring", 600, 3, 0, 0, 600},
		{"never below one", 1, 1, 6, 0, 1},
	} {
		require.Equal(t, c.want, seriesShare(c.global, c.rf, c.healthy, c.shard), c.name)
	}
}

// TestSeriesLimitShareCountsTheTenantsShard: with 6 healthy ingesters at
// RF 1, an ingester keeps 1/6 of a tenant's series limit; with a shuffle
// shard of 2 the tenant's series are on 2 ingesters only, so it keeps 1/2.
func TestSeriesLimitShareCountsTheTenantsShard(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Lifecycler.RingConfig.KVStore.Prefix = "series-share-" + filepath.Base(cfg.TSDBDir) + "/"
	// Five more healthy members, in the same ring as this ingester.
	kvc, err := kv.NewClient(cfg.Lifecycler.RingConfig.KVStore, ring.GetCodec(), nil, log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, kvc.CAS(context.Background(), RingKey, func(in any) (any, bool, error) {
		desc := ring.NewDesc()
		if in != nil {
			desc = in.(*ring.Desc)
		}
		gen := ring.NewRandomTokenGeneratorWithSeed(3)
		for i := range 5 {
			desc.AddIngester(fmt.Sprintf("other-%d", i), fmt.Sprintf("127.0.0.%d:9095", 50+i), "", gen.GenerateTokens(128, nil), ring.ACTIVE, time.Now(), false, time.Time{}, nil)
		}
		return desc, true, nil
	}))

	for _, c := range []struct {
		shard, wantStored int
	}{{0, 10}, {2, 30}} {
		lim := defaultLimits(t)
		lim.MaxGlobalSeriesPerTenant = 60
		lim.IngestionTenantShardSize = c.shard
		cfg.TSDBDir = t.TempDir()
		ing := startIngester(t, cfg, lim, nil)
		require.Eventually(t, func() bool { n, _ := ing.ring.HealthyMembers(); return n == 6 }, 10*time.Second, 50*time.Millisecond)
		now := time.Now().UnixMilli()
		var req prompb.WriteRequest
		for i := range 40 {
			req.Timeseries = append(req.Timeseries, series(fmt.Sprintf("s%d", i), prompb.Sample{Timestamp: now, Value: 1}))
		}
		resp, err := ing.Push(user.InjectOrgID(context.Background(), "team-a"), &req)
		require.NoError(t, err)
		require.Len(t, resp.Errors, 40-c.wantStored, "shard size %d", c.shard)
		require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
	}
}
