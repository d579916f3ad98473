package querier

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/meridianhq/meridian/pkg/compactor"
	"github.com/meridianhq/meridian/pkg/ingester"
)

const (
	hourMs      = int64(time.Hour / time.Millisecond)
	scrapeMs    = int64(30_000)
	testTenant  = "team-a"
	otherTenant = "team-b"
)

type sample struct {
	t int64
	v float64
}

// shippedTenant is what shipTenant put into the bucket.
type shippedTenant struct {
	blocks []tsdb.BlockMeta // oldest first
	// samples per series (labels string) that landed in the blocks.
	samples map[string][]sample
}

// shipTenant writes samples every 30s over [0, 6h) into a fresh TSDB with
// 2h blocks, whose values are ts+offset, compacts (cutting [0,2h) and
// [2h,4h)) and ships the blocks with the ingester's Shipper.
func shipTenant(t testing.TB, bkt objstore.Bucket, tenant string, offset float64) shippedTenant {
	t.Helper()
	dir := t.TempDir()
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = 2 * hourMs
	opts.MaxBlockDuration = opts.MinBlockDuration
	db, err := tsdb.Open(dir, promslog.NewNopLogger(), nil, opts, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()

	ctx := context.Background()
	app := db.AppenderV2(ctx)
	series := []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "api"),
		labels.FromStrings("__name__", "up", "job", "db"),
		labels.FromStrings("__name__", "requests_total", "job", "api", "tenant_marker", tenant),
	}
	for ts := int64(0); ts < 6*hourMs; ts += scrapeMs {
		for _, ls := range series {
			_, err := app.Append(0, ls, 0, ts, float64(ts)+offset, nil, nil, storage.AOptions{})
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	require.NoError(t, db.Compact(ctx))

	out := shippedTenant{samples: map[string][]sample{}}
	for _, b := range db.Blocks() {
		out.blocks = append(out.blocks, b.Meta())
	}
	require.Len(t, out.blocks, 2)
	for _, ls := range series {
		for ts := int64(0); ts < out.blocks[1].MaxTime; ts += scrapeMs {
			out.samples[ls.String()] = append(out.samples[ls.String()], sample{t: ts, v: float64(ts) + offset})
		}
	}

	s := ingester.NewShipper(objstore.NewPrefixedBucket(bkt, tenant), tenant, "ingester-1", dir, log.NewNopLogger(), ingester.NewShipperMetrics(prometheus.NewPedanticRegistry()))
	n, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	return out
}

// samplesIn keeps the samples with mint <= t <= maxt.
func (s shippedTenant) samplesIn(mint, maxt int64) map[string][]sample {
	out := map[string][]sample{}
	for series, samples := range s.samples {
		for _, smp := range samples {
			if smp.t >= mint && smp.t <= maxt {
				out[series] = append(out[series], smp)
			}
		}
	}
	return out
}

func queryAll(t testing.TB, q storage.Querier) map[string][]sample {
	t.Helper()
	out := map[string][]sample{}
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for set.Next() {
		s := set.At()
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			out[s.Labels().String()] = append(out[s.Labels().String()], sample{t: ts, v: v})
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	return out
}

func queryTenant(t testing.TB, b *BucketBlocks, tenant string, mint, maxt int64) map[string][]sample {
	t.Helper()
	q, err := b.Querier(tenant, mint, maxt)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	return queryAll(t, q)
}

func newTestBucket(t testing.TB) (objstore.Bucket, string) {
	t.Helper()
	dir := t.TempDir()
	bkt, err := filesystem.NewBucket(dir)
	require.NoError(t, err)
	return bkt, dir
}

func newTestBucketBlocks(t testing.TB, bkt objstore.Bucket, cacheDir string, reg prometheus.Registerer) *BucketBlocks {
	t.Helper()
	b := NewBucketBlocks(BucketBlocksConfig{SyncInterval: time.Hour, CacheDir: cacheDir}, bkt, log.NewNopLogger(), promslog.NewNopLogger(), reg)
	t.Cleanup(func() {
		if b.State() == services.New {
			require.NoError(t, b.stopping(nil))
			return
		}
		require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b))
	})
	return b
}

func TestBucketBlocksConfigFlags(t *testing.T) {
	var cfg BucketBlocksConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.Equal(t, time.Minute, cfg.SyncInterval)
	require.Empty(t, cfg.CacheDir)
	require.NoError(t, cfg.Validate())

	require.NoError(t, fs.Parse([]string{"-querier.bucket-sync-interval=5s", "-querier.blocks-cache-dir=/x"}))
	require.Equal(t, 5*time.Second, cfg.SyncInterval)
	require.Equal(t, "/x", cfg.CacheDir)

	cfg.SyncInterval = 0
	require.ErrorContains(t, cfg.Validate(), "must be positive")
}

func TestBucketBlocksQuery(t *testing.T) {
	bkt, _ := newTestBucket(t)
	a := shipTenant(t, bkt, testTenant, 0)
	b := shipTenant(t, bkt, otherTenant, 1e9)

	reg := prometheus.NewPedanticRegistry()
	bb := newTestBucketBlocks(t, bkt, t.TempDir(), reg)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), bb))
	require.Equal(t, 4.0, testutil.ToFloat64(bb.blocksLoaded))

	tests := map[string]struct {
		tenant     string
		mint, maxt int64
		want       map[string][]sample
	}{
		"whole range":                            {tenant: testTenant, mint: 0, maxt: 6 * hourMs, want: a.samples},
		"other tenant sees only its own samples": {tenant: otherTenant, mint: 0, maxt: 6 * hourMs, want: b.samples},
		"inside one block":                       {tenant: testTenant, mint: hourMs, maxt: hourMs + 10*scrapeMs, want: a.samplesIn(hourMs, hourMs+10*scrapeMs)},
		"across the block boundary":              {tenant: testTenant, mint: hourMs, maxt: 3 * hourMs, want: a.samplesIn(hourMs, 3*hourMs)},
		"block max time is exclusive":            {tenant: testTenant, mint: 2 * hourMs, maxt: 2 * hourMs, want: a.samplesIn(2*hourMs, 2*hourMs)},
		"after the blocks":                       {tenant: testTenant, mint: 4 * hourMs, maxt: 6 * hourMs, want: map[string][]sample{}},
		"unknown tenant":                         {tenant: "nobody", mint: 0, maxt: 6 * hourMs, want: map[string][]sample{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := queryTenant(t, bb, tc.tenant, tc.mint, tc.maxt)
			require.Equal(t, len(tc.want), len(got))
			for series, samples := range tc.want {
				require.Len(t, got[series], len(samples), series)
				require.Equal(t, samples, got[series], series)
			}
		})
	}

	// Each tenant's marker series exists only in its own view.
	require.Contains(t, a.samples, `{__name__="requests_total", job="api", tenant_marker="team-a"}`)
	require.NotContains(t, queryTenant(t, bb, otherTenant, 0, 6*hourMs), `{__name__="requests_total", job="api", tenant_marker="team-a"}`)
}

// deleteObjects removes every object of the bucket under prefix for which
// match is true.
func deleteObjects(t testing.TB, bkt objstore.Bucket, prefix string, match func(name string) bool) {
	t.Helper()
	ctx := context.Background()
	var names []string
	require.NoError(t, bkt.Iter(ctx, prefix, func(name string) error {
		if match(name) {
			names = append(names, name)
		}
		return nil
	}, objstore.WithRecursiveIter()))
	require.NotEmpty(t, names)
	for _, name := range names {
		require.NoError(t, bkt.Delete(ctx, name))
	}
}

func TestBucketBlocksDeletedBlockDisappears(t *testing.T) {
	tests := map[string]func(name string) bool{
		"whole block deleted": func(string) bool { return true },
		// Without meta.json a block is incomplete (being uploaded or deleted).
		"meta.json deleted": func(name string) bool { return strings.HasSuffix(name, "/meta.json") },
	}
	for name, match := range tests {
		t.Run(name, func(t *testing.T) {
			bkt, _ := newTestBucket(t)
			a := shipTenant(t, bkt, testTenant, 0)
			cacheDir := t.TempDir()
			reg := prometheus.NewPedanticRegistry()
			bb := newTestBucketBlocks(t, bkt, cacheDir, reg)
			ctx := context.Background()
			require.NoError(t, bb.SyncNow(ctx))
			require.Equal(t, 2.0, testutil.ToFloat64(bb.blocksLoaded))

			// A query in flight keeps reading the block while it is dropped.
			inflight, err := bb.Querier(testTenant, 0, 6*hourMs)
			require.NoError(t, err)

			gone := a.blocks[0].ULID
			deleteObjects(t, bkt, testTenant+"/"+gone.String()+"/", match)

			synced := make(chan error, 1)
			go func() { synced <- bb.SyncNow(ctx) }()
			require.Eventually(t, func() bool { return !bb.isLoaded(testTenant, gone) }, 10*time.Second, 10*time.Millisecond)

			// New queries no longer see the block; the in-flight one still does.
			require.Equal(t, a.samplesIn(a.blocks[1].MinTime, 6*hourMs), queryTenant(t, bb, testTenant, 0, 6*hourMs))
			require.Equal(t, a.samples, queryAll(t, inflight))
			require.NoError(t, inflight.Close())

			select {
			case err := <-synced:
				require.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Fatal("sync did not finish after the in-flight querier closed")
			}
			require.Equal(t, 1.0, testutil.ToFloat64(bb.blocksLoaded))
			require.Equal(t, 1.0, testutil.ToFloat64(bb.blocksDropped))
			_, err = os.Stat(filepath.Join(cacheDir, testTenant, gone.String()))
			require.ErrorIs(t, err, os.ErrNotExist)
		})
	}
}

func TestBucketBlocksCorruptedBlockSkipped(t *testing.T) {
	tests := map[string]func(index []byte) []byte{
		"garbage index":   func([]byte) []byte { return []byte(strings.Repeat("garbage!", 512)) },
		"truncated index": func(index []byte) []byte { return index[:len(index)/2] },
	}
	for name, corrupt := range tests {
		t.Run(name, func(t *testing.T) {
			bkt, bktDir := newTestBucket(t)
			a := shipTenant(t, bkt, testTenant, 0)
			bad, good := a.blocks[0], a.blocks[1]
			indexPath := filepath.Join(bktDir, testTenant, bad.ULID.String(), "index")
			index, err := os.ReadFile(indexPath)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(indexPath, corrupt(index), 0o644))

			cacheDir := t.TempDir()
			bb := newTestBucketBlocks(t, bkt, cacheDir, prometheus.NewPedanticRegistry())
			ctx := context.Background()
			require.NoError(t, bb.SyncNow(ctx), "a bad block is not a sync failure")
			require.Equal(t, 1.0, testutil.ToFloat64(bb.blocksLoaded))
			require.Equal(t, 1.0, testutil.ToFloat64(bb.loadFailures))
			require.Zero(t, testutil.ToFloat64(bb.syncFailures))
			require.False(t, bb.isLoaded(testTenant, bad.ULID))
			_, err = os.Stat(filepath.Join(cacheDir, testTenant, bad.ULID.String()))
			require.ErrorIs(t, err, os.ErrNotExist)

			// Queries over both blocks answer from the good one.
			require.Equal(t, a.samplesIn(good.MinTime, good.MaxTime-1), queryTenant(t, bb, testTenant, 0, 6*hourMs))

			// The block is retried on every sync and loads once repaired.
			require.NoError(t, bb.SyncNow(ctx))
			require.Equal(t, 2.0, testutil.ToFloat64(bb.loadFailures))
			require.NoError(t, os.WriteFile(indexPath, index, 0o644))
			require.NoError(t, bb.SyncNow(ctx))
			require.Equal(t, 2.0, testutil.ToFloat64(bb.blocksLoaded))
			require.Equal(t, a.samples, queryTenant(t, bb, testTenant, 0, 6*hourMs))
		})
	}
}

// countingBucket counts object reads other than of bucket indexes, which
// every sync reads.
type countingBucket struct {
	objstore.Bucket
	gets atomic.Int64
}

func (b *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if !strings.HasSuffix(name, "/bucket-index.json.gz") {
		b.gets.Add(1)
	}
	return b.Bucket.Get(ctx, name)
}

func TestBucketBlocksReusesCacheAfterRestart(t *testing.T) {
	bkt, _ := newTestBucket(t)
	a := shipTenant(t, bkt, testTenant, 0)
	cacheDir := t.TempDir()
	ctx := context.Background()

	first := &countingBucket{Bucket: bkt}
	bb := NewBucketBlocks(BucketBlocksConfig{SyncInterval: time.Hour, CacheDir: cacheDir}, first, log.NewNopLogger(), promslog.NewNopLogger(), prometheus.NewPedanticRegistry())
	require.NoError(t, services.StartAndAwaitRunning(ctx, bb))
	require.Positive(t, first.gets.Load())
	require.NoError(t, services.StopAndAwaitTerminated(ctx, bb))

	// Leftovers the restarted querier must clean: an interrupted download,
	// a block and a tenant that left the bucket while it was down.
	stale := []string{
		filepath.Join(cacheDir, testTenant, a.blocks[0].ULID.String()+downloadDirSuffix),
		filepath.Join(cacheDir, testTenant, ulid.MustNew(ulid.Now(), nil).String()),
		filepath.Join(cacheDir, "gone-tenant"),
	}
	for _, dir := range stale {
		require.NoError(t, os.MkdirAll(dir, 0o750))
	}

	second := &countingBucket{Bucket: bkt}
	restarted := newTestBucketBlocks(t, second, cacheDir, prometheus.NewPedanticRegistry())
	require.NoError(t, services.StartAndAwaitRunning(ctx, restarted))
	require.Zero(t, second.gets.Load(), "cached blocks are not downloaded again")
	require.Equal(t, 2.0, testutil.ToFloat64(restarted.blocksLoaded))
	require.Equal(t, a.samples, queryTenant(t, restarted, testTenant, 0, 6*hourMs))
	for _, dir := range stale {
		_, err := os.Stat(dir)
		require.ErrorIs(t, err, os.ErrNotExist, dir)
	}
}

func TestBucketBlocksStartingNeedsCacheDir(t *testing.T) {
	bkt, _ := newTestBucket(t)
	bb := NewBucketBlocks(BucketBlocksConfig{SyncInterval: time.Hour}, bkt, log.NewNopLogger(), promslog.NewNopLogger(), prometheus.NewPedanticRegistry())
	err := services.StartAndAwaitRunning(context.Background(), bb)
	require.ErrorContains(t, err, "cache directory is not set")
}

// writeIndex uploads a bucket index listing the shipped blocks and marks
// (block -> deletion time).
func writeIndex(t testing.TB, bkt objstore.Bucket, tenant string, blocks []tsdb.BlockMeta, marks map[ulid.ULID]time.Time) {
	t.Helper()
	idx := compactor.BucketIndex{Version: 1, Blocks: []compactor.IndexBlock{}, DeletionMarks: []compactor.IndexDeletionMark{}, UpdatedAt: time.Now().Unix()}
	for _, b := range blocks {
		idx.Blocks = append(idx.Blocks, compactor.IndexBlock{ULID: b.ULID, MinTime: b.MinTime, MaxTime: b.MaxTime, CompactionLevel: 1, Source: "ingester"})
	}
	for id, at := range marks {
		idx.DeletionMarks = append(idx.DeletionMarks, compactor.IndexDeletionMark{ULID: id, DeletionTime: at.Unix()})
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	require.NoError(t, json.NewEncoder(gz).Encode(idx))
	require.NoError(t, gz.Close())
	require.NoError(t, bkt.Upload(context.Background(), tenant+"/bucket-index.json.gz", &buf))
	got, err := compactor.ReadBucketIndex(context.Background(), bkt, tenant)
	require.NoError(t, err, "the test writes an index the compactor's reader accepts")
	require.Len(t, got.Blocks, len(blocks))
}

func newBucketBlocksWithDelay(t testing.TB, bkt objstore.Bucket, delay time.Duration, now func() time.Time) *BucketBlocks {
	t.Helper()
	b := NewBucketBlocks(BucketBlocksConfig{SyncInterval: time.Hour, CacheDir: t.TempDir(), IgnoreDeletionMarksDelay: delay}, bkt, log.NewNopLogger(), promslog.NewNopLogger(), prometheus.NewPedanticRegistry())
	b.now = now
	t.Cleanup(func() {
		if b.State() == services.New {
			require.NoError(t, b.stopping(nil))
			return
		}
		require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b))
	})
	return b
}

func TestBucketBlocksIgnoreDeletionMarksDelayFlag(t *testing.T) {
	var cfg BucketBlocksConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.Equal(t, time.Hour, cfg.IgnoreDeletionMarksDelay)
	require.NoError(t, fs.Parse([]string{"-querier.ignore-deletion-marks-delay=0s"}))
	require.Zero(t, cfg.IgnoreDeletionMarksDelay)
	cfg.SyncInterval = time.Second
	require.NoError(t, cfg.Validate())
	cfg.IgnoreDeletionMarksDelay = -time.Second
	require.ErrorContains(t, cfg.Validate(), "must not be negative")
}

func TestBucketBlocksSkipsBlocksMarkedLongAgo(t *testing.T) {
	bkt, _ := newTestBucket(t)
	a := shipTenant(t, bkt, testTenant, 0)
	marked, kept := a.blocks[0], a.blocks[1]
	ctx := context.Background()
	now := time.Now()
	clock := now
	bb := newBucketBlocksWithDelay(t, bkt, time.Hour, func() time.Time { return clock })

	// Marked just now: still queried, the replacement may not be synced.
	writeIndex(t, bkt, testTenant, a.blocks, map[ulid.ULID]time.Time{marked.ULID: now})
	require.NoError(t, bb.SyncNow(ctx))
	require.True(t, bb.isLoaded(testTenant, marked.ULID))
	require.Equal(t, a.samples, queryTenant(t, bb, testTenant, 0, 6*hourMs))

	// Past the delay: dropped although its objects are still in the bucket.
	clock = now.Add(time.Hour + time.Second)
	require.NoError(t, bb.SyncNow(ctx))
	require.False(t, bb.isLoaded(testTenant, marked.ULID))
	require.True(t, bb.isLoaded(testTenant, kept.ULID))
	require.Equal(t, 1.0, testutil.ToFloat64(bb.blocksLoaded))
	require.Equal(t, a.samplesIn(kept.MinTime, kept.MaxTime-1), queryTenant(t, bb, testTenant, 0, 6*hourMs))

	// A fresh querier never loads it.
	fresh := newBucketBlocksWithDelay(t, bkt, time.Hour, func() time.Time { return clock })
	require.NoError(t, fresh.SyncNow(ctx))
	require.False(t, fresh.isLoaded(testTenant, marked.ULID))
	require.Equal(t, 1.0, testutil.ToFloat64(fresh.blocksLoaded))
	require.Zero(t, testutil.ToFloat64(fresh.loadFailures))

	// Without a bucket index nothing is skipped.
	require.NoError(t, bkt.Delete(ctx, testTenant+"/bucket-index.json.gz"))
	require.NoError(t, fresh.SyncNow(ctx))
	require.True(t, fresh.isLoaded(testTenant, marked.ULID))
	require.Equal(t, a.samples, queryTenant(t, fresh, testTenant, 0, 6*hourMs))
}

func TestBucketBlocksQuerierFailsOnUnreadableIndexedBlock(t *testing.T) {
	bkt, bktDir := newTestBucket(t)
	a := shipTenant(t, bkt, testTenant, 0)
	b := shipTenant(t, bkt, otherTenant, 1e9)
	bad, good := a.blocks[0], a.blocks[1]
	indexPath := filepath.Join(bktDir, testTenant, bad.ULID.String(), "index")
	index, err := os.ReadFile(indexPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(indexPath, bytes.Repeat([]byte("garbage!"), 512), 0o644))
	ctx := context.Background()
	bb := newBucketBlocksWithDelay(t, bkt, time.Hour, time.Now)

	// Without a bucket index there is nothing to check against: the
	// unreadable block is skipped as before.
	require.NoError(t, bb.SyncNow(ctx))
	require.Equal(t, a.samplesIn(good.MinTime, good.MaxTime-1), queryTenant(t, bb, testTenant, 0, 6*hourMs))

	writeIndex(t, bkt, testTenant, a.blocks, nil)
	writeIndex(t, bkt, otherTenant, b.blocks, nil)
	require.NoError(t, bb.SyncNow(ctx), "a bad block is not a sync failure")

	for _, r := range [][2]int64{{0, 6 * hourMs}, {bad.MinTime, bad.MinTime}, {bad.MaxTime - 1, bad.MaxTime + hourMs}} {
		q, err := bb.Querier(testTenant, r[0], r[1])
		require.Error(t, err, "range %v overlaps the unreadable block", r)
		require.Nil(t, q)
		require.ErrorContains(t, err, bad.ULID.String())
		require.ErrorContains(t, err, "consistency check")
	}
	// Ranges without the bad block, and other tenants, still answer.
	require.Equal(t, a.samplesIn(good.MinTime, 6*hourMs), queryTenant(t, bb, testTenant, bad.MaxTime, 6*hourMs))
	require.Equal(t, b.samples, queryTenant(t, bb, otherTenant, 0, 6*hourMs))

	// Marked for deletion (recently, so not yet ignored): a block on its
	// way out is not required.
	writeIndex(t, bkt, testTenant, a.blocks, map[ulid.ULID]time.Time{bad.ULID: time.Now()})
	require.NoError(t, bb.SyncNow(ctx))
	require.Equal(t, a.samplesIn(good.MinTime, good.MaxTime-1), queryTenant(t, bb, testTenant, 0, 6*hourMs))

	// Repaired: the check passes again and the full answer is back.
	writeIndex(t, bkt, testTenant, a.blocks, nil)
	require.NoError(t, os.WriteFile(indexPath, index, 0o644))
	require.NoError(t, bb.SyncNow(ctx))
	require.Equal(t, a.samples, queryTenant(t, bb, testTenant, 0, 6*hourMs))
}
