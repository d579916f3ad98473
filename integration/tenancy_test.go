package integration

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{})
	a, b := p.Client("team-a"), p.Client("team-b")

	step := 15 * time.Second
	last := time.Now().Truncate(step)
	start := last.Add(-10 * step)
	vals := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	mustPushRequest(t, a, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			seriesAt([]string{"__name__", "secret_total", "job", "a-job", "team_a_only", "x"}, start, step, vals),
		},
		Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "secret_total", Help: "Team A's secret."}},
	})
	// team-b has data of its own, so its empty answers are not just an
	// empty store.
	mustPush(t, b, seriesAt([]string{"__name__", "public_gauge", "job", "b-job"}, start, step, vals))

	// team-a sees its data ...
	require.Len(t, a.Query(`secret_total`, last).Vector(t), 1)
	require.Len(t, a.QueryRange(`secret_total`, start, last, step).Matrix(t), 1)
	require.Len(t, a.Series([]string{`secret_total`}, start, last).LabelSets(t), 1)
	require.Contains(t, a.Labels(nil, start, last).Strings(t), "team_a_only")
	require.Equal(t, []string{"a-job"}, a.LabelValues("job", nil, start, last).Strings(t))
	require.Contains(t, a.Metadata("").MetadataMap(t), "secret_total")

	// ... and team-b sees none of it, through every endpoint.
	for _, c := range []*harness.Client{b, b.WithPOST()} {
		require.Empty(t, c.Query(`secret_total`, last).Vector(t), "instant query")
		require.Empty(t, c.Query(`{job="a-job"}`, last).Vector(t), "instant query by job")
		require.Empty(t, c.QueryRange(`secret_total`, start, last, step).Matrix(t), "range query")
		require.Empty(t, c.QueryRange(`{__name__=~"secret.*"}`, start, last, step).Matrix(t), "range query by regex")
		require.Empty(t, c.Series([]string{`secret_total`}, start, last).LabelSets(t), "series")
		visible := c.Series([]string{`{job=~".+"}`}, start, last).LabelSets(t)
		require.Len(t, visible, 1, "series matching every job: %v", visible)
		require.Equal(t, "public_gauge", string(visible[0]["__name__"]))
		labels := c.Labels(nil, start, last).Strings(t)
		require.NotContains(t, labels, "team_a_only", "labels")
		require.Equal(t, []string{"__name__", "job"}, labels)
		require.Equal(t, []string{"b-job"}, c.LabelValues("job", nil, start, last).Strings(t), "label values")
		require.Empty(t, c.LabelValues("team_a_only", nil, start, last).Strings(t), "label values of a team-a label")
		require.NotContains(t, c.LabelValues("__name__", nil, start, last).Strings(t), "secret_total", "metric names")
		require.NotContains(t, c.Metadata("").MetadataMap(t), "secret_total", "metadata")
		require.Empty(t, c.Metadata("secret_total").MetadataMap(t), "metadata of one metric")
	}
}

func TestTenantRequired(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{})
	now := time.Now()
	series := harness.Series([]string{"__name__", "m", "job", "j"}, harness.Sample(now, 1))

	t.Run("missing tenant", func(t *testing.T) {
		c := p.Client("")
		code, body := c.Push(series)
		require.Equal(t, http.StatusUnauthorized, code, "push without a tenant: %s", body)
		require.Contains(t, body, "X-Scope-OrgID", "the 401 should say which header to send")

		r := c.Query(`m`, now)
		require.Equal(t, http.StatusUnauthorized, r.StatusCode, "query without a tenant: %s", r)
		require.Contains(t, string(r.Body), "X-Scope-OrgID", "the 401 should say which header to send")

		for _, path := range []string{"/query_range", "/series", "/labels", "/label/job/values", "/metadata"} {
			code, body := p.Get(harness.APIPrefix + path)
			require.Equal(t, http.StatusUnauthorized, code, "GET %s without a tenant: %s", path, body)
		}
	})

	t.Run("path traversal tenant", func(t *testing.T) {
		for _, tenant := range []string{"../x", "..", ".", "a/b"} {
			c := p.Client(tenant)
			code, body := c.Push(series)
			require.Equal(t, http.StatusUnauthorized, code, "push as tenant %q: %s", tenant, body)
			r := c.Query(`m`, now)
			require.Equal(t, http.StatusUnauthorized, r.StatusCode, "query as tenant %q: %s", tenant, r)
		}
		code, body := p.BasicAuthClient("../x", "pw").Push(series)
		require.Equal(t, http.StatusUnauthorized, code, "push as basic-auth user ../x: %s", body)
	})

	t.Run("basic auth username", func(t *testing.T) {
		ba := p.BasicAuthClient("team-c", "any-password")
		mustPush(t, ba, series)
		// The same tenant through the header sees what basic auth pushed.
		v := p.Client("team-c").Query(`m`, now).Vector(t)
		require.Len(t, v, 1)
		require.Equal(t, 1.0, float64(v[0].Value))
		v = ba.Query(`m`, now).Vector(t)
		require.Len(t, v, 1)
		// Another tenant does not.
		require.Empty(t, p.Client("team-d").Query(`m`, now).Vector(t))
	})

}
