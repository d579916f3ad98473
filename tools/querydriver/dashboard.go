package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// panelExprs are the panel queries of the dashboard, over the series
// tools/loadgen writes; %s is the rate window. Panel i uses expression
// i mod len with the window k × Grafana's $__rate_interval, k = 1 + i / len,
// so that all panels differ.
var panelExprs = []string{
	`sum by (job)(rate(http_requests_total[%s]))`,
	`sum by (code)(rate(http_requests_total[%s]))`,
	`sum by (handler)(rate(http_requests_total{code=~"5.."}[%s]))`,
	`histogram_quantile(0.99, sum by (le)(rate(http_request_duration_seconds_bucket[%s])))`,
	`histogram_quantile(0.5, sum by (le, handler)(rate(http_request_duration_seconds_bucket[%s])))`,
	`sum by (mode)(rate(node_cpu_seconds_total[%s]))`,
	`sum by (device)(rate(node_network_receive_bytes_total[%s]))`,
	`sum by (device)(rate(node_network_transmit_bytes_total[%s]))`,
	`topk(5, sum by (pod)(rate(process_cpu_seconds_total[%s])))`,
	`avg by (namespace)(avg_over_time(go_goroutines[%s]))`,
}

// dashboardQueries returns the n panel queries for a step and a scrape
// interval. Like Grafana's $__rate_interval the base window is
// max(step + scrape, 4 × scrape), so that rate() always has samples.
// Only the expressions matching filter (nil: all) are used.
func dashboardQueries(n int, step, scrape time.Duration, filter *regexp.Regexp) []string {
	var exprs []string
	for _, e := range panelExprs {
		if filter == nil || filter.MatchString(e) {
			exprs = append(exprs, e)
		}
	}
	if len(exprs) == 0 {
		return nil
	}
	base := max(step+scrape, 4*scrape).Truncate(time.Second)
	qs := make([]string, n)
	for i := range qs {
		window := base * time.Duration(1+i/len(exprs))
		qs[i] = fmt.Sprintf(exprs[i%len(exprs)], strconv.FormatInt(int64(window/time.Second), 10)+"s")
	}
	return qs
}

type dashboardResult struct {
	loads     []time.Duration // wall time of each load: until the last panel answered
	slow      []time.Duration // slowest panel of each load
	p50       []time.Duration // median panel of each load
	errors    int
	annotated int // panels of the last load answered with warnings or infos
	series    int // over all panels of the last load
	points    int
}

// runDashboard loads the dashboard cfg.loads times, each time all panels
// concurrently, like Grafana opening a dashboard.
func runDashboard(ctx context.Context, cfg config, out io.Writer) dashboardResult {
	end := time.Now()
	if cfg.endMs != 0 {
		end = time.UnixMilli(cfg.endMs)
	}
	start := end.Add(-cfg.rng)
	step := max(cfg.rng/time.Duration(cfg.points), time.Second).Truncate(time.Second)
	queries := dashboardQueries(cfg.dashboard, step, cfg.scrape, cfg.panelFilter)
	if len(queries) == 0 {
		fmt.Fprintf(out, "querydriver: -panel-filter %q matches no panel expression\n", cfg.panelFilter)
		return dashboardResult{errors: 1}
	}
	targets := make([]string, len(queries))
	for i, q := range queries {
		form := url.Values{}
		form.Set("query", q)
		form.Set("start", formatTime(start))
		form.Set("end", formatTime(end))
		form.Set("step", strconv.FormatFloat(step.Seconds(), 'f', -1, 64))
		targets[i] = strings.TrimSuffix(cfg.url, "/") + "/api/v1/query_range?" + form.Encode()
	}
	fmt.Fprintf(out, "querydriver: dashboard of %d panels over %s … %s step %s, loaded %d times, tenant %q\n",
		len(queries), start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), step, cfg.loads, cfg.tenant)

	client := &http.Client{Timeout: cfg.timeout, Transport: &http.Transport{MaxIdleConnsPerHost: len(queries)}}
	defer client.CloseIdleConnections()

	var res dashboardResult
	for load := 1; load <= cfg.loads && ctx.Err() == nil; load++ {
		var (
			mu             sync.Mutex
			wg             sync.WaitGroup
			lats           []time.Duration
			series, points int
			firstErr       string
			errs           int
			annotated      int
		)
		began := time.Now()
		for _, target := range targets {
			wg.Go(func() {
				t0 := time.Now()
				s, p, _, ann, err := query(ctx, client, target, cfg.tenant, cfg.noCache)
				lat := time.Since(t0)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
					return
				}
				lats = append(lats, lat)
				if ann {
					annotated++
				}
				series += s
				points += p
			})
		}
		wg.Wait()
		took := time.Since(began)
		slices.Sort(lats)
		var slowest time.Duration
		if len(lats) > 0 {
			slowest = lats[len(lats)-1]
		}
		res.loads = append(res.loads, took)
		res.slow = append(res.slow, slowest)
		res.p50 = append(res.p50, percentile(lats, 0.5))
		res.errors += errs
		res.series, res.points, res.annotated = series, points, annotated
		fmt.Fprintf(out, "  load %d: %.1fms (panels p50 %.1fms, slowest %.1fms), %d panels ok (%d with warnings or infos, which the query-frontend does not cache), %d failed, %d series, %d points\n",
			load, msf(took), msf(percentile(lats, 0.5)), msf(slowest), len(lats), annotated, errs, series, points)
		if firstErr != "" {
			fmt.Fprintf(out, "  first error: %s\n", firstErr)
		}
	}
	var first, second, firstP50, secondP50 time.Duration
	if len(res.loads) > 0 {
		first, firstP50 = res.loads[0], res.p50[0]
	}
	if len(res.loads) > 1 {
		second, secondP50 = res.loads[1], res.p50[1]
	}
	speedup := 0.0
	if second > 0 {
		speedup = float64(first) / float64(second)
	}
	fmt.Fprintf(out, "RESULT first_load_ms=%.2f second_load_ms=%.2f speedup=%.1f first_panel_p50_ms=%.2f second_panel_p50_ms=%.2f errors=%d panels=%d annotated_panels=%d series=%d points=%d\n",
		msf(first), msf(second), speedup, msf(firstP50), msf(secondP50), res.errors, len(queries), res.annotated, res.series, res.points)
	return res
}
