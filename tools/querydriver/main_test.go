package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
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
