package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// TestCompactorDeduplicatesReplicas: three ingesters at RF 3 ship up to three
// copies of every sample; the compactor merges them so object storage holds
// each sample exactly once, and the querier's answers do not change.
func TestCompactorDeduplicatesReplicas(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	runCompactorDedup(t, c, "compact", "cmp", c.BucketDir(), func(tenant string) ([]harness.BucketBlock, error) {
		return c.BucketBlocks(tenant)
	})
}

// runCompactorDedup is the replica-dedup scenario on cluster c, whose
// objects are on disk under bucketDir and whose complete blocks blocks lists.
func runCompactorDedup(t *testing.T, c *harness.Cluster, tenant, idPrefix, bucketDir string, blocks func(tenant string) ([]harness.BucketBlock, error)) {
	t.Helper()
	ingesters, ids := c.StartZonedIngesters(idPrefix, 3)
	dist := c.StartDistributor(false)
	q := c.StartQuerier()
	// The distributor is ready with one healthy ingester in its ring; an RF3
	// push needs two, so wait for gossip to bring all three everywhere.
	for _, p := range []*harness.Process{dist, q} {
		requireEventually(t, 30*time.Second, 200*time.Millisecond, "all three ingesters ACTIVE in every ring", func() bool {
			return harness.RingActiveExactly(p, ids...) == nil
		})
	}

	// 20 series, one sample a minute for the last 5 hours, in time order:
	// the ingesters cut 2h blocks as they go; a flush ships the rest.
	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	start := end.Add(-5 * time.Hour)
	pushed := 0
	wantSum := map[string]float64{}
	for batchStart := start; !batchStart.After(end); batchStart = batchStart.Add(30 * time.Minute) {
		var series []prompb.TimeSeries
		for s := 0; s < 20; s++ {
			var samples []prompb.Sample
			for ts := batchStart; ts.Before(batchStart.Add(30*time.Minute)) && !ts.After(end); ts = ts.Add(time.Minute) {
				v := float64(ts.Unix()%1000 + int64(s))
				samples = append(samples, harness.Sample(ts, v))
				wantSum[fmt.Sprint(s)] += v
				pushed++
			}
			series = append(series, harness.Series([]string{"__name__", "compact_metric", "s", fmt.Sprint(s)}, samples...))
		}
		code, body := dist.Push(tenant, series...)
		require.Equal(t, 200, code, body)
	}
	for _, ing := range ingesters {
		code, body := ing.PostPath("", "/ingester/flush?wait=true")
		require.Equal(t, 200, code, string(body))
	}

	sumSamples := func() (all, live uint64) {
		bs, err := blocks(tenant)
		require.NoError(t, err)
		for _, b := range bs {
			all += b.Stats.NumSamples
			if _, err := os.Stat(filepath.Join(bucketDir, tenant, b.ULID, "deletion-mark.json")); err != nil {
				live += b.Stats.NumSamples
			}
		}
		return all, live
	}
	// Every acknowledged sample is on a quorum (2 of 3) of replicas; usually
	// on all three.
	all, _ := sumSamples()
	require.GreaterOrEqual(t, all, uint64(2*pushed), "before compaction each sample is stored by at least a quorum of replicas")
	require.LessOrEqual(t, all, uint64(3*pushed))
	t.Logf("before compaction: %d samples in object storage for %d pushed (%.2f×)", all, pushed, float64(all)/float64(pushed))

	window := fmt.Sprintf("%dm", int(end.Sub(start).Minutes())+1)
	counts := func() model.Vector {
		return q.Client(tenant).Query(`sum by (s) (count_over_time(compact_metric[`+window+`]))`, end).Vector(t)
	}
	sums := func() map[string]float64 {
		out := map[string]float64{}
		for _, s := range q.Client(tenant).Query(`sum by (s) (sum_over_time(compact_metric[`+window+`]))`, end).Vector(t) {
			out[string(s.Metric["s"])] = float64(s.Value)
		}
		return out
	}
	before := counts()
	require.Len(t, before, 20)
	for _, s := range before {
		require.EqualValues(t, pushed/20, s.Value, "series %s counted once", s.Metric)
	}
	require.Equal(t, wantSum, sums())

	// The compactor runs at start and then every 2 s; marked blocks go at once.
	c.Start(harness.Options{Target: "compactor", Name: "compactor", Args: []string{
		"-compactor.compaction-interval=2s", "-compactor.deletion-delay=0s",
	}})
	requireEventually(t, 90*time.Second, 500*time.Millisecond, "replica blocks merged and deleted", func() bool {
		all, live := sumSamples()
		return live == uint64(pushed) && all == uint64(pushed)
	})
	_, err := os.Stat(filepath.Join(bucketDir, tenant, "bucket-index.json.gz"))
	require.NoError(t, err, "the compactor writes a bucket index")

	// The querier's answers are the same from the compacted blocks (the
	// ingesters' flushed heads are gone from memory, so this reads storage).
	requireEventually(t, 30*time.Second, time.Second, "querier answers unchanged after compaction", func() bool {
		return counts().String() == before.String()
	})
	require.Equal(t, wantSum, sums())
}

// TestCompactorsShardTenants: two compactors share the bucket's tenants
// through the compactor ring. Once both are ACTIVE, every tenant is
// compacted by exactly one of them, the other skips it, and together they
// leave each tenant's samples stored exactly once.
func TestCompactorsShardTenants(t *testing.T) {
	const metric, tenants = "shard_metric", 8
	c := harness.NewCluster(t, harness.ClusterOptions{})
	ingesters, ids := c.StartZonedIngesters("shard", 3)
	dist := c.StartDistributor(false)
	requireEventually(t, 30*time.Second, 200*time.Millisecond, "all three ingesters ACTIVE", func() bool {
		return harness.RingActiveExactly(dist, ids...) == nil
	})

	compactorArgs := []string{
		"-compactor.compaction-interval=2s", "-compactor.deletion-delay=0s",
		"-compactor.ring.heartbeat-period=1s", "-compactor.ring.heartbeat-timeout=10s",
	}
	var compactors []*harness.Process
	for i := 1; i <= 2; i++ {
		compactors = append(compactors, c.Start(harness.Options{Target: "compactor", Name: fmt.Sprintf("compactor-%d", i), Args: compactorArgs}))
	}
	// Ownership is exclusive once every compactor sees the same ring: wait
	// for that before the tenants' blocks exist.
	for _, comp := range compactors {
		harness.Eventually(t, 30*time.Second, 200*time.Millisecond, comp.Name()+" sees both compactors ACTIVE", func() error {
			members, err := comp.RingAt("/compactor/ring")
			if err != nil {
				return err
			}
			active := 0
			for _, m := range members {
				if m.State == "ACTIVE" {
					active++
				}
			}
			if active != 2 {
				return fmt.Errorf("%d of %d compactors ACTIVE: %v", active, len(members), members)
			}
			return nil
		})
	}

	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	start := end.Add(-5 * time.Hour)
	pushed := map[string]int{}
	for i := range tenants {
		tenant := fmt.Sprintf("shard-%d", i)
		pushed[tenant], _ = ltPush(t, dist, tenant, metric, start, end)
	}
	ltFlush(t, ingesters...)

	for tenant, n := range pushed {
		requireEventually(t, 90*time.Second, 500*time.Millisecond, "replica blocks of "+tenant+" merged and deleted", func() bool {
			all, live := ltBucketSamples(t, c, tenant)
			return all == uint64(n) && live == uint64(n)
		})
	}

	owned := map[string]int{} // compactor name -> tenants it compacted
	for tenant := range pushed {
		var by []string
		for _, comp := range compactors {
			if len(comp.LogLines("compacted blocks", "tenant="+tenant+" ")) > 0 {
				by = append(by, comp.Name())
			}
		}
		require.Len(t, by, 1, "tenant %s compacted by exactly one compactor", tenant)
		owned[by[0]]++
	}
	t.Logf("tenants compacted: %v", owned)
	for i, comp := range compactors {
		other := compactors[1-i].Name()
		requireEventually(t, 10*time.Second, 500*time.Millisecond, comp.Name()+" skips the tenants of "+other, func() bool {
			skipped, _ := comp.Metric("meridian_compactor_tenants_skipped_total", nil)
			return skipped >= float64(owned[other])
		})
	}
}
