package ingester

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
)

// ringTestConfig is testConfig with a ring of the test's own.
func ringTestConfig(t *testing.T) (Config, kv.Client) {
	t.Helper()
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	cfg := testConfig(t, t.TempDir())
	cfg.Lifecycler.RingConfig.KVStore = kv.Config{Mock: store}
	cfg.Lifecycler.HeartbeatPeriod = 50 * time.Millisecond
	return cfg, store
}

func ringEntry(t *testing.T, store kv.Client, id string) (ring.InstanceDesc, bool) {
	t.Helper()
	v, err := store.Get(context.Background(), RingKey)
	require.NoError(t, err)
	if v == nil {
		return ring.InstanceDesc{}, false
	}
	inst, ok := v.(*ring.Desc).Ingesters[id]
	return inst, ok
}

// observingBucket records this ingester's ring entry at each upload.
type observingBucket struct {
	objstore.Bucket
	observe func()
}

func (b *observingBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.observe()
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func pushOne(t *testing.T, ing *Ingester) {
	t.Helper()
	ctx := user.InjectOrgID(context.Background(), "team-a")
	_, err := ing.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("m", prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1})}})
	require.NoError(t, err)
}

// TestStopFlushesWhileLeaving: a graceful stop with flush on shutdown turns
// the ingester LEAVING, ships its head while it is still in the ring, and
// only then removes its entry.
func TestStopFlushesWhileLeaving(t *testing.T) {
	cfg, store := ringTestConfig(t)
	cfg.FlushOnShutdown = true
	id := cfg.Lifecycler.InstanceID
	fs, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	var mtx sync.Mutex
	var seen []ring.InstanceState
	bkt := &observingBucket{Bucket: fs, observe: func() {
		inst, ok := ringEntry(t, store, id)
		mtx.Lock()
		defer mtx.Unlock()
		if !ok {
			seen = append(seen, ring.LEFT) // stands for "not in the ring"
			return
		}
		seen = append(seen, inst.State)
	}}
	ing := startIngester(t, cfg, defaultLimits(t), bkt)
	inst, ok := ringEntry(t, store, id)
	require.True(t, ok)
	require.Equal(t, ring.ACTIVE, inst.State)
	require.Len(t, inst.Tokens, 128)
	require.NotZero(t, inst.RegisteredTimestamp, "the registration time is set, for shuffle sharding's lookback")
	require.Equal(t, "127.0.0.1:19095", inst.Addr)
	require.NoError(t, ing.CheckReady())

	pushOne(t, ing)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))

	mtx.Lock()
	defer mtx.Unlock()
	require.NotEmpty(t, seen, "the head was shipped on shutdown")
	for _, st := range seen {
		require.Equal(t, ring.LEAVING, st, "every upload happens while the ingester is LEAVING, still in the ring")
	}
	_, ok = ringEntry(t, store, id)
	require.False(t, ok, "the ingester left the ring after the flush")
}

// TestRestartKeepsTokens: with flush on shutdown and unregister on shutdown
// off, a stopped ingester keeps its entry (LEAVING, with its tokens) and
// ships nothing; restarted, it is ACTIVE again with the same tokens, at
// once. With its entry gone, the tokens file gives the same tokens back.
func TestRestartKeepsTokens(t *testing.T) {
	cfg, store := ringTestConfig(t)
	cfg.FlushOnShutdown = false
	cfg.Lifecycler.UnregisterOnShutdown = false
	cfg.Lifecycler.TokensFilePath = filepath.Join(t.TempDir(), "tokens")
	id := cfg.Lifecycler.InstanceID
	fs, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)

	ing := startIngester(t, cfg, defaultLimits(t), fs)
	first, _ := ringEntry(t, store, id)
	pushOne(t, ing)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
	kept, ok := ringEntry(t, store, id)
	require.True(t, ok, "unregister on shutdown off keeps the entry")
	require.Equal(t, ring.LEAVING, kept.State)
	require.Equal(t, first.Tokens, kept.Tokens)
	shipped := 0
	require.NoError(t, fs.Iter(context.Background(), "", func(string) error { shipped++; return nil }))
	require.Zero(t, shipped, "flush on shutdown off ships nothing")

	ing = startIngester(t, cfg, defaultLimits(t), fs)
	back, _ := ringEntry(t, store, id)
	require.Equal(t, ring.ACTIVE, back.State)
	require.Equal(t, first.Tokens, back.Tokens)
	require.Equal(t, first.RegisteredTimestamp, back.RegisteredTimestamp)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))

	require.NoError(t, store.CAS(context.Background(), RingKey, func(in any) (any, bool, error) {
		desc := in.(*ring.Desc)
		desc.RemoveIngester(id)
		return desc, true, nil
	}))
	ing = startIngester(t, cfg, defaultLimits(t), fs)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	back, _ = ringEntry(t, store, id)
	require.Equal(t, ring.ACTIVE, back.State)
	require.Equal(t, first.Tokens, back.Tokens, "the tokens file gives the same tokens back")
}

// TestShutdownHandlerLeavesDespiteSettings: POST /ingester/shutdown ships
// the head and removes the entry, although flush and unregister on
// shutdown are off.
func TestShutdownHandlerLeavesDespiteSettings(t *testing.T) {
	cfg, store := ringTestConfig(t)
	cfg.FlushOnShutdown = false
	cfg.Lifecycler.UnregisterOnShutdown = false
	fs, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	ing := startIngester(t, cfg, defaultLimits(t), fs)
	pushOne(t, ing)

	rec := httptest.NewRecorder()
	ing.ShutdownHandler(rec, httptest.NewRequest(http.MethodPost, "/ingester/shutdown", nil))
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	_, ok := ringEntry(t, store, cfg.Lifecycler.InstanceID)
	require.False(t, ok, "the ingester left the ring")
	shipped := 0
	require.NoError(t, fs.Iter(context.Background(), "team-a/", func(string) error { shipped++; return nil }))
	require.Equal(t, 1, shipped)
}

// TestReadyAfterJoining: /ready follows the ring state: not ready while
// PENDING (join-after), ready once ACTIVE.
func TestReadyAfterJoining(t *testing.T) {
	cfg, store := ringTestConfig(t)
	cfg.Lifecycler.JoinAfter = 200 * time.Millisecond
	ing := startIngester(t, cfg, defaultLimits(t), nil)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	inst, _ := ringEntry(t, store, cfg.Lifecycler.InstanceID)
	require.Equal(t, ring.PENDING, inst.State)
	require.ErrorContains(t, ing.CheckReady(), "this ingester is PENDING in the ring, not ACTIVE")
	require.Eventually(t, func() bool { return ing.CheckReady() == nil }, 5*time.Second, 10*time.Millisecond)
	inst, _ = ringEntry(t, store, cfg.Lifecycler.InstanceID)
	require.Equal(t, ring.ACTIVE, inst.State)
	require.Len(t, inst.Tokens, 128)
}
