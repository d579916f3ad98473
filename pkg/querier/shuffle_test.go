package querier

import (
	"context"
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// shardRing is a ring of n ingesters with 128 tokens each, registered at
// registered, replicating rf times.
func shardRing(t testing.TB, n, rf int, registered time.Time) *ring.Ring {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", 9000+i)
	}
	return shardRingOf(t, rf, registered, addrs...)
}

func shardRingOf(t testing.TB, rf int, registered time.Time, addrs ...string) *ring.Ring {
	t.Helper()
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	desc := ring.NewDesc()
	gen := ring.NewRandomTokenGeneratorWithSeed(7)
	var taken []uint32
	for i, a := range addrs {
		tokens := gen.GenerateTokens(128, taken)
		taken = append(taken, tokens...)
		desc.AddIngester(fmt.Sprintf("ing-%d", i), a, "", tokens, ring.ACTIVE, registered, false, time.Time{}, nil)
	}
	require.NoError(t, store.CAS(context.Background(), "ingester", func(any) (any, bool, error) { return desc, true, nil }))
	var cfg ring.Config
	cfg.HeartbeatTimeout = time.Hour
	cfg.ReplicationFactor = rf
	r, err := ring.NewWithStoreClientAndStrategy(cfg, "ingester", "ingester", store, ring.NewDefaultReplicationStrategy(), prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	require.Eventually(t, func() bool { return r.InstancesCount() == len(addrs) }, 5*time.Second, 10*time.Millisecond)
	return r
}

// addrsOf lists the addresses of the instances r reads from.
func addrsOf(t *testing.T, r ring.ReadRing) []string {
	t.Helper()
	rs, err := r.GetReplicationSetForOperation(ring.Read)
	require.NoError(t, err)
	out := rs.GetAddresses()
	sort.Strings(out)
	return out
}

// size is a sizeOf that gives every tenant n.
func size(n int) func(string) int { return func(string) int { return n } }

// fakeOverrides is a settable runtime config: per-tenant shard sizes, and
// an identity that changes with every set.
type fakeOverrides struct {
	sizes    map[string]int
	identity int
}

func (o *fakeOverrides) set(tenant string, n int) { o.sizes[tenant] = n; o.identity++ }

func (o *fakeOverrides) OverridesIdentity() any { return o.identity }

func (o *fakeOverrides) OverriddenTenants() []string {
	var out []string
	for t := range o.sizes {
		out = append(out, t)
	}
	return out
}

func (o *fakeOverrides) sizeOf(tenant string) int { return o.sizes[tenant] }

// fakeClock is a settable now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestIngesterShardsReadTheWriteShard(t *testing.T) {
	const lookback = time.Hour
	clock := &fakeClock{t: time.Now()}
	r := shardRing(t, 6, 3, clock.t.Add(-2*lookback))
	s := newIngesterShards(r, nil, lookback, log.NewNopLogger(), clock.now)
	all := addrsOf(t, r)
	require.Len(t, all, 6)

	// For the lookback after the querier started it cannot know which
	// sizes were in force before: every ingester.
	require.Equal(t, all, addrsOf(t, s.forTenant("team-a", size(3))))

	// Then exactly the shard the distributor writes to.
	clock.t = clock.t.Add(lookback + time.Second)
	got := addrsOf(t, s.forTenant("team-a", size(3)))
	require.Len(t, got, 3)
	require.Equal(t, addrsOf(t, r.ShuffleShard("team-a", 3)), got, "the querier reads the distributor's shard")

	// Another tenant gets its own shard, and size 0 means every ingester.
	require.Len(t, addrsOf(t, s.forTenant("team-b", size(3))), 3)
	require.Equal(t, all, addrsOf(t, s.forTenant("team-c", size(0))))
	// Below the replication factor the shard is RF ingesters, as written.
	require.Equal(t, addrsOf(t, r.ShuffleShard("team-d", 3)), addrsOf(t, s.forTenant("team-d", size(1))))

	// Lookback 0 turns read-path sharding off.
	off := newIngesterShards(r, nil, 0, log.NewNopLogger(), clock.now)
	require.Equal(t, all, addrsOf(t, off.forTenant("team-a", size(3))))
}

func TestIngesterShardsAfterAResize(t *testing.T) {
	const lookback = time.Hour
	clock := &fakeClock{t: time.Now()}
	r := shardRing(t, 6, 3, clock.t.Add(-2*lookback))
	s := newIngesterShards(r, nil, lookback, log.NewNopLogger(), clock.now)
	clock.t = clock.t.Add(lookback + time.Second) // past the start-up window

	small := addrsOf(t, r.ShuffleShard("team-a", 3))
	large := addrsOf(t, r.ShuffleShard("team-a", 5))
	require.Subset(t, large, small, "a shard is a prefix of a larger one")

	// Growing: the larger shard holds the smaller one, whose ingesters
	// keep the older samples.
	require.Equal(t, small, addrsOf(t, s.forTenant("team-a", size(3))))
	require.Equal(t, large, addrsOf(t, s.forTenant("team-a", size(5))))

	// Shrinking: the ingesters that left the shard hold recent samples, so
	// the larger shard is read until the lookback has passed since the
	// querier saw the change.
	require.Equal(t, large, addrsOf(t, s.forTenant("team-a", size(3))))
	clock.t = clock.t.Add(lookback / 2)
	require.Equal(t, large, addrsOf(t, s.forTenant("team-a", size(3))))
	// Shrinking again within the lookback keeps the largest size.
	require.Equal(t, large, addrsOf(t, s.forTenant("team-a", size(3))))
	clock.t = clock.t.Add(lookback/2 + time.Second)
	require.Equal(t, small, addrsOf(t, s.forTenant("team-a", size(3))))

	// A shard size of 0 (every ingester) shrinking to 3 reads every
	// ingester for the lookback.
	require.Len(t, addrsOf(t, s.forTenant("team-b", size(0))), 6)
	require.Len(t, addrsOf(t, s.forTenant("team-b", size(3))), 6)
	clock.t = clock.t.Add(lookback + time.Second)
	require.Len(t, addrsOf(t, s.forTenant("team-b", size(3))), 3)
}

// TestIngesterShardsNoticeAShrinkWithoutAQuery: a tenant's shard shrinks
// while nothing queries it; a query of another tenant after the overrides
// reload records the shrink, so the tenant's next query still reads the
// ingesters that left its shard.
func TestIngesterShardsNoticeAShrinkWithoutAQuery(t *testing.T) {
	const lookback = time.Hour
	clock := &fakeClock{t: time.Now()}
	r := shardRing(t, 6, 3, clock.t.Add(-2*lookback))
	ov := &fakeOverrides{sizes: map[string]int{"team-a": 5, "team-b": 3}}
	s := newIngesterShards(r, ov, lookback, log.NewNopLogger(), clock.now)
	clock.t = clock.t.Add(lookback + time.Second) // past the start-up window

	small := addrsOf(t, r.ShuffleShard("team-a", 3))
	large := addrsOf(t, r.ShuffleShard("team-a", 5))
	require.Equal(t, addrsOf(t, r.ShuffleShard("team-b", 3)), addrsOf(t, s.forTenant("team-b", ov.sizeOf)))

	ov.set("team-a", 3) // team-a was never queried by this querier
	clock.t = clock.t.Add(time.Minute)
	s.forTenant("team-b", ov.sizeOf)
	clock.t = clock.t.Add(time.Minute)
	require.Equal(t, large, addrsOf(t, s.forTenant("team-a", ov.sizeOf)), "the shrink was recorded when the overrides were seen")
	clock.t = clock.t.Add(lookback)
	require.Equal(t, small, addrsOf(t, s.forTenant("team-a", ov.sizeOf)))
}

func TestIngesterShardsIncludeRecentlyJoinedIngesters(t *testing.T) {
	// Every ingester registered just now: any of them may have taken over
	// series of the tenant within the lookback, so all are read.
	clock := &fakeClock{t: time.Now()}
	r := shardRing(t, 6, 3, clock.t)
	s := newIngesterShards(r, nil, time.Hour, log.NewNopLogger(), clock.now)
	s.started = clock.t.Add(-2 * time.Hour) // past the start-up window
	require.Len(t, addrsOf(t, s.forTenant("team-a", size(3))), 6)
}

// TestQueryReadsOnlyTheTenantsShard: with shuffle sharding, an ingester
// outside the tenant's shard is not asked, so it being down does not fail
// the tenant's query (at RF 1, asking it would).
func TestQueryReadsOnlyTheTenantsShard(t *testing.T) {
	now := time.Now()
	ing, addr := serveIngester(t, "q-ing-shard")
	pushSeries(t, ing, "team-a", 2, []prompb.Sample{{Timestamp: now.UnixMilli() - 1000, Value: 3}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := lis.Addr().String()
	require.NoError(t, lis.Close())

	// Which one of the two ingesters is team-a's shard of size 1 depends
	// on the tokens: name the live one after it.
	r := shardRingOf(t, 1, now.Add(-time.Hour), "a:1", "b:1")
	shard := addrsOf(t, r.ShuffleShard("team-a", 1))[0]
	addrs := []string{dead, dead}
	if shard == "a:1" {
		addrs[0] = addr
	} else {
		addrs[1] = addr
	}
	r = shardRingOf(t, 1, now.Add(-time.Hour), addrs...)
	require.Equal(t, []string{addr}, addrsOf(t, r.ShuffleShard("team-a", 1)))

	lim := defaults()
	lim.IngestionTenantShardSize = 1
	q := NewQueryable(Config{ShuffleShardingIngestersLookback: time.Minute}, r, newPool(t), nil, fixedLimits{lim}, log.NewNopLogger())
	q.shards.started = now.Add(-time.Hour) // past the start-up window
	got, err := selectAll(t, q, "team-a", 0, now.UnixMilli())
	require.NoError(t, err, "the ingester outside the shard is not asked")
	require.Len(t, got, 2)

	// Without shuffle sharding every ingester is asked, and the dead one
	// fails the query at RF 1.
	q = NewQueryable(Config{ShuffleShardingIngestersLookback: time.Minute}, r, newPool(t), nil, fixedLimits{defaults()}, log.NewNopLogger())
	_, err = selectAll(t, q, "team-a", 0, now.UnixMilli())
	require.Error(t, err)
}
