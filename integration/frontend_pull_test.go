package integration

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

const pullTenant = "pull"

// metricsAsSeries turns one scrape of p's /metrics into series for the
// PromQL compatibility queries: each series gets job and instance labels
// and n samples, one every step from start, counters (and histogram
// buckets, sums and counts) growing and gauges wobbling. The process'
// request duration histogram doubles as prometheus_http_request_duration_seconds
// (and its count as prometheus_http_requests_total), so histogram_quantile
// has data; `up` and meridian_build_info are added for two jobs.
func metricsAsSeries(t *testing.T, p *harness.Process, start time.Time, step time.Duration, n int) []prompb.TimeSeries {
	t.Helper()
	fams := p.Metrics()
	names := make([]string, 0, len(fams))
	for name := range fams {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []prompb.TimeSeries
	add := func(name string, lbls map[string]string, v0, inc float64, counter bool) {
		pairs := []string{"__name__", name}
		keys := make([]string, 0, len(lbls))
		for k := range lbls {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			pairs = append(pairs, k, lbls[k])
		}
		samples := make([]prompb.Sample, n)
		for k := range n {
			v := v0 + float64(k%7)*inc
			if counter {
				v = v0 + float64(k)*inc
			}
			samples[k] = harness.Sample(start.Add(time.Duration(k)*step), v)
		}
		out = append(out, harness.Series(pairs, samples...))
	}
	for j, job := range []string{"meridian", "prometheus"} {
		base := map[string]string{"job": job, "instance": fmt.Sprintf("host-%d:%d", j, 9090+j)}
		with := func(extra map[string]string) map[string]string {
			l := map[string]string{}
			for k, v := range base {
				l[k] = v
			}
			for k, v := range extra {
				l[k] = v
			}
			return l
		}
		add("up", base, 1, 0, false)
		add("meridian_build_info", with(map[string]string{"version": "test"}), 1, 0, false)
		for _, name := range names {
			if !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && name != "meridian_request_duration_seconds" {
				continue
			}
			f := fams[name]
			for i, m := range f.Metric {
				lbls := with(nil)
				for _, lp := range m.Label {
					k := lp.GetName()
					if k == "job" || k == "instance" {
						continue
					}
					if k == "route" {
						k = "handler"
					}
					lbls[k] = lp.GetValue()
				}
				inc := float64(1 + (i+j)%5)
				switch f.GetType() {
				case dto.MetricType_COUNTER:
					add(name, lbls, m.Counter.GetValue(), inc, true)
				case dto.MetricType_GAUGE:
					add(name, lbls, m.Gauge.GetValue(), inc, false)
				case dto.MetricType_UNTYPED:
					add(name, lbls, m.Untyped.GetValue(), inc, false)
				case dto.MetricType_SUMMARY:
					add(name+"_sum", lbls, m.Summary.GetSampleSum(), inc, true)
					add(name+"_count", lbls, float64(m.Summary.GetSampleCount()), inc, true)
				case dto.MetricType_HISTOGRAM:
					hname := name
					if name == "meridian_request_duration_seconds" {
						hname = "prometheus_http_request_duration_seconds"
						add("prometheus_http_requests_total", lbls, float64(m.Histogram.GetSampleCount()), float64(len(m.Histogram.Bucket)+1), true)
					}
					for b, bk := range m.Histogram.Bucket {
						add(hname+"_bucket", with2(lbls, "le", strconv.FormatFloat(bk.GetUpperBound(), 'g', -1, 64)), float64(bk.GetCumulativeCount()), float64(b+1), true)
					}
					cnt := float64(m.Histogram.GetSampleCount())
					add(hname+"_bucket", with2(lbls, "le", "+Inf"), cnt, float64(len(m.Histogram.Bucket)+1), true)
					add(hname+"_count", lbls, cnt, float64(len(m.Histogram.Bucket)+1), true)
					add(hname+"_sum", lbls, m.Histogram.GetSampleSum(), 0.01*inc, true)
				}
			}
		}
	}
	return out
}

func with2(l map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for kk, vv := range l {
		out[kk] = vv
	}
	return out
}

// workerRequests is how many pulled requests p answered (or saw canceled
// with status "canceled").
func workerRequests(p *harness.Process, status string) float64 {
	var lbl map[string]string
	if status != "" {
		lbl = map[string]string{"status_code": status}
	}
	v, _ := p.Metric("meridian_querier_worker_requests_total", lbl)
	return v
}

// compareCompat runs every PromQL compatibility query through fe and on
// direct, and requires identical answers. It returns how many had data.
func compareCompat(t *testing.T, fe, direct *harness.Process, start, end time.Time, step time.Duration) int {
	t.Helper()
	withData := 0
	for _, q := range compatQueries {
		want := direct.Client(pullTenant).QueryRange(q.query, start, end, step)
		require.Equalf(t, "success", want.Status, "querier directly, %q: %s", q.query, want)
		got := fe.Client(pullTenant).QueryRange(q.query, start, end, step)
		require.Equalf(t, "success", got.Status, "through the frontend, %q: %s", q.query, got)
		wm, gm := want.Matrix(t), got.Matrix(t)
		require.Equalf(t, wm.String(), gm.String(), "%q: the frontend's answer differs from the querier's", q.query)
		require.Equalf(t, want.Warnings, got.Warnings, "%q: warnings", q.query)
		require.Equalf(t, want.Infos, got.Infos, "%q: infos", q.query)
		if len(wm) > 0 {
			withData++
		}
	}
	return withData
}

// TestQueryFrontendPull: queriers pull work from a query-frontend that
// knows no querier address. The PromQL compatibility queries answer as the
// querier directly does, cold and warm; a querier that joins later gets
// work; a querier killed in the middle of a query has it retried on
// another; a client that goes away cancels the querier's work. Then the
// same through a query-scheduler.
func TestQueryFrontendPull(t *testing.T) {
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterOptions{ReplicationFactor: 1})
	wo := c.IngesterOptions("ing-1", "zone-a")
	wo.Target, wo.Name = "write", "write"
	// The slow query's hours of data are cut into blocks; kept on the
	// ingester, not shipped, as this cluster has no store-gateway to serve
	// them (the querier would refuse the partial answer).
	wo.Args = append(wo.Args, "-ingester.ship-interval=24h")
	w := c.Start(wo)
	fe := harness.StartMeridian(t, harness.Options{Target: "query-frontend", Name: "frontend", Args: []string{
		"-frontend.split-queries-by-interval=2m",
		"-frontend.max-cache-freshness=0s",
		"-frontend.max-retries=3",
	}})
	startQuerier := func(id, flag, addr string) *harness.Process {
		return c.Start(harness.Options{Target: "querier", Name: id, Args: []string{
			"-querier.bucket-sync-interval=1s", flag + "=" + addr, "-querier.id=" + id, "-querier.worker-parallelism=2",
		}})
	}
	connected := func(p *harness.Process, n float64) {
		requireEventually(t, 30*time.Second, 100*time.Millisecond, fmt.Sprintf("%v queriers connected to %s", n, p.URL()), func() bool {
			v, _ := p.Metric("meridian_query_queue_connected_queriers", nil)
			return v == n
		})
	}
	q1 := startQuerier("querier-1", "-querier.frontend-address", fe.GRPCAddr())
	q2 := startQuerier("querier-2", "-querier.frontend-address", fe.GRPCAddr())
	connected(fe, 2)

	// Ten minutes of "scrapes" every 5s, ending two minutes ago.
	step := 5 * time.Second
	dataEnd := time.Now().Truncate(time.Minute).Add(-2 * time.Minute)
	dataStart := dataEnd.Add(-10 * time.Minute)
	series := metricsAsSeries(t, w, dataStart, step, int(10*time.Minute/step)+1)
	t.Logf("pushing %d series of compatibility data", len(series))
	for i := 0; i < len(series); i += 200 {
		code, body := w.Push(pullTenant, series[i:min(i+200, len(series))]...)
		requirePushed(t, code, body)
	}

	start, end := dataStart.Add(time.Minute), dataEnd.Add(-30*time.Second)
	withData := compareCompat(t, fe, q1, start, end, 15*time.Second)
	require.GreaterOrEqual(t, withData, len(compatQueries)*3/4, "most compatibility queries have data")
	hitsBefore, _ := fe.Metric("meridian_frontend_cache_hits_total", nil)
	compareCompat(t, fe, q2, start, end, 15*time.Second) // warm
	hitsAfter, _ := fe.Metric("meridian_frontend_cache_hits_total", nil)
	require.Greater(t, hitsAfter, hitsBefore, "the second round was served from the cache")
	t.Logf("compat queries through the pulling frontend: %d of %d with data; pulled requests: querier-1 %v, querier-2 %v",
		withData, len(compatQueries), workerRequests(q1, "200"), workerRequests(q2, "200"))
	require.Positive(t, workerRequests(q1, "200"), "querier-1 pulled work")
	require.Positive(t, workerRequests(q2, "200"), "querier-2 pulled work")

	// Scale out: a third querier gets work as soon as it connects.
	q3 := startQuerier("querier-3", "-querier.frontend-address", fe.GRPCAddr())
	connected(fe, 3)
	requireEventually(t, 60*time.Second, 10*time.Millisecond, "querier-3 to pull work", func() bool {
		// A new step each round misses the cache.
		compareCompat(t, fe, q1, start, end, time.Duration(16+time.Now().UnixNano()%40)*time.Second)
		return workerRequests(q3, "200") > 0
	})

	// A slow query: a one-second subquery over a day of 40 series.
	slowEnd := time.Now().Truncate(time.Minute).Add(-time.Minute)
	const slowTenant = "pull-slow" // its own TSDB: older samples than pullTenant's
	pushSlowData(t, w, slowTenant, "pull_slow", 40, 4, slowEnd)
	slowQ := `sum(count_over_time(pull_slow[1d:1s]))`
	t0 := time.Now()
	want := q1.Client(slowTenant).Query(slowQ, slowEnd)
	t.Logf("the slow query takes %s on a querier directly", time.Since(t0))
	require.Equal(t, "success", want.Status, want.String())

	// Kill -9 the querier running it: the frontend retries it on another.
	queriers := []*harness.Process{q1, q2, q3}
	inflight := func() *harness.Process {
		for _, q := range queriers {
			if v, _ := q.Metric("meridian_querier_queries_inflight", nil); v > 0 {
				return q
			}
		}
		return nil
	}
	// The query may finish before a scrape sees it in flight on a busy
	// machine: then send it again, a bounded number of times.
	var victim *harness.Process
	var res chan *harness.Response
	for attempt := 0; victim == nil; attempt++ {
		require.Less(t, attempt, 5, "never caught the slow query in flight on a querier")
		ch := make(chan *harness.Response, 1)
		res = ch
		go func() { ch <- fe.Client(slowTenant).Query(slowQ, slowEnd) }()
		for victim == nil && len(res) == 0 {
			victim = inflight()
		}
		if victim == nil {
			<-res
		}
	}
	victim.Kill()
	queriers = slicesDelete(queriers, victim)
	got := <-res
	require.Equal(t, http.StatusOK, got.StatusCode, got.String())
	require.Equal(t, want.Vector(t).String(), got.Vector(t).String(), "the retried query's answer")
	gone, _ := fe.Metric("meridian_frontend_querier_gone_total", nil)
	require.GreaterOrEqual(t, gone, 1.0, "the frontend saw the querier die")
	connected(fe, 2)

	// A client that goes away cancels the querier's work.
	client := &http.Client{}
	defer client.CloseIdleConnections()
	victim = nil
	for attempt := 0; victim == nil; attempt++ {
		require.Less(t, attempt, 5, "never caught the slow query in flight on a querier")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = apiGet(ctx, client, fe, slowTenant, "query", map[string][]string{"query": {slowQ}, "time": {harness.FormatTime(slowEnd)}})
		}()
	poll:
		for victim == nil {
			select {
			case <-done:
				break poll
			default:
				victim = inflight()
			}
		}
		cancel() // the client goes away
		<-done
	}
	requireEventually(t, 20*time.Second, 50*time.Millisecond, "the querier to count its canceled work", func() bool {
		return workerRequests(victim, "canceled") >= 1
	})
	requireEventually(t, 20*time.Second, 50*time.Millisecond, "the querier to stop evaluating", func() bool {
		v, _ := victim.Metric("meridian_querier_queries_inflight", nil)
		return v == 0
	})

	// The same through a query-scheduler shared by a second frontend.
	sch := harness.StartMeridian(t, harness.Options{Target: "query-scheduler", Name: "scheduler"})
	fe2 := harness.StartMeridian(t, harness.Options{Target: "query-frontend", Name: "frontend-2", Args: []string{
		"-frontend.scheduler-address=" + sch.GRPCAddr(),
		"-frontend.split-queries-by-interval=2m",
		"-frontend.max-cache-freshness=0s",
	}})
	q4 := startQuerier("querier-4", "-querier.scheduler-address", sch.GRPCAddr())
	connected(sch, 1)
	compareCompat(t, fe2, q4, start, end, 15*time.Second)
	answered, _ := sch.Metric("meridian_query_queue_requests_total", map[string]string{"outcome": "answered"})
	require.GreaterOrEqual(t, answered, float64(len(compatQueries)), "the scheduler passed every query on")
	require.Positive(t, workerRequests(q4, "200"))
}

func slicesDelete(ps []*harness.Process, p *harness.Process) []*harness.Process {
	var out []*harness.Process
	for _, x := range ps {
		if x != p {
			out = append(out, x)
		}
	}
	return out
}

// TestMonolithWithFrontend: -target=all,query-frontend serves the API
// through the frontend, whose queue the process' own querier pulls from
// over loopback gRPC.
func TestMonolithWithFrontend(t *testing.T) {
	t.Parallel()
	m := harness.StartMeridian(t, harness.Options{Target: "all,query-frontend", Args: []string{"-frontend.max-cache-freshness=0s"}})
	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	var samples []prompb.Sample
	for i := range 60 {
		samples = append(samples, harness.Sample(end.Add(time.Duration(i-59)*time.Minute), float64(i*i)))
	}
	code, body := m.Push("mono", harness.Series([]string{"__name__", "mono_total"}, samples...))
	requirePushed(t, code, body)
	got := m.Client("mono").QueryRange(`mono_total`, end.Add(-50*time.Minute), end, time.Minute)
	require.Equal(t, "success", got.Status, got.String())
	mat := got.Matrix(t)
	require.Len(t, mat, 1)
	require.Len(t, mat[0].Values, 51)
	for k, v := range mat[0].Values {
		i := k + 9 // the first point is 50 minutes before end: sample 9
		require.Equal(t, float64(i*i), float64(v.Value), "point %d", k)
	}
	// The answer came through the frontend and the loopback worker.
	fr, _ := m.Metric("meridian_frontend_requests_total", map[string]string{"endpoint": "query_range"})
	require.Positive(t, fr)
	require.Positive(t, workerRequests(m, "200"))
}
