package ingester

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore/providers/filesystem"
)

// TestClosedTenantsCostAlmostNothing: a tenant whose TSDB was closed as
// idle keeps no TSDB, goroutine or file descriptor, and at most 16 KiB of
// heap (what stays is its label in the per-tenant counters).
func TestClosedTenantsCostAlmostNothing(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	cfg := testConfig(t, t.TempDir())
	cfg.CloseIdleTSDBTimeout = time.Minute
	ing := startIngester(t, cfg, defaultLimits(t), bkt)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	now := time.Now()
	ing.now = func() time.Time { return now }

	const tenants = 100
	before := measureProcess()
	pushTenants(t, ing, tenants, 10, 2, now.Add(-time.Minute).UnixMilli())
	open := measureProcess().minus(before)
	require.Len(t, ing.Tenants(), tenants)
	t.Logf("open: %d B heap, %d goroutines, %d fds per tenant", open.heapBytes/tenants, open.goroutines/tenants, open.fds/tenants)

	now = now.Add(2 * time.Minute)
	ing.compactAndCloseIdle(context.Background())
	require.Empty(t, ing.Tenants(), "every idle tenant closed")
	closed := measureProcess().minus(before)
	t.Logf("closed: %d B heap, %d goroutines, %d fds per tenant", closed.heapBytes/tenants, closed.goroutines, closed.fds)
	require.LessOrEqual(t, closed.heapBytes/tenants, int64(16<<10), "heap per closed tenant")
	require.LessOrEqual(t, closed.goroutines, 0, "goroutines left by closed tenants")
	require.LessOrEqual(t, closed.fds, 0, "file descriptors left by closed tenants")

	// They come back on the next query with their data.
	got := queryAll(t, ing, "tenant-7", 0, now.UnixMilli())
	require.Len(t, got, 10)
}

// TestIdleCloseUnderConcurrentWritesAndQueries closes a tenant's TSDB over
// and over while it is written and read (run with -race as well): no
// acknowledged sample is lost, every read sees at least what was
// acknowledged before it started, and the only error is the retryable 503
// of a TSDB being closed.
func TestIdleCloseUnderConcurrentWritesAndQueries(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	ing := startIngester(t, cfg, defaultLimits(t), nil)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	// Every TSDB counts as idle however recent its last write.
	ing.cfg.CloseIdleTSDBTimeout = -time.Hour

	const (
		tenant    = "busy"
		nSeries   = 5
		minCloses = 20
	)
	ctx := user.InjectOrgID(context.Background(), tenant)
	base := time.Now().Add(-time.Hour).UnixMilli()
	var acked atomic.Int64 // samples per series acknowledged so far
	var retries, closes atomic.Int64
	retryable := func(err error) bool {
		resp, ok := httpgrpc.HTTPResponseFromError(err)
		return ok && resp.Code == 503
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // writer
		defer wg.Done()
		defer close(stop)
		// Write until the TSDB was closed (and reopened) minCloses times.
		for k := 0; closes.Load() < minCloses; k++ {
			req := &prompb.WriteRequest{}
			for s := 0; s < nSeries; s++ {
				req.Timeseries = append(req.Timeseries, series("w"+strconv.Itoa(s), prompb.Sample{Timestamp: base + int64(k)*1000, Value: float64(k)}))
			}
			for {
				resp, err := ing.Push(ctx, req)
				if err != nil && retryable(err) {
					retries.Add(1)
					continue
				}
				if err != nil || len(resp.Errors) > 0 {
					t.Errorf("push %d: %v %v", k, err, resp)
					return
				}
				break
			}
			acked.Store(int64(k + 1))
		}
	}()
	go func() { // closer
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, db := range ing.openDBs() {
				ing.closeIdle(context.Background(), db)
				closes.Add(1)
			}
			runtime.Gosched()
		}
	}()
	reads := 0
	for done := false; !done; reads++ {
		select {
		case <-stop:
			done = true
		default:
		}
		want := acked.Load()
		got, err := queryAllErr(ing, tenant, 0, base+want*1000+1000)
		if err != nil {
			require.True(t, retryable(err), "read %d: %v", reads, err)
			retries.Add(1)
			continue
		}
		for s := 0; s < nSeries; s++ {
			ss := got[`{__name__="w`+strconv.Itoa(s)+`", job="test"}`]
			require.GreaterOrEqual(t, int64(len(ss)), want, "read %d series %d: acknowledged samples missing", reads, s)
			for k, smp := range ss {
				require.Equal(t, prompb.Sample{Timestamp: base + int64(k)*1000, Value: float64(k)}, smp, "read %d series %d", reads, s)
			}
		}
	}
	wg.Wait()
	total := acked.Load()
	got := queryAll(t, ing, tenant, 0, base+total*1000)
	for s := 0; s < nSeries; s++ {
		require.Len(t, got[`{__name__="w`+strconv.Itoa(s)+`", job="test"}`], int(total))
	}
	t.Logf("%d samples per series, %d closes, %d reads, %d retried requests", total, closes.Load(), reads, retries.Load())
}
