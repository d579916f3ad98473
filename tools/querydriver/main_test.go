package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestQueryDriver(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.URL.Path != "/prometheus/api/v1/query_range" {
			t.Errorf("path %s", r.URL.Path)
		}
		q := r.URL.Query()
		if q.Get("query") != "up" || q.Get("step") != "15" || q.Get("end") != "1800000000.000" || q.Get("start") != "1799996400.000" {
			t.Errorf("query parameters %v", q)
		}
		if r.Header.Get("X-Scope-OrgID") != "tenant-7" {
			t.Errorf("tenant %q", r.Header.Get("X-Scope-OrgID"))
		}
		if n == 3 {
			http.Error(w, `{"status":"error","errorType":"execution","error":"boom"}`, http.StatusUnprocessableEntity)
			return
		}
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[
			{"metric":{"job":"a"},"values":[[1,"1"],[2,"2"]]},
			{"metric":{"job":"b"},"values":[[1,"1"]]}]}}`)
	}))
	defer srv.Close()

	cfg, err := parseFlags([]string{"-url", srv.URL + "/prometheus/", "-query", "up", "-tenant", "tenant-7",
		"-end", "1800000000000", "-n", "10", "-concurrency", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	res := run(context.Background(), cfg, &out)
	if res.queries != 10 || res.ok != 9 || res.errors != 1 || res.errByCode[422] != 1 {
		t.Fatalf("result %+v", res)
	}
	if res.series != 2 || res.points != 3 {
		t.Fatalf("series %d points %d, want 2 and 3", res.series, res.points)
	}
	if !strings.Contains(res.firstErr[422], "boom") || !strings.Contains(out.String(), "RESULT p50_ms=") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestDashboard(t *testing.T) {
	var (
		mu      sync.Mutex
		queries = map[string]int{}
		steps   = map[string]bool{}
		noStore atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mu.Lock()
		queries[q.Get("query")]++
		steps[q.Get("step")] = true
		mu.Unlock()
		if r.Header.Get("Cache-Control") == "no-store" {
			noStore.Add(1)
		}
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]}]},"infos":["i"]}`)
	}))
	defer srv.Close()

	cfg, err := parseFlags([]string{"-url", srv.URL + "/prometheus", "-dashboard", "23", "-range", "168h",
		"-end", "1800000000000", "-no-cache"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	res := runDashboard(context.Background(), cfg, &out)
	if res.errors != 0 || len(res.loads) != 2 || res.points != 46 || res.annotated != 23 {
		t.Fatalf("result %+v\n%s", res, out.String())
	}
	if len(queries) != 23 {
		t.Fatalf("%d distinct panel queries, want 23", len(queries))
	}
	// $__rate_interval: step 1209s + scrape 15s; 2× and 3× for later panels.
	for _, q := range []string{`sum by (job)(rate(http_requests_total[1224s]))`, `sum by (job)(rate(http_requests_total[2448s]))`, `sum by (job)(rate(http_requests_total[3672s]))`} {
		if queries[q] != 2 {
			t.Errorf("panel %s missing", q)
		}
	}
	for q, n := range queries {
		if n != 2 {
			t.Errorf("%s sent %d times, want 2", q, n)
		}
	}
	if !steps["1209"] || len(steps) != 1 {
		t.Errorf("steps %v, want 1209 (7d / 500)", steps)
	}
	if noStore.Load() != 46 {
		t.Errorf("%d requests with Cache-Control: no-store, want 46", noStore.Load())
	}
	if !strings.Contains(out.String(), "RESULT first_load_ms=") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestDashboardQueries(t *testing.T) {
	cfg, err := parseFlags([]string{"-dashboard", "5", "-panel-filter", "^histogram_quantile"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	qs := dashboardQueries(cfg.dashboard, 20*time.Minute, 5*time.Minute, cfg.panelFilter)
	want := []string{
		`histogram_quantile(0.99, sum by (le)(rate(http_request_duration_seconds_bucket[1500s])))`,
		`histogram_quantile(0.5, sum by (le, handler)(rate(http_request_duration_seconds_bucket[1500s])))`,
		`histogram_quantile(0.99, sum by (le)(rate(http_request_duration_seconds_bucket[3000s])))`,
		`histogram_quantile(0.5, sum by (le, handler)(rate(http_request_duration_seconds_bucket[3000s])))`,
		`histogram_quantile(0.99, sum by (le)(rate(http_request_duration_seconds_bucket[4500s])))`,
	}
	if strings.Join(qs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("queries:\n%s", strings.Join(qs, "\n"))
	}
	if _, err := parseFlags([]string{"-dashboard", "5", "-panel-filter", "("}, io.Discard); err == nil {
		t.Fatal("a bad -panel-filter was accepted")
	}
}
