// Command querydriver measures PromQL range-query latency against Meridian's
// Prometheus HTTP API.
//
// It runs -query as a range query over [-end − -range, -end] at -step,
// -n times with -concurrency queries in flight, and prints latency
// percentiles, errors and how many series and points came back. The last
// line printed is machine readable:
//
//	RESULT p50_ms=... p99_ms=... errors=... ...
//
// With -dashboard N it loads a Grafana-like dashboard instead: N panels,
// each a distinct range query over -range with a step giving about
// -points points, all sent at once; the dashboard is loaded -loads times
// (default 2) and the time of each load is printed, the first (cold) against
// the later (warm, from the query-frontend's results cache) ones:
//
//	RESULT first_load_ms=... second_load_ms=... speedup=... errors=... ...
//
// -no-cache sends "Cache-Control: no-store", which makes the query-frontend
// neither read nor fill its results cache.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	url         string
	tenant      string
	query       string
	rng         time.Duration
	step        time.Duration
	endMs       int64
	n           int
	concurrency int
	timeout     time.Duration
	noCache     bool
	dashboard   int
	loads       int
	points      int
	scrape      time.Duration
	panelFilter *regexp.Regexp
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("querydriver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8080/prometheus", "Prefix of the Prometheus HTTP API (…/api/v1/query_range is appended).")
	fs.StringVar(&c.tenant, "tenant", "tenant-0", "Tenant sent as X-Scope-OrgID. Empty sends no header.")
	fs.StringVar(&c.query, "query", "sum by (job)(rate(http_requests_total[5m]))", "PromQL expression.")
	fs.DurationVar(&c.rng, "range", time.Hour, "Length of the queried time range.")
	fs.DurationVar(&c.step, "step", 15*time.Second, "Query resolution step.")
	fs.Int64Var(&c.endMs, "end", 0, "End of the range in Unix milliseconds. 0 = now. (The load generator prints last_ts_ms=.)")
	fs.IntVar(&c.n, "n", 50, "Number of queries to run.")
	fs.IntVar(&c.concurrency, "concurrency", 1, "Queries in flight at once.")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Minute, "Timeout of one query.")
	fs.BoolVar(&c.noCache, "no-cache", false, "Send \"Cache-Control: no-store\" so that the query-frontend bypasses its results cache.")
	fs.IntVar(&c.dashboard, "dashboard", 0, "Load a dashboard of this many panels (distinct range queries over -range, all at once) instead of running -query; -n, -concurrency, -query and -step are then ignored.")
	fs.IntVar(&c.loads, "loads", 2, "With -dashboard: how many times the dashboard is loaded.")
	fs.DurationVar(&c.scrape, "scrape-interval", 15*time.Second, "With -dashboard: the scrape interval of the data, for the panels' rate windows (like Grafana's $__rate_interval).")
	filter := fs.String("panel-filter", "", "With -dashboard: use only the panel expressions matching this regular expression (e.g. '^(sum|avg|topk)' leaves out histogram_quantile).")
	fs.IntVar(&c.points, "points", 500, "With -dashboard: points per series each panel asks for (step = -range / -points, in whole seconds).")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if *filter != "" {
		re, err := regexp.Compile(*filter)
		if err != nil {
			return c, fmt.Errorf("-panel-filter: %w", err)
		}
		c.panelFilter = re
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.n <= 0:
		return c, errors.New("-n must be positive")
	case c.concurrency <= 0:
		return c, errors.New("-concurrency must be positive")
	case c.rng < 0:
		return c, errors.New("-range must not be negative")
	case c.step <= 0:
		return c, errors.New("-step must be positive")
	case strings.TrimSpace(c.query) == "":
		return c, errors.New("-query must not be empty")
	case c.dashboard < 0:
		return c, errors.New("-dashboard must not be negative")
	case c.dashboard > 0 && c.loads <= 0:
		return c, errors.New("-loads must be positive")
	case c.dashboard > 0 && c.scrape <= 0:
		return c, errors.New("-scrape-interval must be positive")
	case c.dashboard > 0 && c.points <= 0:
		return c, errors.New("-points must be positive")
	case c.dashboard > 0 && c.rng < time.Second:
		return c, errors.New("-dashboard needs a -range of at least 1s")
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "querydriver:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if cfg.dashboard > 0 {
		res := runDashboard(ctx, cfg, os.Stdout)
		stop()
		if res.errors > 0 {
			fmt.Fprintln(os.Stderr, "querydriver: some panels failed")
			os.Exit(1)
		}
		return
	}
	res := run(ctx, cfg, os.Stdout)
	stop()
	if res.ok == 0 {
		fmt.Fprintln(os.Stderr, "querydriver: no query succeeded")
		os.Exit(1)
	}
}

type result struct {
	queries, ok, errors int
	errByCode           map[int]int // 0 = no HTTP response or an unreadable answer
	firstErr            map[int]string
	p50, p90, p99, max  time.Duration
	series, points      int // of the last successful query
	elapsed             time.Duration
}

// queryResponse is the part of the Prometheus API answer we look at.
type queryResponse struct {
	Status    string   `json:"status"`
	ErrorType string   `json:"errorType"`
	Error     string   `json:"error"`
	Warnings  []string `json:"warnings"`
	Infos     []string `json:"infos"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Values     []json.RawMessage `json:"values"`
			Histograms []json.RawMessage `json:"histograms"`
		} `json:"result"`
	} `json:"data"`
}

func run(ctx context.Context, cfg config, out io.Writer) result {
	end := time.Now()
	if cfg.endMs != 0 {
		end = time.UnixMilli(cfg.endMs)
	}
	start := end.Add(-cfg.rng)
	form := url.Values{}
	form.Set("query", cfg.query)
	form.Set("start", formatTime(start))
	form.Set("end", formatTime(end))
	form.Set("step", strconv.FormatFloat(cfg.step.Seconds(), 'f', -1, 64))
	target := strings.TrimSuffix(cfg.url, "/") + "/api/v1/query_range?" + form.Encode()

	fmt.Fprintf(out, "querydriver: %q over %s … %s step %s, %d queries, %d at a time, tenant %q\n",
		cfg.query, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), cfg.step, cfg.n, cfg.concurrency, cfg.tenant)

	client := &http.Client{Timeout: cfg.timeout, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.concurrency}}
	defer client.CloseIdleConnections()

	var (
		mu   sync.Mutex
		res  = result{errByCode: map[int]int{}, firstErr: map[int]string{}}
		lats []time.Duration
		next int
	)
	began := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < min(cfg.concurrency, cfg.n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= cfg.n || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				next++
				mu.Unlock()

				t0 := time.Now()
				series, points, code, _, err := query(ctx, client, target, cfg.tenant, cfg.noCache)
				lat := time.Since(t0)

				mu.Lock()
				res.queries++
				if err != nil {
					res.errors++
					res.errByCode[code]++
					if _, ok := res.firstErr[code]; !ok {
						res.firstErr[code] = err.Error()
					}
				} else {
					res.ok++
					lats = append(lats, lat)
					res.series, res.points = series, points
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(began)

	slices.Sort(lats)
	res.p50, res.p90, res.p99 = percentile(lats, 0.5), percentile(lats, 0.9), percentile(lats, 0.99)
	if len(lats) > 0 {
		res.max = lats[len(lats)-1]
	}
	printResult(out, res)
	return res
}

// query runs one range query and counts the series and points it returned.
// code is the HTTP status, 0 when there was no usable answer; annotated
// tells whether the answer carried warnings or infos.
func query(ctx context.Context, client *http.Client, target, tenant string, noCache bool) (series, points, code int, annotated bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, 0, 0, false, err
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	req.Header.Set("User-Agent", "meridian-querydriver")
	if noCache {
		req.Header.Set("Cache-Control", "no-store")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, 0, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, resp.StatusCode, false, fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, resp.StatusCode, false, fmt.Errorf("HTTP %d: %s", resp.StatusCode, oneLine(string(body)))
	}
	var qr queryResponse
	if err := json.Unmarshal(body, &qr); err != nil {
		return 0, 0, 0, false, fmt.Errorf("the answer is not Prometheus API JSON: %v: %s", err, oneLine(string(body)))
	}
	if qr.Status != "success" {
		return 0, 0, 0, false, fmt.Errorf("status %q: %s: %s", qr.Status, qr.ErrorType, qr.Error)
	}
	if qr.Data.ResultType != "matrix" {
		return 0, 0, 0, false, fmt.Errorf("result type %q, want matrix", qr.Data.ResultType)
	}
	for _, s := range qr.Data.Result {
		points += len(s.Values) + len(s.Histograms)
	}
	return len(qr.Data.Result), points, resp.StatusCode, len(qr.Warnings)+len(qr.Infos) > 0, nil
}

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

func printResult(out io.Writer, r result) {
	fmt.Fprintf(out, "querydriver: %d queries in %.1fs, %d ok, %d failed\n", r.queries, r.elapsed.Seconds(), r.ok, r.errors)
	fmt.Fprintf(out, "  latency: p50 %.1fms, p90 %.1fms, p99 %.1fms, max %.1fms\n", msf(r.p50), msf(r.p90), msf(r.p99), msf(r.max))
	fmt.Fprintf(out, "  returned: %d series, %d points\n", r.series, r.points)
	codes := make([]int, 0, len(r.errByCode))
	for c := range r.errByCode {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		what := fmt.Sprintf("HTTP %d", c)
		if c == 0 {
			what = "no usable answer"
		}
		fmt.Fprintf(out, "  errors %s: %d, first: %s\n", what, r.errByCode[c], r.firstErr[c])
	}
	if r.ok > 0 && r.series == 0 {
		fmt.Fprintln(out, "  warning: the query returned no series; check -end, -tenant and that data was written")
	}
	fmt.Fprintf(out, "RESULT p50_ms=%.2f p99_ms=%.2f p90_ms=%.2f errors=%d queries=%d series=%d points=%d\n",
		msf(r.p50), msf(r.p99), msf(r.p90), r.errors, r.queries, r.series, r.points)
}
