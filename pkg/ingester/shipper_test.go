package ingester

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
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
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

const shipperTestTenant = "team-a"

// openTSDBWithBlocks opens a TSDB with 2h blocks in dir, appends one sample
// per series every 30s over [0, 6h) and compacts, which cuts the blocks
// [0,2h) and [2h,4h) out of the head.
func openTSDBWithBlocks(t testing.TB, dir string) *tsdb.DB {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = int64(2 * time.Hour / time.Millisecond)
	opts.MaxBlockDuration = opts.MinBlockDuration
	db, err := tsdb.Open(dir, promslog.NewNopLogger(), nil, opts, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })

	ctx := context.Background()
	app := db.AppenderV2(ctx)
	for ts := int64(0); ts < int64(6*time.Hour/time.Millisecond); ts += 30_000 {
		for _, job := range []string{"api", "db"} {
			_, err := app.Append(0, labels.FromStrings("__name__", "up", "job", job), 0, ts, float64(ts), nil, nil, storage.AOptions{})
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	require.NoError(t, db.Compact(ctx))
	require.Len(t, db.Blocks(), 2)
	return db
}

func newFilesystemBucket(t testing.TB) (objstore.Bucket, string) {
	t.Helper()
	dir := t.TempDir()
	bkt, err := filesystem.NewBucket(dir)
	require.NoError(t, err)
	return bkt, dir
}

func blockIDs(db *tsdb.DB) []ulid.ULID {
	var ids []ulid.ULID
	for _, b := range db.Blocks() {
		ids = append(ids, b.Meta().ULID)
	}
	return ids
}

func TestShipperSync(t *testing.T) {
	tsdbDir := t.TempDir()
	db := openTSDBWithBlocks(t, tsdbDir)
	bkt, bktDir := newFilesystemBucket(t)
	reg := prometheus.NewPedanticRegistry()
	m := NewShipperMetrics(reg)
	ctx := context.Background()

	s := NewShipper(bkt, shipperTestTenant, "ingester-1", tsdbDir, log.NewNopLogger(), m)
	for _, id := range blockIDs(db) {
		require.False(t, s.IsShipped(id))
	}

	n, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	for _, b := range db.Blocks() {
		local := b.Meta()
		id := local.ULID
		require.True(t, s.IsShipped(id))
		for _, name := range blockObjects(id) {
			_, err := os.Stat(filepath.Join(bktDir, filepath.FromSlash(name)))
			require.NoError(t, err, "object %s of block %s", name, id)
		}
		index, err := os.ReadFile(bucket.LocalIndexPath(filepath.Join(tsdbDir, id.String())))
		require.NoError(t, err)
		shippedIndex, err := os.ReadFile(filepath.Join(bktDir, filepath.FromSlash(bucket.IndexName(shipperTestTenant, id))))
		require.NoError(t, err)
		require.Equal(t, index, shippedIndex)

		body, err := os.ReadFile(filepath.Join(bktDir, filepath.FromSlash(bucket.MetaName(shipperTestTenant, id))))
		require.NoError(t, err)
		var meta bucket.BlockMeta
		require.NoError(t, json.Unmarshal(body, &meta))
		require.Equal(t, local, meta.BlockMeta)
		require.Equal(t, 1, meta.Compaction.Level)
		require.Equal(t, bucket.MeridianMeta{Tenant: shipperTestTenant, Ingester: "ingester-1", Source: "ingester"}, meta.Meridian)

		// Prometheus' own fields stay at the top level of the JSON.
		var raw map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(body, &raw))
		for _, key := range []string{"ulid", "minTime", "maxTime", "stats", "compaction", "version", "meridian"} {
			require.Contains(t, raw, key)
		}
	}

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP meridian_ingester_shipper_upload_failures_total Block uploads to object storage that did not complete; they are retried on the next sync.
# TYPE meridian_ingester_shipper_upload_failures_total counter
meridian_ingester_shipper_upload_failures_total 0
# HELP meridian_ingester_shipper_uploads_total Blocks uploaded to object storage by the shipper.
# TYPE meridian_ingester_shipper_uploads_total counter
meridian_ingester_shipper_uploads_total 2
`), "meridian_ingester_shipper_uploads_total", "meridian_ingester_shipper_upload_failures_total"))
	require.Positive(t, testutil.ToFloat64(m.lastSuccessfulTime))

	// Nothing new: a second sync uploads nothing.
	n, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	// A restarted shipper reads what was shipped from disk.
	restarted := NewShipper(bkt, shipperTestTenant, "ingester-1", tsdbDir, log.NewNopLogger(), m)
	for _, id := range blockIDs(db) {
		require.True(t, restarted.IsShipped(id))
	}
	n, err = restarted.Sync(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 2.0, testutil.ToFloat64(m.uploads))
}

func TestShipperLostShippedFile(t *testing.T) {
	tsdbDir := t.TempDir()
	db := openTSDBWithBlocks(t, tsdbDir)
	bkt, _ := newFilesystemBucket(t)
	m := NewShipperMetrics(prometheus.NewPedanticRegistry())
	ctx := context.Background()

	n, err := NewShipper(bkt, shipperTestTenant, "ingester-1", tsdbDir, log.NewNopLogger(), m).Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	tests := map[string]func(t *testing.T){
		"removed": func(t *testing.T) {
			require.NoError(t, os.Remove(filepath.Join(tsdbDir, ShippedFilename)))
		},
		"garbled": func(t *testing.T) {
			require.NoError(t, os.WriteFile(filepath.Join(tsdbDir, ShippedFilename), []byte("{not json"), 0o644))
		},
	}
	for name, damage := range tests {
		t.Run(name, func(t *testing.T) {
			damage(t)
			s := NewShipper(bkt, shipperTestTenant, "ingester-1", tsdbDir, log.NewNopLogger(), m)
			n, err := s.Sync(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "blocks whose meta.json is in the bucket are not uploaded again")
			for _, id := range blockIDs(db) {
				require.True(t, s.IsShipped(id))
			}
			_, err = readShippedFile(filepath.Join(tsdbDir, ShippedFilename))
			require.NoError(t, err)
		})
	}
	require.Equal(t, 2.0, testutil.ToFloat64(m.uploads))
}

// blockObjects are the names of the block's chunk segment, index and
// meta.json in the bucket.
func blockObjects(id ulid.ULID) []string {
	return []string{bucket.ChunksPrefix(shipperTestTenant, id) + "000001", bucket.IndexName(shipperTestTenant, id), bucket.MetaName(shipperTestTenant, id)}
}

// failingBucket fails uploads of objects whose name ends with failSuffix.
type failingBucket struct {
	objstore.Bucket
	failSuffix string
}

var errInjected = errors.New("injected upload error")

func (b *failingBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	if b.failSuffix != "" && strings.HasSuffix(name, b.failSuffix) {
		return errInjected
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func TestShipperPartialUploadIsRetried(t *testing.T) {
	// Objects of blockObjects, in upload order.
	const chunks, index, meta = 0, 1, 2
	tests := map[string]struct {
		failSuffix string
		present    []int // objects left by the failed upload
		absent     []int
	}{
		"fails after index": {
			failSuffix: "/meta.json",
			present:    []int{index, chunks},
			absent:     []int{meta},
		},
		"fails on index": {
			failSuffix: "/index",
			present:    []int{chunks},
			absent:     []int{index, meta},
		},
		"fails on chunks": {
			failSuffix: "/000001",
			absent:     []int{chunks, index, meta},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tsdbDir := t.TempDir()
			db := openTSDBWithBlocks(t, tsdbDir)
			bkt, bktDir := newFilesystemBucket(t)
			failing := &failingBucket{Bucket: bkt, failSuffix: tc.failSuffix}
			m := NewShipperMetrics(prometheus.NewPedanticRegistry())
			ctx := context.Background()
			s := NewShipper(failing, shipperTestTenant, "ingester-1", tsdbDir, log.NewNopLogger(), m)

			n, err := s.Sync(ctx)
			require.ErrorIs(t, err, errInjected)
			require.Zero(t, n)
			require.Equal(t, 2.0, testutil.ToFloat64(m.uploadFailures))

			exists := func(name string) bool {
				_, err := os.Stat(filepath.Join(bktDir, filepath.FromSlash(name)))
				return err == nil
			}
			for _, id := range blockIDs(db) {
				require.False(t, s.IsShipped(id))
				for _, i := range tc.present {
					require.True(t, exists(blockObjects(id)[i]), blockObjects(id)[i])
				}
				for _, i := range tc.absent {
					require.False(t, exists(blockObjects(id)[i]), blockObjects(id)[i])
				}
			}
			_, err = os.Stat(filepath.Join(tsdbDir, ShippedFilename))
			require.ErrorIs(t, err, os.ErrNotExist)

			// The bucket recovers: the next sync completes both blocks.
			failing.failSuffix = ""
			n, err = s.Sync(ctx)
			require.NoError(t, err)
			require.Equal(t, 2, n)
			for _, id := range blockIDs(db) {
				require.True(t, s.IsShipped(id))
				for _, name := range blockObjects(id) {
					require.True(t, exists(name), name)
				}
			}
		})
	}
}

func TestShipperSkipsIncompleteBlocks(t *testing.T) {
	tsdbDir := t.TempDir()
	db := openTSDBWithBlocks(t, tsdbDir)
	bkt, bktDir := newFilesystemBucket(t)

	// A block still being written by the compactor, and one without meta.json.
	creating := ulid.MustNew(ulid.Now(), nil).String()
	noMeta := ulid.MustNew(ulid.Now()+1, nil).String()
	for _, dir := range []string{creating + ".tmp-for-creation", noMeta} {
		require.NoError(t, os.MkdirAll(bucket.LocalChunksDir(filepath.Join(tsdbDir, dir)), 0o755))
		require.NoError(t, os.WriteFile(bucket.LocalIndexPath(filepath.Join(tsdbDir, dir)), []byte("partial"), 0o644))
	}
	require.NoError(t, os.WriteFile(bucket.LocalMetaPath(filepath.Join(tsdbDir, creating+".tmp-for-creation")), []byte("{}"), 0o644))

	s := NewShipper(bkt, shipperTestTenant, "ingester-1", tsdbDir, log.NewNopLogger(), NewShipperMetrics(prometheus.NewPedanticRegistry()))
	n, err := s.Sync(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, n)

	entries, err := os.ReadDir(filepath.Join(bktDir, shipperTestTenant))
	require.NoError(t, err)
	var shipped []string
	for _, e := range entries {
		shipped = append(shipped, e.Name())
	}
	var want []string
	for _, id := range blockIDs(db) {
		want = append(want, id.String())
	}
	require.ElementsMatch(t, want, shipped)
	require.NotContains(t, shipped, noMeta)
	require.NotContains(t, shipped, path.Base(creating))
}

// TestShipperDoesNotReadShippedBlocks: a block stays on the ingester's disk
// for the retention period after it is shipped; a sync does not read its
// meta.json again (it would read every tenant's every block each interval).
// A meta.json replaced by something unreadable proves it is not read.
func TestShipperDoesNotReadShippedBlocks(t *testing.T) {
	tsdbDir := t.TempDir()
	db := openTSDBWithBlocks(t, tsdbDir)
	bkt, _ := newFilesystemBucket(t)
	s := NewShipper(bkt, shipperTestTenant, "ingester-1", tsdbDir, log.NewNopLogger(), NewShipperMetrics(prometheus.NewPedanticRegistry()))
	ctx := context.Background()

	n, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	for _, id := range blockIDs(db) {
		meta := filepath.Join(tsdbDir, id.String(), "meta.json")
		require.NoError(t, os.Remove(meta))
		require.NoError(t, os.Mkdir(meta, 0o755)) // reading it fails with EISDIR
	}
	n, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	unshipped, err := s.Unshipped()
	require.NoError(t, err)
	require.Zero(t, unshipped)
	for _, id := range blockIDs(db) {
		require.True(t, s.IsShipped(id), "a shipped block still on disk stays recorded as shipped")
	}
}
