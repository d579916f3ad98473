package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridianhq/meridian/integration/harness"
)

// fakeGraphite answers /render with the per-timestamp sum of the carbon
// lines it was given (plus skew added to the point at index bad, if any)
// and /metrics/find (completer format) with every path it was given.
func fakeGraphite(t *testing.T, lines []byte, bad int, skew float64) *httptest.Server {
	t.Helper()
	sums := map[int64]float64{}
	var order []int64
	var paths []string
	sc := bufio.NewScanner(bytes.NewReader(lines))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			t.Fatalf("bad carbon line %q", sc.Text())
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("bad value in %q", sc.Text())
		}
		ts, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatalf("bad timestamp in %q", sc.Text())
		}
		if _, ok := sums[ts]; !ok {
			order = append(order, ts)
		}
		sums[ts] += v
		paths = append(paths, f[0])
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/render":
			var dps [][2]float64
			for i, ts := range order {
				v := sums[ts]
				if i == bad {
					v += skew
				}
				dps = append(dps, [2]float64{v, float64(ts)})
			}
			_ = json.NewEncoder(w).Encode([]map[string]any{{"target": r.URL.Query().Get("target"), "datapoints": dps}})
		case "/metrics/find":
			var ms []map[string]string
			for _, p := range paths {
				ms = append(ms, map[string]string{"path": p, "name": p[strings.LastIndexByte(p, '.')+1:], "is_leaf": "1"})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"metrics": ms})
		default:
			http.NotFound(w, r)
		}
	}))
}

func TestDatasetChecks(t *testing.T) {
	d := dataset{series: 7, points: 30, start: 1_700_000_000, step: 10, treeA: 3, treeB: 4, treeTS: 1_700_000_300}
	var series, tree bytes.Buffer
	for buf, write := range map[*bytes.Buffer]func(*bufio.Writer) error{&series: d.writeSeries, &tree: d.writeTree} {
		w := bufio.NewWriter(buf)
		if err := write(w); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(series.String(), "\n"); n != d.series*d.points {
		t.Fatalf("%d series lines, want %d", n, d.series*d.points)
	}
	// Time-major: the first d.series lines share the first timestamp.
	first := strings.Split(series.String(), "\n")[:d.series+1]
	for _, l := range first[:d.series] {
		if !strings.HasSuffix(l, " "+strconv.FormatInt(d.start, 10)) {
			t.Fatalf("line %q is not at the first step", l)
		}
	}
	if strings.HasSuffix(first[d.series], " "+strconv.FormatInt(d.start, 10)) {
		t.Fatalf("line %q should be at the second step", first[d.series])
	}

	ctx := context.Background()
	good := fakeGraphite(t, series.Bytes(), -1, 0)
	defer good.Close()
	if ok, why, took := d.checkRender(ctx, harness.NewGraphiteAPI(good.URL, "")); !ok || took <= 0 {
		t.Fatalf("a correct render was rejected: %s (took %s)", why, took)
	}
	wrong := fakeGraphite(t, series.Bytes(), 17, 1)
	defer wrong.Close()
	if ok, why, _ := d.checkRender(ctx, harness.NewGraphiteAPI(wrong.URL, "")); ok {
		t.Fatal("a render with a wrong point was accepted")
	} else if !strings.Contains(why, "point 17") {
		t.Fatalf("the wrong point is not named: %s", why)
	}
	short := dataset{series: d.series, points: d.points + 1, start: d.start, step: d.step}
	if ok, _, _ := short.checkRender(ctx, harness.NewGraphiteAPI(good.URL, "")); ok {
		t.Fatal("a render missing a point was accepted")
	}

	treeSrv := fakeGraphite(t, tree.Bytes(), -1, 0)
	defer treeSrv.Close()
	if ok, why, _ := d.checkFind(ctx, harness.NewGraphiteAPI(treeSrv.URL, "")); !ok {
		t.Fatalf("a complete find was rejected: %s", why)
	}
	bigger := d
	bigger.treeB++
	if ok, why, _ := bigger.checkFind(ctx, harness.NewGraphiteAPI(treeSrv.URL, "")); ok {
		t.Fatal("a find missing leaves was accepted")
	} else if why != fmt.Sprintf("%d leaves of %d", d.treeA*d.treeB, bigger.treeA*bigger.treeB) {
		t.Fatalf("unexpected reason: %s", why)
	}
}

func TestQuantileAndShape(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if q := quantile(ds, 0.5); q != 50*time.Millisecond {
		t.Errorf("p50 = %s", q)
	}
	if q := quantile(ds, 0.99); q != 99*time.Millisecond {
		t.Errorf("p99 = %s", q)
	}
	if q := quantile(ds[:1], 0.99); q != 100*time.Millisecond {
		t.Errorf("p99 of one = %s", q)
	}
	if a, b, err := parseShape("100x1000"); err != nil || a != 100 || b != 1000 {
		t.Errorf("parseShape(100x1000) = %d, %d, %v", a, b, err)
	}
	for _, bad := range []string{"", "100", "x5", "0x5", "3xa"} {
		if _, _, err := parseShape(bad); err == nil {
			t.Errorf("parseShape(%q) accepted", bad)
		}
	}
}
