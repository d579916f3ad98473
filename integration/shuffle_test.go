package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// TestShuffleSharding runs 1 distributor, 6 ingesters in 3 zones
// (replication factor 3, zone awareness) and 1 querier, with per-tenant
// shard sizes in a runtime overrides file:
//   - a tenant with ingestion_tenant_shard_size 3 has its series on exactly
//     3 ingesters (each ingester's meridian_ingester_tenant_memory_series);
//   - growing its shard to 6 and shrinking it back to 3 keeps every sample
//     queryable, the same answer before and after each change;
//   - another tenant flooding new series past its own series limit leaves
//     the first tenant's concurrent writes all accepted and none lost.
func TestShuffleSharding(t *testing.T) {
	const (
		tenant = "shard-a"
		flood  = "shard-flood"
		metric = "shard_metric"
		series = 20
	)
	overrides := filepath.Join(t.TempDir(), "overrides.yaml")
	writeOverrides := func(size int) {
		t.Helper()
		body := fmt.Sprintf("overrides:\n  %s:\n    ingestion_tenant_shard_size: %d\n  %s:\n    ingestion_tenant_shard_size: 3\n    max_global_series_per_tenant: 60\n", tenant, size, flood)
		require.NoError(t, os.WriteFile(overrides, []byte(body), 0o644))
	}
	writeOverrides(3)

	c := harness.NewCluster(t, harness.ClusterOptions{ZoneAwareness: true, Args: []string{
		"-runtime-config.file=" + overrides, "-runtime-config.reload-period=1s",
	}})
	dist := c.StartDistributor(true)
	var ids []string
	ingesters := map[string]*harness.Process{}
	for i := 1; i <= 6; i++ {
		id := fmt.Sprintf("shard-ing-%d", i)
		ids = append(ids, id)
		ingesters[id] = c.StartIngester(id, fmt.Sprintf("zone-%d", (i-1)%3+1))
	}
	dist.WaitReady(ringWait)
	// A short lookback: the querier reads every ingester only for 5s after
	// it starts, and a shrunk shard's larger one for 5s after it saw it.
	querier := c.StartQuerier("-querier.shuffle-sharding-ingesters-lookback-period=5s")
	querierStart := time.Now()
	for _, p := range []*harness.Process{dist, querier} {
		harness.Eventually(t, ringWait, 100*time.Millisecond, "6 ingesters ACTIVE", func() error {
			return harness.RingActiveExactly(p, ids...)
		})
	}

	// holders maps the ingesters holding the tenant's in-memory series to
	// how many.
	holders := func(tn string) map[string]int {
		out := map[string]int{}
		for id, p := range ingesters {
			if n, ok := p.Metric("meridian_ingester_tenant_memory_series", map[string]string{"tenant": tn}); ok && n > 0 {
				out[id] = int(n)
			}
		}
		return out
	}
	batch := func(b int, ts time.Time) []prompb.TimeSeries {
		out := make([]prompb.TimeSeries, series)
		for s := range out {
			out[s] = harness.Series([]string{"__name__", metric, "series", strconv.Itoa(s)}, harness.Sample(ts, float64(s*1000+b)))
		}
		return out
	}
	pushed := 0
	push := func(b int) {
		t.Helper()
		code, body := dist.Push(tenant, batch(b, time.Now())...)
		require.Equal(t, 200, code, body)
		pushed += series
	}
	// samples is the number of the tenant's samples the querier returns.
	samples := func() int {
		t.Helper()
		v := querier.Query(tenant, "sum(count_over_time("+metric+"[1h]))", time.Now()).Vector(t)
		if len(v) == 0 {
			return 0
		}
		return int(v[0].Value)
	}
	// waitShardSize waits until the distributor and the querier apply size.
	waitShardSize := func(size int) {
		t.Helper()
		want := fmt.Sprintf("ingestion_tenant_shard_size: %d", size)
		for _, p := range []*harness.Process{dist, querier} {
			harness.Eventually(t, 20*time.Second, 200*time.Millisecond, p.Name()+" reloaded the overrides", func() error {
				code, body := p.Get("/runtime_config?mode=diff")
				if code != 200 || !strings.Contains(string(body), tenant+":\n    "+want) {
					return fmt.Errorf("HTTP %d: %s", code, body)
				}
				return nil
			})
		}
	}

	// Shard size 3 at RF 3: every series on the same 3 ingesters, one
	// per zone.
	push(1)
	got := holders(tenant)
	require.Len(t, got, 3, "the tenant's series live on exactly 3 ingesters: %v", got)
	for id, n := range got {
		require.Equal(t, series, n, "ingester %s holds every series of the tenant", id)
	}

	// Past the querier's start-up window it reads only the shard: the
	// same answer.
	time.Sleep(time.Until(querierStart.Add(6 * time.Second)))
	require.Equal(t, pushed, samples())

	// Growing the shard: new samples spread over more ingesters; the old
	// ones stay where they are, in the larger shard.
	writeOverrides(6)
	waitShardSize(6)
	require.Equal(t, pushed, samples(), "same answer after growing the shard")
	push(2)
	got = holders(tenant)
	require.Greater(t, len(got), 3, "the grown shard spreads the series: %v", got)
	require.Equal(t, pushed, samples())

	// Shrinking it back: ingesters that left the shard still hold samples
	// of batch 2, and the querier reads them.
	writeOverrides(3)
	waitShardSize(3)
	require.Equal(t, pushed, samples(), "same answer after shrinking the shard")
	push(3)
	require.Equal(t, pushed, samples())

	// A flood of new series of another tenant, past its series limit,
	// while the first tenant keeps writing: every write of the first
	// tenant is accepted, and all its samples are there.
	var wg sync.WaitGroup
	floodRejected := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := 0; b < 10; b++ {
			ts := make([]prompb.TimeSeries, 100)
			for s := range ts {
				ts[s] = harness.Series([]string{"__name__", "flood_metric", "series", strconv.Itoa(b*100 + s)}, harness.Sample(time.Now(), 1))
			}
			code, body := dist.Push(flood, ts...)
			if code == 400 && strings.Contains(body, "err-meridian-max-series-per-tenant") {
				floodRejected++
			} else if code != 200 {
				t.Errorf("flood push: HTTP %d: %.300s", code, body)
			}
		}
	}()
	for b := 4; b < 14; b++ {
		push(b)
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	require.Positive(t, floodRejected, "the flood hit its own series limit")
	require.Len(t, holders(flood), 3, "the flood's series live on its own 3 ingesters: %v", holders(flood))
	require.Equal(t, pushed, samples(), "every sample of the first tenant, none lost")
}
