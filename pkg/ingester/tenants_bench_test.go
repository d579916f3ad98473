package ingester

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// tenantCost is what a set of open tenants costs the process, measured
// after a GC against the same process with no tenant open.
type tenantCost struct {
	heapBytes  int64 // live heap
	goroutines int
	fds        int
}

func measureProcess() tenantCost {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return tenantCost{heapBytes: int64(ms.HeapAlloc), goroutines: runtime.NumGoroutine(), fds: openFDs()}
}

// openFDs counts this process's open file descriptors (Linux only; 0 elsewhere).
func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(entries)
}

func (c tenantCost) minus(o tenantCost) tenantCost {
	return tenantCost{heapBytes: c.heapBytes - o.heapBytes, goroutines: c.goroutines - o.goroutines, fds: c.fds - o.fds}
}

// pushTenants writes rounds samples to each of seriesPerTenant series of
// tenants tenants through the real Push path, in batches of about 2 000
// series as remote write sends them.
func pushTenants(tb testing.TB, ing *Ingester, tenants, seriesPerTenant, rounds int, base int64) {
	tb.Helper()
	for r := 0; r < rounds; r++ {
		for t := 0; t < tenants; t++ {
			ctx := user.InjectOrgID(context.Background(), "tenant-"+strconv.Itoa(t))
			ts := make([]prompb.TimeSeries, 0, min(seriesPerTenant, 2000))
			for s := 0; s < seriesPerTenant; s++ {
				ts = append(ts, prompb.TimeSeries{
					Labels: []prompb.Label{
						{Name: "__name__", Value: "bench_metric"},
						{Name: "instance", Value: "host-" + strconv.Itoa(s%50)},
						{Name: "series", Value: strconv.Itoa(s)},
					},
					Samples: []prompb.Sample{{Timestamp: base + int64(r)*15_000, Value: float64(r)}},
				})
				if len(ts) == cap(ts) || s == seriesPerTenant-1 {
					resp, err := ing.Push(ctx, &prompb.WriteRequest{Timeseries: ts})
					require.NoError(tb, err)
					require.Empty(tb, resp.Errors)
					ts = ts[:0]
				}
			}
		}
	}
}

// BenchmarkTenants measures what open tenants cost the ingester: heap,
// goroutines and file descriptors per tenant, and heap per series, for the
// same total number of series spread over 1 to 1 000 tenants. Run with
//
//	go test -run '^$' -bench BenchmarkTenants -benchtime 1x ./pkg/ingester/
//
// (add -memprofile mem.out to see where the heap goes).
func BenchmarkTenants(b *testing.B) {
	for _, c := range []struct{ tenants, series int }{
		{1, 100_000},
		{100, 1_000},
		{1_000, 100},
	} {
		b.Run(fmt.Sprintf("tenants=%d/series=%d", c.tenants, c.series), func(b *testing.B) {
			for n := 0; n < b.N; n++ {
				benchTenants(b, c.tenants, c.series)
			}
		})
	}
}

var tenantsHeapProfile = flag.String("tenants.heapprofile", "", "BenchmarkTenants writes a heap profile here while its tenants are open.")

func benchTenants(b *testing.B, tenants, seriesPerTenant int) {
	cfg := testConfig(b, b.TempDir())
	cfg.FlushOnShutdown = false // the flush on the way out is not what is measured
	ing := startIngester(b, cfg, defaultLimits(b), nil)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	before := measureProcess()
	// The samples cross a 2h boundary, so every series cuts a second head
	// chunk and the first is written to the head chunk file: the steady
	// state of a tenant that has been writing for a while, with its chunk
	// write buffer allocated.
	const rounds = 4
	const chunkRange = 2 * time.Hour
	base := time.Now().Truncate(chunkRange).Add(-30 * time.Second).UnixMilli()
	start := time.Now()
	pushTenants(b, ing, tenants, seriesPerTenant, rounds, base)
	elapsed := time.Since(start)
	for _, db := range ing.openDBs() {
		db.db.ForceHeadMMap()
	}
	cost := measureProcess().minus(before)
	if *tenantsHeapProfile != "" {
		f, err := os.Create(*tenantsHeapProfile)
		require.NoError(b, err)
		require.NoError(b, pprof.WriteHeapProfile(f))
		require.NoError(b, f.Close())
	}
	total := float64(tenants * seriesPerTenant)
	b.ReportMetric(float64(cost.heapBytes)/float64(tenants), "heapB/tenant")
	b.ReportMetric(float64(cost.heapBytes)/total, "heapB/series")
	b.ReportMetric(float64(cost.goroutines)/float64(tenants), "goroutines/tenant")
	b.ReportMetric(float64(cost.fds)/float64(tenants), "fds/tenant")
	b.ReportMetric(total*rounds/elapsed.Seconds(), "samples/s")
}
