package integration

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// TestIdleCloseReopenUnderQueries: tenants that write in bursts with
// pauses longer than -ingester.close-idle-tsdb-timeout have their TSDB
// closed and reopened again and again while readers query them without a
// pause. No query fails, every query sees every sample acknowledged before
// it, and at the end every acknowledged sample is there exactly once.
func TestIdleCloseReopenUnderQueries(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{Args: []string{
		"-ingester.close-idle-tsdb-timeout=1s",
		"-ingester.head-compaction-interval=1s", // tsdb.MinBlockReloadInterval
	}})
	const (
		tenants    = 4
		wantCloses = 3 * tenants
		burst      = 300 * time.Millisecond
		pause      = 2500 * time.Millisecond // > timeout + one compaction tick
		sampleStep = 10 * time.Millisecond   // of sample timestamps
	)
	base := time.Now().Add(-5 * time.Minute).Truncate(time.Second)

	// acked[i] is how many samples tenant i had acknowledged; sample k of a
	// tenant is at base + k·sampleStep with value k.
	var (
		mu    sync.Mutex
		acked [tenants]int
		errs  []error
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	tenant := func(i int) string { return "idle-" + strconv.Itoa(i) }

	for i := range tenants {
		c := p.Client(tenant(i))
		wg.Add(2)
		go func() { // writer: a burst, then a pause long enough to be closed.
			defer wg.Done()
			for k := 0; !stopped(); {
				end := time.Now().Add(burst)
				for time.Now().Before(end) && !stopped() {
					ts := base.Add(time.Duration(k) * sampleStep)
					code, body, err := c.TryPushRequest(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
						harness.Series([]string{"__name__", "idle_metric", "tenant", tenant(i)}, harness.Sample(ts, float64(k))),
					}})
					if err != nil || code/100 != 2 {
						fail(fmt.Errorf("tenant %s: push of sample %d: HTTP %d: %s: %v", tenant(i), k, code, body, err))
						return
					}
					k++
					mu.Lock()
					acked[i] = k
					mu.Unlock()
				}
				select {
				case <-stop:
				case <-time.After(pause):
				}
			}
		}()
		go func() { // reader: every sample acknowledged before the query is seen.
			defer wg.Done()
			for !stopped() {
				mu.Lock()
				n := acked[i]
				mu.Unlock()
				if n == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				at := base.Add(time.Duration(n-1) * sampleStep)
				var v model.Vector
				if err := instantQuery(p.URL(), tenant(i), `count_over_time(idle_metric[10m])`, at, &v); err != nil {
					fail(err)
					return
				}
				if len(v) != 1 || int(v[0].Value) != n {
					fail(fmt.Errorf("tenant %s: %d samples acknowledged up to %s, the query counts %v", tenant(i), n, at, v))
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}

	err := harness.Retry(t.Context(), 60*time.Second, 500*time.Millisecond, func() error {
		mu.Lock()
		failed := errors.Join(errs...)
		mu.Unlock()
		if failed != nil {
			return harness.Permanent(failed)
		}
		closed, _ := p.Metric("meridian_ingester_tsdb_closed_total", nil)
		if closed < wantCloses {
			return fmt.Errorf("%v idle TSDBs closed so far, want %d", closed, wantCloses)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	require.NoError(t, errors.Join(errs...))

	closed, _ := p.Metric("meridian_ingester_tsdb_closed_total", nil)
	t.Logf("%v TSDB closes; samples acknowledged per tenant: %v", closed, acked)
	for i := range tenants {
		require.Greater(t, acked[i], 0)
		last := base.Add(time.Duration(acked[i]-1) * sampleStep)
		got := rawSamples(t, p.Client(tenant(i)), "idle_metric", base.Add(-time.Millisecond), last)
		want := sampleSet{}
		for k := range acked[i] {
			if want[""] == nil {
				want[""] = map[int64]float64{}
			}
			want[""][base.Add(time.Duration(k)*sampleStep).UnixMilli()] = float64(k)
		}
		requireExactly(t, want, got)
	}
}
