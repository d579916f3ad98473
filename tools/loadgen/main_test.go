package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// receiver is a stub remote-write endpoint that checks every request.
type receiver struct {
	t        *testing.T
	mu       sync.Mutex
	lastTs   map[string]int64             // tenant + series key → last timestamp
	values   map[string]map[int64]float64 // tenant + series key → timestamp → value
	samples  int
	requests int
	failNth  int // when > 0, every failNth request gets a 500
}

func newReceiver(t *testing.T) *receiver {
	return &receiver{t: t, lastTs: map[string]int64{}, values: map[string]map[int64]float64{}}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(format string, args ...any) {
		rc.t.Errorf(format, args...)
		http.Error(w, fmt.Sprintf(format, args...), http.StatusBadRequest)
	}
	if r.Method != http.MethodPost {
		fail("method %s, want POST", r.Method)
		return
	}
	for h, want := range map[string]string{
		"Content-Type":                      "application/x-protobuf",
		"Content-Encoding":                  "snappy",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
	} {
		if got := r.Header.Get(h); got != want {
			fail("header %s = %q, want %q", h, got, want)
			return
		}
	}
	tenant := r.Header.Get("X-Scope-OrgID")
	if !strings.HasPrefix(tenant, "tenant-") {
		fail("X-Scope-OrgID = %q", tenant)
		return
	}
	comp, err := io.ReadAll(r.Body)
	if err != nil {
		fail("reading body: %v", err)
		return
	}
	raw, err := snappy.Decode(nil, comp)
	if err != nil {
		fail("snappy: %v", err)
		return
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		fail("protobuf: %v", err)
		return
	}
	now := time.Now().UnixMilli()

	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if rc.failNth > 0 && rc.requests%rc.failNth == 0 {
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	}
	for _, ts := range req.Timeseries {
		if len(ts.Samples) != 1 {
			fail("series has %d samples, want 1", len(ts.Samples))
			return
		}
		names := make([]string, len(ts.Labels))
		hasName := false
		for i, l := range ts.Labels {
			names[i] = l.Name
			if l.Name == "__name__" && l.Value != "" {
				hasName = true
			}
			if l.Value == "" {
				fail("empty value for label %s", l.Name)
			}
		}
		if !hasName {
			fail("series without __name__: %v", ts.Labels)
		}
		if !sort.StringsAreSorted(names) {
			fail("labels not sorted: %v", names)
		}
		for i := 1; i < len(names); i++ {
			if names[i] == names[i-1] {
				fail("duplicate label %s", names[i])
			}
		}
		key := tenant + "|" + labelsKey(ts.Labels)
		s := ts.Samples[0]
		if s.Timestamp > now {
			fail("sample %d ms in the future", s.Timestamp-now)
		}
		if last, ok := rc.lastTs[key]; ok && s.Timestamp <= last {
			fail("series %s: timestamp %d not after %d", key, s.Timestamp, last)
		}
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
			fail("series %s: value %v", key, s.Value)
		}
		rc.lastTs[key] = s.Timestamp
		if rc.values[key] == nil {
			rc.values[key] = map[int64]float64{}
		}
		rc.values[key][s.Timestamp] = s.Value
		rc.samples++
	}
	w.WriteHeader(http.StatusOK)
}

func labelsKey(ls []prompb.Label) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(l.Value)
		b.WriteByte(',')
	}
	return b.String()
}

func testConfig(url string) config {
	return config{
		url: url, series: 1000, tenants: 2, interval: 10 * time.Second, rate: 0,
		duration: 500 * time.Millisecond, batch: 150, concurrency: 3,
		labels: "realistic", timeout: 10 * time.Second, seed: 1,
	}
}

func TestLoadgenSendsValidRemoteWrite(t *testing.T) {
	rc := newReceiver(t)
	srv := httptest.NewServer(rc)
	defer srv.Close()

	cfg := testConfig(srv.URL)
	var out strings.Builder
	res, err := run(context.Background(), cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	if res.errors != 0 {
		t.Fatalf("errors: %d\n%s", res.errors, out.String())
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()

	// Every series is there, split evenly across the tenants.
	perTenant := map[string]int{}
	for key := range rc.lastTs {
		perTenant[strings.SplitN(key, "|", 2)[0]]++
	}
	if len(rc.lastTs) != cfg.series || perTenant["tenant-0"] != 500 || perTenant["tenant-1"] != 500 {
		t.Fatalf("series per tenant: %v (total %d), want 500 each", perTenant, len(rc.lastTs))
	}
	if int64(rc.samples) != res.acceptedSamples || res.acceptedSamples != res.sentSamples {
		t.Fatalf("receiver got %d samples, loadgen says accepted %d of %d", rc.samples, res.acceptedSamples, res.sentSamples)
	}
	// As fast as possible means many steps per series in half a second.
	if res.acceptedSamples < int64(3*cfg.series) {
		t.Fatalf("only %d samples in %s", res.acceptedSamples, cfg.duration)
	}
	if !strings.Contains(out.String(), "RESULT samples_per_sec=") {
		t.Fatalf("no RESULT line in output:\n%s", out.String())
	}

	// Counters never decrease; classic histograms stay consistent.
	kinds := map[string]int{}
	type histKey struct {
		series string
		ts     int64
	}
	buckets := map[histKey]map[float64]float64{}
	counts := map[histKey]float64{}
	for key, vals := range rc.values {
		ls := parseKey(key)
		name := ls["__name__"]
		switch {
		case strings.HasSuffix(name, "_bucket"):
			kinds["bucket"]++
		case strings.HasSuffix(name, "_total"):
			kinds["counter"]++
		case strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count"):
		default:
			kinds["gauge"]++
		}
		if strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_bucket") || strings.HasSuffix(name, "_count") {
			tss := make([]int64, 0, len(vals))
			for ts := range vals {
				tss = append(tss, ts)
			}
			sort.Slice(tss, func(i, j int) bool { return tss[i] < tss[j] })
			for i := 1; i < len(tss); i++ {
				if vals[tss[i]] < vals[tss[i-1]] {
					t.Fatalf("%s decreased from %v to %v", key, vals[tss[i-1]], vals[tss[i]])
				}
			}
		}
		if strings.HasPrefix(name, "http_request_duration_seconds_") {
			base := strings.SplitN(key, "|", 2)[0] + "|" + ls["pod"] + "|" + ls["handler"]
			for ts, v := range vals {
				hk := histKey{base, ts}
				switch name {
				case "http_request_duration_seconds_bucket":
					le := parseLe(t, ls["le"])
					if buckets[hk] == nil {
						buckets[hk] = map[float64]float64{}
					}
					buckets[hk][le] = v
				case "http_request_duration_seconds_count":
					counts[hk] = v
				}
			}
		}
	}
	if kinds["counter"] == 0 || kinds["gauge"] == 0 || kinds["bucket"] == 0 {
		t.Fatalf("want counters, gauges and histogram buckets, got %v", kinds)
	}
	checked := 0
	for hk, bs := range buckets {
		if len(bs) != len(histogramBounds) {
			continue // the last target of a tenant may be cut short
		}
		les := make([]float64, 0, len(bs))
		for le := range bs {
			les = append(les, le)
		}
		sort.Float64s(les)
		for i := 1; i < len(les); i++ {
			if bs[les[i]] < bs[les[i-1]] {
				t.Fatalf("histogram %v: bucket le=%v (%v) below le=%v (%v)", hk, les[i], bs[les[i]], les[i-1], bs[les[i-1]])
			}
		}
		if c, ok := counts[hk]; ok {
			if c != bs[math.Inf(1)] {
				t.Fatalf("histogram %v: _count %v != +Inf bucket %v", hk, c, bs[math.Inf(1)])
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no complete histogram to check")
	}
}

func parseKey(key string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(strings.SplitN(key, "|", 2)[1], ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func parseLe(t *testing.T, s string) float64 {
	if s == "+Inf" {
		return math.Inf(1)
	}
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil {
		t.Fatalf("bad le %q", s)
	}
	return f
}

func TestLoadgenOnce(t *testing.T) {
	rc := newReceiver(t)
	srv := httptest.NewServer(rc)
	defer srv.Close()

	cfg := testConfig(srv.URL)
	cfg.once = true
	cfg.series = 1234
	cfg.tenants = 3
	cfg.startMs = time.Now().Add(-time.Hour).UnixMilli()
	res, err := run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.samples != cfg.series || len(rc.lastTs) != cfg.series || res.acceptedSamples != int64(cfg.series) {
		t.Fatalf("got %d samples for %d series (accepted %d), want exactly %d", rc.samples, len(rc.lastTs), res.acceptedSamples, cfg.series)
	}
	for key, ts := range rc.lastTs {
		if ts != cfg.startMs {
			t.Fatalf("%s at %d, want %d", key, ts, cfg.startMs)
		}
	}
}

func TestLoadgenRateAndErrors(t *testing.T) {
	rc := newReceiver(t)
	rc.failNth = 4
	srv := httptest.NewServer(rc)
	defer srv.Close()

	cfg := testConfig(srv.URL)
	cfg.rate = 4000
	cfg.duration = time.Second
	cfg.tenants = 1
	cfg.batch = 100
	var out strings.Builder
	res, err := run(context.Background(), cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	// 4000 samples/s for 1s, give or take one request per worker.
	if res.sentSamples < 3000 || res.sentSamples > 4000+int64(cfg.concurrency*cfg.batch) {
		t.Fatalf("sent %d samples at -rate=4000 for 1s", res.sentSamples)
	}
	if res.errors == 0 || res.errByCode[500] != res.errors || !strings.Contains(res.firstErr[500], "injected failure") {
		t.Fatalf("errors %d by code %v first %v", res.errors, res.errByCode, res.firstErr)
	}
	if res.acceptedSamples+res.errors*int64(cfg.batch) != res.sentSamples {
		t.Fatalf("accepted %d + failed %d×%d != sent %d", res.acceptedSamples, res.errors, cfg.batch, res.sentSamples)
	}
	if !strings.Contains(out.String(), "errors HTTP 500") {
		t.Fatalf("error summary missing:\n%s", out.String())
	}
}

func TestLoadgenRealTimeNeverInFuture(t *testing.T) {
	rc := newReceiver(t)
	srv := httptest.NewServer(rc)
	defer srv.Close()

	cfg := testConfig(srv.URL)
	cfg.rate = -1
	cfg.interval = 200 * time.Millisecond
	cfg.duration = 700 * time.Millisecond
	res, err := run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// About duration/interval samples per series, never ahead of the clock
	// (the receiver checks that).
	steps := float64(res.acceptedSamples) / float64(cfg.series)
	if steps < 2 || steps > 5 {
		t.Fatalf("%.1f samples per series in %s at interval %s", steps, cfg.duration, cfg.interval)
	}
}

func TestStartTimeFitsBeforeNow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := config{series: 100000, interval: 10 * time.Second, duration: time.Minute, rate: 0}
	start := startTime(cfg, now)
	// At the assumed 2M samples/s, 100k series take 1200 steps in a minute.
	steps := (now.UnixMilli() - start) / cfg.interval.Milliseconds()
	if steps != 1201 {
		t.Fatalf("start %d steps before now, want 1201", steps)
	}
	cfg.rate = -1
	if startTime(cfg, now) != now.UnixMilli() {
		t.Fatal("real time should start now")
	}
	cfg.startMs = 42
	if startTime(cfg, now) != 42 {
		t.Fatal("-start ignored")
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.series != 100000 || cfg.batch != 2000 || cfg.concurrency != 4 || cfg.url != "http://127.0.0.1:8080/api/v1/push" {
		t.Fatalf("defaults: %+v", cfg)
	}
	for _, bad := range [][]string{{"-series=0"}, {"-rate=-2"}, {"-labels=odd"}, {"-tenants=5", "-series=3"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

func BenchmarkEncodeBatch(b *testing.B) {
	cfg := testConfig("")
	cfg.series, cfg.batch, cfg.tenants = 2000, 2000, 1
	bt := buildBatches(cfg)[0]
	w := worker{}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for j := range bt.specs {
			bt.values[j] = nextValue(&bt.specs[j], bt.values[j], 10, int64(i+1))
			bt.req.Timeseries[j].Samples[0] = prompb.Sample{Value: bt.values[j], Timestamp: int64(i)}
		}
		size := bt.req.Size()
		if cap(w.raw) < size {
			w.raw = make([]byte, size)
		}
		w.raw = w.raw[:size]
		if _, err := bt.req.MarshalToSizedBuffer(w.raw); err != nil {
			b.Fatal(err)
		}
		w.comp = snappy.Encode(w.comp[:cap(w.comp)], w.raw)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bt.specs)), "ns/sample")
}

func TestTemplateShape(t *testing.T) {
	kinds := map[kind]int{}
	for _, e := range targetTemplate() {
		kinds[e.kind]++
	}
	if kinds[kindCounter] != 43 || kinds[kindGauge] != 11 || kinds[kindBucket] != 36 || kinds[kindHistSum] != 3 || kinds[kindHistCount] != 3 {
		t.Fatalf("template kinds %v; docs/benchmarks.md describes 43 counters, 11 gauges and 3 histograms", kinds)
	}
}
