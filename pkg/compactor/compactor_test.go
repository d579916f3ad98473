package compactor

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

const step = 15 * 1000 // 15s in milliseconds.

func TestCompactor_VerticalCompactionOfIdenticalReplicas(t *testing.T) {
	e := newTestEnv(t, nil, nil)
	e.now = time.UnixMilli(3 * hour)
	data := genSeries(10, 0, 2*hour, step, nil)
	var replicas []tsdb.BlockMeta
	for _, ing := range []string{"ingester-1", "ingester-2", "ingester-3"} {
		replicas = append(replicas, e.uploadBlock("team-a", ing, data, 2*hour))
	}
	require.NoError(t, e.c.RunOnce(e.ctx))

	live := e.live("team-a")
	require.Len(t, live, 1)
	got := live[0]
	require.Equal(t, data.numSamples(), got.Stats.NumSamples, "one replica's worth of samples")
	require.Equal(t, uint64(10), got.Stats.NumSeries)
	require.Equal(t, int64(0), got.MinTime)
	require.Equal(t, 2*hour, got.MaxTime)
	require.Equal(t, 2, got.Compaction.Level)
	require.Equal(t, idsOf(replicas...), got.Compaction.Sources)
	require.Equal(t, bucket.MeridianMeta{Tenant: "team-a", Source: bucket.SourceCompactor}, got.Meridian)
	require.Equal(t, data, e.readBlock("team-a", got.ULID))

	s := e.state("team-a")
	for _, r := range replicas {
		require.Contains(t, s.marks, r.ULID, "source %s marked for deletion", r.ULID)
		require.Equal(t, e.now.Unix(), s.marks[r.ULID].DeletionTime)
	}
	require.Equal(t, 3.0, testutil.ToFloat64(e.c.blocksCompacted))
	require.Equal(t, 3.0, testutil.ToFloat64(e.c.blocksMarked.WithLabelValues(reasonCompaction)))
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.runs.WithLabelValues("success")))
	require.Equal(t, float64(e.now.Unix()), testutil.ToFloat64(e.c.lastSuccessfulRun))
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.tenantsProcessed.WithLabelValues("success")))

	// A second run has nothing to do.
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Equal(t, []*bucket.BlockMeta{got}, e.live("team-a"))
	require.Equal(t, 3.0, testutil.ToFloat64(e.c.blocksCompacted))
}

func TestCompactor_VerticalCompactionUnionOfDifferentReplicas(t *testing.T) {
	e := newTestEnv(t, nil, nil)
	e.now = time.UnixMilli(3 * hour)
	full := genSeries(10, 0, 2*hour, step, nil)
	// Each replica missed something the others have.
	r1 := genSeries(10, 0, 2*hour, step, func(i int, ts int64) bool { return i < 5 && ts%(4*step) == 0 })
	r2 := genSeries(10, 0, 2*hour, step, func(i int, ts int64) bool { return i == 9 || (ts >= hour && ts < hour+10*min_) })
	r3 := genSeries(10, 0, 2*hour, step, func(i int, ts int64) bool { return (i >= 5 && ts%(4*step) == 0) || ts < 30*min_ })
	for _, r := range []seriesData{r1, r2, r3} {
		require.Less(t, r.numSamples(), full.numSamples())
	}
	union := map[string]map[int64]struct{}{}
	for _, r := range []seriesData{r1, r2, r3} {
		for k, ss := range r {
			if union[k] == nil {
				union[k] = map[int64]struct{}{}
			}
			for _, s := range ss {
				union[k][s.t] = struct{}{}
			}
		}
	}
	n := 0
	for _, ts := range union {
		n += len(ts)
	}
	require.Equal(t, int(full.numSamples()), n, "test data: together the replicas have every sample")
	e.uploadBlock("team-a", "ingester-1", r1, 2*hour)
	e.uploadBlock("team-a", "ingester-2", r2, 2*hour)
	e.uploadBlock("team-a", "ingester-3", r3, 2*hour)

	require.NoError(t, e.c.RunOnce(e.ctx))
	live := e.live("team-a")
	require.Len(t, live, 1)
	require.Equal(t, full.numSamples(), live[0].Stats.NumSamples, "the union, each sample once")
	require.Equal(t, full, e.readBlock("team-a", live[0].ULID))
}

func TestCompactor_CompactsTwoHourBlocksIntoTwelveHours(t *testing.T) {
	e := newTestEnv(t, nil, nil)
	e.now = time.UnixMilli(13 * hour)
	const window = 2 * hour
	all := seriesData{}
	var sources []tsdb.BlockMeta
	for w := range int64(6) {
		data := genSeries(3, w*window, (w+1)*window, time.Minute.Milliseconds(), nil)
		all = all.merge(data)
		for _, ing := range []string{"ingester-1", "ingester-2"} {
			sources = append(sources, e.uploadBlock("team-a", ing, data, (w+1)*window))
		}
	}
	require.NoError(t, e.c.RunOnce(e.ctx))

	live := e.live("team-a")
	require.Len(t, live, 1)
	got := live[0]
	require.Equal(t, int64(0), got.MinTime)
	require.Equal(t, 12*hour, got.MaxTime)
	require.Equal(t, 3, got.Compaction.Level)
	require.Equal(t, idsOf(sources...), got.Compaction.Sources)
	require.Equal(t, all.numSamples(), got.Stats.NumSamples)
	require.Equal(t, all, e.readBlock("team-a", got.ULID))
	// 12 ingester blocks into 6, then those 6 into one.
	require.Equal(t, 18.0, testutil.ToFloat64(e.c.blocksCompacted))
	require.Len(t, e.state("team-a").marks, 18)
}

func TestCompactor_RecoversFromCrashBetweenUploadAndMarking(t *testing.T) {
	e := newTestEnv(t, nil, nil)
	e.now = time.UnixMilli(3 * hour)
	data := genSeries(5, 0, 2*hour, step, nil)
	for _, ing := range []string{"ingester-1", "ingester-2", "ingester-3"} {
		e.uploadBlock("team-a", ing, data, 2*hour)
	}
	require.NoError(t, e.c.RunOnce(e.ctx))
	live := e.live("team-a")
	require.Len(t, live, 1)
	result := live[0]

	// The compactor died after uploading the result and before marking
	// the sources: no marks. It also left a work directory behind.
	for _, id := range result.Compaction.Sources {
		require.NoError(t, e.bkt.Delete(e.ctx, bucket.DeletionMarkName("team-a", id)))
	}
	require.Len(t, e.live("team-a"), 4)
	leftover := filepath.Join(e.c.workDir(), "team-a", "01JDQ4Z0W6V2Q7N8ZK3M9ZP1XY")
	require.NoError(t, os.MkdirAll(leftover, 0o750))

	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Equal(t, []*bucket.BlockMeta{result}, e.live("team-a"), "sources marked, not compacted again")
	require.Equal(t, 3.0, testutil.ToFloat64(e.c.blocksCompacted), "no second compaction")
	require.Equal(t, 6.0, testutil.ToFloat64(e.c.blocksMarked.WithLabelValues(reasonCompaction)))
	_, err := os.Stat(e.c.workDir())
	require.True(t, os.IsNotExist(err), "work directory cleaned")
}

func TestCompactor_RedoesCompactionAfterCrashMidUpload(t *testing.T) {
	e := newTestEnv(t, nil, nil)
	e.now = time.UnixMilli(3 * hour)
	data := genSeries(5, 0, 2*hour, step, nil)
	for _, ing := range []string{"ingester-1", "ingester-2"} {
		e.uploadBlock("team-a", ing, data, 2*hour)
	}
	// A killed compactor left chunks and index of a block but no meta.json.
	partial := ulid.MustNew(1, nil)
	require.NoError(t, e.bkt.Upload(e.ctx, bucket.ChunksPrefix("team-a", partial)+"000001", strings.NewReader("partial")))
	require.NoError(t, e.bkt.Upload(e.ctx, bucket.IndexName("team-a", partial), strings.NewReader("partial")))

	require.NoError(t, e.c.RunOnce(e.ctx))
	live := e.live("team-a")
	require.Len(t, live, 1)
	require.Equal(t, data, e.readBlock("team-a", live[0].ULID))
	idx, err := bucket.ReadIndex(e.ctx, e.bkt, "team-a")
	require.NoError(t, err)
	for _, b := range idx.Blocks {
		require.NotEqual(t, partial, b.ULID, "a block without meta.json is not in the index")
	}
}

func TestCompactor_DeletesMarkedBlocksAfterDelay(t *testing.T) {
	e := newTestEnv(t, nil, func(c *Config) { c.DeletionDelay = 12 * time.Hour })
	e.now = time.UnixMilli(3 * hour)
	marked := e.now
	data := genSeries(5, 0, 2*hour, step, nil)
	var sources []tsdb.BlockMeta
	for _, ing := range []string{"ingester-1", "ingester-2", "ingester-3"} {
		sources = append(sources, e.uploadBlock("team-a", ing, data, 2*hour))
	}
	require.NoError(t, e.c.RunOnce(e.ctx))
	result := e.live("team-a")[0]

	e.now = marked.Add(12*time.Hour - time.Minute)
	require.NoError(t, e.c.RunOnce(e.ctx))
	for _, s := range sources {
		require.NotEmpty(t, e.objects(bucket.BlockPrefix("team-a", s.ULID)), "kept before the delay")
	}
	require.Equal(t, 0.0, testutil.ToFloat64(e.c.blocksDeleted))

	e.now = marked.Add(12*time.Hour + time.Minute)
	require.NoError(t, e.c.RunOnce(e.ctx))
	for _, s := range sources {
		require.Empty(t, e.objects(bucket.BlockPrefix("team-a", s.ULID)), "deleted after the delay")
	}
	require.Equal(t, 3.0, testutil.ToFloat64(e.c.blocksDeleted))
	require.Equal(t, []*bucket.BlockMeta{result}, e.live("team-a"))
	require.Equal(t, data, e.readBlock("team-a", result.ULID))
}

func TestCompactor_DeleteBlockRemovesMetaFirstAndMarkLast(t *testing.T) {
	e := newTestEnv(t, nil, nil)
	m := e.uploadBlock("team-a", "ingester-1", genSeries(1, 0, hour, step, nil), 0)
	s := e.state("team-a")
	require.NoError(t, e.c.markBlock(e.ctx, "team-a", m.ULID, reasonRetention, s))

	rec := &recordingBucket{Bucket: e.bkt}
	require.NoError(t, bucket.DeleteBlock(e.ctx, rec, "team-a", m.ULID))
	require.GreaterOrEqual(t, len(rec.deleted), 4)
	require.Equal(t, bucket.MetaName("team-a", m.ULID), rec.deleted[0])
	require.Equal(t, bucket.DeletionMarkName("team-a", m.ULID), rec.deleted[len(rec.deleted)-1])
	require.Empty(t, e.objects("team-a/"))
}

func TestCompactor_Retention(t *testing.T) {
	limits := fakeLimits{"team-a": 24 * time.Hour}
	e := newTestEnv(t, limits, func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour} })
	e.now = time.UnixMilli(50 * hour) // cutoff: 26h.
	blocks := map[string][]tsdb.BlockMeta{}
	for _, tenant := range []string{"team-a", "team-b"} {
		for _, start := range []int64{0, 10 * hour, 24 * hour, 30 * hour, 46 * hour} {
			blocks[tenant] = append(blocks[tenant], e.uploadBlock(tenant, "ingester-1", genSeries(2, start, start+2*hour, time.Minute.Milliseconds(), nil), start+2*hour))
		}
	}
	require.NoError(t, e.c.RunOnce(e.ctx))

	a := e.state("team-a")
	require.Len(t, a.marks, 3)
	for _, m := range blocks["team-a"][:3] {
		require.Contains(t, a.marks, m.ULID, "block ending at %d is past retention", m.MaxTime)
	}
	require.Len(t, e.live("team-a"), 2)
	require.Empty(t, e.state("team-b").marks, "retention 0 keeps everything")
	require.Equal(t, 3.0, testutil.ToFloat64(e.c.blocksMarked.WithLabelValues(reasonRetention)))
}

func TestCompactor_TenantDeletion(t *testing.T) {
	e := newTestEnv(t, nil, func(c *Config) { c.TenantCleanupDelay = time.Hour })
	e.now = time.UnixMilli(27 * hour)
	e.uploadBlock("team-a", "ingester-1", genSeries(2, 0, 2*hour, step, nil), 2*hour)
	e.uploadBlock("team-a", "ingester-1", genSeries(2, 24*hour, 26*hour, step, nil), 26*hour)
	e.uploadBlock("team-b", "ingester-1", genSeries(2, 0, 2*hour, step, nil), 2*hour)
	require.NoError(t, e.c.RunOnce(e.ctx))
	teamB := e.objects("team-b/")
	require.Contains(t, teamB, bucket.IndexObjectName("team-b"))

	// No tenant: 401.
	rec := httptest.NewRecorder()
	e.c.DeleteTenantHandler(rec, httptest.NewRequest(http.MethodPost, "/compactor/delete_tenant", nil))
	require.Equal(t, http.StatusUnauthorized, rec.Code)

	status := func(h http.HandlerFunc, method string) TenantDeletionStatus {
		t.Helper()
		req := httptest.NewRequest(method, "/compactor/x", nil)
		req = req.WithContext(user.InjectOrgID(req.Context(), "team-a"))
		rec := httptest.NewRecorder()
		h(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var st TenantDeletionStatus
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
		return st
	}
	require.Equal(t, TenantDeletionStatus{Tenant: "team-a", BlocksRemaining: 2}, status(e.c.DeleteTenantStatusHandler, http.MethodGet))
	require.Equal(t, TenantDeletionStatus{Tenant: "team-a", BlocksRemaining: 2}, status(e.c.DeleteTenantHandler, http.MethodPost))

	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Equal(t, []string{bucket.TenantDeletionMarkName("team-a")}, e.objects("team-a/"), "only the mark is left during the cleanup delay")
	require.Equal(t, TenantDeletionStatus{Tenant: "team-a", DeletionFinished: true}, status(e.c.DeleteTenantStatusHandler, http.MethodGet))
	require.Equal(t, 2.0, testutil.ToFloat64(e.c.blocksDeleted))

	// A block shipped late by an ingester is deleted too.
	e.uploadBlock("team-a", "ingester-2", genSeries(2, 0, 2*hour, step, nil), 2*hour)
	e.now = e.now.Add(time.Hour)
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Empty(t, e.objects("team-a/"), "everything of the tenant is gone, the mark last")
	tenants, err := bucket.ListTenants(e.ctx, e.bkt)
	require.NoError(t, err)
	require.Equal(t, []string{"team-b"}, tenants)
	require.Equal(t, teamB, e.objects("team-b/"), "other tenants untouched")
	require.Len(t, e.live("team-b"), 1)
}

func TestCompactor_BucketIndex(t *testing.T) {
	e := newTestEnv(t, nil, nil)
	e.now = time.UnixMilli(3 * hour)
	_, err := bucket.ReadIndex(e.ctx, e.bkt, "team-a")
	require.ErrorIs(t, err, bucket.ErrIndexNotFound)

	data := genSeries(3, 0, 2*hour, step, nil)
	var sources []tsdb.BlockMeta
	for _, ing := range []string{"ingester-1", "ingester-2", "ingester-3"} {
		sources = append(sources, e.uploadBlock("team-a", ing, data, 2*hour))
	}
	require.NoError(t, e.c.RunOnce(e.ctx))
	result := e.live("team-a")[0]

	idx, err := bucket.ReadIndex(e.ctx, e.bkt, "team-a")
	require.NoError(t, err)
	require.Equal(t, 1, idx.Version)
	require.Equal(t, e.now.Unix(), idx.UpdatedAt)
	want := map[ulid.ULID]bucket.IndexBlock{
		result.ULID: {ULID: result.ULID, MinTime: 0, MaxTime: 2 * hour, CompactionLevel: 2, Source: "compactor"},
	}
	var wantMarks []bucket.IndexDeletionMark
	for _, s := range idsOf(sources...) {
		want[s] = bucket.IndexBlock{ULID: s, MinTime: 0, MaxTime: 2 * hour, CompactionLevel: 1, Source: bucket.SourceIngester}
		wantMarks = append(wantMarks, bucket.IndexDeletionMark{ULID: s, DeletionTime: e.now.Unix()})
	}
	require.Len(t, idx.Blocks, 4)
	for _, b := range idx.Blocks {
		require.Equal(t, want[b.ULID], b)
	}
	require.Equal(t, wantMarks, idx.DeletionMarks)

	// After the deletion delay the index shows only the compacted block.
	e.now = e.now.Add(13 * time.Hour)
	require.NoError(t, e.c.RunOnce(e.ctx))
	idx, err = bucket.ReadIndex(e.ctx, e.bkt, "team-a")
	require.NoError(t, err)
	require.Equal(t, []bucket.IndexBlock{want[result.ULID]}, idx.Blocks)
	require.Empty(t, idx.DeletionMarks)
}

func TestCompactor_CorruptedBlockIsSkipped(t *testing.T) {
	e := newTestEnv(t, nil, nil)
	e.now = time.UnixMilli(3 * hour)
	data := genSeries(3, 0, 2*hour, step, nil)
	good1 := e.uploadBlock("bad", "ingester-1", data, 2*hour)
	good2 := e.uploadBlock("bad", "ingester-2", data, 2*hour)
	broken := e.uploadBlock("bad", "ingester-3", data, 2*hour)
	require.NoError(t, e.bkt.Upload(e.ctx, bucket.IndexName("bad", broken.ULID), strings.NewReader("garbage, not an index")))
	for _, ing := range []string{"ingester-1", "ingester-2"} {
		e.uploadBlock("good", ing, data, 2*hour)
	}

	err := e.c.RunOnce(e.ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), broken.ULID.String())
	require.Contains(t, err.Error(), "tenant bad")
	require.NotContains(t, err.Error(), "tenant good")
	require.Contains(t, e.logs.String(), broken.ULID.String())
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.runs.WithLabelValues("failure")))
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.tenantsProcessed.WithLabelValues("failure")))
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.tenantsProcessed.WithLabelValues("success")))

	// The other tenant is compacted.
	good := e.live("good")
	require.Len(t, good, 1)
	require.Equal(t, data, e.readBlock("good", good[0].ULID))

	// In the tenant with the broken block, the readable replicas are merged
	// and the broken one is left alone.
	s := e.state("bad")
	require.Contains(t, s.marks, good1.ULID)
	require.Contains(t, s.marks, good2.ULID)
	require.NotContains(t, s.marks, broken.ULID)
	live := e.live("bad")
	require.Len(t, live, 2)
	_, err = bucket.ReadIndex(e.ctx, e.bkt, "bad")
	require.NoError(t, err, "the bucket index is still written")
}

func TestCompactor_ServiceRunsAtStart(t *testing.T) {
	e := newTestEnv(t, nil, nil)
	e.uploadBlock("team-a", "ingester-1", genSeries(1, 0, hour, step, nil), 2*hour)
	e.uploadBlock("team-a", "ingester-2", genSeries(1, 0, hour, step, nil), 2*hour)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, services.StartAndAwaitRunning(ctx, e.c))
	for i := 0; i < 300 && testutil.ToFloat64(e.c.runs.WithLabelValues("success")) < 1; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, services.StopAndAwaitTerminated(ctx, e.c))
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.runs.WithLabelValues("success")))
	require.Len(t, e.live("team-a"), 1)
}

func TestNew_RequiresDataDir(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.DataDir = ""
	_, err := New(cfg, nil, nil, nil, nil, nil, nil)
	require.ErrorContains(t, err, "data directory")
	cfg = defaultConfig(t)
	cfg.BlockRanges = nil
	_, err = New(cfg, nil, nil, nil, nil, nil, nil)
	require.ErrorContains(t, err, "block ranges")
}

// recordingBucket records the order of deletions.
type recordingBucket struct {
	objstore.Bucket
	deleted []string
}

func (b *recordingBucket) Delete(ctx context.Context, name string) error {
	b.deleted = append(b.deleted, name)
	return b.Bucket.Delete(ctx, name)
}

// TestCompactor_DeletesPartialBlocksAfterDelay: a block directory without a
// readable meta.json is deleted once its ULID and every object in it are
// older than the partial block deletion delay; a recent write keeps it.
func TestCompactor_DeletesPartialBlocksAfterDelay(t *testing.T) {
	const delay = 24 * time.Hour
	e := newTestEnv(t, nil, func(c *Config) { c.PartialBlockDeletionDelay = delay })
	wall := time.Now()
	e.now = wall
	complete := e.uploadBlock("team-a", "ingester-1", genSeries(2, 0, hour, step, nil), 0)

	// partial writes a block directory made at made (its ULID) whose
	// objects, chunks and index and, with cutMeta, a meta.json cut short,
	// were last written at written.
	partial := func(made, written time.Time, cutMeta bool) ulid.ULID {
		id := ulid.MustNew(ulid.Timestamp(made), ulid.DefaultEntropy())
		objects := map[string]string{bucket.ChunksPrefix("team-a", id) + "000001": "partial", bucket.IndexName("team-a", id): "partial"}
		if cutMeta {
			objects[bucket.MetaName("team-a", id)] = `{"ulid":"01J`
		}
		for name, body := range objects {
			require.NoError(t, e.bkt.Upload(e.ctx, name, strings.NewReader(body)))
			require.NoError(t, os.Chtimes(filepath.Join(e.dir, filepath.FromSlash(name)), written, written))
		}
		return id
	}
	abandoned := partial(wall.Add(-48*time.Hour), wall.Add(-47*time.Hour), false)
	cutMeta := partial(wall.Add(-48*time.Hour), wall.Add(-47*time.Hour), true)
	stillWriting := partial(wall.Add(-48*time.Hour), wall.Add(-time.Hour), false)
	young := partial(wall.Add(-time.Hour), wall.Add(-47*time.Hour), false)

	require.NoError(t, e.c.RunOnce(e.ctx))
	blockObjects := func(id ulid.ULID) []string { return e.objects(bucket.BlockPrefix("team-a", id)) }
	require.Empty(t, blockObjects(abandoned), "no meta.json, nothing written for 47h")
	require.Empty(t, blockObjects(cutMeta), "meta.json cut short, nothing written for 47h")
	require.NotEmpty(t, blockObjects(stillWriting), "an object written 1h ago")
	require.NotEmpty(t, blockObjects(young), "made 1h ago")
	require.Equal(t, 2.0, testutil.ToFloat64(e.c.partialBlocksDeleted))
	require.Contains(t, e.logs.String(), "deleted partial block")
	live := e.live("team-a")
	require.Len(t, live, 1)
	require.Equal(t, complete.ULID, live[0].ULID, "the complete block is untouched")

	e.now = wall.Add(delay + time.Minute)
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Empty(t, blockObjects(stillWriting))
	require.Empty(t, blockObjects(young))
	require.Equal(t, 4.0, testutil.ToFloat64(e.c.partialBlocksDeleted))
	require.Len(t, e.live("team-a"), 1)
}

func TestCompactor_PartialBlocksKeptWhenDelayIsZero(t *testing.T) {
	e := newTestEnv(t, nil, func(c *Config) { c.PartialBlockDeletionDelay = 0 })
	e.now = time.Now()
	id := ulid.MustNew(ulid.Timestamp(e.now.Add(-100*24*time.Hour)), ulid.DefaultEntropy())
	require.NoError(t, e.bkt.Upload(e.ctx, bucket.IndexName("team-a", id), strings.NewReader("partial")))
	old := e.now.Add(-99 * 24 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(e.dir, filepath.FromSlash(bucket.IndexName("team-a", id))), old, old))
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.NotEmpty(t, e.objects(bucket.BlockPrefix("team-a", id)))
	require.Equal(t, 0.0, testutil.ToFloat64(e.c.partialBlocksDeleted))
}

// TestCompactor_KeepsIndexedBlockWithBadMeta: a block the bucket index
// lists was complete, so when its meta.json later goes bad or missing it
// is no partial upload: it stays in the index and in the bucket.
func TestCompactor_KeepsIndexedBlockWithBadMeta(t *testing.T) {
	const delay = 24 * time.Hour
	e := newTestEnv(t, nil, func(c *Config) {
		c.PartialBlockDeletionDelay = delay
		c.BlockRanges = DurationList{2 * time.Hour} // nothing to compact
	})
	wall := time.Now()
	e.now = wall
	garbled := e.uploadBlock("team-a", "ingester-1", genSeries(2, 0, hour, step, nil), 0)
	lost := e.uploadBlock("team-a", "ingester-1", genSeries(2, 4*hour, 5*hour, step, nil), 0)
	require.NoError(t, e.c.RunOnce(e.ctx))

	require.NoError(t, e.bkt.Upload(e.ctx, bucket.MetaName("team-a", garbled.ULID), strings.NewReader(`{"ulid":`)))
	require.NoError(t, e.bkt.Delete(e.ctx, bucket.MetaName("team-a", lost.ULID)))
	old := wall.Add(-47 * time.Hour)
	require.NoError(t, filepath.WalkDir(filepath.Join(e.dir, "team-a"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	}))

	e.now = wall.Add(2 * delay)
	for range 2 {
		require.NoError(t, e.c.RunOnce(e.ctx))
	}
	for _, id := range []ulid.ULID{garbled.ULID, lost.ULID} {
		require.NotEmpty(t, e.objects(bucket.BlockPrefix("team-a", id)), "block %s kept", id)
	}
	require.Equal(t, 0.0, testutil.ToFloat64(e.c.partialBlocksDeleted))
	idx, err := bucket.ReadIndex(e.ctx, e.bkt, "team-a")
	require.NoError(t, err)
	var listed []ulid.ULID
	for _, b := range idx.Blocks {
		listed = append(listed, b.ULID)
	}
	require.ElementsMatch(t, []ulid.ULID{garbled.ULID, lost.ULID}, listed, "both stay in the index")
	require.Equal(t, 2.0, testutil.ToFloat64(e.c.brokenBlocks))
	require.Contains(t, e.logs.String(), "unreadable meta.json; the tenant's queries of object storage fail")
	require.Contains(t, e.logs.String(), "lost its meta.json")
}
