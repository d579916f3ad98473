package ingester

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// These tests measure how evenly random virtual-node tokens spread the 32-bit
// token space over ingesters, on a simulated dskit ring (no processes, no
// KV). Print the figures quoted in docs/ring.md with
//
//	go test -run TestRingBalance -v ./pkg/ingester/
const (
	balanceInstances = 10
	balanceSeeds     = 20
	balanceRF        = 3
	// The target: the busiest ingester owns at most 15% more than the mean.
	balanceTarget = 1.15
)

// ringSpace is the size of the token space, 2^32.
const ringSpace = float64(1 << 32)

// simulatedRing builds a ring of n ACTIVE instances with tokensPer random
// tokens each, drawn from one generator seeded with seed, as dskit's
// lifecycler does on join (new tokens never clash with taken ones).
func simulatedRing(t testing.TB, seed int64, n, tokensPer int) *ring.Desc {
	t.Helper()
	desc := ring.NewDesc()
	gen := ring.NewRandomTokenGeneratorWithSeed(seed)
	for i := 0; i < n; i++ {
		addInstance(t, desc, gen, fmt.Sprintf("ingester-%02d", i), tokensPer)
	}
	return desc
}

// addInstance joins one ACTIVE instance with fresh tokens to desc.
func addInstance(t testing.TB, desc *ring.Desc, gen *ring.RandomTokenGenerator, id string, tokensPer int) {
	t.Helper()
	tokens := gen.GenerateTokens(tokensPer, desc.GetTokens())
	require.Len(t, tokens, tokensPer)
	desc.AddIngester(id, id+":9095", "", tokens, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
}

// ringRange is the part of the token space that maps to one token: dskit
// sends key k to the first token > k, so token i owns [token i-1, token i),
// and the first token also owns the wrap-around from the last token.
type ringRange struct {
	end      uint32   // the token
	size     uint64   // number of keys in the range
	replicas []string // instances holding the range, primary first
}

// ringRanges lists the ranges of desc in token order with the first rf
// distinct instances found walking clockwise from each token (the replica
// set of dskit's default strategy with no zones and all instances ACTIVE).
func ringRanges(desc *ring.Desc, rf int) []ringRange {
	type tokenOwner struct {
		token uint32
		owner string
	}
	var all []tokenOwner
	for id, inst := range desc.Ingesters {
		for _, tok := range inst.Tokens {
			all = append(all, tokenOwner{tok, id})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].token < all[j].token })
	rf = min(rf, len(desc.Ingesters))

	out := make([]ringRange, len(all))
	for i, to := range all {
		prev := all[(i-1+len(all))%len(all)].token
		size := uint64(to.token - prev) // uint32 arithmetic wraps around the ring
		if len(all) == 1 {
			size = 1 << 32
		}
		replicas := make([]string, 0, rf)
		for j := 0; len(replicas) < rf; j++ {
			owner := all[(i+j)%len(all)].owner
			if !slices.Contains(replicas, owner) {
				replicas = append(replicas, owner)
			}
		}
		out[i] = ringRange{end: to.token, size: size, replicas: replicas}
	}
	return out
}

// ownedShares returns each instance's share of the keys it holds as one of
// the first rf replicas, normalised so the shares sum to 1 (rf=1: the
// primary ownership; rf=3: the share of all stored replicas).
func ownedShares(desc *ring.Desc, rf int) map[string]float64 {
	shares := make(map[string]float64, len(desc.Ingesters))
	for id := range desc.Ingesters {
		shares[id] = 0
	}
	ranges := ringRanges(desc, rf)
	total := 0.0
	for _, r := range ranges {
		for _, id := range r.replicas {
			shares[id] += float64(r.size)
			total += float64(r.size)
		}
	}
	for id := range shares {
		shares[id] /= total
	}
	return shares
}

// maxOverMean is the largest share divided by the mean share.
func maxOverMean(shares map[string]float64) float64 {
	mx := 0.0
	for _, s := range shares {
		mx = math.Max(mx, s)
	}
	return mx * float64(len(shares))
}

// seedStats summarises max/mean over the seeds.
type seedStats struct {
	median, p90, worst float64
	overTarget         int // seeds whose max/mean exceeds balanceTarget
}

func statsOver(ratios []float64) seedStats {
	s := slices.Clone(ratios)
	slices.Sort(s)
	st := seedStats{
		median: (s[(len(s)-1)/2] + s[len(s)/2]) / 2,
		p90:    s[int(math.Ceil(0.9*float64(len(s))))-1],
		worst:  s[len(s)-1],
	}
	for _, r := range s {
		if r > balanceTarget {
			st.overTarget++
		}
	}
	return st
}

// balanceRatios returns max/mean for each seed 1..balanceSeeds, primary
// ownership and replicated ownership at RF 3.
func balanceRatios(t testing.TB, tokensPer int) (primary, replicated []float64) {
	t.Helper()
	for seed := int64(1); seed <= balanceSeeds; seed++ {
		desc := simulatedRing(t, seed, balanceInstances, tokensPer)
		primary = append(primary, maxOverMean(ownedShares(desc, 1)))
		replicated = append(replicated, maxOverMean(ownedShares(desc, balanceRF)))
	}
	return primary, replicated
}

func TestRingBalance(t *testing.T) {
	t.Run("shares sum to one", func(t *testing.T) {
		desc := simulatedRing(t, 1, balanceInstances, 128)
		for _, rf := range []int{1, balanceRF} {
			sum := 0.0
			for _, s := range ownedShares(desc, rf) {
				sum += s
			}
			require.InDelta(t, 1.0, sum, 1e-9)
		}
		// Primary ranges cover the whole ring exactly once.
		var keys uint64
		for _, r := range ringRanges(desc, 1) {
			keys += r.size
		}
		require.Equal(t, uint64(1<<32), keys)
	})

	t.Run("table", func(t *testing.T) {
		var b strings.Builder
		fmt.Fprintf(&b, "\n%d instances, %d seeds, max/mean owned share (1.00 = perfect balance; target %.2f)\n", balanceInstances, balanceSeeds, balanceTarget)
		fmt.Fprintf(&b, "tokens/inst |  primary: median    p90  worst  seeds>%.2f |  RF %d: median    p90  worst  seeds>%.2f\n", balanceTarget, balanceRF, balanceTarget)
		for _, tokensPer := range []int{16, 32, 64, 128, 256, 512} {
			p, r := balanceRatios(t, tokensPer)
			ps, rs := statsOver(p), statsOver(r)
			fmt.Fprintf(&b, "%11d |          %6.3f %6.3f %6.3f  %5d/%d   |        %6.3f %6.3f %6.3f  %5d/%d\n",
				tokensPer, ps.median, ps.p90, ps.worst, ps.overTarget, balanceSeeds, rs.median, rs.p90, rs.worst, rs.overTarget, balanceSeeds)
		}
		t.Log(b.String())
	})

	t.Run("128 tokens", func(t *testing.T) {
		// What the data shows for 10 instances x 128 random tokens (see the
		// table): the typical (median) seed meets 1.15 on primary ownership
		// but a few seeds do not, so the per-seed bound is asserted only on
		// replicated ownership, which is what sizes an ingester at RF 3.
		p, r := balanceRatios(t, 128)
		ps, rs := statsOver(p), statsOver(r)
		t.Logf("128 tokens, primary: median %.3f, worst %.3f, %d/%d seeds over %.2f", ps.median, ps.worst, ps.overTarget, balanceSeeds, balanceTarget)
		t.Logf("128 tokens, RF %d:   median %.3f, worst %.3f, %d/%d seeds over %.2f", balanceRF, rs.median, rs.worst, rs.overTarget, balanceSeeds, balanceTarget)
		require.LessOrEqual(t, ps.median, balanceTarget, "median over seeds of primary max/mean")
		require.LessOrEqual(t, ps.worst, 1.25, "worst seed of primary max/mean")
		for i, ratio := range r {
			require.LessOrEqualf(t, ratio, balanceTarget, "seed %d: RF %d max/mean", i+1, balanceRF)
		}
	})
}

// TestRingBalanceJoin measures how much of the ring moves when an 11th
// instance joins 10 instances of 128 tokens: ideally 1/11 of the keys, all of
// them to the newcomer.
func TestRingBalanceJoin(t *testing.T) {
	const tokensPer = 128
	var b strings.Builder
	fmt.Fprintf(&b, "\n11th instance joins %d x %d tokens (ideal 1/11 = %.4f)\nseed | primary moved | RF %d replicas moved\n", balanceInstances, tokensPer, 1.0/11, balanceRF)
	var primaryMoved, replicaMoved []float64
	for seed := int64(1); seed <= balanceSeeds; seed++ {
		before := simulatedRing(t, seed, balanceInstances, tokensPer)
		after := ring.NewDesc()
		for id, inst := range before.Ingesters {
			after.AddIngester(id, inst.Addr, "", slices.Clone(inst.Tokens), ring.ACTIVE, time.Now(), false, time.Time{}, nil)
		}
		addInstance(t, after, ring.NewRandomTokenGeneratorWithSeed(seed+1000), "ingester-new", tokensPer)

		pm, rm := movedFractions(t, before, after, "ingester-new")
		primaryMoved = append(primaryMoved, pm)
		replicaMoved = append(replicaMoved, rm)
		fmt.Fprintf(&b, "%4d | %13.4f | %.4f\n", seed, pm, rm)

		// Consistent hashing: the moved keys are exactly the newcomer's share.
		require.InDelta(t, ownedShares(after, 1)["ingester-new"], pm, 1e-9)
		// Within the spread random tokens give (see TestRingBalance): the
		// newcomer takes between 0.8 and 1.2 of its ideal 1/11.
		require.InDelta(t, 1.0/11, pm, 0.2/11, "seed %d: primary moved", seed)
		require.InDelta(t, 1.0/11, rm, 0.2/11, "seed %d: RF %d replicas moved", seed, balanceRF)
	}
	ps, rs := statsOver(primaryMoved), statsOver(replicaMoved)
	fmt.Fprintf(&b, "min    | %13.4f | %.4f\nmedian | %13.4f | %.4f\nmax    | %13.4f | %.4f",
		slices.Min(primaryMoved), slices.Min(replicaMoved), ps.median, rs.median, ps.worst, rs.worst)
	t.Log(b.String())
}

// movedFractions compares the ring before and after newID joined: the
// fraction of keys whose primary owner changed, and the fraction of stored
// replicas (keys x RF) that now live on a different instance. It also checks
// that nothing moves between two old instances.
func movedFractions(t testing.TB, before, after *ring.Desc, newID string) (primary, replicas float64) {
	t.Helper()
	br, ar := ringRanges(before, balanceRF), ringRanges(after, balanceRF)
	ends := make([]uint32, len(br))
	for i, r := range br {
		ends[i] = r.end
	}
	var movedPrimary, movedReplicas uint64
	// The old tokens are a subset of the new ones, so every new range lies in
	// exactly one old range: the one ending at the first old token >= its end.
	for _, a := range ar {
		i, _ := slices.BinarySearch(ends, a.end)
		old := br[i%len(br)]
		if a.replicas[0] != old.replicas[0] {
			require.Equal(t, newID, a.replicas[0], "a key moved between two old instances")
			movedPrimary += a.size
		}
		for _, id := range a.replicas {
			if !slices.Contains(old.replicas, id) {
				require.Equal(t, newID, id, "a replica moved to an old instance")
				movedReplicas += a.size
			}
		}
	}
	return float64(movedPrimary) / ringSpace, float64(movedReplicas) / (ringSpace * balanceRF)
}

// TestRingBalanceMatchesDskitLookup checks the simulation against dskit's own
// lookup: random keys looked up in a real ring.Ring land on each instance in
// the proportions ownedShares computes.
func TestRingBalanceMatchesDskitLookup(t *testing.T) {
	desc := simulatedRing(t, 7, balanceInstances, 128)

	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	ctx := context.Background()
	require.NoError(t, store.CAS(ctx, RingKey, func(any) (any, bool, error) { return desc, false, nil }))

	cfg := ring.Config{HeartbeatTimeout: time.Hour, ReplicationFactor: balanceRF}
	r, err := ring.NewWithStoreClientAndStrategy(cfg, "ingester", RingKey, store, ring.NewDefaultReplicationStrategy(), prometheus.NewPedanticRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(ctx, r))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r)) })
	require.Equal(t, balanceInstances, r.InstancesCount())

	const keys = 200_000
	rnd := rand.New(rand.NewSource(1))
	primary := map[string]float64{}
	replicated := map[string]float64{}
	for i := 0; i < keys; i++ {
		rs, err := r.Get(rnd.Uint32(), ring.Write, nil, nil, nil)
		require.NoError(t, err)
		require.Len(t, rs.Instances, balanceRF)
		primary[rs.Instances[0].Id]++
		for _, inst := range rs.Instances {
			replicated[inst.Id]++
		}
	}
	wantPrimary, wantReplicated := ownedShares(desc, 1), ownedShares(desc, balanceRF)
	for id := range desc.Ingesters {
		// 200k samples: binomial standard error ~0.0007 on a 0.1 share.
		require.InDelta(t, wantPrimary[id], primary[id]/keys, 0.004, id)
		require.InDelta(t, wantReplicated[id], replicated[id]/(keys*balanceRF), 0.004, id)
	}
}
