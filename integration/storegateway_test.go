package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// sgAnswers runs a fixed query set and returns its answers as text, or an
// error when one of them failed.
func sgAnswers(q *harness.Process, tenant, metric string, start, end time.Time) (string, error) {
	window := fmt.Sprintf("%dm", int(end.Sub(start).Minutes())+1)
	queries := []*harness.Response{
		q.Client(tenant).Query(`sum by (s) (count_over_time(`+metric+`[`+window+`]))`, end),
		q.Client(tenant).Query(`sum by (s) (sum_over_time(`+metric+`[`+window+`]))`, end),
		q.Client(tenant).Query(`max_over_time(`+metric+`{s=~"[357]"}[`+window+`])`, end),
		q.Client(tenant).QueryRange(`sum(rate(`+metric+`[10m]))`, start.Add(10*time.Minute), end, 7*time.Minute),
		q.Client(tenant).QueryRange(metric+`{s="4"}`, start, end, 3*time.Minute),
		q.Client(tenant).LabelValues("s", []string{metric}, start, end),
		q.Client(tenant).Series([]string{metric + `{s!="1"}`}, start, end),
	}
	var b strings.Builder
	for i, r := range queries {
		if r.Status != "success" {
			return "", fmt.Errorf("query %d: %s", i, r)
		}
		fmt.Fprintf(&b, "%d: %s\n", i, r.Data)
	}
	return b.String(), nil
}

// TestStoreGatewaysServeCompactedBlocks: three ingesters at RF 3 ship
// blocks, the compactor deduplicates them, two store-gateways (replication
// 2) serve them to a querier of its own. The fixed query set answers the
// same before and after compaction; object storage holds each sample once;
// with one store-gateway killed answers stay complete; a truncated block
// fails queries over it with an error naming it, and the store-gateway
// stays up.
func TestStoreGatewaysServeCompactedBlocks(t *testing.T) {
	const tenant, badTenant, metric = "sg-main", "sg-bad", "sg_metric"
	c := harness.NewCluster(t, harness.ClusterOptions{})
	// Shipped blocks leave the ingesters at once: answers come from storage.
	ingesters, ids := c.StartZonedIngesters("sg", 3, "-ingester.retention-period=1s")
	dist := c.StartDistributor(false)
	sgArgs := []string{"-store-gateway.ring.replication-factor=2", "-store-gateway.sync-interval=1s", "-store-gateway.ring.heartbeat-period=1s"}
	var gateways []*harness.Process
	for i := 1; i <= 2; i++ {
		gateways = append(gateways, c.Start(harness.Options{Target: "store-gateway", Name: fmt.Sprintf("store-gateway-%d", i), Args: sgArgs}))
	}
	q := c.Start(harness.Options{Target: "querier", Name: "querier", Args: []string{"-store-gateway.ring.replication-factor=2", "-querier.bucket-sync-interval=1s"}})
	for _, p := range []*harness.Process{dist, q} {
		requireEventually(t, 30*time.Second, 200*time.Millisecond, "all three ingesters ACTIVE in every ring", func() bool {
			return harness.RingActiveExactly(p, ids...) == nil
		})
	}
	requireEventually(t, 30*time.Second, 200*time.Millisecond, "both store-gateways in the querier's store-gateway ring", func() bool {
		code, body := q.Get("/store-gateway/ring")
		return code == 200 && strings.Contains(string(body), "store-gateway-1@") && strings.Contains(string(body), "store-gateway-2@")
	})

	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	start := end.Add(-5 * time.Hour)
	pushed, _ := ltPush(t, dist, tenant, metric, start, end)
	badPushed, _ := ltPush(t, dist, badTenant, metric, start, end)
	ltFlush(t, ingesters...)

	all, _ := ltBucketSamples(t, c, tenant)
	require.GreaterOrEqual(t, all, uint64(2*pushed), "before compaction each sample is stored by at least a quorum of replicas")
	t.Logf("before compaction: %d samples in object storage for %d pushed (%.2fx)", all, pushed, float64(all)/float64(pushed))

	var before string
	harness.Eventually(t, 60*time.Second, time.Second, "full answers from the store-gateways", func() error {
		ans, err := sgAnswers(q, tenant, metric, start, end)
		if err != nil {
			return err
		}
		_, n := ltSums(t, q, tenant, metric, end, end.Sub(start)+time.Minute)
		if int(n) != pushed {
			return fmt.Errorf("counted %v samples, pushed %d", n, pushed)
		}
		before = ans
		return nil
	})
	served := 0.0
	for _, g := range gateways {
		v, _ := g.Metric("meridian_storegateway_requests_total", map[string]string{"method": "Series", "status": "success"})
		served += v
	}
	require.Positive(t, served, "the store-gateways served the queries")
	loadedBefore := 0.0
	for _, g := range gateways {
		v, _ := g.Metric("meridian_storegateway_blocks_loaded", nil)
		loadedBefore += v
	}
	require.Positive(t, loadedBefore)

	comp := c.Start(harness.Options{Target: "compactor", Name: "compactor", Args: []string{
		"-compactor.compaction-interval=2s", "-compactor.deletion-delay=0s",
	}})
	requireEventually(t, 90*time.Second, 500*time.Millisecond, "replica blocks merged and deleted", func() bool {
		all, live := ltBucketSamples(t, c, tenant)
		badAll, badLive := ltBucketSamples(t, c, badTenant)
		return all == uint64(pushed) && live == uint64(pushed) && badAll == uint64(badPushed) && badLive == uint64(badPushed)
	})
	comp.Stop()
	all, _ = ltBucketSamples(t, c, tenant)
	require.EqualValues(t, pushed, all, "object storage holds each sample once")

	harness.Eventually(t, 30*time.Second, time.Second, "same answers from the compacted blocks", func() error {
		after, err := sgAnswers(q, tenant, metric, start, end)
		if err != nil {
			return err
		}
		if after != before {
			return fmt.Errorf("answers differ:\nbefore %s\nafter  %s", before, after)
		}
		return nil
	})

	// One store-gateway down: its blocks are asked of the other owner. The
	// querier asks each block's first owner in ring order, so kill one
	// that the compacted blocks are routed to (the other may own none first).
	seriesServed := func(g *harness.Process) float64 {
		v, _ := g.Metric("meridian_storegateway_requests_total", map[string]string{"method": "Series", "status": "success"})
		return v
	}
	served0, served1 := seriesServed(gateways[0]), seriesServed(gateways[1])
	_, err := sgAnswers(q, tenant, metric, start, end)
	require.NoError(t, err)
	if seriesServed(gateways[0]) == served0 && seriesServed(gateways[1]) > served1 {
		gateways[0], gateways[1] = gateways[1], gateways[0]
	}
	gateways[0].Kill()
	for i := 0; i < 3; i++ {
		after, err := sgAnswers(q, tenant, metric, start, end)
		require.NoError(t, err, "with one store-gateway killed")
		require.Equal(t, before, after, "complete answers with one store-gateway killed")
	}
	retries, _ := q.Metric("meridian_querier_storegateway_retries_total", nil)
	require.Positive(t, retries, "blocks of the killed store-gateway were retried on the other")

	// A truncated block of the other tenant, never read before: queries
	// over it fail naming it; the store-gateway stays up.
	idx, err := c.ReadBucketIndex(badTenant)
	require.NoError(t, err)
	require.NotEmpty(t, idx.Blocks)
	bad := idx.Blocks[len(idx.Blocks)-1]
	p := filepath.Join(c.BucketDir(), badTenant, bad.ULID.String(), "index")
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(p, fi.Size()/2))
	r := q.Client(badTenant).Query(`sum(count_over_time(`+metric+`[10m]))`, time.UnixMilli(bad.MaxTime-60_000))
	require.Equal(t, "error", r.Status, "a clear API error: %s", r)
	require.Contains(t, r.Error, bad.ULID.String(), "the error names the block: %s", r)
	require.Contains(t, r.Error, "truncated", "the error says what is wrong: %s", r)
	require.True(t, gateways[1].Running(), "the store-gateway stays up")
	code, _ := gateways[1].Get("/ready")
	require.Equal(t, 200, code)
	failures, _ := gateways[1].Metric("meridian_storegateway_block_load_failures_total", nil)
	require.Positive(t, failures, "the failed load is counted")
	require.NotEmpty(t, gateways[1].LogLines("block could not be loaded", bad.ULID.String()), "the failure is logged with the block")
	// The healthy tenant still answers in full.
	after, err := sgAnswers(q, tenant, metric, start, end)
	require.NoError(t, err)
	require.Equal(t, before, after)
}
