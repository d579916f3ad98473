package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// TestGraphiteRenderSplitThroughFrontend puts a query-frontend process
// (split by the hour) in front of a monolith holding 5 hours of Graphite
// data: renders through the frontend must equal the monolith's own, cold
// and warm, for targets the frontend splits and caches (point-wise in time)
// and for targets it proxies unsplit; a warm point-wise render must reach
// no querier.
func TestGraphiteRenderSplitThroughFrontend(t *testing.T) {
	t.Parallel()
	m, fe := startMonolithBehindFrontend(t)
	const tenant = "gfe"

	// 5 hours of minutely points ending 10 minutes ago, at a few seconds
	// past each minute, with gaps in web02; values computed from i.
	now := time.Now().Unix()
	end := now - now%mgStep - 10*mgStep
	start := end - 5*3600
	var lines strings.Builder
	i := 0
	for ts := start; ts <= end; ts += mgStep {
		fmt.Fprintf(&lines, "gfe.web01.cpu %d %d\n", i%17, ts+3)
		if i%5 != 0 {
			fmt.Fprintf(&lines, "gfe.web02.cpu %g %d\n", float64(i)/4, ts+7)
		}
		fmt.Fprintf(&lines, "gfe.db01.cpu %d %d\n", 100-i%23, ts+11)
		fmt.Fprintf(&lines, "gfe.disk;host=a %d %d\n", 2*i, ts+1)
		// gfx: a series that is there all along and one that comes in
		// the 4th hour.
		fmt.Fprintf(&lines, "gfx.a.cpu %d %d\n", i%7, ts+5)
		if ts >= start+3*3600 {
			fmt.Fprintf(&lines, "gfx.b.cpu %d %d\n", i%11, ts+5)
		}
		i++
	}
	code, ans := mgIngest(t, m, tenant, lines.String())
	require.Equal(t, http.StatusOK, code, "%+v", ans)
	require.Zero(t, ans.Rejected, "%+v", ans)

	render := func(p *harness.Process, params url.Values) (int, string) {
		t.Helper()
		code, body := mgGet(t, p, tenant, "/render", params)
		return code, string(body)
	}
	window := func(from, until int64, target string, extra ...string) url.Values {
		v := url.Values{"target": {target}, "from": {strconv.FormatInt(from, 10)}, "until": {strconv.FormatInt(until, 10)}}
		for j := 0; j+1 < len(extra); j += 2 {
			v.Set(extra[j], extra[j+1])
		}
		return v
	}
	requireEventually(t, 30*time.Second, 200*time.Millisecond, "the monolith renders the last point", func() bool {
		var got []mgRenderSeries
		mgJSON(t, m, tenant, "/render", window(end-mgStep, end, "gfe.db01.cpu"), &got)
		return len(got) == 1 && len(got[0].Datapoints) == 1 && got[0].Datapoints[0][0] != nil
	})

	pointwise := []string{
		"gfe.*.cpu",
		"sumSeries(gfe.*.cpu)",
		"aliasByNode(scale(gfe.web*.cpu, 2), 1)",
		"groupByNode(gfe.*.cpu, 0, 'max')",
		"transformNull(gfe.web02.cpu, -1)",
		"seriesByTag('name=gfe.disk')",
	}
	notPointwise := []string{
		"movingAverage(gfe.web01.cpu, 7)",
		"highestMax(gfe.*.cpu, 1)",
		"perSecond(gfe.db01.cpu)",
	}
	windows := []url.Values{}
	for _, target := range append(append([]string{}, pointwise...), notPointwise...) {
		windows = append(windows,
			window(start+37, end-13, target),                                               // about 5h: 6 parts, unaligned ends
			window(start+3600-90, start+3600+45, target),                                   // 3 minutes across an hour
			window(start+1200, end-1500, target, "maxDataPoints", "40"),                    // consolidated
			window(start, end, target, "format", "csv"),                                    // csv
			window(start+600, start+2*3600, target, "format", "raw", "maxDataPoints", "9"), // raw, consolidated
		)
	}
	compare := func(what string) {
		t.Helper()
		for _, params := range windows {
			wantCode, want := render(m, params)
			require.Equal(t, http.StatusOK, wantCode, "%v: %s", params, want)
			require.Greater(t, len(want), 10, "%v has data", params)
			gotCode, got := render(fe, params)
			require.Equal(t, wantCode, gotCode, "%s %v", what, params)
			require.Equal(t, want, got, "%s %v", what, params)
		}
	}

	compare("cold")
	splits := mgMetric(fe, "meridian_frontend_split_queries_total", nil)
	require.GreaterOrEqual(t, splits, float64(len(pointwise)*6), "point-wise renders were split by the hour")
	require.Equal(t, float64(len(notPointwise)*5), mgMetric(fe, "meridian_frontend_graphite_unsplit_renders_total", map[string]string{"reason": "not_pointwise"}))
	require.Zero(t, mgMetric(fe, "meridian_frontend_graphite_unsplit_renders_total", map[string]string{"reason": "series_differ"}))

	compare("warm")
	require.Equal(t, splits, mgMetric(fe, "meridian_frontend_split_queries_total", nil), "warm point-wise renders asked no querier for parts")
	require.Positive(t, mgMetric(fe, "meridian_frontend_cache_hits_total", nil))

	// A warm point-wise render reaches no querier at all.
	before := mgMetric(m, "meridian_graphite_render_targets_total", nil)
	for _, target := range pointwise {
		params := window(start+37, end-13, target)
		_, want := render(m, params)
		_, got := render(fe, params)
		require.Equal(t, want, got, target)
	}
	require.Equal(t, before+float64(len(pointwise)), mgMetric(m, "meridian_graphite_render_targets_total", nil),
		"only the direct renders were evaluated by the monolith")
	require.Positive(t, mgMetric(fe, "meridian_frontend_requests_total", map[string]string{"endpoint": "graphite_render", "status_code": "200"}))

	// Series that come in the middle: the parts before gfx.b.cpu still have
	// it (all null), so countSeries and transformNull count and fill it as
	// the unsplit render does; cached parts fetched for another range's
	// series are fetched again. Cold and warm answers equal the monolith's.
	windows = windows[:0]
	for _, target := range []string{"countSeries(gfx.*.cpu)", "transformNull(gfx.*.cpu, 0)", "sumSeries(gfx.*.cpu)"} {
		windows = append(windows,
			window(start+37, end-13, target),
			window(start+3600-90, start+3600+45, target),
			window(start+3*3600-600, start+3*3600+600, target, "maxDataPoints", "7"),
		)
	}
	compare("cold, series come")
	compare("warm, series come")
	require.Positive(t, mgMetric(fe, "meridian_frontend_graphite_refetched_targets_total", nil))
	require.Zero(t, mgMetric(fe, "meridian_frontend_graphite_unsplit_renders_total", map[string]string{"reason": "series_differ"}))
	require.Zero(t, mgMetric(fe, "meridian_frontend_graphite_unsplit_renders_total", map[string]string{"reason": "part_refused"}))
}
