package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// TestQueryFrontend puts a query-frontend process in front of a monolith:
// split and cached answers must equal the monolith's own, a repeated query
// must be served from the cache, and tenants must not share cache entries.
func TestQueryFrontend(t *testing.T) {
	t.Parallel()
	m, fe := startMonolithBehindFrontend(t)

	// 10 hours of one-minute samples for two tenants, in time order.
	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	start := end.Add(-10 * time.Hour)
	for _, tenant := range []string{"fe-a", "fe-b"} {
		var batch []prompb.TimeSeries
		for s := 0; s < 3; s++ {
			var samples []prompb.Sample
			i := 0
			for ts := start; !ts.After(end); ts = ts.Add(time.Minute) {
				v := float64(i * (s + 1))
				if tenant == "fe-b" {
					v *= 10
				}
				samples = append(samples, harness.Sample(ts, v))
				i++
			}
			batch = append(batch, harness.Series([]string{"__name__", "fe_counter_total", "series", fmt.Sprint(s)}, samples...))
		}
		code, body := m.Push(tenant, batch...)
		require.Equal(t, 200, code, body)
	}

	queries := []string{
		`fe_counter_total`,
		`rate(fe_counter_total[5m])`,
		`sum(fe_counter_total offset 1h)`,
		`fe_counter_total @ end()`,
		`max_over_time(rate(fe_counter_total[5m])[30m:1m])`,
	}
	qStart, qEnd := start.Add(90*time.Minute), end.Add(-7*time.Minute)
	for _, q := range queries {
		want := m.Client("fe-a").QueryRange(q, qStart, qEnd, 2*time.Minute).Matrix(t)
		require.NotEmpty(t, want, q)
		got := fe.Client("fe-a").QueryRange(q, qStart, qEnd, 2*time.Minute).Matrix(t)
		require.Equal(t, want.String(), got.String(), "split answer of %s", q)
	}

	splits, _ := fe.Metric("meridian_frontend_split_queries_total", nil)
	require.GreaterOrEqual(t, splits, float64(len(queries)*8), "each 8h20m query was split by the hour")

	// A repeated query reaches no querier.
	before, _ := m.Metric("meridian_querier_queries_total", map[string]string{"endpoint": "query_range"})
	again := fe.Client("fe-a").QueryRange(queries[1], qStart, qEnd, 2*time.Minute).Matrix(t)
	after, _ := m.Metric("meridian_querier_queries_total", map[string]string{"endpoint": "query_range"})
	require.Equal(t, before, after, "the repeated query was answered from the cache")
	hits, _ := fe.Metric("meridian_frontend_cache_hits_total", nil)
	require.Positive(t, hits)
	require.NotEmpty(t, again)

	// Another tenant's identical query is not served from fe-a's cache.
	wantB := m.Client("fe-b").QueryRange(queries[1], qStart, qEnd, 2*time.Minute).Matrix(t)
	gotB := fe.Client("fe-b").QueryRange(queries[1], qStart, qEnd, 2*time.Minute).Matrix(t)
	require.Equal(t, wantB.String(), gotB.String())
	require.NotEqual(t, again.String(), gotB.String(), "tenants see their own data")

	// Other endpoints pass through unchanged.
	require.Equal(t, m.Client("fe-a").Query(`sum(fe_counter_total)`, end).Vector(t).String(),
		fe.Client("fe-a").Query(`sum(fe_counter_total)`, end).Vector(t).String())
	require.Equal(t, m.Client("fe-a").Labels(nil, start, end).Strings(t), fe.Client("fe-a").Labels(nil, start, end).Strings(t))
}

// startMonolithBehindFrontend starts a monolith and a query-frontend that
// forwards to it, splitting by the hour and caching everything.
func startMonolithBehindFrontend(t *testing.T) (m, fe *harness.Process) {
	t.Helper()
	m = harness.StartMeridian(t, harness.Options{})
	fe = harness.StartMeridian(t, harness.Options{
		Target: "query-frontend",
		Name:   "frontend",
		Args: []string{
			"-frontend.downstream-url=" + m.URL(),
			"-frontend.split-queries-by-interval=1h",
			"-frontend.max-cache-freshness=0s",
		},
	})
	return m, fe
}
