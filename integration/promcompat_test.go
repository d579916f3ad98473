package integration

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

const (
	compatTenant = "compat"
	compatRun    = 90 * time.Second // how long Prometheus scrapes and remote-writes
	compatWarmup = 20 * time.Second // window start after Prometheus started
	compatMargin = 10 * time.Second // window end before the last remote-written time
	compatStep   = 5 * time.Second
	compatRelTol = 1e-9
)

// compatQueries are compared between the reference Prometheus and Meridian.
// hasData marks queries whose answer must not be empty, so a comparison of
// two empty answers cannot pass for agreement.
var compatQueries = []struct {
	query   string
	hasData bool
}{
	{`up`, true},
	{`up{job="meridian"}`, true},
	{`{__name__=~"go_gc_duration_seconds.*", job="prometheus"}`, true},
	{`prometheus_http_requests_total{handler=~"/api/v1/.*|/metrics"}`, true},
	{`process_cpu_seconds_total{job!="prometheus"}`, true},
	{`{__name__=~"process_.*_bytes", job=~"prom.*|meri.*"}`, true},
	{`rate(process_cpu_seconds_total[30s])`, true},
	{`irate(prometheus_http_requests_total[30s])`, true},
	{`increase(prometheus_tsdb_head_samples_appended_total[1m])`, true},
	{`sum by (job) (rate(process_cpu_seconds_total[30s]))`, true},
	{`avg by (job) (go_goroutines)`, true},
	{`max by (job, instance) (go_memstats_heap_alloc_bytes)`, true},
	{`min without (instance) (scrape_duration_seconds)`, true},
	{`topk(1, go_memstats_alloc_bytes)`, true},
	{`bottomk(2, prometheus_http_requests_total)`, true},
	{`histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[1m])))`, true},
	{`histogram_quantile(0.5, sum by (le, handler) (rate(prometheus_http_request_duration_seconds_bucket[30s])))`, true},
	{`rate(prometheus_http_request_duration_seconds_sum[1m]) / rate(prometheus_http_request_duration_seconds_count[1m])`, true},
	{`go_goroutines offset 30s`, true},
	{`go_goroutines @ end()`, true},
	{`go_goroutines @ start()`, true},
	{`max_over_time(go_goroutines[1m:5s])`, true},
	{`rate(process_cpu_seconds_total[1m:10s])`, true},
	{`sum_over_time(up[30s:2s] offset 10s)`, true},
	{`go_goroutines * on(job, instance) group_left() up`, true},
	{`up * on(instance) group_left(version) meridian_build_info`, true},
	{`process_resident_memory_bytes / ignoring(job) process_virtual_memory_bytes`, true},
	{`absent(nonexistent_metric_for_compat)`, true},
	{`absent(up{job="meridian"})`, false},
	{`label_replace(up, "host", "$1", "instance", "(.*):\\d+")`, true},
	{`label_join(up, "both", "/", "job", "instance")`, true},
	{`count_over_time(up[1m])`, true},
	{`last_over_time(up[10s])`, true},
	{`count by (job) (up)`, true},
	{`sum by (job) (scrape_samples_scraped)`, true},
	{`count by (job) ({__name__=~".+"})`, true},
	{`deriv(go_memstats_heap_alloc_bytes[1m])`, true},
	{`avg_over_time(go_goroutines[30s])`, true},
	{`quantile_over_time(0.5, go_goroutines[1m])`, true},
	{`quantile by (job) (0.9, scrape_duration_seconds)`, true},
	{`stddev by (job) (go_goroutines)`, true},
	{`changes(go_goroutines[1m])`, true},
	{`resets(process_cpu_seconds_total[1m])`, true},
	{`delta(go_goroutines[1m])`, true},
	{`abs(delta(go_goroutines[30s]))`, true},
	{`predict_linear(go_memstats_heap_alloc_bytes[1m], 60)`, true},
	{`timestamp(up)`, true},
	{`up == bool 1`, true},
	{`clamp_max(go_goroutines, 10)`, true},
	{`scalar(count(up)) * 2`, true},
	{`sort_desc(sum by (handler) (rate(prometheus_http_requests_total[1m])))`, true},
}

// TestPrometheusCompatibility lets a real Prometheus of the same version as
// go.mod scrape itself and Meridian and remote-write everything to Meridian,
// then requires identical answers from both to range queries over a window
// both hold completely.
func TestPrometheusCompatibility(t *testing.T) {
	t.Parallel()
	bin, err := harness.RefPrometheus()
	if err != nil {
		t.Fatalf("reference Prometheus unavailable: %v", err)
	}

	m := harness.StartMeridian(t, harness.Options{})
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{
		Bin:  bin,
		Host: m.Host(),
		Config: func(self string) string {
			return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['%s']
  - job_name: meridian
    static_configs:
      - targets: ['%s']
remote_write:
  - url: %s/api/v1/push
    headers:
      X-Scope-OrgID: %s
    queue_config:
      batch_send_deadline: 1s
      min_shards: 1
      max_shards: 1
      max_samples_per_send: 5000
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send_interval: 5s
`, self, m.HTTPAddr(), m.URL(), compatTenant)
		},
	})
	started := time.Now()
	pc := prom.Client()
	mc := m.Client(compatTenant)

	// Fail early if remote write does not arrive at all.
	requireEventually(t, 30*time.Second, time.Second, "remote-written samples of `up` in Meridian", func() bool {
		r := mc.Query(`count(up)`, time.Time{})
		return r.StatusCode == 200 && r.Status == "success" && len(r.Vector(t)) == 1
	})

	// Let both collect data; stop early if either dies.
	for i := 0; i < int(compatRun/time.Second) && time.Since(started) < compatRun; i++ {
		require.True(t, m.Running(), "Meridian stopped while Prometheus was writing to it")
		time.Sleep(time.Second)
	}

	// The window ends compatMargin before the newest timestamp Prometheus has
	// remote-written (one shard, so everything older was sent before it).
	var highest time.Time
	requireEventually(t, 60*time.Second, time.Second, "Prometheus to report the timestamp it has remote-written", func() bool {
		v := pc.Query(`max(prometheus_remote_storage_queue_highest_sent_timestamp_seconds)`, time.Time{}).Vector(t)
		if len(v) != 1 || float64(v[0].Value) <= 0 {
			return false
		}
		highest = time.Unix(int64(v[0].Value), 0)
		return highest.After(started.Add(compatWarmup + compatMargin + 30*time.Second))
	})
	start := started.Add(compatWarmup).Truncate(time.Second)
	end := highest.Add(-compatMargin).Truncate(time.Second)
	t.Logf("comparing over [%s, %s] (%s), step %s", start.Format(time.RFC3339), end.Format(time.RFC3339), end.Sub(start), compatStep)

	matched, withData := 0, 0
	for i, q := range compatQueries {
		name := fmt.Sprintf("%02d %s", i, q.query)
		if len(name) > 70 {
			name = name[:70]
		}
		ok := t.Run(name, func(t *testing.T) {
			want := pc.QueryRange(q.query, start, end, compatStep)
			got := mc.QueryRange(q.query, start, end, compatStep)
			require.Equalf(t, "success", want.Status, "Prometheus could not run %q: %s", q.query, want)
			require.Equalf(t, "success", got.Status, "Meridian could not run %q: %s", q.query, got)
			wm, gm := want.Matrix(t), got.Matrix(t)
			if q.hasData {
				require.NotEmptyf(t, wm, "Prometheus returned no data for %q: the comparison would be vacuous", q.query)
				withData++
			}
			if diff := diffMatrices(wm, gm, compatRelTol); diff != "" {
				t.Fatalf("%q: Meridian differs from Prometheus: %s", q.query, diff)
			}
		})
		if ok {
			matched++
		}
	}
	t.Logf("promcompat: %d of %d PromQL range queries matched Prometheus (%d with data required)", matched, len(compatQueries), withData)
	prom.Kill()
}

// diffMatrices describes the first difference between want and got, or
// returns "" when they hold the same series with the same points (values
// within the relative tolerance rel, NaN equal to NaN).
func diffMatrices(want, got model.Matrix, rel float64) string {
	index := func(m model.Matrix) (map[string]*model.SampleStream, []string, string) {
		out := map[string]*model.SampleStream{}
		keys := []string{}
		for _, s := range m {
			k := s.Metric.String()
			if _, dup := out[k]; dup {
				return nil, nil, "series " + k + " appears twice"
			}
			out[k] = s
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return out, keys, ""
	}
	w, wk, err := index(want)
	if err != "" {
		return "Prometheus: " + err
	}
	g, gk, err := index(got)
	if err != "" {
		return "Meridian: " + err
	}
	var missing, extra []string
	for _, k := range wk {
		if _, ok := g[k]; !ok {
			missing = append(missing, k)
		}
	}
	for _, k := range gk {
		if _, ok := w[k]; !ok {
			extra = append(extra, k)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		return fmt.Sprintf("series sets differ: only in Prometheus %s; only in Meridian %s", abbrev(missing), abbrev(extra))
	}
	for _, k := range wk {
		ws, gs := w[k], g[k]
		if len(ws.Histograms) != len(gs.Histograms) {
			return fmt.Sprintf("%s: %d histogram points in Prometheus, %d in Meridian", k, len(ws.Histograms), len(gs.Histograms))
		}
		if len(ws.Values) != len(gs.Values) {
			return fmt.Sprintf("%s: %d points in Prometheus, %d in Meridian (Prometheus %s; Meridian %s)", k, len(ws.Values), len(gs.Values), points(ws.Values), points(gs.Values))
		}
		for i := range ws.Values {
			a, b := ws.Values[i], gs.Values[i]
			if a.Timestamp != b.Timestamp {
				return fmt.Sprintf("%s: point %d at %s in Prometheus, at %s in Meridian", k, i, a.Timestamp, b.Timestamp)
			}
			if !harness.SameFloat(float64(a.Value), float64(b.Value), rel) {
				return fmt.Sprintf("%s at %s: Prometheus %v, Meridian %v (relative difference %.3g)", k, a.Timestamp, a.Value, b.Value,
					math.Abs(float64(a.Value-b.Value))/math.Max(math.Abs(float64(a.Value)), math.Abs(float64(b.Value))))
			}
		}
		for i := range ws.Histograms {
			a, b := ws.Histograms[i], gs.Histograms[i]
			if a.Timestamp != b.Timestamp || !a.Histogram.Equal(b.Histogram) {
				return fmt.Sprintf("%s: histogram point %d differs: Prometheus %v, Meridian %v", k, i, a, b)
			}
		}
	}
	return ""
}

func abbrev(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	if len(keys) > 5 {
		return fmt.Sprintf("%s and %d more", strings.Join(keys[:5], ", "), len(keys)-5)
	}
	return strings.Join(keys, ", ")
}

func points(v []model.SamplePair) string {
	if len(v) > 8 {
		return fmt.Sprintf("%v ... %v", v[:4], v[len(v)-4:])
	}
	return fmt.Sprint(v)
}
