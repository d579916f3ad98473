package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

const ltSeries = 10

// ltPush pushes ltSeries series of metric, one sample a minute over
// [start, end], in time order in 30-minute batches, and returns how many
// samples it pushed and the sum of their values per series.
func ltPush(t *testing.T, dist *harness.Process, tenant, metric string, start, end time.Time) (int, map[string]float64) {
	t.Helper()
	pushed := 0
	sums := map[string]float64{}
	for batchStart := start; !batchStart.After(end); batchStart = batchStart.Add(30 * time.Minute) {
		var series []prompb.TimeSeries
		for s := 0; s < ltSeries; s++ {
			var samples []prompb.Sample
			for ts := batchStart; ts.Before(batchStart.Add(30*time.Minute)) && !ts.After(end); ts = ts.Add(time.Minute) {
				v := float64(ts.Unix()%1000 + int64(s))
				samples = append(samples, harness.Sample(ts, v))
				sums[fmt.Sprint(s)] += v
				pushed++
			}
			series = append(series, harness.Series([]string{"__name__", metric, "s", fmt.Sprint(s)}, samples...))
		}
		code, body := dist.Push(tenant, series...)
		requirePushed(t, code, body)
	}
	return pushed, sums
}

// ltFlush makes the ingesters cut and ship everything they hold.
func ltFlush(t *testing.T, ingesters ...*harness.Process) {
	t.Helper()
	for _, ing := range ingesters {
		code, body := ing.PostPath("", "/ingester/flush?wait=true")
		require.Equal(t, 200, code, string(body))
	}
}

// ltTrySums is ltSums that reports a failed query instead of failing the
// test: right after a flush an ingester may briefly fail a query.
func ltTrySums(t *testing.T, q *harness.Process, tenant, metric string, end time.Time, window time.Duration) (float64, error) {
	t.Helper()
	r := q.Client(tenant).Query(`sum(count_over_time(`+metric+`[`+fmt.Sprintf("%dm", int(window.Minutes()))+`]))`, end)
	if r.Status != "success" {
		return 0, fmt.Errorf("query: %s", r)
	}
	var v model.Vector
	if err := json.Unmarshal(r.Data, &struct {
		Result *model.Vector `json:"result"`
	}{&v}); err != nil {
		return 0, err
	}
	if len(v) == 0 {
		return 0, nil
	}
	return float64(v[0].Value), nil
}

// ltSums asks the querier for the per-series sum and count of metric over
// [end-window, end].
func ltSums(t *testing.T, q *harness.Process, tenant, metric string, end time.Time, window time.Duration) (map[string]float64, float64) {
	t.Helper()
	w := fmt.Sprintf("%dm", int(window.Minutes()))
	sums := map[string]float64{}
	for _, s := range q.Client(tenant).Query(`sum by (s) (sum_over_time(`+metric+`[`+w+`]))`, end).Vector(t) {
		sums[string(s.Metric["s"])] = float64(s.Value)
	}
	var count float64
	for _, s := range q.Client(tenant).Query(`sum(count_over_time(`+metric+`[`+w+`]))`, end).Vector(t) {
		count = float64(s.Value)
	}
	return sums, count
}

// ltSingleIngester starts a cluster of one ingester (RF 1), a distributor
// and a querier.
func ltSingleIngester(t *testing.T) (*harness.Cluster, *harness.Process, *harness.Process) {
	t.Helper()
	c := harness.NewCluster(t, harness.ClusterOptions{ReplicationFactor: 1})
	ing := c.StartIngester("lt-ing-1", "zone-1")
	dist := c.StartDistributor(false)
	requireEventually(t, 30*time.Second, 200*time.Millisecond, "the ingester ACTIVE in the distributor's ring", func() bool {
		return harness.RingActiveExactly(dist, "lt-ing-1") == nil
	})
	return c, ing, dist
}

// ltBucketBlocks reads the tenant's complete blocks in the bucket.
func ltBucketBlocks(t *testing.T, c *harness.Cluster, tenant string) []harness.BucketBlock {
	t.Helper()
	blocks, err := c.BucketBlocks(tenant)
	require.NoError(t, err)
	return blocks
}

// ltBucketSamples sums the samples of the tenant's complete blocks: all of
// them, and those not marked for deletion.
func ltBucketSamples(t *testing.T, c *harness.Cluster, tenant string) (all, live uint64) {
	t.Helper()
	blocks := ltBucketBlocks(t, c, tenant)
	for _, b := range blocks {
		all += b.Stats.NumSamples
		if _, err := os.Stat(filepath.Join(c.BucketDir(), tenant, b.ULID, "deletion-mark.json")); err != nil {
			live += b.Stats.NumSamples
		}
	}
	return all, live
}

// ltCompleteBlocks returns the tenant's complete blocks by ULID.
func ltCompleteBlocks(t *testing.T, c *harness.Cluster, tenant string) map[string]harness.BucketBlock {
	t.Helper()
	blocks := ltBucketBlocks(t, c, tenant)
	out := map[string]harness.BucketBlock{}
	for _, b := range blocks {
		out[b.ULID] = b
	}
	return out
}

// ltIndexSettled reports whether the tenant's bucket index lists exactly
// the complete blocks in the bucket and no deletion marks. Block
// directories without meta.json fail it.
func ltIndexSettled(c *harness.Cluster, tenant string) error {
	idx, err := c.ReadBucketIndex(tenant)
	if err != nil {
		return err
	}
	dirs, err := c.BlockDirs(tenant)
	if err != nil {
		return err
	}
	var inIndex, inBucket []string
	for _, b := range idx.Blocks {
		inIndex = append(inIndex, b.ULID.String())
	}
	for id, complete := range dirs {
		if !complete {
			return fmt.Errorf("block %s has no meta.json", id)
		}
		inBucket = append(inBucket, id)
	}
	slices.Sort(inIndex)
	slices.Sort(inBucket)
	if !slices.Equal(inIndex, inBucket) || len(idx.DeletionMarks) > 0 {
		return fmt.Errorf("index lists %v with %d marks, bucket holds %v", inIndex, len(idx.DeletionMarks), inBucket)
	}
	return nil
}

// TestLongTermCompactorKilledMidCompaction kills the compactor with SIGKILL
// at several points of its work and restarts it: the querier's answers
// never change, it never loads a block without meta.json, and once the
// compactor finishes the bucket holds every sample exactly once and no
// upload cut short by a kill is left behind.
func TestLongTermCompactorKilledMidCompaction(t *testing.T) {
	const tenant, metric = "lt-kill", "lt_kill_metric"
	c := harness.NewCluster(t, harness.ClusterOptions{})
	ingesters, ids := c.StartZonedIngesters("ltk", 3)
	dist := c.StartDistributor(false)
	q := c.StartQuerier()
	for _, p := range []*harness.Process{dist, q} {
		requireEventually(t, 30*time.Second, 200*time.Millisecond, "all three ingesters ACTIVE", func() bool {
			return harness.RingActiveExactly(p, ids...) == nil
		})
	}

	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	start := end.Add(-13 * time.Hour)
	pushed, wantSums := ltPush(t, dist, tenant, metric, start, end)
	ltFlush(t, ingesters...)
	all, _ := ltBucketSamples(t, c, tenant)
	require.GreaterOrEqual(t, all, uint64(2*pushed), "each sample is on at least a quorum of replicas")

	window := end.Sub(start) + 2*time.Minute
	harness.Eventually(t, 30*time.Second, time.Second, "the querier answers from every shipped block", func() error {
		n, err := ltTrySums(t, q, tenant, metric, end, window)
		if err == nil && n != float64(pushed) {
			err = fmt.Errorf("counted %v samples, pushed %d", n, pushed)
		}
		return err
	})
	beforeSums, beforeCount := ltSums(t, q, tenant, metric, end, window)
	require.Equal(t, wantSums, beforeSums)

	// checkQuerier: same answers, and no block the querier loaded lacks
	// a meta.json in the bucket (partial uploads of the killed compactor).
	// A block whose deletion was cut short lacks its meta.json too (the
	// compactor deletes it first and the deletion mark last), but it was
	// complete when the querier loaded it: its mark tells it apart.
	partial, halfDeleted := 0, 0 // block directories without meta.json seen
	checkQuerier := func(when string) {
		t.Helper()
		sums, count := ltSums(t, q, tenant, metric, end, window)
		require.Equal(t, beforeCount, count, "%s: samples counted once", when)
		require.Equal(t, beforeSums, sums, "%s: sums unchanged", when)
		dirs, err := c.BlockDirs(tenant)
		require.NoError(t, err)
		for id, complete := range dirs {
			if complete {
				continue
			}
			if _, err := os.Stat(filepath.Join(c.BucketDir(), tenant, id, "deletion-mark.json")); err == nil {
				halfDeleted++
				continue
			}
			partial++
			require.Empty(t, q.LogLines("loaded block", id), "%s: the querier loaded block %s, which has no meta.json", when, id)
			_, err := os.Stat(filepath.Join(q.DataDir(), "store-gateway", tenant, id))
			require.True(t, os.IsNotExist(err), "%s: block %s without meta.json has an index header in the store-gateway", when, id)
		}
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
	comp := c.Start(harness.Options{Target: "compactor", Name: "compactor", Args: []string{
		"-compactor.compaction-interval=2s", "-compactor.deletion-delay=0s",
		// Nothing but the compactor writes blocks once the ingesters
		// flushed, so its partial uploads may go as soon as it restarts.
		"-compactor.partial-block-deletion-delay=1s",
	}})
	kills := 0
	for round := 0; round < 6; round++ {
		if round > 0 {
			comp.Start()
		}
		// Kill right after a group was written locally (its upload is under
		// way), right after one was uploaded and marked (the next is under
		// way), or at a random point.
		var waitFor string
		switch round % 3 {
		case 0:
			waitFor = `"compact blocks"` // TSDB wrote the block; upload next.
		case 1:
			waitFor = "compacted blocks"
		}
		if waitFor != "" {
			seen := comp.CountLogLines(waitFor)
			// Without the line within 8 s, kill at whatever point it is.
			_ = harness.Retry(context.Background(), 8*time.Second, 2*time.Millisecond, func() error {
				if comp.CountLogLines(waitFor) == seen {
					return errors.New("no new line")
				}
				return nil
			})
		} else {
			time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		}
		comp.Kill()
		kills++
		checkQuerier(fmt.Sprintf("after kill %d", kills))
	}
	t.Logf("killed the compactor %d times; %d compactions logged; %d sightings of partial uploads and %d of half-deleted blocks", kills, comp.CountLogLines("compacted blocks"), partial, halfDeleted)

	comp.Start()
	requireEventually(t, 90*time.Second, 500*time.Millisecond, "replica blocks merged and the sources deleted", func() bool {
		all, live := ltBucketSamples(t, c, tenant)
		return all == uint64(pushed) && live == uint64(pushed)
	})
	// Every block directory is complete and one the final index knows:
	// the uploads cut short by a kill were deleted. The querier answers
	// the same once it synced the compacted blocks.
	harness.Eventually(t, 30*time.Second, 500*time.Millisecond, "bucket index in line with the bucket, no partial uploads left", func() error {
		return ltIndexSettled(c, tenant)
	})
	requireEventually(t, 30*time.Second, time.Second, "the querier syncs the compacted blocks", func() bool {
		got, _ := q.Metric("meridian_storegateway_blocks_owned", nil)
		return int(got) == len(ltCompleteBlocks(t, c, tenant))
	})
	checkQuerier("after the compactor finished")
	cleaned, _ := comp.Metric("meridian_compactor_partial_blocks_deleted_total", nil)
	t.Logf("the last compactor run deleted %v partial uploads", cleaned)
	require.True(t, q.Running(), "the querier stays up")
}

// TestLongTermRetentionRemovesExpiredBlocks: with a 24h retention for one
// tenant, the compactor removes exactly that tenant's blocks older than
// 24h; its recent blocks and another tenant's old blocks stay.
func TestLongTermRetentionRemovesExpiredBlocks(t *testing.T) {
	const retained, kept, metric = "lt-retained", "lt-kept", "lt_ret_metric"
	c, ing, dist := ltSingleIngester(t)
	q := c.StartQuerier()

	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	// Old data 55-60h ago: every block that can hold it (at most 24h long)
	// ends more than 24h ago, and none also holds the recent data.
	oldStart, oldEnd := end.Add(-60*time.Hour), end.Add(-55*time.Hour)
	recentStart := end.Add(-2 * time.Hour)
	oldPushed := map[string]int{}
	recentPushed := map[string]int{}
	// Old data first: a fresh TSDB takes any first timestamp, then in
	// order. A flush in between ships the old data in blocks of its own.
	for _, tenant := range []string{retained, kept} {
		oldPushed[tenant], _ = ltPush(t, dist, tenant, metric, oldStart, oldEnd)
	}
	ltFlush(t, ing)
	for _, tenant := range []string{retained, kept} {
		recentPushed[tenant], _ = ltPush(t, dist, tenant, metric, recentStart, end)
	}
	ltFlush(t, ing)

	cutoff := end.Add(-50 * time.Hour).UnixMilli()
	oldBlocks, recentBlocks := map[string]map[string]bool{}, map[string]map[string]bool{}
	for _, tenant := range []string{retained, kept} {
		oldBlocks[tenant], recentBlocks[tenant] = map[string]bool{}, map[string]bool{}
		var oldSamples, recentSamples uint64
		for id, b := range ltCompleteBlocks(t, c, tenant) {
			if b.MaxTime <= cutoff {
				oldBlocks[tenant][id] = true
				oldSamples += b.Stats.NumSamples
			} else {
				recentBlocks[tenant][id] = true
				recentSamples += b.Stats.NumSamples
			}
		}
		// The sample counts show no block mixes old and recent data (a
		// block's MinTime may be the head's truncation point, not its
		// first sample).
		require.EqualValues(t, oldPushed[tenant], oldSamples, "tenant %s: old samples shipped", tenant)
		require.EqualValues(t, recentPushed[tenant], recentSamples, "tenant %s: recent samples shipped", tenant)
		require.NotEmpty(t, oldBlocks[tenant])
	}

	recentWindow := end.Sub(recentStart) + 2*time.Minute
	oldWindow := oldEnd.Sub(oldStart) + 2*time.Minute
	requireEventually(t, 30*time.Second, time.Second, "the querier answers from the shipped blocks", func() bool {
		n, err1 := ltTrySums(t, q, retained, metric, end, recentWindow)
		m, err2 := ltTrySums(t, q, kept, metric, oldEnd, oldWindow)
		return err1 == nil && err2 == nil && n == float64(recentPushed[retained]) && m == float64(oldPushed[kept])
	})
	recentBefore, _ := ltSums(t, q, retained, metric, end, recentWindow)
	keptOldBefore, _ := ltSums(t, q, kept, metric, oldEnd, oldWindow)

	runtimeCfg := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(runtimeCfg, []byte("overrides:\n  "+retained+":\n    compactor_blocks_retention_period: 24h\n"), 0o644))
	// One block range: the compactor only applies retention (RF 1 leaves no
	// replicas to merge), so the surviving blocks keep their ULIDs.
	comp := c.Start(harness.Options{Target: "compactor", Name: "compactor", Args: []string{
		"-runtime-config.file=" + runtimeCfg,
		"-compactor.compaction-interval=2s", "-compactor.deletion-delay=0s", "-compactor.block-ranges=2h",
	}})

	harness.Eventually(t, 60*time.Second, 500*time.Millisecond, "the expired blocks of "+retained+" deleted", func() error {
		dirs, err := c.BlockDirs(retained)
		if err != nil {
			return err
		}
		var ids []string
		for id := range dirs {
			ids = append(ids, id)
		}
		for id := range oldBlocks[retained] {
			if _, ok := dirs[id]; ok {
				return fmt.Errorf("expired block %s still in the bucket (blocks: %v)", id, ids)
			}
		}
		return nil
	})
	for _, tenant := range []string{retained, kept} {
		harness.Eventually(t, 30*time.Second, 500*time.Millisecond, "bucket index of "+tenant+" settled", func() error {
			return ltIndexSettled(c, tenant)
		})
	}

	// Retention marked exactly the expired blocks of the tenant with
	// retention, and nothing of the other tenant.
	marked := map[string]bool{}
	blockRe := regexp.MustCompile(`block=([0-9A-Z]{26})`)
	for _, line := range comp.LogLines("marked block past retention for deletion") {
		m := blockRe.FindStringSubmatch(line)
		require.NotNil(t, m, line)
		require.Contains(t, line, "tenant="+retained, line)
		marked[m[1]] = true
	}
	require.Equal(t, oldBlocks[retained], marked)

	// What is left: the recent samples of the tenant with retention, and
	// every sample of the other. The ingesters' blocks may overlap, so the
	// compactor may have merged some (with new ULIDs); samples are what
	// must stay.
	for tenant, want := range map[string][2]int{retained: {0, recentPushed[retained]}, kept: {oldPushed[kept], recentPushed[kept]}} {
		var oldSamples, recentSamples uint64
		for _, b := range ltCompleteBlocks(t, c, tenant) {
			if b.MaxTime <= cutoff {
				oldSamples += b.Stats.NumSamples
			} else {
				recentSamples += b.Stats.NumSamples
			}
		}
		require.EqualValues(t, want[0], oldSamples, "tenant %s: old samples left", tenant)
		require.EqualValues(t, want[1], recentSamples, "tenant %s: recent samples left", tenant)
	}

	// Queries over the recent range, and over the kept tenant's old data,
	// answer as before.
	requireEventually(t, 30*time.Second, time.Second, "the querier dropped the expired blocks", func() bool {
		got, _ := q.Metric("meridian_storegateway_blocks_owned", nil)
		return int(got) == len(ltCompleteBlocks(t, c, retained))+len(ltCompleteBlocks(t, c, kept))
	})
	recentAfter, n := ltSums(t, q, retained, metric, end, recentWindow)
	require.Equal(t, recentBefore, recentAfter)
	require.EqualValues(t, recentPushed[retained], n)
	keptOldAfter, _ := ltSums(t, q, kept, metric, oldEnd, oldWindow)
	require.Equal(t, keptOldBefore, keptOldAfter)
}

// TestLongTermTenantDeletion: deleting one tenant removes every object of
// that tenant and leaves the other tenant's objects as they were.
func TestLongTermTenantDeletion(t *testing.T) {
	const doomed, survivor, metric = "lt-doomed", "lt-survivor", "lt_del_metric"
	c, ing, dist := ltSingleIngester(t)
	q := c.StartQuerier()

	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	start := end.Add(-5 * time.Hour)
	pushed := map[string]int{}
	for _, tenant := range []string{doomed, survivor} {
		pushed[tenant], _ = ltPush(t, dist, tenant, metric, start, end)
	}
	ltFlush(t, ing)

	comp := c.Start(harness.Options{Target: "compactor", Name: "compactor", Args: []string{
		"-compactor.compaction-interval=2s", "-compactor.deletion-delay=0s",
		"-compactor.tenant-cleanup-delay=0s", "-compactor.block-ranges=2h",
	}})
	for _, tenant := range []string{doomed, survivor} {
		harness.Eventually(t, 30*time.Second, 500*time.Millisecond, "bucket index of "+tenant, func() error {
			return ltIndexSettled(c, tenant)
		})
	}
	window := end.Sub(start) + 2*time.Minute
	requireEventually(t, 30*time.Second, time.Second, "the querier answers from the shipped blocks", func() bool {
		n, err := ltTrySums(t, q, survivor, metric, end, window)
		return err == nil && n == float64(pushed[survivor])
	})
	survivorSums, _ := ltSums(t, q, survivor, metric, end, window)

	// The bucket index is rewritten every run; everything else of the
	// survivor must stay byte for byte.
	withoutIndex := func(objs map[string]string) map[string]string {
		delete(objs, "bucket-index.json.gz")
		return objs
	}
	survivorBefore, err := c.TenantObjects(survivor)
	require.NoError(t, err)
	survivorBefore = withoutIndex(survivorBefore)
	require.NotEmpty(t, survivorBefore)
	idxBefore, err := c.ReadBucketIndex(survivor)
	require.NoError(t, err)
	doomedBefore, err := c.TenantObjects(doomed)
	require.NoError(t, err)
	require.NotEmpty(t, doomedBefore)

	code, body := comp.PostPath(doomed, "/compactor/delete_tenant")
	require.Equal(t, 200, code/100*100, "delete_tenant: HTTP %d: %s", code, body)

	var status struct {
		Tenant           string `json:"tenant"`
		BlocksRemaining  int    `json:"blocks_remaining"`
		DeletionFinished bool   `json:"deletion_finished"`
	}
	harness.Eventually(t, 60*time.Second, 500*time.Millisecond, "deletion of "+doomed+" finished", func() error {
		r := comp.Client(doomed).GetAPI("/compactor/delete_tenant_status", nil)
		if r.StatusCode != 200 {
			return fmt.Errorf("status: %s", r)
		}
		if err := json.Unmarshal(r.Body, &status); err != nil {
			return err
		}
		if !status.DeletionFinished {
			return fmt.Errorf("status: %s", r.Body)
		}
		return nil
	})
	require.Equal(t, doomed, status.Tenant)
	require.Zero(t, status.BlocksRemaining)

	doomedAfter, err := c.TenantObjects(doomed)
	require.NoError(t, err)
	for name := range doomedAfter {
		require.Equal(t, "tenant-deletion-mark.json", name, "object %s of the deleted tenant left", name)
	}
	survivorAfter, err := c.TenantObjects(survivor)
	require.NoError(t, err)
	require.Equal(t, survivorBefore, withoutIndex(survivorAfter), "the other tenant's objects are unchanged")
	idxAfter, err := c.ReadBucketIndex(survivor)
	require.NoError(t, err)
	require.Equal(t, idxBefore.Blocks, idxAfter.Blocks)

	// The querier drops the deleted tenant's blocks and still answers for
	// the other tenant.
	requireEventually(t, 30*time.Second, time.Second, "the querier dropped the deleted tenant's blocks", func() bool {
		got, _ := q.Metric("meridian_storegateway_blocks_owned", nil)
		return int(got) == len(idxBefore.Blocks)
	})
	got, n := ltSums(t, q, survivor, metric, end, window)
	require.Equal(t, survivorSums, got)
	require.EqualValues(t, pushed[survivor], n)
}

// TestLongTermCorruptedBlockFailsQuery: a block whose index is garbage
// makes queries over its range fail with an error naming it, instead of a
// partial answer; the querier stays up and answers other ranges.
func TestLongTermCorruptedBlockFailsQuery(t *testing.T) {
	const tenant, other, metric = "lt-corrupt", "lt-fine", "lt_bad_metric"
	c, ing, dist := ltSingleIngester(t)

	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	start := end.Add(-11 * time.Hour)
	pushed, _ := ltPush(t, dist, tenant, metric, start, end)
	otherPushed, _ := ltPush(t, dist, other, metric, start, end)
	ltFlush(t, ing)

	// The compactor writes the bucket indexes (one block range, RF 1:
	// nothing to compact), then is stopped so it never touches the block.
	comp := c.Start(harness.Options{Target: "compactor", Name: "compactor", Args: []string{
		"-compactor.compaction-interval=2s", "-compactor.deletion-delay=0s", "-compactor.block-ranges=2h",
	}})
	for _, tn := range []string{tenant, other} {
		harness.Eventually(t, 30*time.Second, 500*time.Millisecond, "bucket index of "+tn, func() error {
			return ltIndexSettled(c, tn)
		})
	}
	comp.Stop()
	idx, err := c.ReadBucketIndex(tenant)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(idx.Blocks), 3)

	// Corrupt the second block: a whole 2h block (the ingester's first
	// block starts at the first sample, its last ones may be merged).
	bad := idx.Blocks[1]
	require.NoError(t, os.WriteFile(filepath.Join(c.BucketDir(), tenant, bad.ULID.String(), "index"), []byte(strings.Repeat("garbage!", 512)), 0o644))

	q := c.StartQuerier()
	badMid := time.UnixMilli((bad.MinTime + bad.MaxTime) / 2)
	r := q.Client(tenant).Query(`sum(count_over_time(`+metric+`[10m]))`, badMid)
	require.NotEqual(t, "success", r.Status, "query over the corrupted block: %s", r)
	require.Equal(t, "error", r.Status, "a clear API error: %s", r)
	require.Contains(t, r.Error, bad.ULID.String(), "the error names the block: %s", r)
	r = q.Client(tenant).QueryRange(`count_over_time(`+metric+`[10m])`, start, end, 5*time.Minute)
	require.Equal(t, "error", r.Status, "range query across the corrupted block: %s", r)
	require.Contains(t, r.Error, bad.ULID.String())

	// Still up, and other ranges and tenants answer in full.
	require.True(t, q.Running())
	code, _ := q.Get("/ready")
	require.Equal(t, 200, code)
	var good []model.SampleValue
	for _, b := range idx.Blocks {
		if b.ULID == bad.ULID {
			continue
		}
		// A 10m window inside the block, clear of its neighbours.
		if b.MaxTime-b.MinTime < (30 * time.Minute).Milliseconds() {
			continue
		}
		mid := time.UnixMilli((b.MinTime + b.MaxTime) / 2)
		v := q.Client(tenant).Query(`sum(count_over_time(`+metric+`[10m]))`, mid).Vector(t)
		require.Len(t, v, 1, "block %s answers", b.ULID)
		require.EqualValues(t, 10*ltSeries, v[0].Value, "block %s: a full answer", b.ULID)
		good = append(good, v[0].Value)
	}
	require.NotEmpty(t, good)
	_, n := ltSums(t, q, other, metric, end, end.Sub(start)+2*time.Minute)
	require.EqualValues(t, otherPushed, n, "the other tenant answers in full")
	require.Positive(t, pushed)
}
