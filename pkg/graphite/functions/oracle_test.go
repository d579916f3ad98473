package functions

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestGraphiteWebOracle evaluates the table targets with the installed
// graphite-web (Debian package graphite-web 1.1.8 and python3-django) over
// the same in-memory data and compares names, start, step and values.
// It runs when MERIDIAN_GRAPHITE_ORACLE=1.
func TestGraphiteWebOracle(t *testing.T) {
	if os.Getenv("MERIDIAN_GRAPHITE_ORACLE") != "1" {
		t.Skip("set MERIDIAN_GRAPHITE_ORACLE=1 to compare with graphite-web (apt-get install graphite-web python3-django)")
	}
	if _, err := os.Stat("/usr/lib/python3/dist-packages/graphite/render/functions.py"); err != nil {
		t.Fatal("graphite-web is not installed: apt-get install graphite-web python3-django")
	}
	f := newFake()
	data := map[string]any{}
	for name, st := range f.data {
		vals := make([]any, len(st.vals))
		for i, v := range st.vals {
			if !math.IsNaN(v) {
				vals[i] = v
			}
		}
		data[name] = map[string]any{"start": st.start, "step": st.step, "values": vals}
	}
	var targets []string
	for _, c := range append(append([]funcCase(nil), functionCases...), nestedCases...) {
		if strings.Contains(c.target, "seriesByTag") || strings.Contains(c.target, "|") {
			continue // no tag database in the oracle; pipes are graphite-web 1.2
		}
		targets = append(targets, c.target)
	}
	targets = append(targets, oracleOnlyTargets...)
	in, _ := json.Marshal(map[string]any{"from": 990, "until": 1040, "targets": targets, "data": data})
	cmd := exec.Command("/usr/bin/python3", "testdata/graphite_oracle.py")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("oracle: %v\n%s", err, stderr.String())
	}
	var results []struct {
		Target string
		Error  string
		Series []struct {
			Name   string
			Start  int64
			Step   int64
			Values []*float64
		}
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Error != "" {
			t.Logf("%s: graphite-web fails: %s", r.Target, r.Error)
			continue
		}
		got, err := evalTarget(t, newFake(), r.Target, 990, 1040)
		if err != nil {
			t.Errorf("%s: %v (graphite-web answers)", r.Target, err)
			continue
		}
		if len(got) != len(r.Series) {
			t.Errorf("%s: %d series, graphite-web %d", r.Target, len(got), len(r.Series))
			continue
		}
		for i, w := range r.Series {
			g := got[i]
			want := make([]float64, len(w.Values))
			for j, v := range w.Values {
				want[j] = math.NaN()
				if v != nil {
					want[j] = *v
				}
			}
			if g.Name != w.Name || g.Start != w.Start || g.Step != w.Step || !sameFloats(g.Values, want) {
				t.Errorf("%s: series %d\n  meridian     %q start %d step %d %v\n  graphite-web %q start %d step %d %v",
					r.Target, i, g.Name, g.Start, g.Step, g.Values, w.Name, w.Start, w.Step, want)
			}
		}
	}
}

// oracleOnlyTargets are compared with graphite-web without hand-worked values.
var oracleOnlyTargets = []string{
	"asPercent(s.*.x, s.*.x)",
	"percentileOfSeries(s.*.*, 75, true)",
	"removeBelowPercentile(s.a.x, 50)",
	"removeAbovePercentile(s.a.x, 50)",
	"exponentialMovingAverage(s.a.x, 3)",
	"movingAverage(s.a.x, '25s')",
	"movingMedian(s.b.x, 2)",
	"summarize(t.w, '30s')",
	"summarize(s.c.y, '20s', 'avg', true)",
	"hitcount(s.b.x, '30s')",
	"hitcount(t.w, '15s')",
	"smartSummarize(s.c.y, '30s', 'max')",
	"timeShift(s.*.x, '1min')",
	"timeShift(s.a.x, '-10s', false)",
	"delay(s.a.x, 0)",
	"delay(s.a.x, 9)",
	"averageSeries(s.a.x, t.w)",
	"divideSeries(s.a.x, t.w)",
	"asPercent(s.a.x, t.w)",
	"countSeries()",
	"groupByNode(s.*.*, 1, 'sumSeries')",
	"groupByNodes(s.*.*, 'average', 2, 0)",
	"aliasByNode(movingAverage(s.a.x, 2), 1)",
	"legendValue(s.*.*, 'max', 'min', 'binary')",
	"cactiStyle(s.*.*)",
	"stdev(s.b.x, 3)",
	"aggregateLine(s.a.x, 'max')",
	"integralByInterval(s.a.x, '20s')",
	"interpolate(s.c.y, 1)",
	"sortByMinima(neg.n)",
	"minMax(neg.n)",
	"weightedAverage(s.*.x, s.*.x, 1)",
	"round(invert(s.*.x), 2)",
	"averageOutsidePercentile(s.*.*, 80)",
	"removeBetweenPercentile(s.*.*, 80)",
	"add(s.a.x, 1.5)",
	"exp(neg.n)",
	"logit(invert(s.a.x))",
	"sigmoid(neg.n)",
	"timeStack(s.a.x, '10s', 0, 3)",
	"multiplySeriesWithWildcards(s.*.x, 1)",
	"diffSeriesLists(s.*.x, s.*.x)",
	"aggregateSeriesLists(s.*.x, s.*.x, 'max')",
	"substr(scale(s.a.x, 2), 1, 2)",
	"areaBetween(s.*.x)",
	"cumulative(s.a.x)",
	"highest(s.*.*, 2, 'median')",
	"perSecond(cnt.c, 30)",
	"nonNegativeDerivative(cnt.c, None, 3)",
	"aggregate(s.*.*, 'stddev')",
	"aggregate(s.*.*, 'range')",
	"aggregate(s.*.*, 'diff')",
	"aggregate(s.*.*, 'multiply')",
	"threshold(3.5, 'x', 'red')",
	"identity('ts')",
}
