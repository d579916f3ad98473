package api

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/graphite/functions"
	"github.com/meridianhq/meridian/pkg/graphite/mapping"
	"github.com/meridianhq/meridian/pkg/graphite/parser"
	"github.com/meridianhq/meridian/pkg/graphite/render"
	"github.com/meridianhq/meridian/pkg/limits"
)

type fixedLimits struct{ l limits.Limits }

func (f fixedLimits) Limits(string) limits.Limits { return f.l }

func testLimits(step time.Duration) limits.Limits {
	return limits.Limits{GraphiteStep: model.Duration(step), GraphiteMaxSeriesPerRender: 1000, GraphiteMaxPointsPerRender: 1000000}
}

type sample struct {
	tMs int64
	v   float64
}

// openDB opens a TSDB (head only) in a temp dir with the given series.
func openDB(t testing.TB, series map[string][]sample, tagged ...labels.Labels) *tsdb.DB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), promslog.NewNopLogger(), nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	app := db.AppenderV2(context.Background())
	for path, ss := range series {
		ls := mapping.PathLabels(path)
		if name, tagPart, tagged := strings.Cut(path, ";"); tagged {
			tags := map[string]string{}
			for _, kv := range strings.Split(tagPart, ";") {
				k, v, _ := strings.Cut(kv, "=")
				tags[k] = v
			}
			ls = mapping.TaggedLabels(name, tags)
		}
		for _, s := range ss {
			_, err := app.Append(0, ls, 0, s.tMs, s.v, nil, nil, storage.AOptions{})
			require.NoError(t, err)
		}
	}
	for _, ls := range tagged {
		_, err := app.Append(0, ls, 0, 1000_000, 1, nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	return db
}

func tenantCtx() context.Context { return user.InjectOrgID(context.Background(), "t1") }

func TestAlignedRange(t *testing.T) {
	for _, tc := range []struct{ from, until, step, start, end int64 }{
		{from: 1000, until: 2000, step: 60, start: 1020, end: 2040},
		{from: 960, until: 1980, step: 60, start: 1020, end: 2040}, // from on a boundary is excluded, until's interval included
		{from: 1000, until: 1001, step: 10, start: 1010, end: 1010},
	} {
		s, e := alignedRange(tc.from, tc.until, tc.step)
		require.Equal(t, [2]int64{tc.start, tc.end}, [2]int64{s, e}, "%+v", tc)
	}
}

// TestFetchStepAlignment writes irregular samples and checks every interval
// against the rule computed here: interval of ts = ts - ts%step, value = the
// last sample in it, null without one.
func TestFetchStepAlignment(t *testing.T) {
	const step = 10
	var ss []sample
	// Samples every 7s with a gap, two in some intervals, values = index.
	for i := 0; i < 40; i++ {
		sec := int64(1000 + 7*i)
		if sec >= 1100 && sec < 1130 {
			continue
		}
		ss = append(ss, sample{tMs: sec*1000 + 300, v: float64(i)})
	}
	db := openDB(t, map[string][]sample{"a.b": ss})
	f := newFetcher(db, testLimits(step*time.Second), nil)
	from, until := int64(1003), int64(1251)
	got, err := f.FetchPath(tenantCtx(), "a.b", from, until)
	require.NoError(t, err)
	require.Len(t, got, 1)
	s := got[0]

	start := from - from%step + step
	end := until - until%step + step
	want := map[int64]float64{}
	for _, x := range ss {
		sec := x.tMs / 1000
		iv := sec - sec%step
		if iv >= start && iv < end {
			want[iv] = x.v // later samples overwrite: the last one wins
		}
	}
	require.Equal(t, start, s.Start)
	require.Equal(t, end, s.End)
	require.Equal(t, int64(step), s.Step)
	require.Len(t, s.Values, int((end-start)/step))
	nulls := 0
	for i, v := range s.Values {
		iv := start + int64(i)*step
		w, ok := want[iv]
		if !ok {
			require.True(t, math.IsNaN(v), "interval %d should be null, got %v", iv, v)
			nulls++
			continue
		}
		require.Equal(t, w, v, "interval %d", iv)
	}
	require.Greater(t, nulls, 2, "the gap shows as nulls")
	require.Equal(t, "a.b", s.Name)
	require.Equal(t, map[string]string{"name": "a.b"}, s.Tags)
}

func TestFetchGlobsAndTags(t *testing.T) {
	pt := []sample{{tMs: 1000_000, v: 1}}
	db := openDB(t, map[string][]sample{
		"servers.web01.cpu":          pt,
		"servers.web02.cpu":          pt,
		"servers.db1.cpu":            pt,
		"servers.web01.cpu.user":     pt,
		"servers.web01.cpu;dc=x":     pt,
		"servers.web01.cpu;dc=y;h=a": pt,
	}, labels.FromStrings("__name__", "http_requests_total", "job", "api"))
	f := newFetcher(db, testLimits(time.Minute), nil)
	names := func(ss []*functions.Series) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Name)
		}
		return out
	}
	for glob, want := range map[string][]string{
		"servers.web*.cpu":                {"servers.web01.cpu", "servers.web02.cpu"},
		"servers.*.cpu":                   {"servers.db1.cpu", "servers.web01.cpu", "servers.web02.cpu"},
		"servers.{db1,web02}.cpu":         {"servers.db1.cpu", "servers.web02.cpu"},
		"servers.web0[2-9].cpu":           {"servers.web02.cpu"},
		"servers.web01.cpu":               {"servers.web01.cpu"},
		"servers.*.*.*":                   {"servers.web01.cpu.user"},
		"{servers.db1,servers.web02}.cpu": {"servers.db1.cpu", "servers.web02.cpu"},
	} {
		got, err := f.FetchPath(tenantCtx(), glob, 900, 1100)
		require.NoError(t, err, glob)
		require.Equal(t, want, names(got), glob)
	}
	got, err := f.FetchTagged(tenantCtx(), []string{"name=servers.web01.cpu"}, 900, 1100)
	require.NoError(t, err)
	require.Equal(t, []string{"servers.web01.cpu;dc=x", "servers.web01.cpu;dc=y;h=a"}, names(got))
	got, err = f.FetchTagged(tenantCtx(), []string{"name=~servers", "dc!=x"}, 900, 1100)
	require.NoError(t, err)
	require.Equal(t, []string{"servers.web01.cpu;dc=y;h=a"}, names(got))
	got, err = f.FetchTagged(tenantCtx(), []string{"name=http_requests_total", "job=api"}, 900, 1100)
	require.NoError(t, err)
	require.Equal(t, []string{"http_requests_total;job=api"}, names(got))
	require.Equal(t, map[string]string{"name": "http_requests_total", "job": "api"}, got[0].Tags)

	_, err = f.FetchTagged(tenantCtx(), []string{"dc!=x"}, 900, 1100)
	var ie *functions.InputError
	require.ErrorAs(t, err, &ie)
}

func TestFetchLimits(t *testing.T) {
	pt := []sample{{tMs: 1000_000, v: 1}}
	db := openDB(t, map[string][]sample{"a.x": pt, "a.y": pt, "a.z": pt})
	lim := testLimits(time.Minute)
	lim.GraphiteMaxSeriesPerRender = 2
	_, err := newFetcher(db, lim, nil).FetchPath(tenantCtx(), "a.*", 0, 3600)
	var le *render.LimitError
	require.ErrorAs(t, err, &le)
	require.Equal(t, render.ErrIDMaxSeriesPerRender, le.ID)

	lim = testLimits(time.Minute)
	lim.GraphiteMaxPointsPerRender = 3 * 60 // 3 series × 60 intervals fit
	f := newFetcher(db, lim, nil)
	_, err = f.FetchPath(tenantCtx(), "a.*", 0, 3600)
	require.NoError(t, err)
	_, err = f.FetchPath(tenantCtx(), "a.x", 0, 3600) // the budget is per request
	require.ErrorAs(t, err, &le)
	require.Equal(t, render.ErrIDMaxPointsPerRender, le.ID)
}

func newTestAPI(t testing.TB, db storage.Queryable) *API {
	return New(db, fixedLimits{testLimits(time.Minute)}, log.NewNopLogger(), prometheus.NewPedanticRegistry())
}

func get(t testing.TB, h http.HandlerFunc, path string, params url.Values) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path+"?"+params.Encode(), nil).WithContext(tenantCtx())
	rec := httptest.NewRecorder()
	h(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func TestFindTree(t *testing.T) {
	pt := []sample{{tMs: 1000_000, v: 1}}
	db := openDB(t, map[string][]sample{
		"servers.web01.cpu.user":   pt,
		"servers.web01.cpu.system": pt,
		"servers.web02.cpu.user":   pt,
		"servers.web02.load":       pt,
		"servers.load":             pt,
		"servers.load.x":           pt, // both a leaf and a branch: a leaf, as graphite-web merges it
		"other.thing":              pt,
		"servers.tagged;dc=x":      pt,
	}, labels.FromStrings("__name__", "servers", "job", "prom"))
	a := newTestAPI(t, db)

	code, body := get(t, a.Find, "/graphite/metrics/find", url.Values{"query": {"*"}})
	require.Equal(t, 200, code, string(body))
	var tree []treeNode
	require.NoError(t, json.Unmarshal(body, &tree))
	require.Equal(t, []treeNode{
		{AllowChildren: 1, Expandable: 1, ID: "other", Text: "other"},
		{AllowChildren: 1, Expandable: 1, ID: "servers", Text: "servers"},
	}, tree, "tagged and Prometheus series are not in the tree")

	code, body = get(t, a.Find, "/graphite/metrics/find", url.Values{"query": {"servers.*"}})
	require.Equal(t, 200, code, string(body))
	require.NoError(t, json.Unmarshal(body, &tree))
	require.Equal(t, []treeNode{
		{AllowChildren: 1, Expandable: 1, ID: "servers.web01", Text: "web01"},
		{AllowChildren: 1, Expandable: 1, ID: "servers.web02", Text: "web02"},
		{Leaf: 1, ID: "servers.load", Text: "load"},
	}, tree)

	code, body = get(t, a.Find, "/graphite/metrics/find", url.Values{"query": {"servers.web0[12].*"}})
	require.Equal(t, 200, code, string(body))
	require.NoError(t, json.Unmarshal(body, &tree))
	require.Equal(t, []treeNode{
		{AllowChildren: 1, Expandable: 1, ID: "servers.web0[12].cpu", Text: "cpu"},
		{Leaf: 1, ID: "servers.web0[12].load", Text: "load"},
	}, tree)

	code, body = get(t, a.Find, "/graphite/metrics/find", url.Values{"query": {"servers.web01.cpu.u"}, "format": {"completer"}})
	require.Equal(t, 200, code, string(body))
	var comp map[string][]completerNode
	require.NoError(t, json.Unmarshal(body, &comp))
	require.Equal(t, []completerNode{{Path: "servers.web01.cpu.user", Name: "user", IsLeaf: "1"}}, comp["metrics"])

	code, _ = get(t, a.Find, "/graphite/metrics/find", url.Values{})
	require.Equal(t, 400, code)
}

func TestExpand(t *testing.T) {
	pt := []sample{{tMs: 1000_000, v: 1}}
	db := openDB(t, map[string][]sample{
		"servers.web01.cpu.user": pt,
		"servers.web02.cpu.user": pt,
		"servers.web02.load":     pt,
	})
	a := newTestAPI(t, db)
	code, body := get(t, a.Expand, "/graphite/metrics/expand", url.Values{"query": {"servers.*.*"}})
	require.Equal(t, 200, code, string(body))
	var res struct{ Results []string }
	require.NoError(t, json.Unmarshal(body, &res))
	require.Equal(t, []string{"servers.web01.cpu", "servers.web02.cpu", "servers.web02.load"}, res.Results)

	code, body = get(t, a.Expand, "/graphite/metrics/expand", url.Values{"query": {"servers.*.*"}, "leavesOnly": {"1"}})
	require.Equal(t, 200, code, string(body))
	require.NoError(t, json.Unmarshal(body, &res))
	require.Equal(t, []string{"servers.web02.load"}, res.Results)

	code, body = get(t, a.Expand, "/graphite/metrics/expand", url.Values{"query": {"servers.web01", "servers.web02.l*"}, "groupByExpr": {"1"}})
	require.Equal(t, 200, code, string(body))
	var grouped struct{ Results map[string][]string }
	require.NoError(t, json.Unmarshal(body, &grouped))
	require.Equal(t, map[string][]string{"servers.web01": {"servers.web01"}, "servers.web02.l*": {"servers.web02.load"}}, grouped.Results)
}

func TestTagsEndpoints(t *testing.T) {
	db := openDB(t, map[string][]sample{"plain.path": {{tMs: 1000_000, v: 1}}},
		labels.FromStrings("__name__", "cpu", "dc", "east", "host", "h1"),
		labels.FromStrings("__name__", "cpu", "dc", "west", "host", "h2"),
		labels.FromStrings("__name__", "mem", "dc", "west", "rack", "r1"),
	)
	a := newTestAPI(t, db)

	code, body := get(t, a.Tags, "/graphite/tags", url.Values{})
	require.Equal(t, 200, code, string(body))
	var tags []map[string]string
	require.NoError(t, json.Unmarshal(body, &tags))
	require.Equal(t, []map[string]string{{"tag": "dc"}, {"tag": "host"}, {"tag": "name"}, {"tag": "rack"}}, tags)

	code, body = get(t, a.Tags, "/graphite/tags", url.Values{"filter": {"h|r"}})
	require.Equal(t, 200, code, string(body))
	require.NoError(t, json.Unmarshal(body, &tags))
	require.Equal(t, []map[string]string{{"tag": "host"}, {"tag": "rack"}}, tags)

	list := func(h http.HandlerFunc, path string, v url.Values) []string {
		code, body := get(t, h, path, v)
		require.Equal(t, 200, code, string(body))
		var out []string
		require.NoError(t, json.Unmarshal(body, &out))
		return out
	}
	require.Equal(t, []string{"dc", "host", "name", "rack"}, list(a.AutoCompleteTags, "/graphite/tags/autoComplete/tags", url.Values{}))
	require.Equal(t, []string{"host"}, list(a.AutoCompleteTags, "/graphite/tags/autoComplete/tags", url.Values{"tagPrefix": {"h"}}))
	// With expressions: the tags of matching series, minus the ones searched.
	require.Equal(t, []string{"host", "name"}, list(a.AutoCompleteTags, "/graphite/tags/autoComplete/tags", url.Values{"expr": {"dc=east"}}))
	require.Equal(t, []string{"dc"}, list(a.AutoCompleteTags, "/graphite/tags/autoComplete/tags", url.Values{"expr": {"name=cpu"}, "limit": {"1"}}))

	require.Equal(t, []string{"cpu", "mem"}, list(a.AutoCompleteValues, "/graphite/tags/autoComplete/values", url.Values{"tag": {"name"}}), "untagged paths are not tag values")
	require.Equal(t, []string{"east", "west"}, list(a.AutoCompleteValues, "/graphite/tags/autoComplete/values", url.Values{"tag": {"dc"}}))
	require.Equal(t, []string{"west"}, list(a.AutoCompleteValues, "/graphite/tags/autoComplete/values", url.Values{"tag": {"dc"}, "valuePrefix": {"w"}}))
	require.Equal(t, []string{"h2"}, list(a.AutoCompleteValues, "/graphite/tags/autoComplete/values", url.Values{"tag": {"host"}, "expr": {"dc=west"}}))

	code, _ = get(t, a.AutoCompleteValues, "/graphite/tags/autoComplete/values", url.Values{})
	require.Equal(t, 400, code)
}

func TestSimpleEndpoints(t *testing.T) {
	a := newTestAPI(t, openDB(t, nil))
	code, body := get(t, a.Version, "/graphite/version", nil)
	require.Equal(t, 200, code)
	require.Equal(t, "1.1.10", string(body))
	code, body = get(t, a.Events, "/graphite/events/get_data", nil)
	require.Equal(t, 200, code)
	require.JSONEq(t, "[]", string(body))
	code, body = get(t, a.Functions, "/graphite/functions", nil)
	require.Equal(t, 200, code)
	// Infinite defaults are written 1e9999 (what Grafana expects from
	// graphite-web), so decode numbers as json.Number.
	var cat map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	require.NoError(t, d.Decode(&cat))
	require.Contains(t, cat, "sumSeries")
}

// TestRenderWithFakeEvaluator runs the render handler end to end with an
// evaluator that fetches plain paths, so the handler is tested before the
// function library exists. It needs the real parser; it skips while the
// parser is a placeholder.
func TestRenderWithFakeEvaluator(t *testing.T) {
	var ss []sample
	for i := 0; i < 10; i++ {
		ss = append(ss, sample{tMs: int64(600+60*i) * 1000, v: float64(i)})
	}
	a := newTestAPI(t, openDB(t, map[string][]sample{"x.y": ss}))
	a.eval = func(ctx context.Context, req *functions.Request, target *parser.Expr) ([]*functions.Series, error) {
		return req.Fetcher.FetchPath(ctx, target.Path, req.From, req.Until)
	}
	code, body := get(t, a.Render, "/graphite/render", url.Values{"target": {"x.y"}, "from": {"599"}, "until": {"1139"}})
	if code == 400 && strings.Contains(string(body), "not built yet") {
		t.Skip("parser placeholder: render is tested once the parser lands")
	}
	require.Equal(t, 200, code, string(body))
	var out []struct {
		Target     string
		Datapoints [][2]*float64
	}
	require.NoError(t, json.Unmarshal(body, &out))
	require.Len(t, out, 1)
	require.Equal(t, "x.y", out[0].Target)
	require.Len(t, out[0].Datapoints, 9)
	for i, p := range out[0].Datapoints {
		require.Equal(t, float64(600+60*i), *p[1])
		require.Equal(t, float64(i), *p[0])
	}
}

func TestRenderBadRequests(t *testing.T) {
	a := newTestAPI(t, openDB(t, nil))
	for _, v := range []url.Values{
		{"target": {"a"}, "from": {"soon"}},
		{"target": {"a"}, "from": {"-1h"}, "until": {"-2h"}},
		{"target": {"a"}, "format": {"pickle"}},
		{"target": {"a"}, "maxDataPoints": {"x"}},
		{"target": {"a.b("}},
	} {
		code, body := get(t, a.Render, "/graphite/render", v)
		require.Equal(t, 400, code, "%v: %s", v, body)
	}
}

// TestRenderPartFormat: the query-frontend's part format carries exact
// values and the series of every fetch; seriesFrom/seriesUntil widen the
// fetched series to those of the whole render.
func TestRenderPartFormat(t *testing.T) {
	a := newTestAPI(t, openDB(t, map[string][]sample{
		"p.early": {{tMs: 610_000, v: 1.5}, {tMs: 670_000, v: 2}},
		"p.late":  {{tMs: 4210_000, v: 7}},
	}))
	part := func(extra url.Values) render.Part {
		t.Helper()
		params := url.Values{"target": {"sumSeries(p.*)"}, "from": {"540"}, "until": {"660"}, "format": {render.FormatPart}}
		for k, v := range extra {
			params[k] = v
		}
		code, body := get(t, a.Render, "/graphite/render", params)
		require.Equal(t, http.StatusOK, code, string(body))
		var p render.Part
		require.NoError(t, json.Unmarshal(body, &p), string(body))
		return p
	}
	p := part(nil)
	require.Equal(t, [][]string{{"p.early"}}, p.Fetched)
	require.Len(t, p.Series, 1)
	s := p.Series[0]
	require.Equal(t, "sumSeries(p.*)", s.Name)
	require.Equal(t, [3]int64{600, 720, 60}, [3]int64{s.Start, s.End, s.Step})
	require.Equal(t, render.PartValues{1.5, 2}, s.Values)
	require.Equal(t, "average", s.ConsolidationFunc)

	p = part(url.Values{"seriesFrom": {"540"}, "seriesUntil": {"4300"}})
	require.Equal(t, [][]string{{"p.early", "p.late"}}, p.Fetched, "p.late has data in the wider range")
	require.Equal(t, render.PartValues{1.5, 2}, p.Series[0].Values, "and no values in this one")

	code, _ := get(t, a.Render, "/graphite/render", url.Values{"target": {"p.*"}, "format": {render.FormatPart}, "seriesFrom": {"9"}, "seriesUntil": {"x"}})
	require.Equal(t, http.StatusBadRequest, code)
}
