package integration

import (
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

const (
	crashSeries       = 10
	crashBatchSamples = 10 // samples per series per batch
)

// crashBatch is batch b of the crash test: crashSeries series with
// crashBatchSamples samples each, at step spacing from first.
func crashBatch(b int, first time.Time, step time.Duration) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, crashSeries)
	for s := range out {
		samples := make([]prompb.Sample, crashBatchSamples)
		for k := range samples {
			i := b*crashBatchSamples + k
			samples[k] = harness.Sample(first.Add(time.Duration(i)*step), float64(s*1_000_000+i))
		}
		out[s] = harness.Series([]string{"__name__", "crash_metric", "series", strconv.Itoa(s)}, samples...)
	}
	return out
}

// sampleSet maps series label → timestamp (ms) → value.
type sampleSet map[string]map[int64]float64

func (ss sampleSet) add(batch []prompb.TimeSeries) {
	for _, ts := range batch {
		var key string
		for _, l := range ts.Labels {
			if l.Name == "series" {
				key = l.Value
			}
		}
		if ss[key] == nil {
			ss[key] = map[int64]float64{}
		}
		for _, s := range ts.Samples {
			ss[key][s.Timestamp] = s.Value
		}
	}
}

// rawSamples returns the raw samples of selector in (from, to] by an instant
// query of a range vector, which returns stored samples without lookback.
func rawSamples(t testing.TB, c *harness.Client, selector string, from, to time.Time) map[string][]model.SamplePair {
	t.Helper()
	q := fmt.Sprintf("%s[%dms]", selector, to.Sub(from).Milliseconds())
	m := c.Query(q, to).Matrix(t)
	out := map[string][]model.SamplePair{}
	for _, s := range m {
		key := string(s.Metric["series"])
		require.NotContains(t, out, key, "series %v returned twice", s.Metric)
		out[key] = s.Values
	}
	return out
}

// requireExactly fails unless got holds exactly the samples of want: every
// timestamp once, in order, with the pushed value.
func requireExactly(t testing.TB, want sampleSet, got map[string][]model.SamplePair) {
	t.Helper()
	require.Len(t, got, len(want), "series count")
	for key, w := range want {
		g := got[key]
		require.Lenf(t, g, len(w), "series %s: sample count", key)
		prev := int64(-1 << 62)
		for _, sp := range g {
			ts := int64(sp.Timestamp)
			require.Greaterf(t, ts, prev, "series %s: timestamps not strictly increasing", key)
			prev = ts
			v, ok := w[ts]
			require.Truef(t, ok, "series %s: sample at %d was never pushed", key, ts)
			require.Equalf(t, v, float64(sp.Value), "series %s at %d", key, ts)
		}
	}
}

func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{})
	const tenant = "crash"
	c := p.Client(tenant)

	// Phase 1: 30 acknowledged batches, 2 s apart, ending 10 minutes ago.
	step := 2 * time.Second
	const batches = 30
	now := time.Now().Truncate(time.Second)
	first := now.Add(-20 * time.Minute)
	acked := sampleSet{}
	for b := 0; b < batches; b++ {
		batch := crashBatch(b, first, step)
		mustPush(t, c, batch...)
		acked.add(batch)
	}
	phase1End := first.Add(time.Duration(batches*crashBatchSamples-1) * step)

	p.Kill()
	p.Start()

	requireExactly(t, acked, rawSamples(t, c, "crash_metric", first.Add(-time.Millisecond), phase1End))
	v := c.Query(`count_over_time(crash_metric[30m])`, phase1End).Vector(t)
	require.Len(t, v, crashSeries)
	for _, s := range v {
		require.Equal(t, float64(batches*crashBatchSamples), float64(s.Value), "count_over_time of %v", s.Metric)
	}

	// Phase 2: kill -9 while a writer is pushing; every acknowledged batch
	// must survive. Batches are 10 ms steps after phase 1.
	step2 := 10 * time.Millisecond
	first2 := phase1End.Add(step)
	var (
		mu        sync.Mutex
		ackedN    int // acknowledged phase-2 batches
		inFlight  []prompb.TimeSeries
		pushErr   error
		wg        sync.WaitGroup
		stop      = make(chan struct{})
		maxPushes = 5000 // 5000 batches × 100 ms stays in the past
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := 0; b < maxPushes; b++ {
			select {
			case <-stop:
				return
			default:
			}
			batch := crashBatch(b, first2, step2)
			mu.Lock()
			inFlight = batch
			mu.Unlock()
			code, body, err := c.TryPushRequest(&prompb.WriteRequest{Timeseries: batch})
			mu.Lock()
			if err != nil || code/100 != 2 {
				if err == nil {
					pushErr = fmt.Errorf("HTTP %d: %s", code, body)
				}
				mu.Unlock()
				return // the process is gone; this batch was not acknowledged
			}
			ackedN++
			inFlight = nil
			mu.Unlock()
		}
	}()
	requireEventually(t, 60*time.Second, 5*time.Millisecond, "20 acknowledged pushes before the kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ackedN >= 20 || pushErr != nil
	})
	p.Kill()
	close(stop)
	wg.Wait()
	require.NoError(t, pushErr, "a push was refused before the kill")

	for b := 0; b < ackedN; b++ {
		acked.add(crashBatch(b, first2, step2))
	}
	maybe := sampleSet{}
	if inFlight != nil {
		maybe.add(inFlight)
	}
	t.Logf("killed after %d acknowledged phase-2 batches (in flight: %v)", ackedN, inFlight != nil)

	p.Start()

	end := first2.Add(time.Duration((ackedN+1)*crashBatchSamples) * step2)
	got := rawSamples(t, c, "crash_metric", first.Add(-time.Millisecond), end)
	// Samples of the unacknowledged in-flight batch may or may not be there;
	// drop them, then the rest must be exactly what was acknowledged.
	for key, g := range got {
		kept := g[:0]
		for _, sp := range g {
			if _, ok := acked[key][int64(sp.Timestamp)]; !ok {
				v, inFlightSample := maybe[key][int64(sp.Timestamp)]
				require.Truef(t, inFlightSample, "series %s: sample at %d was never pushed", key, int64(sp.Timestamp))
				require.Equal(t, v, float64(sp.Value))
				continue
			}
			kept = append(kept, sp)
		}
		got[key] = kept
	}
	requireExactly(t, acked, got)
}
