package frontend

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/util/promtime"
)

// testData covers 10h at one sample a minute, with series that end, gaps,
// staleness markers and native histograms.
const testData = `
load 1m
	metric{a="1"} 0+1x600
	metric{a="2"} 0+2x300
	gappy{a="3"} 1+1x100 stale _x50 5+1x100
	hist {{schema:0 sum:5 count:4 buckets:[1 2 1]}}x600
`

const (
	rangePath = "/prometheus/api/v1/query_range"
	hour      = int64(3600_000)
)

// TestSplitMatchesUnsplit compares the frontend's split and merged answers
// with the querier's own answer to the whole query.
func TestSplitMatchesUnsplit(t *testing.T) {
	d := newPromQLDownstream(t, testData)
	cfg := testConfig(t, d.srv.URL)
	cfg.SplitInterval = time.Hour
	cfg.CacheResults = false
	f, _ := startFrontend(t, cfg, testLimits, nil, nil)

	queries := []string{
		`metric`,
		`rate(metric[5m])`,
		`metric offset 30m`,
		`metric offset -20m`,
		`metric @ start()`,
		`rate(metric[10m] @ end())`,
		`metric @ 3000`,
		`max_over_time(rate(metric[5m])[30m:1m])`,
		`max_over_time(metric[1h:7m] @ end())`,
		`sum by (a) (metric)`,
		`gappy`,
		`count_over_time(gappy[20m])`,
		`hist`,
		`histogram_count(rate(hist[5m]))`,
		`timestamp(metric)`,
		`time()`,
		`absent(nonexistent)`,
		`count_over_time(metric[2h])`,
	}
	windows := []struct{ start, end, step string }{
		{"1234.567", "36000", "7m"},
		{"0", "36000", "60"},
		{"3000", "3500", "15"},      // inside one interval
		{"100", "36000", "5000"},    // step longer than the interval
		{"7200", "7200", "60"},      // one point on a boundary
		{"-1800", "9000.5", "1000"}, // before the data, end off the grid
	}
	for _, q := range queries {
		for _, w := range windows {
			t.Run(q+" "+w.start+" "+w.end+" "+w.step, func(t *testing.T) {
				params := rangeParams(q, w.start, w.end, w.step)
				wantCode, wantBody := direct(t, d, "t1", rangePath, params)
				require.Equal(t, http.StatusOK, wantCode, string(wantBody))
				code, body := do(context.Background(), f.Handler(), "t1", rangePath, params, nil)
				require.Equal(t, http.StatusOK, code, string(body))
				require.Equal(t, decode(t, wantBody), decode(t, body))
			})
		}
	}
	// The long windows were really split at the hour boundaries.
	calls := d.takeCalls()
	require.Greater(t, len(calls), 2*len(queries)*len(windows))
}

// TestFrontendAndQuerierReadTimesAlike: both read start, end and step with
// package promtime, so the frontend splits on the very grid the querier
// evaluates, and leaves to the querier (one unsplit request) what it
// cannot split exactly: sub-millisecond times and steps, and times such as
// Prometheus' sentinel MinTime and MaxTime whose milliseconds the engine
// does not compute exactly. Either way the answers are the querier's.
func TestFrontendAndQuerierReadTimesAlike(t *testing.T) {
	d := newPromQLDownstream(t, testData)
	cfg := testConfig(t, d.srv.URL)
	cfg.SplitInterval = time.Hour
	cfg.CacheResults = false
	f, _ := startFrontend(t, cfg, testLimits, nil, nil)
	minT, maxT := promtime.MinTime.Format(time.RFC3339Nano), promtime.MaxTime.Format(time.RFC3339Nano)

	tests := []struct {
		start, end, step string
		split            bool // more than one request downstream
	}{
		{start: "1234.5675", end: "36000.0004", step: "60", split: true}, // fractions round to milliseconds
		{start: "1.0005", end: "7300", step: "60", split: true},          // 1.0005 rounds down (binary)
		{start: "-1800.0015", end: "9000", step: "60", split: true},      // negative, rounds away from zero
		{start: "0", end: "10800", step: "1001ms", split: true},          // a millisecond step
		{start: "0", end: "10800", step: "1.001", split: false},          // 1.000999999s: finer than a millisecond
		{start: "0", end: "7200", step: "60.0000005", split: false},      // likewise
		{start: "1970-01-01T00:20:34.567Z", end: "1970-01-01T10:00:00Z", step: "90s", split: true},
		{start: "1970-01-01T00:20:34.5675Z", end: "1970-01-01T10:00:00Z", step: "90s", split: false},
		{start: "1969-12-31T23:59:59.9995Z", end: "1970-01-01T02:00:00Z", step: "60", split: false},
		{start: minT, end: maxT, step: "60", split: false}, // too many points: the querier's 400
		{start: minT, end: minT, step: "60", split: false}, // one point the engine cannot place exactly
		{start: maxT, end: maxT, step: "60", split: false},
		{start: "1e11", end: "1e11", step: "60", split: false},   // year 5138
		{start: "0", end: maxT, step: "1e15", split: false},      // step overflows
		{start: "36000", end: "0", step: "60", split: false},     // end before start
		{start: "0", end: "36000", step: "0.0005", split: false}, // a step of 0.5ms
		{start: "0", end: "360000", step: "30", split: false},    // more than 11,000 points
	}
	for _, tc := range tests {
		t.Run(tc.start+" "+tc.end+" "+tc.step, func(t *testing.T) {
			params := rangeParams(`count_over_time(metric[5m]) + time()`, tc.start, tc.end, tc.step)
			wantCode, wantBody := direct(t, d, "t1", rangePath, params)
			d.takeCalls()
			code, body := do(context.Background(), f.Handler(), "t1", rangePath, params, nil)
			require.Equal(t, wantCode, code, string(body))
			require.Equal(t, decode(t, wantBody), decode(t, body))
			calls := d.takeCalls()
			require.Equal(t, tc.split, len(calls) > 1, "%d requests downstream", len(calls))
			if !tc.split {
				require.Equal(t, params, calls[0].form, "proxied as it came")
			}
		})
	}
}

// TestSubQueryRanges checks the ranges sent downstream.
func TestSubQueryRanges(t *testing.T) {
	d := newPromQLDownstream(t, testData)
	cfg := testConfig(t, d.srv.URL)
	cfg.SplitInterval = time.Hour
	cfg.CacheResults = false
	f, _ := startFrontend(t, cfg, testLimits, nil, nil)

	code, body := do(context.Background(), f.Handler(), "t1", rangePath, rangeParams(`metric @ start()`, "1800", "10800", "600"), nil)
	require.Equal(t, http.StatusOK, code, string(body))
	got := map[string]string{}
	for _, c := range d.takeCalls() {
		require.Equal(t, "t1", c.tenant)
		require.Equal(t, rangePath, c.path)
		require.Equal(t, "600", c.form.Get("step"))
		require.Equal(t, "metric @ 1800.000", c.form.Get("query"))
		got[c.form.Get("start")] = c.form.Get("end")
	}
	require.Equal(t, map[string]string{"1800": "3000", "3600": "6600", "7200": "10200", "10800": "10800"}, got)
}

func TestCache(t *testing.T) {
	d := newPromQLDownstream(t, testData)
	cfg := testConfig(t, d.srv.URL)
	cfg.SplitInterval = time.Hour
	now := time.Unix(100_000, 0)
	f, reg := startFrontend(t, cfg, testLimits, nil, func() time.Time { return now })
	h := f.Handler()
	query := `deriv(metric[5m]) + metric` // no annotations: those answers are not cached

	var calls []call // the frontend's calls of the last ask
	ask := func(tenant string, start, end int64, hdr http.Header) {
		t.Helper()
		params := rangeParams(query, strconv.FormatInt(start, 10), strconv.FormatInt(end, 10), "60")
		code, body := do(context.Background(), h, tenant, rangePath, params, hdr)
		require.Equal(t, http.StatusOK, code, string(body))
		calls = d.takeCalls()
		_, want := direct(t, d, tenant, rangePath, params)
		d.takeCalls()
		require.Equal(t, decode(t, want), decode(t, body))
	}
	// fetched returns the first and last point fetched downstream by the
	// last ask, and the number of requests.
	fetched := func() (int64, int64, int) {
		t.Helper()
		lo, hi := int64(1<<62), int64(-1<<62)
		for _, c := range calls {
			s, err := promtime.ParseTime(c.form.Get("start"))
			require.NoError(t, err)
			e, err := promtime.ParseTime(c.form.Get("end"))
			require.NoError(t, err)
			lo, hi = min(lo, s.Unix()), max(hi, e.Unix())
		}
		return lo, hi, len(calls)
	}

	ask("t1", 0, 5*3600, nil)
	lo, hi, n := fetched()
	require.Equal(t, []int64{0, 5 * 3600, 6}, []int64{lo, hi, int64(n)})

	// The same query again is answered from the cache alone.
	ask("t1", 0, 5*3600, nil)
	_, _, n = fetched()
	require.Zero(t, n)
	require.InDelta(t, 1, testutil.ToFloat64(f.cacheHits), 0)

	// A window shifted by one hour fetches only the new hour.
	ask("t1", 3600, 6*3600, nil)
	lo, hi, _ = fetched()
	require.Equal(t, []int64{5*3600 + 60, 6 * 3600}, []int64{lo, hi})

	// A window inside the cached ones, on the same grid, needs nothing.
	ask("t1", 1800, 4*3600, nil)
	_, _, n = fetched()
	require.Zero(t, n)

	// Another tenant shares nothing.
	ask("t2", 0, 5*3600, nil)
	lo, hi, n = fetched()
	require.Equal(t, []int64{0, 5 * 3600, 6}, []int64{lo, hi, int64(n)})

	// Cache-Control: no-store neither reads nor writes.
	noStoreHdr := http.Header{"Cache-Control": {"no-cache, no-store"}}
	ask("t1", 0, 3600, noStoreHdr)
	_, _, n = fetched()
	require.Equal(t, 2, n)
	ask("t3", 0, 3600, noStoreHdr)
	ask("t3", 0, 3600, nil)
	_, _, n = fetched()
	require.Equal(t, 2, n, "a no-store request must not have filled the cache")

	// A different grid (start mod step) is another key.
	ask("t1", 30, 3600+30, nil)
	_, _, n = fetched()
	require.Equal(t, 2, n)

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP meridian_frontend_cache_hits_total Parts of range queries and split Graphite renders answered from the results cache.
# TYPE meridian_frontend_cache_hits_total counter
meridian_frontend_cache_hits_total 3
# HELP meridian_frontend_cache_misses_total Parts of range queries and split Graphite renders the results cache did not hold, fetched downstream.
# TYPE meridian_frontend_cache_misses_total counter
meridian_frontend_cache_misses_total 5
`), "meridian_frontend_cache_hits_total", "meridian_frontend_cache_misses_total"))
}

func TestCacheFreshness(t *testing.T) {
	d := newPromQLDownstream(t, testData)
	cfg := testConfig(t, d.srv.URL)
	cfg.SplitInterval = 0
	cfg.MaxCacheFreshness = 10 * time.Minute
	now := time.Unix(5*3600, 0)
	f, _ := startFrontend(t, cfg, testLimits, nil, func() time.Time { return now })
	params := rangeParams(`metric`, "0", strconv.Itoa(5*3600), "60")
	for range 2 {
		code, body := do(context.Background(), f.Handler(), "t1", rangePath, params, nil)
		require.Equal(t, http.StatusOK, code, string(body))
	}
	calls := d.takeCalls()
	require.Len(t, calls, 2)
	require.Equal(t, "0", calls[0].form.Get("start"))
	// The second request fetched only what is newer than now - 10m.
	require.Equal(t, strconv.Itoa(5*3600-10*60+60), calls[1].form.Get("start"))
	require.Equal(t, strconv.Itoa(5*3600), calls[1].form.Get("end"))

	// A query entirely within the freshness window is never cached.
	fresh := rangeParams(`metric`, strconv.Itoa(5*3600-300), strconv.Itoa(5*3600), "60")
	for range 2 {
		code, body := do(context.Background(), f.Handler(), "t1", rangePath, fresh, nil)
		require.Equal(t, http.StatusOK, code, string(body))
	}
	require.Len(t, d.takeCalls(), 2)
}

func TestCacheEviction(t *testing.T) {
	d := newPromQLDownstream(t, testData)
	cfg := testConfig(t, d.srv.URL)
	cfg.CacheMaxSizeBytes = 5_000
	f, reg := startFrontend(t, cfg, testLimits, nil, func() time.Time { return time.Unix(100_000, 0) })
	for i := range 5 {
		params := rangeParams(fmt.Sprintf("metric + %d", i), "0", "36000", "600")
		code, body := do(context.Background(), f.Handler(), "t1", rangePath, params, nil)
		require.Equal(t, http.StatusOK, code, string(body))
	}
	mc := f.cache.(*resultsCache)
	require.Positive(t, testutil.ToFloat64(mc.evictions))
	size, err := testutil.GatherAndCount(reg, "meridian_frontend_cache_bytes")
	require.NoError(t, err)
	require.Equal(t, 1, size)
	mc.mu.Lock()
	defer mc.mu.Unlock()
	require.LessOrEqual(t, mc.size, 5_000)
}

func TestAddExtent(t *testing.T) {
	ext := func(s, e int64) extent { return extent{timeRange: timeRange{s, e}} }
	ranges := func(es []extent) []timeRange {
		var out []timeRange
		for _, e := range es {
			out = append(out, e.timeRange)
		}
		return out
	}
	old := []extent{ext(0, 10), ext(20, 30), ext(50, 60)}
	require.Equal(t, []timeRange{{0, 10}, {20, 30}, {40, 45}, {50, 60}}, ranges(addExtent(old, ext(40, 45), 1)))
	require.Equal(t, []timeRange{{0, 30}, {50, 60}}, ranges(addExtent(old, ext(11, 19), 1)))
	require.Equal(t, []timeRange{{0, 60}}, ranges(addExtent(old, ext(5, 55), 1)))
	require.Equal(t, []timeRange{{0, 10}, {15, 35}, {50, 60}}, ranges(addExtent(old, ext(15, 35), 1)))

	hits, gaps := lookup(timeRange{5, 55}, old, 1)
	require.Equal(t, []timeRange{{11, 19}, {31, 49}}, gaps)
	require.Len(t, hits, 3)
	require.Equal(t, timeRange{5, 10}, hits[0].r)
	require.Equal(t, timeRange{50, 55}, hits[2].r)
}

// TestFairness: one tenant with 50 queued requests delays another tenant's
// single request by no more than a couple of slots.
func TestFairness(t *testing.T) {
	g := newGate()
	var mu sync.Mutex
	var order []string
	d := newFakeDownstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		order = append(order, r.Header.Get("X-Scope-OrgID"))
		mu.Unlock()
		g.wait()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	})
	cfg := testConfig(t, d.srv.URL)
	cfg.MaxConcurrent = 1
	f, _ := startFrontend(t, cfg, testLimits, nil, nil)
	// Opened before the frontend stops and the downstream closes (cleanups
	// run last first): both wait for the request the gate holds.
	t.Cleanup(g.open)

	var wg sync.WaitGroup
	codes := make(chan int, 60)
	send := func(tenant string) {
		wg.Go(func() {
			code, _ := do(context.Background(), f.Handler(), tenant, "/prometheus/api/v1/query", url.Values{"query": {"up"}}, nil)
			codes <- code
		})
	}
	send("a")
	eventually(t, "the first request to reach downstream", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 1 })
	for range 50 {
		send("a")
	}
	eventually(t, "50 requests of tenant a queued", func() bool { return queueLen(f, "a") == 50 })
	send("b")
	eventually(t, "tenant b queued", func() bool { return queueLen(f, "b") == 1 })
	g.open()
	wg.Wait()
	close(codes)
	for c := range codes {
		require.Equal(t, http.StatusOK, c)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, order, 52)
	pos := -1
	for i, tn := range order {
		if tn == "b" {
			pos = i
		}
	}
	require.LessOrEqual(t, pos, 2, "tenant b waited behind %d requests of tenant a", pos)
}

func TestMaxOutstanding(t *testing.T) {
	g := newGate()
	d := newFakeDownstream(t, func(w http.ResponseWriter, _ *http.Request) {
		g.wait()
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	})
	cfg := testConfig(t, d.srv.URL)
	cfg.MaxConcurrent = 1
	f, reg := startFrontend(t, cfg, StaticLimits{MaxOutstanding: 2, MaxQueryParallelism: 1}, nil, nil)
	// Opened before the frontend stops and the downstream closes (cleanups
	// run last first): both wait for the request the gate holds.
	t.Cleanup(g.open)
	var wg sync.WaitGroup
	send := func() {
		wg.Go(func() {
			code, body := do(context.Background(), f.Handler(), "a", "/prometheus/api/v1/query", url.Values{"query": {"up"}}, nil)
			require.Equal(t, http.StatusOK, code, string(body))
		})
	}
	// One running first: sent together, all three could be queued before
	// the worker takes one, and the third would be over the limit.
	send()
	eventually(t, "one running", func() bool { return queueLen(f, "a") == 0 && d.numCalls() == 1 })
	send()
	send()
	eventually(t, "one running and two queued", func() bool { return queueLen(f, "a") == 2 && d.numCalls() == 1 })

	code, body := do(context.Background(), f.Handler(), "a", "/prometheus/api/v1/query", url.Values{"query": {"up"}}, nil)
	require.Equal(t, http.StatusTooManyRequests, code)
	a := decode(t, body)
	require.Equal(t, "error", a.Status)
	require.Contains(t, a.Error, "limit: 2")
	require.Contains(t, a.Error, ErrIDMaxOutstanding)
	require.Contains(t, a.Error, "max_outstanding_requests_per_tenant")

	// Another tenant is not limited by a's queue.
	done := make(chan int, 1)
	go func() {
		code, _ := do(context.Background(), f.Handler(), "b", "/prometheus/api/v1/query", url.Values{"query": {"up"}}, nil)
		done <- code
	}()
	eventually(t, "tenant b queued", func() bool { return queueLen(f, "b") == 1 })
	g.open()
	wg.Wait()
	require.Equal(t, http.StatusOK, <-done)
	require.InDelta(t, 1, testutil.ToFloat64(f.rejected.WithLabelValues("too_many_outstanding")), 0)
	_ = reg
}

// TestCancelDropsQueued: a client that goes away leaves nothing queued.
func TestCancelDropsQueued(t *testing.T) {
	g := newGate()
	d := newFakeDownstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-g.ch:
		case <-r.Context().Done():
		}
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	})
	cfg := testConfig(t, d.srv.URL)
	cfg.MaxConcurrent = 1
	cfg.SplitInterval = time.Hour
	f, _ := startFrontend(t, cfg, testLimits, nil, nil)
	// Opened before the frontend stops and the downstream closes (cleanups
	// run last first): both wait for the request the gate holds.
	t.Cleanup(g.open)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		code, _ := do(ctx, f.Handler(), "a", rangePath, rangeParams("up", "0", "36000", "60"), nil)
		done <- code
	}()
	eventually(t, "one sub-query at the downstream and the others queued", func() bool {
		return queueLen(f, "a") == testLimits.MaxQueryParallelism-1 && d.numCalls() == 1
	})
	cancel()
	require.Equal(t, statusClientClosedRequest, <-done)
	require.Zero(t, queueLen(f, "a"))
	require.False(t, g.isOpen())
	require.Len(t, d.takeCalls(), 1, "only the running sub-query reached downstream")
	require.InDelta(t, 1, testutil.ToFloat64(f.canceled.WithLabelValues("in_flight")), 0)
	require.InDelta(t, testLimits.MaxQueryParallelism-1, testutil.ToFloat64(f.canceled.WithLabelValues("queued")), 0)
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		statuses  []int // answers in turn; the last repeats
		wantCode  int
		wantCalls int
	}{
		{"500 then success", []int{500, 503, 200}, 200, 3},
		{"400 is not retried", []int{400}, 400, 1},
		{"422 is not retried", []int{422}, 422, 1},
		{"always 500", []int{500}, 500, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			n := 0
			d := newFakeDownstream(t, func(w http.ResponseWriter, _ *http.Request) {
				mu.Lock()
				st := tc.statuses[min(n, len(tc.statuses)-1)]
				n++
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(st)
				if st == 200 {
					_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[]}}`))
					return
				}
				_, _ = fmt.Fprintf(w, `{"status":"error","errorType":"execution","error":"status %d"}`, st)
			})
			cfg := testConfig(t, d.srv.URL)
			cfg.MaxRetries = 3
			cfg.CacheResults = false
			f, _ := startFrontend(t, cfg, testLimits, nil, nil)
			code, body := do(context.Background(), f.Handler(), "a", rangePath, rangeParams("up", "0", "60", "60"), nil)
			require.Equal(t, tc.wantCode, code, string(body))
			require.Len(t, d.takeCalls(), tc.wantCalls)
			if code != 200 {
				// The querier's error body is passed on as it came.
				require.Equal(t, fmt.Sprintf("status %d", code), decode(t, body).Error)
			}
			require.InDelta(t, float64(tc.wantCalls-1), testutil.ToFloat64(f.retries), 0)
		})
	}
}

// TestSubQueryErrorWins: one failing part fails the query with its answer.
func TestSubQueryErrorWins(t *testing.T) {
	d := newFakeDownstream(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		if r.Form.Get("start") == "7200" {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"status":"error","errorType":"execution","error":"too many samples"}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[]}}`))
	})
	cfg := testConfig(t, d.srv.URL)
	cfg.SplitInterval = time.Hour
	f, _ := startFrontend(t, cfg, testLimits, nil, nil)
	code, body := do(context.Background(), f.Handler(), "a", rangePath, rangeParams("up", "0", "36000", "60"), nil)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Equal(t, "too many samples", decode(t, body).Error)
}

// TestSiblingFailureNotCountedAsCanceled: sub-queries canceled because
// another one failed are not client cancellations.
func TestSiblingFailureNotCountedAsCanceled(t *testing.T) {
	d := newFakeDownstream(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		if r.Form.Get("start") == "7200" {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"status":"error","errorType":"execution","error":"too many samples"}`))
			return
		}
		select { // the others run until the frontend gives up on them
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[]}}`))
	})
	cfg := testConfig(t, d.srv.URL)
	cfg.SplitInterval = time.Hour
	cfg.MaxConcurrent = 4
	f, _ := startFrontend(t, cfg, testLimits, nil, nil)
	code, _ := do(context.Background(), f.Handler(), "a", rangePath, rangeParams("up", "0", "36000", "60"), nil)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Zero(t, testutil.ToFloat64(f.canceled.WithLabelValues("in_flight")))
	require.Zero(t, testutil.ToFloat64(f.canceled.WithLabelValues("queued")))
}

// TestUnsplittable: parameters the merge cannot honour, or queries beyond
// the limits, go downstream unchanged.
func TestUnsplittable(t *testing.T) {
	d := newPromQLDownstream(t, testData)
	cfg := testConfig(t, d.srv.URL)
	cfg.SplitInterval = time.Hour
	f, _ := startFrontend(t, cfg, StaticLimits{MaxOutstanding: 10, MaxQueryParallelism: 2, MaxPointsPerTimeseries: 100}, nil, nil)
	for _, params := range []url.Values{
		{"query": {"metric"}, "start": {"0"}, "end": {"36000"}, "step": {"60"}, "limit": {"1"}},
		rangeParams("metric", "0", "36000", "60"), // 600 points > 100
		rangeParams("metric{", "0", "36000", "600"),
		rangeParams("metric", "x", "36000", "600"),
	} {
		wantCode, want := direct(t, d, "t1", rangePath, params)
		code, body := do(context.Background(), f.Handler(), "t1", rangePath, params, nil)
		require.Equal(t, wantCode, code)
		require.Equal(t, string(want), string(body))
	}
	require.Len(t, d.takeCalls(), 8)
}

// TestProxyAndQueryLog: other endpoints are proxied; queries are logged.
func TestProxyAndQueryLog(t *testing.T) {
	d := newPromQLDownstream(t, testData)
	var buf syncBuffer
	cfg := testConfig(t, d.srv.URL)
	cfg.LogQueriesLongerThan = time.Nanosecond
	f, _ := startFrontend(t, cfg, testLimits, log.NewLogfmtLogger(&buf), nil)
	for _, tc := range []struct {
		path   string
		params url.Values
	}{
		{"/prometheus/api/v1/query", url.Values{"query": {"sum(metric)"}, "time": {"600"}}},
		{"/prometheus/api/v1/labels", url.Values{"start": {"0"}, "end": {"600"}}},
		{"/prometheus/api/v1/label/a/values", url.Values{}},
		{"/prometheus/api/v1/series", url.Values{"match[]": {"metric"}}},
		{"/prometheus/api/v1/query", url.Values{"query": {"sum("}}},
	} {
		wantCode, want := direct(t, d, "t1", tc.path, tc.params)
		code, body := do(context.Background(), f.Handler(), "t1", tc.path, tc.params, nil)
		require.Equal(t, wantCode, code, tc.path)
		require.JSONEq(t, string(want), string(body), tc.path)
	}
	code, body := do(context.Background(), f.Handler(), "t1", rangePath, rangeParams("metric", "0", "600", "60"), nil)
	require.Equal(t, http.StatusOK, code, string(body))
	// No tenant in the context.
	code, _ = do(context.Background(), f.Handler(), "", rangePath, rangeParams("metric", "0", "600", "60"), nil)
	require.Equal(t, http.StatusUnauthorized, code)

	logs := buf.String()
	require.Contains(t, logs, `level=info msg=query tenant=t1 endpoint=query query=sum(metric) time=600`)
	require.Contains(t, logs, `level=info msg=query tenant=t1 endpoint=query_range query=metric start=0 end=600 step=60`)
	require.Contains(t, logs, `split_queries=1 cache_hit_share=0.000`)
	require.Contains(t, logs, `level=warn msg="slow query" tenant=t1 endpoint=query_range`)
	require.NotContains(t, logs, "endpoint=labels")
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAnnotatedAnswersCached: warnings and infos are kept with the extent,
// so a repeated query is answered from the cache with the same
// annotations, identical to an uncached answer; a query that covers an
// annotated sub-query's range only partly fetches that part again.
func TestAnnotatedAnswersCached(t *testing.T) {
	d := newPromQLDownstream(t, testData)
	cfg := testConfig(t, d.srv.URL)
	cfg.SplitInterval = 20 * time.Minute
	f, _ := startFrontend(t, cfg, testLimits, nil, func() time.Time { return time.Unix(100_000, 0) })
	noStore := http.Header{"Cache-Control": {"no-store"}}
	params := rangeParams(`rate(metric[5m])`, "0", "3600", "60")
	code, uncached := do(context.Background(), f.Handler(), "t1", rangePath, params, noStore)
	require.Equal(t, http.StatusOK, code, string(uncached))
	require.NotEmpty(t, decode(t, uncached).Infos, "the query carries an info annotation")
	d.takeCalls()
	for i := range 2 {
		code, body := do(context.Background(), f.Handler(), "t1", rangePath, params, nil)
		require.Equal(t, http.StatusOK, code, string(body))
		require.Equal(t, string(uncached), string(body), "round %d", i)
	}
	require.Len(t, d.takeCalls(), 4, "only the first round reached the querier (4 sub-queries)")

	// [1500, 3600] covers the sub-query [1200, 2399] only partly: its
	// points are fetched again, the two later sub-queries come from cache.
	params = rangeParams(`rate(metric[5m])`, "1500", "3600", "60")
	_, want := do(context.Background(), f.Handler(), "t1", rangePath, params, noStore)
	d.takeCalls()
	code, body := do(context.Background(), f.Handler(), "t1", rangePath, params, nil)
	require.Equal(t, http.StatusOK, code, string(body))
	require.Equal(t, string(want), string(body))
	calls := d.takeCalls()
	require.Len(t, calls, 1)
	require.Equal(t, "1500", calls[0].form.Get("start"))
	require.Equal(t, "2340", calls[0].form.Get("end"))
}

func TestTrimAnnotatedSpans(t *testing.T) {
	e := extent{timeRange: timeRange{0, 100}, ann: []annSpan{
		{timeRange: timeRange{20, 39}, infos: []string{"i1"}},
		{timeRange: timeRange{60, 79}, warnings: []string{"w1"}},
	}}
	// Whole spans are kept with their annotations.
	hits, gaps := lookup(timeRange{0, 100}, []extent{e}, 1)
	require.Empty(t, gaps)
	require.Equal(t, []string{"i1"}, hits[0].infos)
	require.Equal(t, []string{"w1"}, hits[0].warnings)
	// A request ending inside a span, and one starting inside one, refetch
	// the span's points they need.
	hits, gaps = lookup(timeRange{0, 70}, []extent{e}, 1)
	require.Equal(t, []timeRange{{60, 70}}, gaps)
	require.Equal(t, timeRange{0, 59}, hits[0].r)
	require.Equal(t, []string{"i1"}, hits[0].infos)
	require.Empty(t, hits[0].warnings)
	hits, gaps = lookup(timeRange{30, 100}, []extent{e}, 1)
	require.Equal(t, []timeRange{{30, 39}}, gaps)
	require.Equal(t, timeRange{40, 100}, hits[0].r)
	require.Empty(t, hits[0].infos)
	// Adding an extent that cuts a span drops the span's remaining points.
	out := addExtent([]extent{e}, extent{timeRange: timeRange{0, 30}}, 1)
	require.Equal(t, []timeRange{{0, 30}, {40, 100}}, []timeRange{out[0].timeRange, out[1].timeRange})
	require.Len(t, out[1].ann, 1)
}
