package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// mgStep is the graphite_step the Graphite tests run with (the default).
const mgStep = 60

// mgGet calls a /graphite endpoint as tenant and returns status and body.
func mgGet(t testing.TB, p *harness.Process, tenant, path string, params url.Values) (int, []byte) {
	t.Helper()
	r := p.Client(tenant).API("/graphite"+path, params)
	return r.StatusCode, r.Body
}

// mgJSON calls a /graphite endpoint, requires 200 and decodes the body.
func mgJSON(t testing.TB, p *harness.Process, tenant, path string, params url.Values, v any) {
	t.Helper()
	code, body := mgGet(t, p, tenant, path, params)
	require.Equalf(t, http.StatusOK, code, "%s %v: %s", path, params, body)
	// UseNumber: /functions writes infinite defaults as 1e9999, as Grafana
	// expects from graphite-web, which float64 cannot hold.
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	require.NoErrorf(t, d.Decode(v), "%s: %s", path, body)
}

// mgIngest sends carbon lines to POST /graphite/ingest as tenant.
func mgIngest(t testing.TB, p *harness.Process, tenant, body string) (int, mgIngestAnswer) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.URL()+"/graphite/ingest", strings.NewReader(body))
	require.NoError(t, err)
	code, resp, err := p.Client(tenant).Do(req)
	require.NoError(t, err)
	var a mgIngestAnswer
	if code != http.StatusUnauthorized {
		require.NoErrorf(t, json.Unmarshal(resp, &a), "ingest answer: %s", resp)
	}
	return code, a
}

type mgIngestAnswer struct {
	Accepted int            `json:"accepted"`
	Rejected int            `json:"rejected"`
	Reasons  map[string]int `json:"reasons"`
	Errors   []string       `json:"errors"`
}

type mgFindNode struct {
	Text          string `json:"text"`
	ID            string `json:"id"`
	Leaf          int    `json:"leaf"`
	Expandable    int    `json:"expandable"`
	AllowChildren int    `json:"allowChildren"`
}

func mgFind(t testing.TB, p *harness.Process, tenant, query string) map[string]mgFindNode {
	t.Helper()
	var nodes []mgFindNode
	mgJSON(t, p, tenant, "/metrics/find", url.Values{"query": {query}}, &nodes)
	out := map[string]mgFindNode{}
	for _, n := range nodes {
		out[n.Text] = n
	}
	return out
}

// mgPromValue is the value of a series at ts through the Prometheus API, so
// carbon lines can be checked without the Graphite function library.
func mgPromValue(t testing.TB, p *harness.Process, tenant, name string, ts time.Time) (float64, bool) {
	t.Helper()
	r := p.Client(tenant).Query(fmt.Sprintf(`{__name__=%q}`, name), ts)
	r.RequireSuccess(t)
	v := r.Vector(t)
	if len(v) == 0 {
		return 0, false
	}
	require.Len(t, v, 1)
	return float64(v[0].Value), true
}

func mgMetric(p *harness.Process, name string, labels map[string]string) float64 {
	v, _ := p.Metric(name, labels)
	return v
}

// TestGraphiteCarbonIngest: carbon lines over TCP with bad lines among good
// ones on one connection, which stays open; HTTP ingest with X-Scope-OrgID
// and tenant isolation; find, expand and the rejection counters.
func TestGraphiteCarbonIngest(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{Args: []string{"-graphite.carbon.tenant=carbon-team"}})
	require.NotEmpty(t, p.CarbonTCPAddr())

	now := time.Now()
	ts := now.Add(-5 * time.Minute).Unix()
	conn := p.DialCarbon()
	defer conn.Close()
	_, err := fmt.Fprintf(conn, "servers.web01.cpu.user 11 %d\n"+
		"servers.web01.cpu.user eleven %d\n"+ // bad value
		"servers.web01.cpu.idle\n"+ // field count
		"servers.web02.cpu.user 22 %d\r\n"+
		"servers..cpu.user 1 %d\n"+ // bad path
		"servers.web03.cpu.user 1 soon\n"+ // bad timestamp
		"servers.web02.load;dc=east 3 %d\n"+ // tagged
		"servers.db.load 4 %d\n",
		ts, ts, ts, ts, ts, ts)
	require.NoError(t, err)

	at := time.Unix(ts, 0)
	requireEventually(t, 30*time.Second, 100*time.Millisecond, "carbon lines stored", func() bool {
		_, ok := mgPromValue(t, p, "carbon-team", "servers.db.load", at)
		return ok
	})
	for name, want := range map[string]float64{"servers.web01.cpu.user": 11, "servers.web02.cpu.user": 22, "servers.db.load": 4} {
		v, ok := mgPromValue(t, p, "carbon-team", name, at)
		require.True(t, ok, name)
		require.Equal(t, want, v, name)
	}
	for reason, want := range map[string]float64{"bad_value": 1, "field_count": 1, "bad_path": 1, "bad_timestamp": 1} {
		require.Equal(t, want, mgMetric(p, "meridian_graphite_carbon_lines_rejected_total", map[string]string{"reason": reason}), reason)
	}

	// The connection is still open: more lines on it are stored.
	_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = conn.Read(make([]byte, 1))
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "timeout"), "the server must not close the connection: %v", err)
	_, err = fmt.Fprintf(conn, "servers.web01.cpu.user 12 %d\n", ts+mgStep)
	require.NoError(t, err)
	requireEventually(t, 30*time.Second, 100*time.Millisecond, "a line after the bad ones stored", func() bool {
		v, ok := mgPromValue(t, p, "carbon-team", "servers.web01.cpu.user", at.Add(mgStep*time.Second))
		return ok && v == 12
	})
	require.Equal(t, 5.0, mgMetric(p, "meridian_graphite_carbon_lines_stored_total", map[string]string{"protocol": "tcp"}))

	// The tree of the carbon tenant: untagged paths only.
	top := mgFind(t, p, "carbon-team", "*")
	require.Equal(t, map[string]mgFindNode{"servers": {Text: "servers", ID: "servers", Expandable: 1, AllowChildren: 1}}, top)
	level2 := mgFind(t, p, "carbon-team", "servers.*")
	require.Equal(t, []string{"db", "web01", "web02"}, mgSortedKeys(level2))
	require.Equal(t, 1, level2["web01"].Expandable)
	leaves := mgFind(t, p, "carbon-team", "servers.db.*")
	require.Equal(t, mgFindNode{Text: "load", ID: "servers.db.load", Leaf: 1}, leaves["load"])
	var expanded struct{ Results []string }
	mgJSON(t, p, "carbon-team", "/metrics/expand", url.Values{"query": {"servers.web0{1,2}.cpu.*"}}, &expanded)
	require.Equal(t, []string{"servers.web01.cpu.user", "servers.web02.cpu.user"}, expanded.Results)

	// HTTP ingest: per tenant, with counts and reasons.
	code, ans := mgIngest(t, p, "http-team", fmt.Sprintf("apps.a.requests 5 %d\napps.bad many 1\napps.b.requests 7 %d\n", ts, ts))
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, 2, ans.Accepted)
	require.Equal(t, 1, ans.Rejected)
	require.Equal(t, map[string]int{"bad_value": 1}, ans.Reasons)
	require.Len(t, ans.Errors, 1)
	require.Contains(t, ans.Errors[0], "line 2")
	code, ans = mgIngest(t, p, "http-team", fmt.Sprintf("apps.c.requests 9 %d\n", ts))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1, ans.Accepted)
	code, _ = mgIngest(t, p, "", "apps.x 1 1\n")
	require.Equal(t, http.StatusUnauthorized, code)

	require.Equal(t, []string{"a", "b", "c"}, mgSortedKeys(mgFind(t, p, "http-team", "apps.*")))
	// Tenants see only their own series.
	require.Empty(t, mgFind(t, p, "http-team", "servers.*"))
	require.Empty(t, mgFind(t, p, "carbon-team", "apps.*"))
	require.Empty(t, mgFind(t, p, "someone-else", "*"))
	v, ok := mgPromValue(t, p, "http-team", "apps.b.requests", at)
	require.True(t, ok)
	require.Equal(t, 7.0, v)
}

func mgSortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestGraphiteTagsAndPrometheusSeries: remote-written Prometheus series are
// Graphite tagged series (tags, autocomplete, findSeries), not tree nodes;
// carbon tagged lines join them; version and functions answer as Grafana
// expects.
func TestGraphiteTagsAndPrometheusSeries(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{})
	const tenant = "tags-team"
	c := p.Client(tenant)
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	mustPush(t, c,
		seriesAt([]string{"__name__", "http_requests_total", "job", "api", "code", "200"}, start, 15*time.Second, []float64{1, 2, 3, 4}),
		seriesAt([]string{"__name__", "http_requests_total", "job", "web", "code", "500"}, start, 15*time.Second, []float64{5, 6, 7, 8}),
	)
	code, ans := mgIngest(t, p, tenant, fmt.Sprintf("disk.used;dc=east;host=h1 10 %d\nplain.path.x 1 %d\n", start.Unix(), start.Unix()))
	require.Equal(t, http.StatusOK, code, "%+v", ans)

	var tags []map[string]string
	mgJSON(t, p, tenant, "/tags", nil, &tags)
	var tagNames []string
	for _, m := range tags {
		tagNames = append(tagNames, m["tag"])
	}
	require.Equal(t, []string{"code", "dc", "host", "job", "name"}, tagNames)

	var list []string
	mgJSON(t, p, tenant, "/tags/autoComplete/tags", url.Values{"tagPrefix": {"j"}}, &list)
	require.Equal(t, []string{"job"}, list)
	mgJSON(t, p, tenant, "/tags/autoComplete/tags", url.Values{"expr": {"name=http_requests_total"}}, &list)
	require.Equal(t, []string{"code", "job"}, list)
	mgJSON(t, p, tenant, "/tags/autoComplete/values", url.Values{"tag": {"job"}}, &list)
	require.Equal(t, []string{"api", "web"}, list)
	mgJSON(t, p, tenant, "/tags/autoComplete/values", url.Values{"tag": {"name"}}, &list)
	require.Equal(t, []string{"disk.used", "http_requests_total"}, list, "untagged paths are not tag values")
	mgJSON(t, p, tenant, "/tags/autoComplete/values", url.Values{"tag": {"code"}, "expr": {"job=web"}}, &list)
	require.Equal(t, []string{"500"}, list)
	mgJSON(t, p, tenant, "/tags/findSeries", url.Values{"expr": {"name=http_requests_total", "job=api"}}, &list)
	require.Equal(t, []string{"http_requests_total;code=200;job=api"}, list)
	mgJSON(t, p, tenant, "/tags/findSeries", url.Values{"expr": {"name=~disk", "dc!=west"}}, &list)
	require.Equal(t, []string{"disk.used;dc=east;host=h1"}, list)

	// Only untagged paths are in the tree.
	require.Equal(t, []string{"plain"}, mgSortedKeys(mgFind(t, p, tenant, "*")))

	code, body := mgGet(t, p, tenant, "/version", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "1.1.10", string(body))
	var catalog map[string]any
	mgJSON(t, p, tenant, "/functions", nil, &catalog)
	var events []any
	mgJSON(t, p, tenant, "/events/get_data", nil, &events)
	require.Empty(t, events)

	code, _ = mgGet(t, p, "", "/metrics/find", url.Values{"query": {"*"}})
	require.Equal(t, http.StatusUnauthorized, code)
}

type mgRenderSeries struct {
	Target     string            `json:"target"`
	Tags       map[string]string `json:"tags"`
	Datapoints [][2]*float64     `json:"datapoints"`
}

func mgRender(t testing.TB, p *harness.Process, tenant string, params url.Values) []mgRenderSeries {
	t.Helper()
	var out []mgRenderSeries
	mgJSON(t, p, tenant, "/render", params, &out)
	return out
}

// values returns a series' datapoints as timestamp → value (NaN for null).
func (s mgRenderSeries) values() map[int64]float64 {
	out := map[int64]float64{}
	for _, dp := range s.Datapoints {
		v := math.NaN()
		if dp[0] != nil {
			v = *dp[0]
		}
		out[int64(*dp[1])] = v
	}
	return out
}

// TestGraphiteRender renders targets that need the function library
// (pkg/graphite/functions) and the parser: it passes once both are merged.
func TestGraphiteRender(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{})
	const tenant = "render-team"
	now := time.Now().Unix()
	t0 := now - now%mgStep - 10*mgStep
	const points = 5
	web := map[string][]float64{"web01": {1, 2, 3, 4, 5}, "web02": {10, 20, 30, 40, 50}, "web03": {100, 200, 300, 400, 500}}
	var lines strings.Builder
	for _, host := range mgSortedKeys(web) {
		for i, v := range web[host] {
			// An irregular timestamp inside each interval: step alignment
			// puts it at the interval's start.
			fmt.Fprintf(&lines, "servers.%s.cpu.user %g %d\n", host, v, t0+int64(i)*mgStep+int64(i%3)*7)
		}
	}
	code, ans := mgIngest(t, p, tenant, lines.String())
	require.Equal(t, http.StatusOK, code, "%+v", ans)
	mustPush(t, p.Client(tenant), seriesAt([]string{"__name__", "http_requests_total", "job", "api"}, time.Unix(t0, 0), mgStep*time.Second, []float64{7, 8, 9, 10, 11}))

	// (from, until]: from is exclusive, so from = t0 - step starts at t0.
	rng := url.Values{"from": {strconv.FormatInt(t0-mgStep, 10)}, "until": {strconv.FormatInt(t0+(points-1)*mgStep, 10)}}
	with := func(target string) url.Values {
		v := url.Values{"target": {target}}
		for k, vs := range rng {
			v[k] = vs
		}
		return v
	}

	t.Run("plain path", func(t *testing.T) {
		out := mgRender(t, p, tenant, with("servers.web01.cpu.user"))
		require.Len(t, out, 1)
		require.Equal(t, "servers.web01.cpu.user", out[0].Target)
		require.Len(t, out[0].Datapoints, points)
		vals := out[0].values()
		for i, v := range web["web01"] {
			require.Equal(t, v, vals[t0+int64(i)*mgStep])
		}
	})

	t.Run("aliasByNode(sumSeries)", func(t *testing.T) {
		out := mgRender(t, p, tenant, with("aliasByNode(sumSeries(servers.*.cpu.user), 1)"))
		require.Len(t, out, 1)
		require.Equal(t, "*", out[0].Target)
		vals := out[0].values()
		for i := 0; i < points; i++ {
			sum := 0.0
			for _, h := range web {
				sum += h[i]
			}
			require.Equal(t, sum, vals[t0+int64(i)*mgStep], "interval %d", i)
		}
	})

	t.Run("Grafana's aliasSub wrapping", func(t *testing.T) {
		out := mgRender(t, p, tenant, with(`aliasSub(servers.web02.cpu.user, "(^.*$)", "\1 A")`))
		require.Len(t, out, 1)
		require.Equal(t, "servers.web02.cpu.user A", out[0].Target)
		vals := out[0].values()
		for i, v := range web["web02"] {
			require.Equal(t, v, vals[t0+int64(i)*mgStep])
		}
	})

	t.Run("constantLine(100) as Grafana's datasource test", func(t *testing.T) {
		out := mgRender(t, p, tenant, url.Values{"target": {"constantLine(100)"}, "from": {"-5min"}, "until": {"now"}})
		require.Len(t, out, 1)
		require.NotEmpty(t, out[0].Datapoints)
		for _, dp := range out[0].Datapoints {
			require.NotNil(t, dp[0])
			require.Equal(t, 100.0, *dp[0])
		}
	})

	t.Run("seriesByTag over remote-written series", func(t *testing.T) {
		out := mgRender(t, p, tenant, with("seriesByTag('name=http_requests_total', 'job=api')"))
		require.Len(t, out, 1)
		require.Equal(t, "http_requests_total;job=api", out[0].Target)
		require.Equal(t, map[string]string{"name": "http_requests_total", "job": "api"}, out[0].Tags)
		vals := out[0].values()
		for i, v := range []float64{7, 8, 9, 10, 11} {
			require.Equal(t, v, vals[t0+int64(i)*mgStep])
		}
	})

	t.Run("POST form, repeated targets, csv", func(t *testing.T) {
		v := with("servers.web01.cpu.user")
		v.Add("target", "servers.web03.cpu.user")
		var out []mgRenderSeries
		r := p.Client(tenant).WithPOST().API("/graphite/render", v)
		require.Equal(t, http.StatusOK, r.StatusCode, string(r.Body))
		require.NoError(t, json.Unmarshal(r.Body, &out))
		require.Len(t, out, 2)
		v.Set("format", "csv")
		code, body := mgGet(t, p, tenant, "/render", v)
		require.Equal(t, http.StatusOK, code)
		require.Len(t, strings.Split(strings.TrimSpace(string(body)), "\n"), 2*points)
	})

	t.Run("errors", func(t *testing.T) {
		code, body := mgGet(t, p, tenant, "/render", with("sumSeries(servers.*"))
		require.Equal(t, http.StatusBadRequest, code, string(body))
		require.Contains(t, string(body), "position")
		code, body = mgGet(t, p, tenant, "/render", with("noSuchFunction(servers.*)"))
		require.Equal(t, http.StatusBadRequest, code, string(body))
	})
}

// TestGraphiteRenderLimits: the per-tenant series and points limits answer
// 422 with their error IDs.
func TestGraphiteRenderLimits(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{Args: []string{"-graphite.max-series-per-render=2"}})
	const tenant = "limits-team"
	ts := time.Now().Add(-2 * time.Minute).Unix()
	code, ans := mgIngest(t, p, tenant, fmt.Sprintf("l.a 1 %d\nl.b 1 %d\nl.c 1 %d\n", ts, ts, ts))
	require.Equal(t, http.StatusOK, code, "%+v", ans)
	// find is bounded by the limit too (it works without the function library).
	code, body := mgGet(t, p, tenant, "/metrics/find", url.Values{"query": {"l.*"}})
	require.Equal(t, http.StatusUnprocessableEntity, code, string(body))
	require.Contains(t, string(body), "err-meridian-graphite-max-series-per-render")
	code, body = mgGet(t, p, tenant, "/metrics/find", url.Values{"query": {"l.a"}})
	require.Equal(t, http.StatusOK, code, string(body))
	// render needs the parser and the function library.
	code, body = mgGet(t, p, tenant, "/render", url.Values{"target": {"l.*"}, "from": {"-10min"}})
	require.Equal(t, http.StatusUnprocessableEntity, code, string(body))
	require.Contains(t, string(body), "err-meridian-graphite-max-series-per-render")
}

// TestGraphiteMicroservices: carbon lines sent to a distributor process are
// replicated to the ingesters (RF 2 over 2 ingesters) and served by a
// separate querier's /graphite API and Prometheus API.
//
// Carbon has no acknowledgement: a line counts as acknowledged once the
// listener counts it stored (its write reached the quorum, here both
// ingesters). Until then a read may see it on one replica and the next read
// miss it on the other (reads wait for all but RF/2 ingesters, here one of
// two; docs/architecture.md, "Running as a cluster"), so the test waits for
// the count, then requires every read to see every line.
func TestGraphiteMicroservices(t *testing.T) {
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterOptions{ReplicationFactor: 2})
	c.StartIngester("ing-1", "")
	c.StartIngester("ing-2", "")
	d := c.StartDistributor(false, "-graphite.carbon.tenant=ms-team")
	q := c.StartQuerier()
	for _, p := range []*harness.Process{d, q} {
		harness.Eventually(t, 30*time.Second, 200*time.Millisecond, p.Name()+" sees both ingesters", func() error {
			return harness.RingActiveExactly(p, "ing-1", "ing-2")
		})
	}

	ts := time.Now().Add(-2 * time.Minute).Unix()
	d.SendCarbon(
		fmt.Sprintf("ms.host1.cpu 1.5 %d", ts),
		"ms.host1.mem not-a-number",
		fmt.Sprintf("ms.host2.cpu 2.5 %d", ts),
		fmt.Sprintf("ms.tagged;role=db 9 %d", ts),
	)
	// A first attempt that missed the quorum (an ingester still joining)
	// may have stored lines on one replica; the listener's retry is what
	// counts them stored.
	harness.Eventually(t, 30*time.Second, 200*time.Millisecond, "3 carbon lines counted stored", func() error {
		if v := mgMetric(d, "meridian_graphite_carbon_lines_stored_total", map[string]string{"protocol": "tcp"}); v != 3 {
			return fmt.Errorf("%v lines counted stored", v)
		}
		return nil
	})
	require.Equal(t, 1.0, mgMetric(d, "meridian_graphite_carbon_lines_rejected_total", map[string]string{"reason": "bad_value"}))
	// Each read may be answered by either ingester: read several times.
	for i := range 5 {
		require.Equal(t, []string{"host1", "host2"}, mgSortedKeys(mgFind(t, q, "ms-team", "ms.*")), "find %d", i)
		v, ok := mgPromValue(t, q, "ms-team", "ms.host2.cpu", time.Unix(ts, 0))
		require.True(t, ok, "query %d", i)
		require.Equal(t, 2.5, v, "query %d", i)
		var list []string
		mgJSON(t, q, "ms-team", "/tags/autoComplete/values", url.Values{"tag": {"role"}}, &list)
		require.Equal(t, []string{"db"}, list, "tag values %d", i)
	}
}

// TestGraphiteRenderThroughFrontend: with a query-frontend in the process,
// /graphite/render goes through its per-tenant queue to the querier that
// pulls it, and answers exactly what the data says.
func TestGraphiteRenderThroughFrontend(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{Target: "all,query-frontend"})
	const tenant = "fe-graphite"
	now := time.Now().Unix()
	t0 := now - now%mgStep - 10*mgStep
	var lines strings.Builder
	for i := range 5 {
		fmt.Fprintf(&lines, "fe.web01.hits %d %d\nfe.web02.hits %d %d\n", i+1, t0+int64(i)*mgStep, 10*(i+1), t0+int64(i)*mgStep)
	}
	code, ans := mgIngest(t, p, tenant, lines.String())
	require.Equal(t, http.StatusOK, code, "%+v", ans)

	params := url.Values{"target": {"sumSeries(fe.*.hits)"}, "from": {strconv.FormatInt(t0-1, 10)}, "until": {strconv.FormatInt(t0+4*mgStep, 10)}, "format": {"json"}}
	var got []mgRenderSeries
	requireEventually(t, 30*time.Second, 200*time.Millisecond, "render answers all points", func() bool {
		got = mgRender(t, p, tenant, params)
		return len(got) == 1 && len(got[0].values()) == 5 && !math.IsNaN(got[0].values()[t0+4*mgStep])
	})
	require.Equal(t, "sumSeries(fe.*.hits)", got[0].Target)
	for i := range int64(5) {
		require.Equal(t, float64(11*(i+1)), got[0].values()[t0+i*mgStep], "point %d", i)
	}
	require.Positive(t, mgMetric(p, "meridian_frontend_requests_total", map[string]string{"endpoint": "graphite_render"}), "the render went through the frontend")
	require.Positive(t, workerRequests(p, "200"), "and was pulled by the querier")
}
