package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// pushSlowData writes nSeries series of metric for tenant, one sample a
// minute over the hours before end, so that subqueries over them are costly.
// It pushes half an hour of all series at a time: the ingester accepts
// samples in time order only.
func pushSlowData(t *testing.T, m *harness.Process, tenant, metric string, nSeries int, hours int, end time.Time) {
	t.Helper()
	start := end.Add(-time.Duration(hours) * time.Hour)
	for from := start; !from.After(end); from = from.Add(30 * time.Minute) {
		batch := make([]prompb.TimeSeries, 0, nSeries)
		for s := range nSeries {
			var samples []prompb.Sample
			for ts := from; ts.Before(from.Add(30*time.Minute)) && !ts.After(end); ts = ts.Add(time.Minute) {
				samples = append(samples, harness.Sample(ts, float64(int(ts.Sub(start)/time.Minute)*(s+1))))
			}
			batch = append(batch, harness.Series([]string{"__name__", metric, "series", strconv.Itoa(s)}, samples...))
		}
		code, body := m.Push(tenant, batch...)
		requirePushed(t, code, body)
	}
}

// apiGet sends a GET to the Prometheus API of p as tenant and returns the
// status code (0 on a transport error, e.g. when ctx was canceled).
func apiGet(ctx context.Context, client *http.Client, p *harness.Process, tenant, endpoint string, params url.Values) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+harness.APIPrefix+"/"+endpoint+"?"+params.Encode(), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func rangeParams(query string, start, end time.Time, step time.Duration) url.Values {
	return url.Values{"query": {query}, "start": {harness.FormatTime(start)}, "end": {harness.FormatTime(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
}

// TestQueryFrontendCancel: a client that gives up on a slow range query
// makes the frontend drop its queued sub-queries and cancel the running
// one, which meridian_frontend_canceled_requests_total shows.
func TestQueryFrontendCancel(t *testing.T) {
	t.Parallel()
	m := harness.StartMeridian(t, harness.Options{})
	fe := harness.StartMeridian(t, harness.Options{
		Target: "query-frontend",
		Name:   "frontend",
		Args: []string{
			"-frontend.downstream-url=" + m.URL(),
			"-frontend.split-queries-by-interval=1h",
			"-frontend.max-concurrent=1",
			"-frontend.cache-results=false",
		},
	})
	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	pushSlowData(t, m, "cancel", "fe_slow", 50, 6, end)

	// Six one-hour sub-queries, each evaluating a one-second subquery
	// over a day for 50 series: seconds of work each, with one running and
	// the others queued behind -frontend.max-concurrent=1.
	q := `sum(count_over_time(fe_slow[1d:1s]))`
	params := rangeParams(q, end.Add(-6*time.Hour), end, time.Minute)
	client := &http.Client{Timeout: time.Minute}
	defer client.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	code, err := apiGet(ctx, client, fe, "cancel", "query_range", params)
	t.Logf("client gave up after %s: code %d, err %v", time.Since(t0), code, err)
	require.Error(t, err, "the query should have outlasted the client's 200ms")

	counted := func() float64 {
		v, _ := fe.Metric("meridian_frontend_canceled_requests_total", nil)
		return v
	}
	requireEventually(t, 20*time.Second, 100*time.Millisecond, "the frontend to count the canceled sub-queries", func() bool {
		return counted() > 0
	})
	queued, _ := fe.Metric("meridian_frontend_canceled_requests_total", map[string]string{"stage": "queued"})
	inFlight, _ := fe.Metric("meridian_frontend_canceled_requests_total", map[string]string{"stage": "in_flight"})
	t.Logf("canceled sub-queries: %v queued, %v in flight", queued, inFlight)

	// The querier saw the running sub-query canceled too: it counts it with
	// status "canceled" once the evaluation notices, and stops evaluating.
	requireEventually(t, 20*time.Second, 100*time.Millisecond, "the frontend queue to empty", func() bool {
		v, _ := fe.Metric("meridian_frontend_queue_length", nil)
		return v == 0
	})
	requireEventually(t, 20*time.Second, 100*time.Millisecond, "the querier to count a canceled range query", func() bool {
		v, _ := m.Metric("meridian_querier_queries_total", map[string]string{"endpoint": "query_range", "status": "canceled"})
		return v >= 1
	})
	requireEventually(t, 20*time.Second, 100*time.Millisecond, "the querier to stop evaluating", func() bool {
		v, _ := m.Metric("meridian_querier_queries_inflight", nil)
		return v == 0
	})
}

// TestQueryFrontendFairness: tenant A floods the frontend with heavy range
// queries while tenant B runs light instant queries one after another.
// With -frontend.max-concurrent=2 the heavy queries queue up; the fair
// queue serves B's request as soon as one worker is free, so B waits for at
// most about one heavy query, whereas a single FIFO queue would put it
// behind the ~28 queued heavy ones.
func TestQueryFrontendFairness(t *testing.T) {
	t.Parallel()
	m := harness.StartMeridian(t, harness.Options{})
	fe := harness.StartMeridian(t, harness.Options{
		Target: "query-frontend",
		Name:   "frontend",
		Args: []string{
			"-frontend.downstream-url=" + m.URL(),
			"-frontend.split-queries-by-interval=0",
			"-frontend.max-concurrent=2",
			"-frontend.cache-results=false",
		},
	})
	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	pushSlowData(t, m, "fair-a", "fe_heavy", 150, 6, end)
	pushSlowData(t, m, "fair-b", "fe_light", 3, 1, end)

	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 40}}
	defer client.CloseIdleConnections()
	light := func() time.Duration {
		t0 := time.Now()
		code, err := apiGet(context.Background(), client, fe, "fair-b", "query", url.Values{"query": {"sum(fe_light)"}, "time": {harness.FormatTime(end)}})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		return time.Since(t0)
	}
	heavyParams := rangeParams(`sum(count_over_time(fe_heavy[1d:1s]))`, end.Add(-6*time.Hour), end, 5*time.Minute)
	heavy := func(ctx context.Context) (int, error) {
		return apiGet(ctx, client, fe, "fair-a", "query_range", heavyParams)
	}

	// Baselines, each tenant alone.
	const nLight = 20
	var base []time.Duration
	for range nLight {
		base = append(base, light())
	}
	slices.Sort(base)
	baseP99 := base[len(base)-1]
	var heavyAlone []time.Duration
	for range 3 {
		t0 := time.Now()
		code, err := heavy(context.Background())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		heavyAlone = append(heavyAlone, time.Since(t0))
	}
	slices.Sort(heavyAlone)
	t.Logf("alone: B p50 %s p99 %s; one heavy A query %s", base[len(base)/2], baseP99, heavyAlone[1])

	// The flood: 30 clients of A, each sending heavy queries back to back
	// (at most 100 each) until B is done.
	const nFlood = 30
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		wg     sync.WaitGroup
		doneA  atomic.Int64
		failsA atomic.Int64
	)
	floodStart := time.Now()
	for range nFlood {
		wg.Go(func() {
			for range 100 {
				if ctx.Err() != nil {
					return
				}
				code, err := heavy(ctx)
				switch {
				case ctx.Err() != nil:
					return
				case err != nil || code != http.StatusOK:
					failsA.Add(1)
				default:
					doneA.Add(1)
				}
			}
		})
	}
	requireEventually(t, 30*time.Second, 20*time.Millisecond, "tenant A's queries to queue up", func() bool {
		v, _ := fe.Metric("meridian_frontend_queue_length", map[string]string{"tenant": "fair-a"})
		return v >= 10
	})
	var lat []time.Duration
	for range nLight {
		lat = append(lat, light())
	}
	flood := time.Since(floodStart)
	completed := doneA.Load()
	stop()
	wg.Wait()
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)-1]

	// Service time of one heavy query during the flood: two run at a time.
	// Before B started the queue had filled, so the flood ran at full speed.
	service := heavyAlone[1]
	if completed > 0 {
		service = max(service, 2*flood/time.Duration(completed))
	}
	fmt.Printf("frontend fairness: B (light, sequential) p50 %s p99 %s (alone: p99 %s); A (%d heavy clients) %d queries in %s = %.2f/s, %d failed, ~%s each\n",
		p50, p99, baseP99, nFlood, completed, flood.Round(time.Millisecond), float64(completed)/flood.Seconds(), failsA.Load(), service.Round(time.Millisecond))

	// The bound. With the fair queue B waits for a worker to free up: at
	// most one heavy query's service time, plus its own time. Allow three
	// service times (the two running heavy queries may both have just
	// started, and a loaded 2-core machine stretches everything) plus five
	// times B's own p99 alone plus 500ms of scheduling noise. A FIFO queue
	// would make B wait for ~28 queued heavy queries, i.e. ~14 service
	// times, which this bound rejects.
	bound := 3*service + 5*baseP99 + 500*time.Millisecond
	require.Lessf(t, p99, bound, "B's p99 %s exceeds %s: tenant A's flood starves tenant B", p99, bound)
	require.Zero(t, failsA.Load(), "tenant A's queries failed")
	require.Positive(t, completed)
}
