package distributor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	ingclient "github.com/meridianhq/meridian/pkg/ingester/client"
	"github.com/meridianhq/meridian/pkg/meridianpb"
)

// fakeIngester records the series pushed to it, or fails.
type fakeIngester struct {
	meridianpb.IngesterClient
	mtx    sync.Mutex
	series map[string]int
	fail   bool
	reject string // metric name whose series it rejects per series
}

func (f *fakeIngester) Push(_ context.Context, req *prompb.WriteRequest, _ ...grpc.CallOption) (*meridianpb.PushResponse, error) {
	if f.fail {
		return nil, errors.New("connection refused")
	}
	f.mtx.Lock()
	defer f.mtx.Unlock()
	resp := &meridianpb.PushResponse{}
	for i, ts := range req.Timeseries {
		name := ts.Labels[0].Value
		if name == f.reject {
			resp.Errors = append(resp.Errors, meridianpb.SeriesError{Index: int32(i), HttpStatus: 400, ErrorId: "err-test", Message: "rejected"})
			continue
		}
		f.series[name]++
	}
	return resp, nil
}

func (f *fakeIngester) Close() error { return nil }

type fakePool map[string]*fakeIngester

func (p fakePool) Get(addr string) (ingclient.Client, error) { return p[addr], nil }
func (p fakePool) RemoteTimeout() time.Duration              { return time.Second }

func newTestRing(t *testing.T, n, rf int) (*ring.Ring, fakePool) {
	t.Helper()
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	desc := ring.NewDesc()
	pool := fakePool{}
	gen := ring.NewRandomTokenGeneratorWithSeed(42)
	var taken []uint32
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", 9000+i)
		tokens := gen.GenerateTokens(128, taken)
		taken = append(taken, tokens...)
		desc.AddIngester(fmt.Sprintf("ing-%d", i), addr, "", tokens, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
		pool[addr] = &fakeIngester{series: map[string]int{}}
	}
	require.NoError(t, store.CAS(context.Background(), "ingester", func(any) (any, bool, error) { return desc, true, nil }))
	var cfg ring.Config
	cfg.HeartbeatTimeout = time.Minute
	cfg.ReplicationFactor = rf
	r, err := ring.NewWithStoreClientAndStrategy(cfg, "ingester", "ingester", store, ring.NewDefaultReplicationStrategy(), prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	require.Eventually(t, func() bool { return r.InstancesCount() == n }, 5*time.Second, 10*time.Millisecond)
	return r, pool
}

func request(names ...string) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for _, n := range names {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: n}}, Samples: []prompb.Sample{{Timestamp: 1, Value: 1}}})
	}
	return req
}

func TestPushReplicatesToRFIngesters(t *testing.T) {
	r, pool := newTestRing(t, 3, 3)
	d := New(Config{}, r, shardSizes{}, pool, log.NewNopLogger(), prometheus.NewRegistry())
	ctx := user.InjectOrgID(context.Background(), "team-a")
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	rejected, err := d.Push(ctx, request(names...))
	require.NoError(t, err)
	require.Empty(t, rejected)
	// The push returns at quorum (2 of 3); the third copy follows.
	require.Eventually(t, func() bool {
		for _, name := range names {
			copies := 0
			for _, ing := range pool {
				ing.mtx.Lock()
				copies += ing.series[name]
				ing.mtx.Unlock()
			}
			if copies != 3 {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond, "every series stored on all 3 replicas")
}

func TestPushToleratesOneFailedReplica(t *testing.T) {
	r, pool := newTestRing(t, 3, 3)
	pool["127.0.0.1:9001"].fail = true
	d := New(Config{}, r, shardSizes{}, pool, log.NewNopLogger(), prometheus.NewRegistry())
	ctx := user.InjectOrgID(context.Background(), "team-a")
	_, err := d.Push(ctx, request("a", "b", "c"))
	require.NoError(t, err, "a quorum of 2 out of 3 is enough")

	pool["127.0.0.1:9002"].fail = true
	_, err = d.Push(ctx, request("a", "b", "c"))
	require.Error(t, err, "two failed replicas of three lose the quorum")
	require.Contains(t, err.Error(), "retry")
}

func TestPushShardsSeriesAcrossIngesters(t *testing.T) {
	r, pool := newTestRing(t, 3, 1)
	d := New(Config{}, r, shardSizes{}, pool, log.NewNopLogger(), prometheus.NewRegistry())
	ctx := user.InjectOrgID(context.Background(), "team-a")
	var names []string
	for i := 0; i < 300; i++ {
		names = append(names, fmt.Sprintf("m%d", i))
	}
	_, err := d.Push(ctx, request(names...))
	require.NoError(t, err)
	total := 0
	for addr, ing := range pool {
		ing.mtx.Lock()
		defer ing.mtx.Unlock()
		require.NotZero(t, len(ing.series), "ingester %s owns some series", addr)
		total += len(ing.series)
	}
	require.Equal(t, 300, total, "each series stored exactly once at RF 1")
}

func TestPushReportsIngesterRejectionsWithOriginalIndex(t *testing.T) {
	r, pool := newTestRing(t, 3, 1)
	for _, ing := range pool {
		ing.reject = "bad"
	}
	d := New(Config{}, r, shardSizes{}, pool, log.NewNopLogger(), prometheus.NewRegistry())
	ctx := user.InjectOrgID(context.Background(), "team-a")
	rejected, err := d.Push(ctx, request("ok1", "ok2", "bad", "ok3"))
	require.NoError(t, err)
	require.Len(t, rejected, 1)
	require.EqualValues(t, 2, rejected[0].Index)
	require.Equal(t, "err-test", rejected[0].ErrorId)
}

func TestShardKeyDependsOnTenantAndLabels(t *testing.T) {
	ls := []prompb.Label{{Name: "__name__", Value: "x"}, {Name: "job", Value: "a"}}
	require.Equal(t, shardKey("t1", ls), shardKey("t1", ls))
	require.NotEqual(t, shardKey("t1", ls), shardKey("t2", ls))
	// The separator keeps "ab"+"c" and "a"+"bc" apart.
	require.NotEqual(t, shardKey("t", []prompb.Label{{Name: "ab", Value: "c"}}), shardKey("t", []prompb.Label{{Name: "a", Value: "bc"}}))
}

// shardSizes are fixed ingester shard sizes per tenant (0 when not listed).
type shardSizes map[string]int

func (s shardSizes) IngestionTenantShardSize(tenant string) int { return s[tenant] }

// holders returns the addresses of the ingesters that stored series name.
func holders(pool fakePool, name string) []string {
	var out []string
	for addr, ing := range pool {
		ing.mtx.Lock()
		if ing.series[name] > 0 {
			out = append(out, addr)
		}
		ing.mtx.Unlock()
	}
	sort.Strings(out)
	return out
}

func TestPushWritesOnlyToTheTenantsShard(t *testing.T) {
	r, pool := newTestRing(t, 6, 3)
	d := New(Config{}, r, shardSizes{"small": 3, "tiny": 1}, pool, log.NewNopLogger(), prometheus.NewRegistry())

	var names []string
	for i := 0; i < 100; i++ {
		names = append(names, fmt.Sprintf("m%d", i))
	}
	push := func(tenant string) map[string]bool {
		t.Helper()
		for _, ing := range pool {
			ing.mtx.Lock()
			ing.series = map[string]int{}
			ing.mtx.Unlock()
		}
		_, err := d.Push(user.InjectOrgID(context.Background(), tenant), request(names...))
		require.NoError(t, err)
		// The push returns at quorum (2 of 3); the third copy follows.
		require.Eventually(t, func() bool {
			for _, name := range names {
				if len(holders(pool, name)) != 3 {
					return false
				}
			}
			return true
		}, 5*time.Second, 10*time.Millisecond, "every series of %s on RF ingesters", tenant)
		used := map[string]bool{}
		for _, name := range names {
			for _, addr := range holders(pool, name) {
				used[addr] = true
			}
		}
		return used
	}

	// Shard size 3 at RF 3: every series on the same 3 ingesters, the
	// tenant's shard, which ShuffleShard names.
	used := push("small")
	require.Len(t, used, 3, "a tenant with shard size 3 uses exactly 3 ingesters")
	shard, err := r.ShuffleShard("small", 3).GetAllHealthy(ring.Write)
	require.NoError(t, err)
	for _, inst := range shard.Instances {
		require.True(t, used[inst.Addr], "ingester %s of the shard got the series", inst.Addr)
	}

	// A shard below the replication factor is raised to it: no series is
	// stored on fewer than RF ingesters.
	require.Len(t, push("tiny"), 3)

	// Shard size 0 spreads the tenant over every ingester.
	require.Len(t, push("everyone"), 6)
}
