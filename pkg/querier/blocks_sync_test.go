package querier

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// readRecorder records the name of every read of the bucket.
type readRecorder struct {
	objstore.Bucket
	mu    sync.Mutex
	names []string
}

func (r *readRecorder) record(name string) {
	r.mu.Lock()
	r.names = append(r.names, name)
	r.mu.Unlock()
}

// take returns the names read since the last take.
func (r *readRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.names
	r.names = nil
	return out
}

func (r *readRecorder) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	r.record(dir)
	return r.Bucket.Iter(ctx, dir, f, opts...)
}

func (r *readRecorder) IterWithAttributes(ctx context.Context, dir string, f func(objstore.IterObjectAttributes) error, opts ...objstore.IterOption) error {
	r.record(dir)
	return r.Bucket.IterWithAttributes(ctx, dir, f, opts...)
}

func (r *readRecorder) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	r.record(name)
	return r.Bucket.Get(ctx, name)
}

func (r *readRecorder) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	r.record(name)
	return r.Bucket.GetRange(ctx, name, off, length)
}

func (r *readRecorder) Exists(ctx context.Context, name string) (bool, error) {
	r.record(name)
	return r.Bucket.Exists(ctx, name)
}

func (r *readRecorder) Attributes(ctx context.Context, name string) (objstore.ObjectAttributes, error) {
	r.record(name)
	return r.Bucket.Attributes(ctx, name)
}

// TestBlocksStoreSyncsOnlyQueriedTenants: of a bucket of many tenants the
// querier reads the prefix of the tenant queried and nothing else; it lists
// it again after the sync interval without reading the metas it has; a
// tenant not queried for the idle timeout is forgotten, metas included.
func TestBlocksStoreSyncsOnlyQueriedTenants(t *testing.T) {
	ctx := context.Background()
	fs, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	const tenants = 50
	for i := range tenants {
		tenant := fmt.Sprintf("tenant-%02d", i)
		for j := range 2 {
			id := ulid.MustNew(uint64(i*2+j+1), nil)
			require.NoError(t, bucket.WriteMeta(ctx, fs, tenant, &bucket.BlockMeta{BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: int64(j) * 1000, MaxTime: int64(j+1) * 1000, Version: 1}}))
		}
	}
	rec := &readRecorder{Bucket: fs}
	reg := prometheus.NewPedanticRegistry()
	cfg := BucketBlocksConfig{SyncInterval: time.Minute, TenantIdleTimeout: 10 * time.Minute, IgnoreDeletionMarksDelay: time.Hour}
	require.NoError(t, cfg.Validate())
	bs := NewBlocksStore(cfg, rec, nil, nil, nil, log.NewNopLogger(), reg)
	now := time.Unix(1_000_000, 0)
	bs.now = func() time.Time { return now }
	require.Empty(t, rec.take(), "nothing read before a query")

	onlyUnder := func(prefix string, names []string) {
		t.Helper()
		require.NotEmpty(t, names)
		for _, n := range names {
			require.True(t, strings.HasPrefix(n, prefix), "read %q, outside %q", n, prefix)
		}
	}
	tb, err := bs.blocks(ctx, "tenant-07")
	require.NoError(t, err)
	require.Len(t, tb.Blocks, 2)
	first := rec.take()
	onlyUnder("tenant-07/", first)
	require.Len(t, first, 4, "bucket index, one listing, two meta.json")

	_, err = bs.blocks(ctx, "tenant-07")
	require.NoError(t, err)
	require.Empty(t, rec.take(), "within the sync interval: no read")

	now = now.Add(2 * time.Minute)
	_, err = bs.blocks(ctx, "tenant-07")
	require.NoError(t, err)
	require.Len(t, rec.take(), 2, "after the sync interval: bucket index and listing, metas known")
	_, err = bs.blocks(ctx, "tenant-08")
	require.NoError(t, err)
	onlyUnder("tenant-08/", rec.take())
	require.Equal(t, 2.0, testutil.ToFloat64(bs.tenantsHeld))

	// tenant-08 goes on being queried, tenant-07 not.
	for range 6 {
		now = now.Add(2 * time.Minute)
		_, err = bs.blocks(ctx, "tenant-08")
		require.NoError(t, err)
		onlyUnder("tenant-08/", rec.take())
	}
	require.Equal(t, 1.0, testutil.ToFloat64(bs.tenantsHeld), "tenant-07 idle for 12 minutes: forgotten")
	_, err = bs.blocks(ctx, "tenant-07")
	require.NoError(t, err)
	require.Len(t, rec.take(), 4, "forgotten: its metas are read again")
}

func TestBucketBlocksConfigValidate(t *testing.T) {
	ok := BucketBlocksConfig{SyncInterval: time.Minute, TenantIdleTimeout: time.Hour}
	require.NoError(t, (&Config{BucketBlocks: ok}).Validate())
	idle := ok
	idle.TenantIdleTimeout = 0
	require.ErrorContains(t, (&Config{BucketBlocks: idle}).Validate(), "tenant idle timeout must be positive")
	sync := ok
	sync.SyncInterval = 0
	require.ErrorContains(t, (&Config{BucketBlocks: sync}).Validate(), "sync interval must be positive")
}
