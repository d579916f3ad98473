package functions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestGraphiteWebOracle evaluates the table targets with the installed
// graphite-web (Debian package graphite-web 1.1.8 and python3-django) over
// the same in-memory data and compares names, start, step and values.
// It runs when MERIDIAN_GRAPHITE_ORACLE=1.
func TestGraphiteWebOracle(t *testing.T) {
	requireOracle(t)
	var targets []string
	for _, c := range append(append([]funcCase(nil), functionCases...), nestedCases...) {
		if strings.Contains(c.target, "|") {
			continue // pipes are graphite-web 1.2
		}
		targets = append(targets, c.target)
	}
	targets = append(targets, oracleOnlyTargets...)
	compareWithOracle(t, newFake(), targets, 990, 1040, 0)
	compareWithOracle(t, newFake(), targets, 993, 1047, 0)
}

// TestGraphiteWebOracleConsolidation compares render consolidation
// (maxDataPoints) with graphite-web's json render.
func TestGraphiteWebOracleConsolidation(t *testing.T) {
	requireOracle(t)
	f := newFake()
	long := make([]float64, 60)
	gappy := make([]float64, 60)
	for i := range long {
		long[i] = float64(i*i%17) + 0.5
		gappy[i] = float64(i)
		if i%3 != 0 {
			gappy[i] = N
		}
	}
	f.data["long.a"] = stored{1000, 10, long}
	f.data["long.b"] = stored{1000, 10, gappy}
	f.data["long.c"] = stored{1000, 30, long[:20]}
	targets := []string{"long.*", "sumSeries(long.*)", "consolidateBy(long.a, 'max')", "consolidateBy(long.b, 'sum')",
		"consolidateBy(long.a, 'first')", "consolidateBy(long.a, 'last')", "consolidateBy(long.b, 'min')",
		"setXFilesFactor(long.b, 0.5)", "movingAverage(long.a, 5)", "summarize(long.a, '1min')", "constantLine(7)"}
	for _, mdp := range []int{1, 2, 5, 7, 13, 59, 100} {
		ts := targets
		if mdp == 2 {
			// graphite-web's constantLine ends at until, two steps after its
			// start, while Meridian's series end after their last point:
			// with maxDataPoints 2 graphite-web keeps 3 points, Meridian 2.
			ts = ts[:len(ts)-1]
		}
		compareWithOracle(t, f, ts, 990, 1590, mdp)
		compareWithOracle(t, f, ts, 1003, 1587, mdp)
	}
}

func requireOracle(t *testing.T) {
	if os.Getenv("MERIDIAN_GRAPHITE_ORACLE") != "1" {
		t.Skip("set MERIDIAN_GRAPHITE_ORACLE=1 to compare with graphite-web (apt-get install graphite-web python3-django)")
	}
	if _, err := os.Stat("/usr/lib/python3/dist-packages/graphite/render/functions.py"); err != nil {
		t.Fatal("graphite-web is not installed: apt-get install graphite-web python3-django")
	}
}

func compareWithOracle(t *testing.T, f *fakeFetcher, targets []string, from, until int64, maxDataPoints int) {
	t.Helper()
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
	in, _ := json.Marshal(map[string]any{"from": from, "until": until, "targets": targets, "data": data, "maxDataPoints": maxDataPoints})
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
			Tags   map[string]string
		}
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		label := r.Target
		if maxDataPoints > 0 {
			label = fmt.Sprintf("%s [(%d,%d] maxDataPoints=%d]", r.Target, from, until, maxDataPoints)
		}
		if r.Error != "" {
			t.Logf("%s: graphite-web fails: %s", label, r.Error)
			continue
		}
		got, err := evalTarget(t, f, r.Target, from, until)
		if err != nil {
			t.Errorf("%s: %v (graphite-web answers)", label, err)
			continue
		}
		if maxDataPoints > 0 && len(got) > 0 {
			lo, hi := got[0].Start, got[0].End
			for _, s := range got {
				lo, hi = min(lo, s.Start), max(hi, s.End)
			}
			for i, s := range got {
				got[i] = ConsolidateRange(s, maxDataPoints, hi-lo)
			}
		}
		if len(got) != len(r.Series) {
			t.Errorf("%s: %d series, graphite-web %d", label, len(got), len(r.Series))
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
			if maxDataPoints == 0 && os.Getenv("MERIDIAN_GRAPHITE_ORACLE_TAGS") == "1" && fmt.Sprint(g.Tags) != fmt.Sprint(w.Tags) {
				t.Errorf("%s: series %d tags\n  meridian     %v\n  graphite-web %v", label, i, g.Tags, w.Tags)
			}
			stepOK := g.Step == w.Step || (maxDataPoints > 0 && len(want) < 2)
			if g.Name != w.Name || (g.Start != w.Start && len(want) > 0) || !stepOK || !sameFloats(g.Values, want) {
				t.Errorf("%s: series %d\n  meridian     %q start %d step %d %v\n  graphite-web %q start %d step %d %v",
					label, i, g.Name, g.Start, g.Step, g.Values, w.Name, w.Start, w.Step, want)
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
	"powSeries(s.a.x, s.b.x)",
	"powSeries(s.*.x, t.w)",
	"groupByNode(s.*.*, 1, 'powSeries')",
	"highest(s.*.*)",
	"seriesByTag('name=cpu')",
	"seriesByTag('name=~c.*', 'dc!=east')",
	"seriesByTag('name=cpu', 'host!=~h1')",
	"aliasByTags(seriesByTag('name=cpu'), 'dc')",
	"aliasByNode(seriesByTag('name=cpu'), 0, 'host')",
	"groupByTags(seriesByTag('name=cpu'), 'average', 'dc', 'name')",
	"groupByTags(seriesByTag('name=cpu'), 'sumSeries', 'host')",
	"averageSeries(seriesByTag('name=cpu'))",
	"scale(seriesByTag('name=cpu', 'dc=west'), 0.1)",
	"aliasByMetric(seriesByTag('name=cpu'))",
}

// TestGraphiteWebOracleRandom compares randomly nested targets.
func TestGraphiteWebOracleRandom(t *testing.T) {
	requireOracle(t)
	leaves := []string{"s.*.*", "s.a.x", "s.*.x", "t.w", "neg.n", "cnt.c", "s.{a,b}.x", "s.[ab].x", "{t,neg}.*", "srv.*"}
	templates := []string{
		"sumSeries(%s)", "averageSeries(%s)", "maxSeries(%s)", "minSeries(%s)", "diffSeries(%s)", "multiplySeries(%s)",
		"stddevSeries(%s)", "countSeries(%s)", "rangeOfSeries(%s)", "scale(%s, 2.5)", "offset(%s, -1)", "absolute(%s)",
		"invert(%s)", "log(%s)", "pow(%s, 2)", "squareRoot(%s)", "perSecond(%s)", "derivative(%s)",
		"nonNegativeDerivative(%s)", "integral(%s)", "keepLastValue(%s)", "transformNull(%s, 7)", "isNonNull(%s)",
		"changed(%s)", "delay(%s, 1)", "offsetToZero(%s)", "movingAverage(%s, 2)", "movingSum(%s, '20s')",
		"movingMax(%s, 3)", "movingMin(%s, '10s')", "movingMedian(%s, 2)", "summarize(%s, '20s', 'avg')",
		"summarize(%s, '30s')", "hitcount(%s, '20s')", "smartSummarize(%s, '20s', 'max')", "timeShift(%s, '10s')",
		"highestMax(%s, 1)", "lowestAverage(%s, 2)", "sortByName(%s)", "sortByTotal(%s)", "sortByMaxima(%s)",
		"limit(%s, 1)", "currentAbove(%s, 3)", "averageAbove(%s, 2)", "maximumAbove(%s, 4)", "removeBelowValue(%s, 3)",
		"removeAboveValue(%s, 3)", "removeEmptySeries(%s)", "nPercentile(%s, 75)", "percentileOfSeries(%s, 90)",
		"aliasByNode(%s, 1)", "aliasByMetric(%s)", "aliasSub(%s, '\\.', '_')", "alias(%s, 'z')", "legendValue(%s, 'avg')",
		"groupByNode(%s, 1, 'sum')", "asPercent(%s)", "divideSeries(%s, s.a.x)", "consolidateBy(%s, 'max')",
		"exclude(%s, 'c')", "grep(%s, 'a')", "mostDeviant(%s, 2)", "unique(%s)", "stacked(%s)", "dashed(%s)",
		"secondYAxis(%s)", "drawAsInfinite(%s)", "color(%s, 'red')", "aggregate(%s, 'median')",
		"sumSeriesWithWildcards(%s, 1)", "interpolate(%s)", "minMax(%s)", "integralByInterval(%s, '20s')",
		"highest(%s, 2, 'max')", "sortBy(%s, 'min', true)", "filterSeries(%s, 'last', '>=', 2)",
		"scaleToSeconds(%s, 60)", "exponentialMovingAverage(%s, 2)", "stdev(%s, 2)", "fallbackSeries(%s, s.a.x)",
		"groupByNodes(%s, 'sum', 0)", "aggregateWithWildcards(%s, 'max', 0)", "asPercent(%s, 50)",
		"sumSeries(%s, %s)", "divideSeries(%s, sumSeries(%s))", "asPercent(%s, %s)", "diffSeries(%s, %s)",
		"transformNull(%s, 1, %s)", "fallbackSeries(%s, %s)", "unique(%s, %s)", "hitcount(%s, '30s', true)",
		"summarize(%s, '20s', 'last', true)", "timeShift(%s, '20s', false)", "movingWindow(%s, 3, 'median', 0.5)",
		"keepLastValue(%s, 1)", "removeBelowPercentile(%s, 30)", "nonNegativeDerivative(%s, 20)",
		"perSecond(%s, 25, 2)", "legendValue(%s, 'max', 'si')", "aliasByNode(%s, -1, 0)",
		"aliasSub(%s, '^(\\w+)\\.(\\w+).*', '\\2-\\1')", "sortByName(%s, true, true)",
		"percentileOfSeries(%s, 40, true)", "delay(%s, -1)", "timeStack(%s, '10s', 1, 3)",
		"exponentialMovingAverage(%s, '20s')", "smartSummarize(%s, '1min', 'sum', '1min')",
		"movingAverage(%s, windowSize=2, xFilesFactor=0.5)", "highest(%s, func='last')",
		"lowest(%s, 1, 'stddev')", "averageSeriesWithWildcards(%s, 0, 1)", "groupByNode(%s, 0, 'countSeries')",
		"groupByNode(%s, -1, 'diffSeries')", "round(%s)", "add(%s, -2)", "sortByMinima(%s)",
		"multiplySeriesWithWildcards(%s, 2)", "aggregateLine(%s)", "removeAbovePercentile(%s, 60)",
		"scaleToSeconds(%s, 1)", "cumulative(%s)", "substr(%s, 1)", "cactiStyle(%s, 'si')",
	}
	seed := uint64(7)
	if v, err := strconv.ParseUint(os.Getenv("MERIDIAN_GRAPHITE_ORACLE_SEED"), 10, 64); err == nil {
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	var gen func(depth int) string
	gen = func(depth int) string {
		if depth == 0 || rng.IntN(4) == 0 {
			return leaves[rng.IntN(len(leaves))]
		}
		tmpl := templates[rng.IntN(len(templates))]
		var subs []any
		for range strings.Count(tmpl, "%s") {
			subs = append(subs, gen(depth-1))
		}
		return fmt.Sprintf(tmpl, subs...)
	}
	seen := map[string]bool{}
	var targets []string
	for len(targets) < 600 {
		tg := gen(3)
		if !seen[tg] {
			seen[tg] = true
			targets = append(targets, tg)
		}
	}
	compareWithOracle(t, newFake(), targets[:300], 990, 1040, 0)
	compareWithOracle(t, newFake(), targets[300:], 993, 1047, 0)

	// longer series with different steps, starts and gaps
	f := newFake()
	long := make([]float64, 60)
	gappy := make([]float64, 60)
	for i := range long {
		long[i] = float64((i*7)%23) - 5 + 0.25
		gappy[i] = float64(i % 9)
		if i%4 == 1 {
			gappy[i] = N
		}
	}
	f.data["l.a.x"] = stored{1000, 10, long}
	f.data["l.b.x"] = stored{1100, 10, gappy}
	f.data["l.c.y"] = stored{1000, 30, long[:20]}
	f.data["l.d.y"] = stored{1000, 60, gappy[:10]}
	leaves = []string{"l.*.*", "l.a.x", "l.*.x", "l.*.y", "l.{a,d}.*", "l.b.x", "l.c.y"}
	seen = map[string]bool{}
	targets = targets[:0]
	for len(targets) < 300 {
		tg := gen(3)
		if !seen[tg] {
			seen[tg] = true
			targets = append(targets, tg)
		}
	}
	compareWithOracle(t, f, targets, 1007, 1593, 0)
}
