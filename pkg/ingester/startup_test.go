package ingester

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore/providers/filesystem"
)

// TestRestartWithManyTenants: after a crash every tenant with samples in
// its WAL is replayed (in parallel) and queryable; tenants closed as idle
// stay closed until read, and one with a block left unshipped is opened so
// the block gets shipped.
func TestRestartWithManyTenants(t *testing.T) {
	dir := t.TempDir()
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	cfg := testConfig(t, dir)
	cfg.FlushOnShutdown = false // stopping leaves the WALs as a crash would
	cfg.CloseIdleTSDBTimeout = time.Minute
	ing := startIngester(t, cfg, defaultLimits(t), bkt)
	now := time.Now()
	ing.now = func() time.Time { return now }
	base := now.Add(-10 * time.Minute).UnixMilli()

	// tenant-0..tenant-9 are written, closed as idle (their samples are
	// in blocks), reopened by more writes and closed as idle again, so
	// that they are closed at the crash with data from two opens.
	// tenant-10..tenant-49 have their samples in their WALs only.
	const idle, tenants = 10, 50
	pushTenants(t, ing, idle, 5, 3, base)
	now = now.Add(2 * time.Minute)
	ing.compactAndCloseIdle(context.Background())
	require.Empty(t, ing.Tenants())
	pushTenants(t, ing, tenants, 5, 3, base+60_000)
	now = now.Add(2 * time.Minute)
	for _, db := range ing.openDBs() {
		if n, _ := strconv.Atoi(db.tenant[len("tenant-"):]); n < idle {
			ing.closeIdle(context.Background(), db)
		}
	}
	require.Len(t, ing.Tenants(), tenants-idle)
	// tenant-3's blocks are lost from the bucket and from its shipped
	// record: it must be opened at start to ship them again.
	require.NoError(t, os.Remove(filepath.Join(dir, "tenant-3", ShippedFilename)))
	require.NoError(t, os.RemoveAll(filepath.Join(bkt.Name(), "tenant-3")))
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))

	ing = startIngester(t, cfg, defaultLimits(t), bkt)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	var want []string
	for n := idle; n < tenants; n++ {
		want = append(want, "tenant-"+strconv.Itoa(n))
	}
	want = append(want, "tenant-3")
	sort.Strings(want)
	require.Equal(t, want, ing.Tenants(), "tenants with a WAL to replay or blocks to ship are opened, the idle ones are not")

	ing.shipAll(context.Background())
	shipped := 0
	require.NoError(t, bkt.Iter(context.Background(), "tenant-3/", func(string) error { shipped++; return nil }))
	require.Positive(t, shipped, "the unshipped block was shipped after the restart")

	// Every acknowledged sample of every tenant is there, opened or not.
	for n := 0; n < tenants; n++ {
		got := queryAll(t, ing, "tenant-"+strconv.Itoa(n), 0, base+10*60_000)
		require.Len(t, got, 5, "tenant-%d", n)
		for key, samples := range got {
			if n < idle {
				require.Len(t, samples, 6, "tenant-%d %s: both rounds", n, key)
			} else {
				require.Len(t, samples, 3, "tenant-%d %s", n, key)
			}
		}
	}
}

// TestTenantOpensOnce: callers asking for a tenant being opened wait for
// that open instead of opening it again.
func TestTenantOpensOnce(t *testing.T) {
	ing := startIngester(t, testConfig(t, t.TempDir()), defaultLimits(t), nil)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	var wg sync.WaitGroup
	dbs := make([]*tenantDB, 16)
	for k := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := ing.getOrCreateDB("team-x")
			if err != nil {
				t.Error(err)
			}
			dbs[k] = db
		}()
	}
	wg.Wait()
	for _, db := range dbs {
		require.Same(t, dbs[0], db)
	}
	require.Equal(t, 1.0, testutil.ToFloat64(ing.metrics.tsdbOpened))
}
