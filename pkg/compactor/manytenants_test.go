package compactor

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// countedEnv is a testEnv whose compactor reaches the bucket through a
// wrapper that counts operations, read with ops().
func countedEnv(t *testing.T, limits TenantLimits, mutate func(*Config)) (*testEnv, func() ops) {
	t.Helper()
	e := newTestEnv(t, limits, mutate)
	reg := prometheus.NewRegistry()
	counted := objstore.WrapWithMetrics(e.bkt, reg, "test")
	e.reg = prometheus.NewRegistry()
	c, err := New(e.c.cfg, counted, limits, nil, log.NewLogfmtLogger(e.logs), slog.New(slog.DiscardHandler), e.reg)
	require.NoError(t, err)
	c.now = func() time.Time { return e.now }
	e.c = c
	last := ops{}
	return e, func() ops {
		now := opCounts(t, reg)
		d := ops{}
		for op, v := range now {
			if v-last[op] != 0 {
				d[op] = v - last[op]
			}
		}
		last = now
		return d
	}
}

// TestCompactor_UnchangedTenantsCostOneListing: once every tenant was
// processed, a run over tenants whose blocks did not change and that have
// nothing due is one listing of the bucket, whatever the number of tenants.
// A tenant that gets a new block, or for which time makes a compaction due,
// is processed again, and only it.
func TestCompactor_UnchangedTenantsCostOneListing(t *testing.T) {
	e, delta := countedEnv(t, nil, nil)
	const tenants = 20
	e.now = time.UnixMilli(7 * hour)
	writeTinyTenants(t, e.bkt, tenants, 2) // [0,2h) and [2h,4h): the 12h window is not complete.
	require.NoError(t, e.c.RunOnce(e.ctx))
	first := delta()
	require.Equal(t, 1.0, first[objstore.OpIter], "one listing of the whole bucket")
	require.Equal(t, float64(tenants), first[objstore.OpUpload], "one bucket index per tenant")
	require.Equal(t, float64(tenants*(1+2)), first[objstore.OpGet], "bucket index and both meta.json of every tenant")

	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Equal(t, ops{objstore.OpIter: 1}, delta(), "nothing changed: one listing and nothing else")
	require.Equal(t, float64(tenants), testutil.ToFloat64(e.c.tenantsUnchanged))
	require.Equal(t, float64(2*tenants), testutil.ToFloat64(e.c.tenantsProcessed.WithLabelValues("success")))

	// A new block in one tenant: that tenant alone is read (its index and
	// the new meta.json) and its index rewritten.
	added := e.uploadBlock("tenant-00007", "ingester-1", genSeries(2, 4*hour, 5*hour, step, nil), 6*hour)
	delta()
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Equal(t, ops{objstore.OpIter: 1, objstore.OpGet: 2, objstore.OpUpload: 1}, delta())
	idx, err := bucket.ReadIndex(e.ctx, e.bkt, "tenant-00007")
	require.NoError(t, err)
	require.True(t, idx.Has(added.ULID), "the new block is in the tenant's index")
	require.Len(t, idx.Blocks, 3)
	delta()

	// Time passes: the 12h window of every tenant is complete now, so every
	// tenant is compacted although no listing changed. (The placeholder
	// blocks do not open: each compaction fails on a block, which shows
	// that it was attempted, and the tenant stays due.)
	e.now = time.UnixMilli(25 * hour)
	unchanged := testutil.ToFloat64(e.c.tenantsUnchanged)
	require.Equal(t, float64(2*tenants-1), unchanged)
	err = e.c.RunOnce(e.ctx)
	require.Error(t, err)
	for i := range tenants {
		require.ErrorContains(t, err, fmt.Sprintf("tenant tenant-%05d: ", i))
	}
	require.Equal(t, unchanged, testutil.ToFloat64(e.c.tenantsUnchanged), "no tenant skipped")
	require.GreaterOrEqual(t, testutil.ToFloat64(e.c.blockFailures), float64(tenants), "a compaction attempted in every tenant")
}

// TestCompactor_UnchangedTenantDueForRetentionAndDeletion: retention and
// the deletion delay are due by time alone; an unchanged tenant still gets
// them.
func TestCompactor_UnchangedTenantDueForRetentionAndDeletion(t *testing.T) {
	limits := fakeLimits{"team-a": 24 * time.Hour}
	e, delta := countedEnv(t, limits, func(c *Config) {
		c.BlockRanges = DurationList{2 * time.Hour}
		c.DeletionDelay = time.Hour
	})
	e.now = time.UnixMilli(3 * hour)
	old := e.uploadBlock("team-a", "ingester-1", genSeries(2, 0, 2*hour, step, nil), 2*hour)
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.tenantsUnchanged))
	delta()

	e.now = time.UnixMilli(27 * hour) // the block ended 25h ago.
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Contains(t, e.state("team-a").marks, old.ULID, "marked past retention")
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.blocksMarked.WithLabelValues(reasonRetention)))

	require.NoError(t, e.c.RunOnce(e.ctx)) // the listing changed: the mark.
	require.NoError(t, e.c.RunOnce(e.ctx))
	unchanged := testutil.ToFloat64(e.c.tenantsUnchanged)
	require.Equal(t, 2.0, unchanged, "marked, deletion not due yet: unchanged")
	require.NotEmpty(t, e.objects(bucket.BlockPrefix("team-a", old.ULID)))

	e.now = e.now.Add(time.Hour + time.Minute)
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Empty(t, e.objects(bucket.BlockPrefix("team-a", old.ULID)), "deleted once the deletion delay passed")
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.blocksDeleted))
}

// TestCompactor_TenantConcurrency: tenants processed at the same time give
// the result of tenants processed one after the other.
func TestCompactor_TenantConcurrency(t *testing.T) {
	e := newTestEnv(t, nil, func(c *Config) { c.TenantConcurrency = 4 })
	e.now = time.UnixMilli(3 * hour)
	want := map[string]seriesData{}
	for i := range 8 {
		tenant := fmt.Sprintf("team-%d", i)
		want[tenant] = genSeries(2+i, 0, 2*hour, step, nil)
		for _, ing := range []string{"ingester-1", "ingester-2"} {
			e.uploadBlock(tenant, ing, want[tenant], 2*hour)
		}
	}
	require.NoError(t, e.c.RunOnce(e.ctx))
	for tenant, data := range want {
		live := e.live(tenant)
		require.Len(t, live, 1, tenant)
		require.Equal(t, data, e.readBlock(tenant, live[0].ULID), tenant)
	}
	require.Equal(t, 16.0, testutil.ToFloat64(e.c.blocksCompacted))
}

// TestCompactor_ForgetsTenantsGone: what the compactor remembers of a
// tenant goes with the tenant.
func TestCompactor_ForgetsTenantsGone(t *testing.T) {
	e := newTestEnv(t, nil, nil)
	e.now = time.UnixMilli(7 * hour)
	writeTinyTenants(t, e.bkt, 3, 1)
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Len(t, e.c.memos, 3)
	for _, name := range e.objects("tenant-00001/") {
		require.NoError(t, e.bkt.Delete(e.ctx, name))
	}
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Len(t, e.c.memos, 2)
	require.NotContains(t, e.c.memos, "tenant-00001")
}

// TestCompactor_UnreadableIndexIsNotRemembered: a run that could not read
// the tenant's bucket index could not tell partial blocks, so the tenant is
// processed again on the next run (with the index it wrote) rather than
// skipped as unchanged.
func TestCompactor_UnreadableIndexIsNotRemembered(t *testing.T) {
	e := newTestEnv(t, nil, nil)
	e.now = time.UnixMilli(7 * hour)
	writeTinyTenants(t, e.bkt, 1, 1)
	require.NoError(t, e.bkt.Upload(e.ctx, bucket.IndexObjectName("tenant-00000"), strings.NewReader("not gzip")))
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Contains(t, e.logs.String(), "unreadable bucket index")
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Equal(t, 0.0, testutil.ToFloat64(e.c.tenantsUnchanged), "processed again")
	require.NoError(t, e.c.RunOnce(e.ctx))
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.tenantsUnchanged), "then unchanged")
}
