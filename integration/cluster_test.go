package integration

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

const (
	clusterTenant = "cluster"
	clusterMetric = "cluster_metric"
	// clusterSeries series get one sample each per clusterInterval.
	clusterSeries   = 50
	clusterInterval = 200 * time.Millisecond
	// clusterAttempts is how often the writer sends a batch before giving
	// it up; clusterPushTimeout bounds each attempt.
	clusterAttempts    = 3
	clusterPushTimeout = 5 * time.Second
	// clusterMaxBatches bounds the writer loop (far above what the test
	// needs: 10 minutes of batches).
	clusterMaxBatches = 3000
	// faultWindow is how long after an ingester vanishes (SIGKILL, SIGTERM,
	// SIGSTOP) failed pushes are tolerated; see the assertion below.
	faultWindow = 3 * time.Second
)

// pushAttempt is one remote-write request of the writer.
type pushAttempt struct {
	at     time.Time
	took   time.Duration
	ok     bool
	detail string // status and body, or the transport error
}

// faultEvent is something the test did to the cluster.
type faultEvent struct {
	at     time.Time
	what   string
	window bool // failed pushes are tolerated for faultWindow after it
}

// clusterWriter pushes one sample per series every clusterInterval and
// records which samples the distributor acknowledged.
type clusterWriter struct {
	client *harness.Client
	start  time.Time

	mu       sync.Mutex
	acked    map[int]map[int64]float64 // series → timestamp (ms) → value, acknowledged
	unacked  map[int]map[int64]float64 // batches given up after clusterAttempts failures
	attempts []pushAttempt
	events   []faultEvent
	batches  int
	lastTS   int64
	firstTS  int64
}

func newClusterWriter(c *harness.Client) *clusterWriter {
	return &clusterWriter{client: c, start: time.Now(), acked: map[int]map[int64]float64{}, unacked: map[int]map[int64]float64{}}
}

// mark records a fault event at the current time.
func (w *clusterWriter) mark(what string, window bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, faultEvent{at: time.Now(), what: what, window: window})
}

// run writes batches until ctx ends or clusterMaxBatches were written.
func (w *clusterWriter) run(ctx context.Context) {
	tick := time.NewTicker(clusterInterval)
	defer tick.Stop()
	var prev int64
	for b := 0; b < clusterMaxBatches; b++ {
		ts := time.Now().UnixMilli()
		if ts <= prev {
			ts = prev + 1
		}
		prev = ts
		w.writeBatch(b, ts)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// clusterValue is the value of series s in batch b: distinct, integral and
// small enough that sums stay exact in a float64.
func clusterValue(s, b int) float64 { return float64(s*100_000 + b) }

func (w *clusterWriter) writeBatch(b int, ts int64) {
	wr := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, clusterSeries)}
	for s := 0; s < clusterSeries; s++ {
		wr.Timeseries[s] = prompb.TimeSeries{
			Labels:  harness.Labels("__name__", clusterMetric, "series", strconv.Itoa(s)),
			Samples: []prompb.Sample{{Timestamp: ts, Value: clusterValue(s, b)}},
		}
	}
	ok := false
	// A retry resends the same samples: an ingester that stored the first
	// attempt takes the identical sample again as a no-op.
	for a := 0; a < clusterAttempts && !ok; a++ {
		if a > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), clusterPushTimeout)
		start := time.Now()
		code, body, err := w.client.TryPushRequestContext(ctx, wr)
		cancel()
		at := pushAttempt{at: start, took: time.Since(start), ok: err == nil && code/100 == 2}
		if err != nil {
			at.detail = err.Error()
		} else if !at.ok {
			at.detail = fmt.Sprintf("HTTP %d: %.300s", code, strings.TrimSpace(body))
		}
		ok = at.ok
		w.mu.Lock()
		w.attempts = append(w.attempts, at)
		w.mu.Unlock()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.batches++
	if w.firstTS == 0 {
		w.firstTS = ts
	}
	w.lastTS = ts
	dst := w.acked
	if !ok {
		dst = w.unacked
	}
	for s := 0; s < clusterSeries; s++ {
		if dst[s] == nil {
			dst[s] = map[int64]float64{}
		}
		dst[s][ts] = clusterValue(s, b)
	}
}

// ackedCount is the number of acknowledged samples so far.
func (w *clusterWriter) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.acked {
		n += len(m)
	}
	return n
}

// TestCluster runs 1 distributor, 3 ingesters in 3 zones (replication
// factor 3, zone awareness) and 1 querier while a writer pushes without
// pause, and breaks one ingester at a time: SIGKILL and a restart on the
// same disk, SIGTERM and a replacement with a new ID and an empty disk,
// SIGSTOP for longer than the heartbeat timeout and SIGCONT. Writes must keep
// succeeding, and at the end the querier must return every acknowledged
// sample exactly once.
//
// Not parallel: the fault timings (heartbeat timeout, push timeouts) assume
// the machine is not shared with the other integration tests.
func TestCluster(t *testing.T) {
	testStart := time.Now()
	c := harness.NewCluster(t, harness.ClusterOptions{ZoneAwareness: true, HeartbeatTimeout: 5 * time.Second})
	// The distributor is the gossip seed: it is never restarted.
	dist := c.StartDistributor(true)
	ing1 := c.StartIngester("ing-1", "zone-1")
	ing2 := c.StartIngester("ing-2", "zone-2")
	ing3 := c.StartIngester("ing-3", "zone-3")
	dist.WaitReady(ringWait)
	querier := c.StartQuerier()
	// waitActive waits until the distributor and the querier both see
	// exactly ids ACTIVE, and logs how long that took (with the last ring
	// seen when it was slow).
	waitActive := func(ids ...string) {
		t.Helper()
		start := time.Now()
		var last error
		for _, p := range []*harness.Process{dist, querier} {
			harness.Eventually(t, ringWait, 100*time.Millisecond, fmt.Sprintf("%v ACTIVE in the ring", ids), func() error {
				err := harness.RingActiveExactly(p, ids...)
				if err != nil {
					last = err
				}
				return err
			})
		}
		took := time.Since(start)
		if took > 3*time.Second {
			t.Logf("rings showed %v ACTIVE only after %s; before: %v", ids, took.Round(10*time.Millisecond), last)
			return
		}
		t.Logf("rings showed %v ACTIVE after %s", ids, took.Round(10*time.Millisecond))
	}
	waitActive("ing-1", "ing-2", "ing-3")
	t.Logf("cluster up after %s", time.Since(testStart).Round(10*time.Millisecond))

	w := newClusterWriter(dist.Client(clusterTenant))
	ctx, stopWriting := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		w.run(ctx)
	}()
	stopWriter := func() {
		stopWriting()
		select {
		case <-writerDone:
		case <-time.After(clusterAttempts * (clusterPushTimeout + time.Second)):
			t.Fatalf("the writer did not stop")
		}
	}
	defer stopWriter() // on a failure below; a second call is harmless

	time.Sleep(3 * time.Second)
	require.Positive(t, w.ackedCount(), "no write was acknowledged before any fault")

	// (a) SIGKILL ing-1 and keep writing; (b) restart it on the same disk.
	w.mark("SIGKILL ing-1", true)
	ing1.Kill()
	time.Sleep(4 * time.Second)
	ing1.Start()
	w.mark("ing-1 restarted on its disk and ready", false)
	waitActive("ing-1", "ing-2", "ing-3")
	time.Sleep(2 * time.Second)

	// (c) SIGTERM ing-2: it flushes and ships its head, then leaves the
	// ring. A replacement with a new ID and an empty disk takes zone-2.
	w.mark("SIGTERM ing-2", true)
	stopStart := time.Now()
	ing2.Stop()
	w.mark("ing-2 exited", false)
	t.Logf("ing-2 exited %s after SIGTERM", time.Since(stopStart).Round(10*time.Millisecond))
	blocks, err := c.BucketBlocks(clusterTenant)
	require.NoError(t, err)
	shipped := 0
	for _, b := range blocks {
		require.Equal(t, "ing-2", b.Meridian.Ingester, "only ing-2 has stopped: block %s", b.ULID)
		shipped += int(b.Stats.NumSamples)
	}
	require.Positive(t, shipped, "ing-2 shipped no samples on its graceful stop")
	t.Logf("ing-2 shipped %d blocks holding %d samples (%d acknowledged so far)", len(blocks), shipped, w.ackedCount())
	waitActive("ing-1", "ing-3")
	// Write with zone-2 empty for a while: both remaining zones must answer.
	time.Sleep(time.Second)
	startB := time.Now()
	c.StartIngester("ing-2b", "zone-2")
	t.Logf("ing-2b ready %s after its start", time.Since(startB).Round(10*time.Millisecond))
	w.mark("ing-2b (empty disk) ready", false)
	waitActive("ing-1", "ing-2b", "ing-3")
	time.Sleep(2 * time.Second)

	// (d) SIGSTOP ing-3 for longer than the heartbeat timeout.
	w.mark("SIGSTOP ing-3", true)
	require.NoError(t, ing3.Signal(syscall.SIGSTOP))
	time.Sleep(c.HeartbeatTimeout() + 3*time.Second)
	ring, err := dist.Ring()
	require.NoError(t, err)
	require.Equal(t, "UNHEALTHY", ring["ing-3"].State, "ing-3 stopped for longer than the heartbeat timeout: %s", harness.DescribeRing(ring))
	require.NoError(t, ing3.Signal(syscall.SIGCONT))
	w.mark("SIGCONT ing-3", false)
	waitActive("ing-1", "ing-2b", "ing-3")
	time.Sleep(2 * time.Second)

	stopWriter()
	require.True(t, ing3.Running(), "ing-3 after SIGCONT")
	ring, err = dist.Ring()
	require.NoError(t, err)
	t.Logf("distributor's ring at the end: %s", harness.DescribeRing(ring))

	w.mu.Lock()
	defer w.mu.Unlock()
	summarizePushes(t, w)
	verifyClusterSamples(t, querier.Client(clusterTenant), w)
	t.Logf("TestCluster took %s", time.Since(testStart).Round(10*time.Millisecond))
}

// summarizePushes prints the attempts per phase and checks that writes kept
// succeeding while one ingester was down. w.mu must be held.
func summarizePushes(t *testing.T, w *clusterWriter) {
	t.Helper()
	inWindow := func(at time.Time) (string, bool) {
		for _, e := range w.events {
			if e.window && !at.Before(e.at) && at.Before(e.at.Add(faultWindow)) {
				return e.what, true
			}
		}
		return "", false
	}
	var total, failed, outside, failedOutside, unackedBatches int
	var slowest time.Duration
	for _, a := range w.attempts {
		total++
		slowest = max(slowest, a.took)
		what, in := inWindow(a.at)
		if !in {
			outside++
		}
		if a.ok {
			continue
		}
		failed++
		if !in {
			failedOutside++
			what = "outside any fault window"
		}
		t.Logf("push failed %s after the writer started (%s) after %s: %s", a.at.Sub(w.start).Round(time.Millisecond), what, a.took.Round(time.Millisecond), a.detail)
	}
	for _, m := range w.unacked {
		unackedBatches = len(m)
		break
	}
	ackedSamples := 0
	for _, m := range w.acked {
		ackedSamples += len(m)
	}
	// Phases: the attempts between two consecutive events.
	bounds := append([]faultEvent{{at: time.Time{}, what: "start"}}, w.events...)
	for i, e := range bounds {
		end := time.Now().Add(time.Hour)
		if i+1 < len(bounds) {
			end = bounds[i+1].at
		}
		n, f := 0, 0
		for _, a := range w.attempts {
			if !a.at.Before(e.at) && a.at.Before(end) {
				n++
				if !a.ok {
					f++
				}
			}
		}
		t.Logf("phase after %-40q %4d pushes, %d failed", e.what, n, f)
	}
	t.Logf("writer: %d batches of %d series, %d push attempts, %d failed (%d outside fault windows), %d batches given up, %d samples acknowledged, slowest push %s",
		w.batches, clusterSeries, total, failed, failedOutside, unackedBatches, ackedSamples, slowest.Round(time.Millisecond))

	// With replication factor 3 and zone awareness, a write needs 2 of the
	// 3 zones, so one ingester down — killed, stopping, paused or replaced —
	// must never fail a push. The fault windows (faultWindow after SIGKILL,
	// SIGTERM and SIGSTOP) tolerate failures while the distributor's ring
	// view catches up with a vanished instance; outside them the bound is 1%
	// of pushes, which leaves room for a push that a stall of this shared
	// 2-core machine pushes past its timeout and nothing else.
	require.LessOrEqualf(t, failedOutside*100, outside, "%d of %d pushes outside fault windows failed (more than 1%%)", failedOutside, outside)
	require.Zero(t, unackedBatches, "batches given up after %d attempts each", clusterAttempts)
	require.Positive(t, ackedSamples)
}

// verifyClusterSamples checks, through the querier, that every acknowledged
// sample is returned exactly once with its value, and nothing else but
// samples of batches the writer gave up (those may or may not be stored).
// The raw points come from an instant query of a range selector, which
// returns stored samples without lookback; count_over_time and
// sum_over_time over the same range must agree with them. The querier
// syncs the bucket every second, so the check is retried for up to 30 s.
func verifyClusterSamples(t *testing.T, q *harness.Client, w *clusterWriter) {
	t.Helper()
	end := time.UnixMilli(w.lastTS)
	rng := fmt.Sprintf("[%dms]", w.lastTS-w.firstTS+1)
	var problems []string
	var queried int
	attempt := 0
	// The problems left after the last attempt are the failure message.
	_ = harness.Retry(context.Background(), 30*time.Second, time.Second, func() error {
		attempt++
		problems, queried = clusterProblems(t, q, w, end, rng)
		if len(problems) == 0 {
			return nil
		}
		t.Logf("query check attempt %d: %d problems, first: %s", attempt, len(problems), problems[0])
		return errors.New(problems[0])
	})
	acked, unacked := 0, 0
	for s := range w.acked {
		acked += len(w.acked[s])
		unacked += len(w.unacked[s])
	}
	t.Logf("summary: %d samples acknowledged, %d in batches given up, %d returned by the querier", acked, unacked, queried)
	if len(problems) > 20 {
		problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
	}
	require.Empty(t, problems, "the querier's answer differs from the acknowledged writes")
}

// clusterProblems compares one round of queries with what the writer
// recorded and returns the differences and the number of raw points.
func clusterProblems(t *testing.T, q *harness.Client, w *clusterWriter, end time.Time, rng string) ([]string, int) {
	t.Helper()
	var problems []string
	raw := map[int][]model.SamplePair{}
	queried := 0
	for _, s := range q.Query(clusterMetric+rng, end).Matrix(t) {
		id, err := strconv.Atoi(string(s.Metric["series"]))
		if err != nil {
			problems = append(problems, fmt.Sprintf("unexpected series %v", s.Metric))
			continue
		}
		if _, dup := raw[id]; dup {
			problems = append(problems, fmt.Sprintf("series %d returned twice", id))
		}
		raw[id] = append(raw[id], s.Values...)
		queried += len(s.Values)
	}
	counts := vectorBySeries(t, q.Query("count_over_time("+clusterMetric+rng+")", end).Vector(t))
	sums := vectorBySeries(t, q.Query("sum_over_time("+clusterMetric+rng+")", end).Vector(t))
	for s := 0; s < clusterSeries; s++ {
		acked, maybe := w.acked[s], w.unacked[s]
		seen := map[int64]bool{}
		var gotSum float64
		prev := int64(-1 << 62)
		for _, sp := range raw[s] {
			ts := int64(sp.Timestamp)
			switch {
			case seen[ts]:
				problems = append(problems, fmt.Sprintf("series %d: sample at %d returned twice", s, ts))
			case ts < prev:
				problems = append(problems, fmt.Sprintf("series %d: sample at %d after %d", s, ts, prev))
			}
			prev = ts
			seen[ts] = true
			gotSum += float64(sp.Value)
			want, ok := acked[ts]
			if !ok {
				want, ok = maybe[ts]
			}
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("series %d: sample at %d was never pushed", s, ts))
			case want != float64(sp.Value):
				problems = append(problems, fmt.Sprintf("series %d at %d: value %v, pushed %v", s, ts, sp.Value, want))
			}
		}
		var missing []int64
		var wantSum float64
		for ts, v := range acked {
			wantSum += v
			if !seen[ts] {
				missing = append(missing, ts)
			}
		}
		if len(missing) > 0 {
			sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
			problems = append(problems, fmt.Sprintf("series %d: %d acknowledged samples missing, first at %s, last at %s",
				s, len(missing), time.UnixMilli(missing[0]).Format("15:04:05.000"), time.UnixMilli(missing[len(missing)-1]).Format("15:04:05.000")))
		}
		// Exact equality: counts and sums of integers well below 2^53.
		wantCount := float64(len(acked))
		if len(maybe) > 0 {
			// Given-up samples may be stored: compare with the raw points.
			wantCount, wantSum = float64(len(raw[s])), gotSum
		}
		if counts[s] != wantCount {
			problems = append(problems, fmt.Sprintf("series %d: count_over_time %v, want %v", s, counts[s], wantCount))
		}
		if sums[s] != wantSum {
			problems = append(problems, fmt.Sprintf("series %d: sum_over_time %v, want %v", s, sums[s], wantSum))
		}
	}
	return problems, queried
}

// vectorBySeries maps the "series" label of each element to its value.
func vectorBySeries(t *testing.T, v model.Vector) map[int]float64 {
	t.Helper()
	out := make(map[int]float64, len(v))
	for _, s := range v {
		id, err := strconv.Atoi(string(s.Metric["series"]))
		require.NoErrorf(t, err, "series label of %v", s.Metric)
		require.NotContainsf(t, out, id, "series %d returned twice", id)
		out[id] = float64(s.Value)
	}
	return out
}
