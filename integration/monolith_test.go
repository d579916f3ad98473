package integration

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// monolithData is the known data TestMonolithEndpoints pushes: three
// counters and two gauges in two jobs, a sample every 15 s for 10 minutes.
type monolithData struct {
	start, last time.Time
	step        time.Duration
	points      int
}

func (d monolithData) series() []prompb.TimeSeries {
	counter := func(job, instance string, slope float64) prompb.TimeSeries {
		vals := make([]float64, d.points)
		for i := range vals {
			vals[i] = slope * float64(i)
		}
		return seriesAt([]string{"__name__", "it_requests_total", "job", job, "instance", instance}, d.start, d.step, vals)
	}
	gauge := func(job string, f func(i int) float64) prompb.TimeSeries {
		vals := make([]float64, d.points)
		for i := range vals {
			vals[i] = f(i)
		}
		return seriesAt([]string{"__name__", "it_temperature", "job", job, "instance", "a"}, d.start, d.step, vals)
	}
	return []prompb.TimeSeries{
		counter("api", "a", 10),
		counter("api", "b", 20),
		counter("web", "a", 5),
		gauge("api", func(i int) float64 { return 20 + float64(i%5) }),
		gauge("web", func(int) float64 { return 30 }),
	}
}

// splitSamples returns the series with only the samples [from, to).
func splitSamples(series []prompb.TimeSeries, from, to int) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, len(series))
	for i, s := range series {
		out[i] = prompb.TimeSeries{Labels: s.Labels, Samples: s.Samples[from:to]}
	}
	return out
}

func TestMonolithEndpoints(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{})
	const tenant = "monolith"
	c := p.Client(tenant)

	step := 15 * time.Second
	points := 41
	last := time.Now().Truncate(step)
	d := monolithData{start: last.Add(-time.Duration(points-1) * step), last: last, step: step, points: points}
	all := d.series()

	// Two batches in time order, then the metadata on its own.
	mustPush(t, c, splitSamples(all, 0, 20)...)
	mustPush(t, c, splitSamples(all, 20, points)...)
	mustPushRequest(t, c, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "it_requests_total", Help: "Total requests."},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "it_temperature", Help: "Temperature.", Unit: "celsius"},
	}})

	// GET and POST (form) must give the same answers; label values,
	// metadata and status are GET-only endpoints in Prometheus.
	for _, method := range []string{"GET", "POST"} {
		client := c
		if method == "POST" {
			client = c.WithPOST()
		}
		t.Run(method, func(t *testing.T) {
			checkMonolithAPI(t, client, d)
		})
	}

	t.Run("admin", func(t *testing.T) {
		code, body := p.Get("/ready")
		require.Equal(t, http.StatusOK, code, "/ready: %s", body)

		v, ok := p.Metric("meridian_build_info", nil)
		require.True(t, ok, "/metrics has no meridian_build_info")
		require.Equal(t, 1.0, v)

		code, body = p.Get("/services")
		require.Equal(t, http.StatusOK, code, "/services: %s", body)
		require.Contains(t, strings.ToLower(string(body)), "running", "/services lists no running module")

		code, body = p.Get("/config")
		require.Equal(t, http.StatusOK, code, "/config: %s", body)
		require.Contains(t, string(body), strconv.Itoa(portOf(t, p.HTTPAddr())), "/config does not show the effective HTTP port")

		code, body = p.Get("/runtime_config")
		require.Equal(t, http.StatusOK, code, "/runtime_config: %s", body)
	})

	t.Run("buildinfo", func(t *testing.T) {
		r := p.Client(tenant).GetAPI(harness.APIPrefix+"/status/buildinfo", nil)
		var info struct {
			Version, Revision, Branch, GoVersion string
			// Grafana checks features.ruler_config_api, as Mimir reports it.
			Features map[string]string
		}
		r.RequireSuccess(t)
		require.NoError(t, jsonUnmarshal(r.Data, &info), "%s", r)
		var keys map[string]any
		require.NoError(t, jsonUnmarshal(r.Data, &keys), "%s", r)
		for _, k := range []string{"version", "revision", "branch", "goVersion"} {
			require.Contains(t, keys, k, "buildinfo lacks %q: %s", k, r)
		}
		require.NotEmpty(t, info.Version)
		require.True(t, strings.HasPrefix(info.GoVersion, "go"), "goVersion %q", info.GoVersion)
		require.Equal(t, "true", info.Features["ruler_config_api"], "%s", r)
		require.Equal(t, "true", info.Features["alertmanager_config_api"], "%s", r)
	})
}

func portOf(t *testing.T, hostport string) int {
	t.Helper()
	i := strings.LastIndexByte(hostport, ':')
	port, err := strconv.Atoi(hostport[i+1:])
	require.NoError(t, err)
	return port
}

func checkMonolithAPI(t *testing.T, c *harness.Client, d monolithData) {
	n := float64(d.points - 1) // index of the last sample

	t.Run("instant gauge", func(t *testing.T) {
		v := c.Query(`it_temperature{job="web"}`, d.last).Vector(t)
		require.Len(t, v, 1)
		require.Equal(t, model.Metric{"__name__": "it_temperature", "job": "web", "instance": "a"}, v[0].Metric)
		require.Equal(t, 30.0, float64(v[0].Value))
		require.Equal(t, d.last.UnixMilli(), int64(v[0].Timestamp))

		v = c.Query(`it_temperature{job="api"}`, d.last).Vector(t)
		require.Len(t, v, 1)
		require.Equal(t, 20+float64(int(n)%5), float64(v[0].Value))
	})

	t.Run("sum", func(t *testing.T) {
		v := c.Query(`sum(it_requests_total)`, d.last).Vector(t)
		require.Len(t, v, 1)
		require.Equal(t, (10+20+5)*n, float64(v[0].Value))
	})

	t.Run("rate by job", func(t *testing.T) {
		// Each counter grows by slope every 15 s, so rate is slope/15 per second.
		v := c.Query(`sum by (job) (rate(it_requests_total[2m]))`, d.last).Vector(t)
		got := map[string]float64{}
		for _, s := range v {
			require.Equal(t, 1, len(s.Metric), "unexpected labels %v", s.Metric)
			got[string(s.Metric["job"])] = float64(s.Value)
		}
		require.Len(t, got, 2)
		require.InEpsilon(t, (10.0+20.0)/15, got["api"], 1e-9)
		require.InEpsilon(t, 5.0/15, got["web"], 1e-9)
	})

	t.Run("count_over_time", func(t *testing.T) {
		v := c.Query(`count_over_time(it_requests_total[15m])`, d.last).Vector(t)
		require.Len(t, v, 3)
		for _, s := range v {
			require.Equal(t, float64(d.points), float64(s.Value), "series %v", s.Metric)
		}
	})

	t.Run("range every point", func(t *testing.T) {
		m := c.QueryRange(`it_temperature{job="api"}`, d.start, d.last, d.step).Matrix(t)
		require.Len(t, m, 1)
		require.Len(t, m[0].Values, d.points)
		for i, sp := range m[0].Values {
			require.Equal(t, d.start.Add(time.Duration(i)*d.step).UnixMilli(), int64(sp.Timestamp), "point %d", i)
			require.Equal(t, 20+float64(i%5), float64(sp.Value), "point %d", i)
		}
	})

	t.Run("range coarser step", func(t *testing.T) {
		m := c.QueryRange(`sum(it_requests_total)`, d.start, d.last, time.Minute).Matrix(t)
		require.Len(t, m, 1)
		require.Len(t, m[0].Values, 11) // 10 minutes at 1 m steps, both ends included
		for k, sp := range m[0].Values {
			require.Equal(t, 35*float64(4*k), float64(sp.Value), "point %d", k)
		}
	})

	t.Run("labels", func(t *testing.T) {
		require.Equal(t, []string{"__name__", "instance", "job"}, c.Labels(nil, d.start, d.last).Strings(t))
		require.Equal(t, []string{"__name__", "instance", "job"}, c.Labels([]string{`it_temperature`}, d.start, d.last).Strings(t))
	})

	t.Run("label values", func(t *testing.T) {
		require.Equal(t, []string{"api", "web"}, c.LabelValues("job", nil, d.start, d.last).Strings(t))
		require.Equal(t, []string{"it_requests_total", "it_temperature"}, c.LabelValues("__name__", nil, d.start, d.last).Strings(t))
		require.Equal(t, []string{"a", "b"}, c.LabelValues("instance", []string{`it_requests_total{job="api"}`}, d.start, d.last).Strings(t))
		require.Equal(t, []string{"a"}, c.LabelValues("instance", []string{`{job="web"}`}, d.start, d.last).Strings(t))
	})

	t.Run("series", func(t *testing.T) {
		got := c.Series([]string{`it_requests_total{job="api"}`}, d.start, d.last).LabelSets(t)
		require.ElementsMatch(t, []model.LabelSet{
			{"__name__": "it_requests_total", "job": "api", "instance": "a"},
			{"__name__": "it_requests_total", "job": "api", "instance": "b"},
		}, got)
		got = c.Series([]string{`it_temperature`, `{__name__=~"it_req.*", job="web"}`}, d.start, d.last).LabelSets(t)
		require.Len(t, got, 3)
	})

	t.Run("metadata", func(t *testing.T) {
		md := c.Metadata("").MetadataMap(t)
		require.Equal(t, []harness.MetadataEntry{{Type: "counter", Help: "Total requests."}}, md["it_requests_total"])
		require.Equal(t, []harness.MetadataEntry{{Type: "gauge", Help: "Temperature.", Unit: "celsius"}}, md["it_temperature"])
		md = c.Metadata("it_temperature").MetadataMap(t)
		require.Equal(t, map[string][]harness.MetadataEntry{"it_temperature": {{Type: "gauge", Help: "Temperature.", Unit: "celsius"}}}, md)
	})

	t.Run("format_query", func(t *testing.T) {
		r := c.API(harness.APIPrefix+"/format_query", url.Values{"query": {`sum(rate(foo{bar="baz"}[5m]))by(job)`}})
		var s string
		r.RequireSuccess(t)
		require.NoError(t, jsonUnmarshal(r.Data, &s))
		require.Equal(t, `sum by (job) (rate(foo{bar="baz"}[5m]))`, s)
	})

	t.Run("query_exemplars", func(t *testing.T) {
		r := c.API(harness.APIPrefix+"/query_exemplars", url.Values{
			"query": {`it_requests_total`},
			"start": {harness.FormatTime(d.start)},
			"end":   {harness.FormatTime(d.last)},
		})
		r.RequireSuccess(t)
		require.JSONEq(t, `[]`, string(r.Data))
	})
}
