package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

var ulidRE = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

// ulidDirs lists the block directories (ULID names) directly under dir.
func ulidDirs(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if e.IsDir() && ulidRE.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// shippedBlocks lists the blocks of tenant in the filesystem bucket that
// have their meta.json (written last by the shipper).
func shippedBlocks(t testing.TB, p *harness.Process, tenant string) []string {
	t.Helper()
	dir := filepath.Join(p.DataDir(), "bucket", tenant)
	var out []string
	for _, id := range ulidDirs(t, dir) {
		if _, err := os.Stat(filepath.Join(dir, id, "meta.json")); err == nil {
			out = append(out, id)
		}
	}
	return out
}

func TestBlocksShippedAndQueriedOnce(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{Target: shippingTarget, Args: []string{
		"-ingester.ship-interval=1s",
		"-ingester.retention-period=1s",
		"-ingester.head-compaction-interval=1s",
		"-querier.bucket-sync-interval=1s",
	}})
	const tenant = "blocks"
	c := p.Client(tenant)

	// One series, a sample every 15 s over the last 5 h, pushed in time
	// order: the head spans more than 3 h, so its oldest 2 h are cut into a
	// block.
	step := 15 * time.Second
	last := time.Now().Truncate(step)
	first := last.Add(-5 * time.Hour)
	n := int(last.Sub(first)/step) + 1
	pushed := sampleSet{"": {}}
	sum := 0.0
	const batch = 200
	for from := 0; from < n; from += batch {
		samples := make([]prompb.Sample, 0, batch)
		for i := from; i < n && i < from+batch; i++ {
			v := float64(i) * 1.5
			samples = append(samples, harness.Sample(first.Add(time.Duration(i)*step), v))
			pushed[""][first.Add(time.Duration(i)*step).UnixMilli()] = v
			sum += v
		}
		mustPush(t, c, harness.Series([]string{"__name__", "blocks_metric", "job", "b"}, samples...))
	}

	requireEventually(t, 2*time.Minute, 200*time.Millisecond, "a block with meta.json in "+filepath.Join(p.DataDir(), "bucket", tenant), func() bool {
		return len(shippedBlocks(t, p, tenant)) > 0
	})
	localDir := filepath.Join(p.DataDir(), "tsdb", tenant)
	requireEventually(t, 2*time.Minute, 200*time.Millisecond, "the shipped blocks to leave "+localDir, func() bool {
		return len(ulidDirs(t, localDir)) == 0
	})
	t.Logf("shipped blocks: %v", shippedBlocks(t, p, tenant))

	checkBlocksData(t, c, first, last, n, sum, pushed)

	// Flush the rest of the head into blocks, restart, and read it all again.
	before := len(shippedBlocks(t, p, tenant))
	code, body := p.PostPath(tenant, "/ingester/flush?wait=true")
	require.Truef(t, code/100 == 2, "POST /ingester/flush?wait=true: HTTP %d: %s", code, body)
	requireEventually(t, time.Minute, 200*time.Millisecond, "the flushed head to be shipped", func() bool {
		return len(shippedBlocks(t, p, tenant)) > before
	})
	checkBlocksData(t, c, first, last, n, sum, pushed)

	p.Restart()
	checkBlocksData(t, c, first, last, n, sum, pushed)
}

// checkBlocksData requires every pushed sample back exactly once: by
// count_over_time and sum_over_time and sample by sample. It waits (bounded)
// for the querier to see new blocks, but a count above n fails at once.
func checkBlocksData(t *testing.T, c *harness.Client, first, last time.Time, n int, sum float64, pushed sampleSet) {
	t.Helper()
	requireEventually(t, 30*time.Second, 500*time.Millisecond, "count_over_time to reach the pushed sample count", func() bool {
		r := c.Query(`count_over_time(blocks_metric[6h])`, last)
		if r.StatusCode != http.StatusOK {
			t.Logf("count_over_time: %s", r)
			return false
		}
		v := r.Vector(t)
		if len(v) != 1 {
			t.Logf("count_over_time returned %d series", len(v))
			return false
		}
		got := int(v[0].Value)
		require.LessOrEqualf(t, got, n, "count_over_time: more samples than pushed (duplicates)")
		return got == n
	})
	v := c.Query(`sum_over_time(blocks_metric[6h])`, last).Vector(t)
	require.Len(t, v, 1)
	require.InEpsilon(t, sum, float64(v[0].Value), 1e-12)
	requireExactly(t, pushed, rawSamples(t, c, "blocks_metric", first.Add(-time.Millisecond), last))
}

// shippingTarget is the monolith without its compactor: the shipping tests
// count the blocks ingesters ship, and a compactor would, depending on the
// time of day, compact them into a 12h block between two looks.
const shippingTarget = "distributor,ingester,querier,store-gateway"
