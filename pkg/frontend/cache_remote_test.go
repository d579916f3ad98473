package frontend

import (
	"context"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// mapKV is an in-process stand-in for memcached or redis.
type mapKV struct{ m map[string][]byte }

func (k *mapKV) getMulti(_ context.Context, keys []string) map[string][]byte {
	out := map[string][]byte{}
	for _, key := range keys {
		if v, ok := k.m[key]; ok {
			out[key] = v
		}
	}
	return out
}
func (k *mapKV) set(key string, v []byte, _ time.Duration) { k.m[key] = v }
func (k *mapKV) stop()                                     {}

func testMatrix(start, end, step int64, f func(int64) float64) model.Matrix {
	s := &model.SampleStream{Metric: model.Metric{"__name__": "x"}}
	for ts := start; ts <= end; ts += step {
		s.Values = append(s.Values, model.SamplePair{Timestamp: model.Time(ts), Value: model.SampleValue(f(ts))})
	}
	return model.Matrix{s}
}

func TestRemoteCacheStoresMergedExtentsWithAnnotations(t *testing.T) {
	kv := &mapKV{m: map[string][]byte{}}
	c := &remoteCache{kv: kv, ttl: time.Hour, logger: log.NewNopLogger(),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})}
	ctx := context.Background()
	const step = 10
	val := func(ts int64) float64 { return float64(ts) / 10 }
	a := extent{timeRange: timeRange{0, 100}, m: testMatrix(0, 100, step, val),
		ann: []annSpan{{timeRange: timeRange{0, 50}, infos: []string{"PromQL info: not monotonic"}}}}
	b := extent{timeRange: timeRange{110, 200}, m: testMatrix(110, 200, step, val)}
	c.add(ctx, "tenant:q", c.get(ctx, "tenant:q"), a, step)
	c.add(ctx, "tenant:q", c.get(ctx, "tenant:q"), b, step)
	require.Len(t, kv.m, 1, "one value per key")
	for k := range kv.m {
		require.LessOrEqual(t, len(k), 250, "a valid memcached key")
	}

	got := c.get(ctx, "tenant:q")
	require.Len(t, got, 1, "touching extents joined")
	require.Equal(t, timeRange{0, 200}, got[0].timeRange)
	require.Len(t, got[0].m, 1)
	require.Len(t, got[0].m[0].Values, 21)
	for _, p := range got[0].m[0].Values {
		require.Equal(t, val(int64(p.Timestamp)), float64(p.Value))
	}
	require.Equal(t, []annSpan{{timeRange: timeRange{0, 50}, infos: []string{"PromQL info: not monotonic"}}}, got[0].ann)
	require.Nil(t, c.get(ctx, "tenant:other"), "other keys miss")

	// A damaged value is a miss, counted, and overwritten by the next add.
	for k := range kv.m {
		kv.m[k] = []byte("not snappy")
	}
	require.Nil(t, c.get(ctx, "tenant:q"))
	c.add(ctx, "tenant:q", c.get(ctx, "tenant:q"), b, step)
	require.Len(t, c.get(ctx, "tenant:q"), 1)
}

func TestRemoteCacheConfigValidate(t *testing.T) {
	c := RemoteCacheConfig{Backend: CacheBackendRedis, TTL: time.Hour}
	require.ErrorContains(t, c.Validate(), "-frontend.results-cache.redis.address")
	c.Redis.Address = "127.0.0.1:6379"
	require.NoError(t, c.Validate())
	c.Backend = "disk"
	require.ErrorContains(t, c.Validate(), "use inmemory, memcached or redis")
}
