package frontend

import (
	"context"
	"math"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	graphiteapi "github.com/meridianhq/meridian/pkg/graphite/api"
	"github.com/meridianhq/meridian/pkg/graphite/mapping"
	"github.com/meridianhq/meridian/pkg/graphite/render"
	"github.com/meridianhq/meridian/pkg/limits"
)

// graphiteT0 is the start of the test data, on an hour.
const graphiteT0 = int64(1749999600)

// newGraphiteDownstream serves Meridian's Graphite API over a TSDB holding
// 6h of minutely data from graphiteT0: srv.{web1,web2,db1}.cpu (with gaps),
// srv.new.cpu only from the 4th hour on, and tagged disk;host={a,b}.
func newGraphiteDownstream(t testing.TB) *downstream {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), promslog.NewNopLogger(), nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	rnd := rand.New(rand.NewSource(1))
	app := db.AppenderV2(context.Background())
	add := func(ls labels.Labels, from, to int64, gapEvery int) {
		for ts := from; ts < to; ts += 60 {
			if gapEvery > 0 && rnd.Intn(gapEvery) == 0 {
				continue
			}
			v := math.Round(rnd.Float64()*1000) / 10
			_, err := app.Append(0, ls, 0, (ts+int64(rnd.Intn(59)))*1000, v, nil, nil, storage.AOptions{})
			require.NoError(t, err)
		}
	}
	end := graphiteT0 + 6*3600
	add(mapping.PathLabels("srv.web1.cpu"), graphiteT0, end, 7)
	add(mapping.PathLabels("srv.web2.cpu"), graphiteT0, end, 3)
	add(mapping.PathLabels("srv.db1.cpu"), graphiteT0, end, 0)
	add(mapping.PathLabels("srv.new.cpu"), graphiteT0+3*3600, end, 0)
	add(labels.FromStrings("__name__", "disk", "host", "a"), graphiteT0, end, 5)
	add(labels.FromStrings("__name__", "disk", "host", "b"), graphiteT0, end, 0)
	require.NoError(t, app.Commit())

	lim := limits.Limits{GraphiteStep: model.Duration(time.Minute), GraphiteMaxSeriesPerRender: 1000, GraphiteMaxPointsPerRender: 10_000_000}
	api := graphiteapi.New(db, fakeLimits{lim}, log.NewNopLogger(), prometheus.NewRegistry())
	mux := http.NewServeMux()
	for p, h := range api.Routes() {
		mux.HandleFunc("/graphite"+p, h)
	}
	return newFakeDownstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, ctx, err := user.ExtractOrgIDFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r.WithContext(ctx))
	})
}

var graphiteTestLimits = StaticLimits{MaxOutstanding: 100, MaxQueryParallelism: 4, GraphiteStep: time.Minute,
	GraphiteMaxSeriesPerRender: 1000, GraphiteMaxPointsPerRender: 10_000_000}

func startGraphiteFrontend(t testing.TB, d *downstream, lim Limits) (*Frontend, *prometheus.Registry) {
	t.Helper()
	cfg := testConfig(t, d.srv.URL)
	cfg.SplitInterval = time.Hour
	// The clock is a day after the data: every interval may be cached.
	return startFrontend(t, cfg, lim, nil, func() time.Time { return time.Unix(graphiteT0+30*3600, 0) })
}

func renderParams(from, until int64, targets ...string) url.Values {
	return url.Values{"target": targets, "from": {strconv.FormatInt(from, 10)}, "until": {strconv.FormatInt(until, 10)}}
}

// splitCalls counts the calls that asked for a part.
func splitCalls(calls []call) int {
	n := 0
	for _, c := range calls {
		if c.form.Get("format") == render.FormatPart {
			n++
		}
	}
	return n
}

func TestGraphiteRenderSplitEqualsUnsplit(t *testing.T) {
	d := newGraphiteDownstream(t)
	f, reg := startGraphiteFrontend(t, d, graphiteTestLimits)
	h := f.Handler()
	const hr = 3600
	windows := []struct {
		name        string
		from, until int64
		parts       int // parts a cold render is split into
	}{
		{"aligned, 5 intervals of the split", graphiteT0, graphiteT0 + 5*hr, 6}, // (T0, T0+5h] holds the interval starting at T0+5h
		{"unaligned from and until", graphiteT0 + 37, graphiteT0 + 4*hr + 13, 5},
		{"until one second before an hour", graphiteT0 + 59, graphiteT0 + 3*hr - 1, 3},
		{"shorter than a part, across a boundary", graphiteT0 + hr - 150, graphiteT0 + hr + 30, 2},
		{"inside one part", graphiteT0 + 600, graphiteT0 + 1234, 1},
		{"partly after the data", graphiteT0 + 5*hr + 100, graphiteT0 + 7*hr, 3},
	}
	targets := []string{
		"srv.web*.cpu",
		"sumSeries(srv.web*.cpu)",
		"aliasByNode(srv.{web,db}*.cpu, 1)",
		"scale(offset(srv.web1.cpu, 1), 2.5)",
		"groupByNode(srv.{web,db}*.cpu, 0, 'max')",
		"seriesByTag('name=disk')",
		"aliasByTags(seriesByTag('name=disk'), 'host')",
		"transformNull(srv.web*.cpu, -1)",
		"consolidateBy(srv.web*.cpu, 'max')",
		"countSeries(srv.web*.cpu)",
		"divideSeries(srv.web*.cpu, srv.db1.cpu)",
		"alias(multiplySeries(srv.web1.cpu, srv.web2.cpu), 'product')",
		"percentileOfSeries(srv.{web,db}*.cpu, 50)",
	}
	// check compares the frontend's answer with the querier's and returns
	// the calls the frontend made.
	check := func(params url.Values) []call {
		t.Helper()
		return renderBothWays(t, d, h, params)
	}
	for wi, w := range windows {
		for _, target := range targets {
			params := renderParams(w.from, w.until, target)
			calls := check(params)
			require.Equal(t, len(calls), splitCalls(calls), "%s %s: every call asks for a part: %v", w.name, target, calls)
			// The first target of the first window fills the cache; the
			// later windows fetch the parts that are not cached, or probe
			// the last interval for the window's series.
			if wi == 0 {
				require.Equal(t, w.parts, len(calls), "%s %s", w.name, target)
			}
			require.LessOrEqual(t, len(calls), w.parts, "%s %s", w.name, target)
			// Consolidation and the other formats, from the cache.
			for _, extra := range []url.Values{
				{"maxDataPoints": {"50"}}, {"maxDataPoints": {"7"}}, {"maxDataPoints": {"1"}},
				{"format": {"csv"}}, {"format": {"raw"}}, {"noNullPoints": {"1"}},
				{"maxDataPoints": {"13"}, "format": {"raw"}},
			} {
				p := renderParams(w.from, w.until, target)
				for k, v := range extra {
					p[k] = v
				}
				require.Empty(t, check(p), "%s %s: a repeated render is answered from the cache", w.name, target)
			}
		}
	}
	// Several targets in one render: consolidation spans all of them.
	check(url.Values{"target": {"srv.web1.cpu", "sumSeries(seriesByTag('name=disk'))"}, "from": {strconv.FormatInt(graphiteT0+17, 10)},
		"until": {strconv.FormatInt(graphiteT0+5*hr+5, 10)}, "maxDataPoints": {"100"}})
	require.Zero(t, testutil.ToFloat64(f.graphiteUnsplit.WithLabelValues("series_differ")))
	require.Zero(t, testutil.ToFloat64(f.graphiteUnsplit.WithLabelValues("part_refused")))
	_ = reg
}

func TestGraphiteRenderNotPointwiseIsProxied(t *testing.T) {
	d := newGraphiteDownstream(t)
	f, _ := startGraphiteFrontend(t, d, graphiteTestLimits)
	h := f.Handler()
	for _, target := range []string{
		"movingAverage(srv.web1.cpu, 5)", "perSecond(srv.web1.cpu)", "highestMax(srv.*.cpu, 1)",
		"sumSeries(keepLastValue(srv.web*.cpu))", "removeEmptySeries(srv.*.cpu)", "constantLine(5)",
		"summarize(srv.web1.cpu, '1h')", "timeShift(srv.web1.cpu, '1h')", "sortByMaxima(srv.*.cpu)",
		"srv.web1.cpu)", // does not parse: the querier answers the error
	} {
		params := renderParams(graphiteT0, graphiteT0+5*3600, target)
		d.takeCalls()
		code, got := do(context.Background(), h, "t1", "/graphite/render", params, nil)
		calls := d.takeCalls()
		require.Len(t, calls, 1, target)
		require.Equal(t, params, calls[0].form, "%s: proxied as it came", target)
		wantCode, want := direct(t, d, "t1", "/graphite/render", params)
		require.Equal(t, wantCode, code, target)
		require.Equal(t, string(want), string(got), target)
	}
	// A parameter the split does not know is proxied too.
	params := renderParams(graphiteT0, graphiteT0+5*3600, "srv.web1.cpu")
	params.Set("template", "x")
	d.takeCalls()
	do(context.Background(), h, "t1", "/graphite/render", params, nil)
	require.Zero(t, splitCalls(d.takeCalls()))
}

func TestGraphiteRenderCacheShiftedWindow(t *testing.T) {
	d := newGraphiteDownstream(t)
	f, reg := startGraphiteFrontend(t, d, graphiteTestLimits)
	h := f.Handler()
	ctx := context.Background()
	target := "sumSeries(srv.web*.cpu)"
	first := renderParams(graphiteT0+300, graphiteT0+3*3600+300, target)
	do(ctx, h, "t1", "/graphite/render", first, nil)
	require.Equal(t, 4, splitCalls(d.takeCalls()))
	hits := testutil.ToFloat64(f.cacheHits)

	// The same window shifted by 30 minutes: only the new half hour is fetched.
	shifted := renderParams(graphiteT0+300+1800, graphiteT0+3*3600+300+1800, target)
	code, got := do(ctx, h, "t1", "/graphite/render", shifted, nil)
	calls := d.takeCalls()
	require.Equal(t, 1, splitCalls(calls))
	require.Equal(t, strconv.FormatInt(graphiteT0+3*3600+300, 10), calls[0].form.Get("from"), "the gap starts after the cached intervals")
	require.Equal(t, hits+1, testutil.ToFloat64(f.cacheHits))
	wantCode, want := direct(t, d, "t1", "/graphite/render", shifted)
	require.Equal(t, wantCode, code)
	require.Equal(t, string(want), string(got))
	d.takeCalls()

	// Another tenant has its own cache entries.
	do(ctx, h, "t2", "/graphite/render", shifted, nil)
	require.Equal(t, 4, splitCalls(d.takeCalls()))

	// Cache-Control: no-store reads and writes nothing.
	do(ctx, h, "t1", "/graphite/render", shifted, http.Header{"Cache-Control": {"no-store"}})
	require.Equal(t, 4, splitCalls(d.takeCalls()))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP meridian_frontend_graphite_unsplit_renders_total Graphite renders the query-frontend answered unsplit and uncached, by reason: "not_pointwise" (a target uses a function that is not point-wise in time, or parameters the split cannot honour), "part_refused" (the querier refused a part with a 4xx) or "series_differ" (the parts fetched different series).
# TYPE meridian_frontend_graphite_unsplit_renders_total counter
meridian_frontend_graphite_unsplit_renders_total{reason="not_pointwise"} 0
meridian_frontend_graphite_unsplit_renders_total{reason="part_refused"} 0
meridian_frontend_graphite_unsplit_renders_total{reason="series_differ"} 0
`), "meridian_frontend_graphite_unsplit_renders_total"))
}

func TestGraphiteRenderMaxCacheFreshness(t *testing.T) {
	d := newGraphiteDownstream(t)
	cfg := testConfig(t, d.srv.URL)
	cfg.SplitInterval = time.Hour
	cfg.MaxCacheFreshness = 10 * time.Minute
	// now is 2h into the data: the last 10 minutes (and the interval
	// reaching into them) are never cached.
	now := graphiteT0 + 2*3600
	f, _ := startFrontend(t, cfg, graphiteTestLimits, nil, func() time.Time { return time.Unix(now, 0) })
	params := renderParams(graphiteT0, now, "srv.db1.cpu")
	do(context.Background(), f.Handler(), "t1", "/graphite/render", params, nil)
	require.Equal(t, 3, splitCalls(d.takeCalls()))
	code, got := do(context.Background(), f.Handler(), "t1", "/graphite/render", params, nil)
	calls := d.takeCalls()
	// The fresh intervals are fetched again: up to the hour, and the one
	// starting at now (which until=now holds).
	require.Equal(t, 2, splitCalls(calls))
	require.ElementsMatch(t, []string{strconv.FormatInt(now-11*60, 10), strconv.FormatInt(now-60, 10)},
		[]string{calls[0].form.Get("from"), calls[1].form.Get("from")})
	wantCode, want := direct(t, d, "t1", "/graphite/render", params)
	require.Equal(t, wantCode, code)
	require.Equal(t, string(want), string(got))
}

func TestGraphiteRenderSeriesComeAndGo(t *testing.T) {
	d := newGraphiteDownstream(t)
	f, _ := startGraphiteFrontend(t, d, graphiteTestLimits)
	h := f.Handler()
	ctx := context.Background()
	compare := func(params url.Values) []call {
		t.Helper()
		return renderBothWays(t, d, h, params)
	}
	// srv.new.cpu has data from the 4th hour on: parts before it still
	// have it (all null), so countSeries, transformNull, alias and
	// divideSeries's MISSING name are those of the whole range.
	for _, target := range []string{"countSeries(srv.*.cpu)", "transformNull(srv.*.cpu, 0)", "alias(srv.*.cpu, 'x')",
		"divideSeries(srv.db1.cpu, srv.new.cpu)", "srv.new.cpu",
	} {
		for _, w := range [][2]int64{
			{graphiteT0 + 100, graphiteT0 + 5*3600},          // across the start of srv.new.cpu
			{graphiteT0 + 100, graphiteT0 + 2*3600},          // before it
			{graphiteT0 + 5*3600 + 100, graphiteT0 + 7*3600}, // partly after all data
		} {
			calls := compare(renderParams(w[0], w[1], target))
			require.Equal(t, len(calls), splitCalls(calls), "%s %v: split", target, w)
		}
	}
	require.Zero(t, testutil.ToFloat64(f.graphiteUnsplit.WithLabelValues("series_differ")))

	// The cached parts of the 2h render know 3 series of srv.*.cpu; the
	// 5h render has 4 in its range: its target is fetched again whole, and
	// its parts replace the cached ones.
	refetched := testutil.ToFloat64(f.graphiteRefetched)
	target := "sumSeries(scale(srv.*.cpu, 2))"
	compare(renderParams(graphiteT0+100, graphiteT0+2*3600, target))
	require.Equal(t, refetched, testutil.ToFloat64(f.graphiteRefetched))
	calls := compare(renderParams(graphiteT0+100, graphiteT0+5*3600, target))
	require.Equal(t, refetched+1, testutil.ToFloat64(f.graphiteRefetched))
	require.Equal(t, 4+6, splitCalls(calls), "the 4 missing parts, then all 6 parts")
	require.Empty(t, compare(renderParams(graphiteT0+100, graphiteT0+5*3600, target)), "then answered from the cache")

	// Back to the 2h render: all cached, but for the 5h render's series.
	// The last interval, fetched for the 2h render's series, shows 3 where
	// the cached parts have 4: fetched again whole (3 parts).
	calls = compare(renderParams(graphiteT0+100, graphiteT0+2*3600, target))
	require.Equal(t, 1+3, splitCalls(calls))
	require.Equal(t, refetched+2, testutil.ToFloat64(f.graphiteRefetched))
	require.Empty(t, compare(renderParams(graphiteT0+100, graphiteT0+2*3600, target)))
	// A 2h render 10 minutes earlier has the same series: its new first
	// intervals (two parts: they cross an hour), fetched for its series,
	// confirm the cached parts.
	calls = compare(renderParams(graphiteT0+100-600, graphiteT0+2*3600-600, target))
	require.Equal(t, 2, splitCalls(calls))
	require.Equal(t, refetched+2, testutil.ToFloat64(f.graphiteRefetched))
	// A 1h render inside it is all cached for other ranges: the probe of
	// its last interval confirms the cached parts.
	calls = compare(renderParams(graphiteT0+1800, graphiteT0+5400, target))
	require.Equal(t, 1, splitCalls(calls))
	require.Equal(t, strconv.FormatInt(graphiteT0+5400-60, 10), calls[0].form.Get("from"))
	require.Equal(t, refetched+2, testutil.ToFloat64(f.graphiteRefetched))
	require.Empty(t, compare(renderParams(graphiteT0+1800, graphiteT0+5400, target)))

	// A part the querier refuses (two divisor series) is answered
	// unsplit, in the querier's words.
	params := renderParams(graphiteT0+100, graphiteT0+5*3600, "divideSeries(srv.db1.cpu, srv.{web1,new}.cpu)")
	code, got := do(ctx, h, "t1", "/graphite/render", params, nil)
	wantCode, want := direct(t, d, "t1", "/graphite/render", params)
	require.Equal(t, http.StatusBadRequest, wantCode)
	require.Equal(t, wantCode, code)
	require.Equal(t, string(want), string(got))
	require.Equal(t, 1.0, testutil.ToFloat64(f.graphiteUnsplit.WithLabelValues("part_refused")))
}

func TestGraphiteRenderBudget(t *testing.T) {
	d := newGraphiteDownstream(t)
	lim := graphiteTestLimits
	// 2 series × 301 intervals fit in each hour's part but not together.
	lim.GraphiteMaxPointsPerRender = 500
	f, _ := startGraphiteFrontend(t, d, lim)
	params := renderParams(graphiteT0, graphiteT0+5*3600, "srv.web*.cpu")
	code, got := do(context.Background(), f.Handler(), "t1", "/graphite/render", params, nil)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, string(got), render.ErrIDMaxPointsPerRender)
	require.True(t, strings.HasSuffix(string(got), "\n"), "plain text, as the querier answers")
}

func TestGraphiteRenderErrorsArePlainText(t *testing.T) {
	d := newFakeDownstream(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	f, _ := startGraphiteFrontend(t, d, graphiteTestLimits)
	req := httptest.NewRequest(http.MethodGet, "/graphite/render?target=a.b", nil)
	rec := httptest.NewRecorder()
	f.Handler().ServeHTTP(rec, req) // no tenant
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
	require.NotContains(t, rec.Body.String(), `"status"`)
}

func TestGraphiteRenderTooManyOutstandingIsPlainText(t *testing.T) {
	g := newGate()
	d := newFakeDownstream(t, func(w http.ResponseWriter, _ *http.Request) {
		g.wait()
		_, _ = w.Write([]byte(`[]`))
	})
	cfg := testConfig(t, d.srv.URL)
	cfg.MaxConcurrent = 1
	f, _ := startFrontend(t, cfg, StaticLimits{MaxOutstanding: 1, MaxQueryParallelism: 1}, nil, nil)
	// Opened before the frontend stops and the downstream closes (cleanups
	// run last first): both wait for the request the gate holds.
	t.Cleanup(g.open)
	params := url.Values{"target": {"movingAverage(a.b, 5)"}} // proxied: one downstream request each
	var wg sync.WaitGroup
	send := func() {
		wg.Go(func() {
			code, body := do(context.Background(), f.Handler(), "a", "/graphite/render", params, nil)
			require.Equal(t, http.StatusOK, code, string(body))
		})
	}
	// One running first: sent together, both could be queued before the
	// worker takes one, and the second would be over the limit.
	send()
	eventually(t, "one running", func() bool { return queueLen(f, "a") == 0 && d.numCalls() == 1 })
	send()
	eventually(t, "one running and one queued", func() bool { return queueLen(f, "a") == 1 && d.numCalls() == 1 })
	req := httptest.NewRequestWithContext(user.InjectOrgID(context.Background(), "a"), http.MethodGet, "/graphite/render?"+params.Encode(), nil)
	rec := httptest.NewRecorder()
	f.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
	require.True(t, strings.HasPrefix(rec.Body.String(), "too many outstanding requests for tenant a"), rec.Body.String())
	require.Contains(t, rec.Body.String(), ErrIDMaxOutstanding)
	g.open()
	wg.Wait()
}

func TestGraphiteRenderSharedCache(t *testing.T) {
	d := newGraphiteDownstream(t)
	f, _ := startGraphiteFrontend(t, d, graphiteTestLimits)
	// memcached or redis: extents go through their JSON encoding.
	kv := &mapKV{m: map[string][]byte{}}
	f.cache = &remoteCache{kv: kv, ttl: time.Hour, logger: log.NewNopLogger(),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})}
	h := f.Handler()
	ctx := context.Background()
	for _, target := range []string{
		"srv.web*.cpu",                                  // nulls
		"scale(scale(srv.db1.cpu, 1e308), 10)",          // +Inf
		"aliasByTags(seriesByTag('name=disk'), 'host')", // tags
	} {
		for _, w := range [][2]int64{{graphiteT0 + 100, graphiteT0 + 4*3600}, {graphiteT0 + 1900, graphiteT0 + 5*3600}} {
			params := renderParams(w[0], w[1], target)
			params.Set("maxDataPoints", "100")
			wantCode, want := direct(t, d, "t1", "/graphite/render", params)
			require.Equal(t, http.StatusOK, wantCode)
			if strings.Contains(target, "1e308") {
				require.Contains(t, string(want), "1e9999", "the answer has infinities")
			}
			for _, pass := range []string{"cold", "warm"} {
				d.takeCalls()
				code, got := do(ctx, h, "t1", "/graphite/render", params, nil)
				require.Equal(t, wantCode, code)
				require.Equal(t, string(want), string(got), "%s %s", target, pass)
				if pass == "warm" {
					require.Empty(t, d.takeCalls(), target)
				}
			}
		}
	}
	require.NotEmpty(t, kv.m)
}

// renderBothWays renders params through the frontend handler h and directly
// on d, requires the same answer, and returns the downstream calls the
// frontend made.
func renderBothWays(t *testing.T, d *downstream, h http.Handler, params url.Values) []call {
	t.Helper()
	d.takeCalls()
	code, got := do(context.Background(), h, "t1", "/graphite/render", params, nil)
	calls := d.takeCalls()
	wantCode, want := direct(t, d, "t1", "/graphite/render", params)
	d.takeCalls()
	require.Equal(t, wantCode, code, "%v: %s", params, got)
	require.Equal(t, string(want), string(got), "%v", params)
	return calls
}
