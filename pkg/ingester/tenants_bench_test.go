package ingester

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
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
// tenants tenants through the real Push path, in batches of at most 2 000
// series as remote write sends them, from 8 concurrent senders (as
// scripts/bench.sh's load generator does).
func pushTenants(tb testing.TB, ing *Ingester, tenants, seriesPerTenant, rounds int, base int64) {
	tb.Helper()
	type batch struct {
		tenant int
		series []prompb.TimeSeries
	}
	const senders = 8
	var batches []batch
	for t := 0; t < tenants; t++ {
		for s := 0; s < seriesPerTenant; s += 2000 {
			b := batch{tenant: t}
			for k := s; k < min(s+2000, seriesPerTenant); k++ {
				b.series = append(b.series, prompb.TimeSeries{
					Labels: []prompb.Label{
						{Name: "__name__", Value: "bench_metric"},
						{Name: "instance", Value: "host-" + strconv.Itoa(k%50)},
						{Name: "series", Value: strconv.Itoa(k)},
					},
					Samples: make([]prompb.Sample, 1),
				})
			}
			batches = append(batches, b)
		}
	}
	for r := 0; r < rounds; r++ {
		// Each round completes before the next, so every series gets its
		// samples in order whatever sender carries them.
		work := make(chan batch)
		var wg sync.WaitGroup
		for w := 0; w < senders; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range work {
					for k := range b.series {
						b.series[k].Samples[0] = prompb.Sample{Timestamp: base + int64(r)*15_000, Value: float64(r)}
					}
					ctx := user.InjectOrgID(context.Background(), "tenant-"+strconv.Itoa(b.tenant))
					resp, err := ing.Push(ctx, &prompb.WriteRequest{Timeseries: b.series})
					if err != nil || len(resp.Errors) > 0 {
						tb.Errorf("push to tenant %d: %v %v", b.tenant, err, resp)
					}
				}
			}()
		}
		for _, b := range batches {
			work <- b
		}
		close(work)
		wg.Wait()
	}
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
	start, startCPU := time.Now(), cpuTime()
	pushTenants(b, ing, tenants, seriesPerTenant, rounds, base)
	elapsed, cpu := time.Since(start), cpuTime()-startCPU
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
	b.ReportMetric(cpu.Seconds()/(total*rounds/1e6), "cpu-s/Msamples")
}
