package functions

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// Every function over the fake data in the range (990, 1040]: s.a.x = 1..5,
// s.b.x = 2,N,6,8,10, s.c.y = 5,5,N,N,1, neg.n = -1,3,-5,0,2,
// cnt.c = 10,20,5,15,25 (all step 10 from 1000), t.w = 4,8,N (step 20).
// Expected values are worked out by hand in the comments.
var third = 100.0 / 3

type funcCase struct {
	target string
	want   []want
}

var functionCases = []funcCase{
	{"s.a.x", []want{{"s.a.x", []float64{1, 2, 3, 4, 5}}}},
	// Combine
	{"sumSeries(s.*.x)", []want{{"sumSeries(s.*.x)", []float64{3, 2, 9, 12, 15}}}},
	{"sum(s.a.x, s.b.x)", []want{{"sumSeries(s.a.x,s.b.x)", []float64{3, 2, 9, 12, 15}}}},
	{"averageSeries(s.*.x)", []want{{"averageSeries(s.*.x)", []float64{1.5, 2, 4.5, 6, 7.5}}}},
	{"avg(s.*.x)", []want{{"averageSeries(s.*.x)", []float64{1.5, 2, 4.5, 6, 7.5}}}},
	{"maxSeries(s.*.x)", []want{{"maxSeries(s.*.x)", []float64{2, 2, 6, 8, 10}}}},
	{"max(s.*.x)", []want{{"maxSeries(s.*.x)", []float64{2, 2, 6, 8, 10}}}},
	{"minSeries(s.*.x)", []want{{"minSeries(s.*.x)", []float64{1, 2, 3, 4, 5}}}},
	{"min(s.*.x)", []want{{"minSeries(s.*.x)", []float64{1, 2, 3, 4, 5}}}},
	{"diffSeries(s.a.x, s.b.x)", []want{{"diffSeries(s.a.x,s.b.x)", []float64{-1, 2, -3, -4, -5}}}},
	{"multiplySeries(s.a.x, s.b.x)", []want{{"multiplySeries(s.a.x,s.b.x)", []float64{2, N, 18, 32, 50}}}},
	{"multiplySeries(s.a.x)", []want{{"s.a.x", []float64{1, 2, 3, 4, 5}}}},
	// population stddev of each pair: |a-b|/2
	{"stddevSeries(s.a.x, s.b.x)", []want{{"stddevSeries(s.a.x,s.b.x)", []float64{0.5, 0, 1.5, 2, 2.5}}}},
	{"rangeOfSeries(s.a.x, s.b.x)", []want{{"rangeOfSeries(s.a.x,s.b.x)", []float64{1, 0, 3, 4, 5}}}},
	{"countSeries(s.*.x)", []want{{"countSeries(s.*.x)", []float64{2, 2, 2, 2, 2}}}},
	// rows of two: rank ceil(0.5*3)=2 -> the larger; a row of one -> that value
	{"percentileOfSeries(s.*.x, 50)", []want{{"percentileOfSeries(s.*.x,50)", []float64{2, 2, 6, 8, 10}}}},
	{"divideSeries(s.b.x, s.a.x)", []want{{"divideSeries(s.b.x,s.a.x)", []float64{2, N, 2, 2, 2}}}},
	{"divideSeries(s.b.x, nothing.here)", []want{{"divideSeries(s.b.x,MISSING)", []float64{N, N, N, N, N}}}},
	{"divideSeriesLists(s.*.x, s.*.x)", []want{{"divideSeries(s.a.x,s.a.x)", []float64{1, 1, 1, 1, 1}}, {"divideSeries(s.b.x,s.b.x)", []float64{1, N, 1, 1, 1}}}},
	{"asPercent(s.*.x)", []want{
		{"asPercent(s.a.x,sumSeries(s.*.x))", []float64{third, 100, third, third, third}},
		{"asPercent(s.b.x,sumSeries(s.*.x))", []float64{2 * third, N, 2 * third, 2 * third, 2 * third}}}},
	{"asPercent(s.a.x, 10)", []want{{"asPercent(s.a.x,10)", []float64{10, 20, 30, 40, 50}}}},
	{"asPercent(s.*.x, s.a.x)", []want{
		{"asPercent(s.a.x,s.a.x)", []float64{100, 100, 100, 100, 100}},
		{"asPercent(s.b.x,s.a.x)", []float64{200, N, 200, 200, 200}}}},
	{"asPercent(s.*.*, None, 2)", []want{
		{"asPercent(s.a.x,sumSeries(s.*.*))", []float64{third, 100, third, third, third}},
		{"asPercent(s.b.x,sumSeries(s.*.*))", []float64{2 * third, N, 2 * third, 2 * third, 2 * third}},
		{"asPercent(s.c.y,s.c.y)", []float64{100, 100, N, N, 100}}}},
	{"aggregate(s.*.x, 'sum')", []want{{"sumSeries(s.*.x)", []float64{3, 2, 9, 12, 15}}}},
	{"aggregate(s.*.x, 'avg')", []want{{"avgSeries(s.*.x)", []float64{1.5, 2, 4.5, 6, 7.5}}}},
	{"aggregate(s.*.x, 'median')", []want{{"medianSeries(s.*.x)", []float64{1.5, 2, 4.5, 6, 7.5}}}},
	{"aggregate(s.*.x, 'count')", []want{{"countSeries(s.*.x)", []float64{2, 1, 2, 2, 2}}}},
	{"aggregate(s.*.x, 'last')", []want{{"lastSeries(s.*.x)", []float64{2, 2, 6, 8, 10}}}},
	{"aggregate(s.*.x, 'avg_zero')", []want{{"avg_zeroSeries(s.*.x)", []float64{1.5, 1, 4.5, 6, 7.5}}}},
	// xFilesFactor 0.6: the row (2, null) has only half its values
	{"aggregate(s.*.x, 'sum', 0.6)", []want{{"sumSeries(s.*.x)", []float64{3, N, 9, 12, 15}}}},
	{"aggregateWithWildcards(s.*.x, 'sum', 1)", []want{{"s.x", []float64{3, 2, 9, 12, 15}}}},
	{"sumSeriesWithWildcards(s.*.x, 1)", []want{{"s.x", []float64{3, 2, 9, 12, 15}}}},
	{"averageSeriesWithWildcards(s.*.x, 1)", []want{{"s.x", []float64{1.5, 2, 4.5, 6, 7.5}}}},
	{"groupByNode(s.*.*, 2, 'sum')", []want{{"x", []float64{3, 2, 9, 12, 15}}, {"y", []float64{5, 5, N, N, 1}}}},
	{"groupByNode(s.*.*, 2, 'sumSeries')", []want{{"x", []float64{3, 2, 9, 12, 15}}, {"y", []float64{5, 5, N, N, 1}}}},
	{"groupByNode(s.*.*, 2)", []want{{"x", []float64{1.5, 2, 4.5, 6, 7.5}}, {"y", []float64{5, 5, N, N, 1}}}},
	{"groupByNodes(s.*.*, 'max', 0, 2)", []want{{"s.x", []float64{2, 2, 6, 8, 10}}, {"s.y", []float64{5, 5, N, N, 1}}}},
	{"groupByTags(seriesByTag('name=cpu'), 'sum', 'name')", []want{{"cpu", []float64{11, 22, 33, 44, 55}}}},
	{"groupByTags(seriesByTag('name=cpu'), 'max', 'dc')", []want{{"cpu;dc=east", []float64{1, 2, 3, 4, 5}}, {"cpu;dc=west", []float64{10, 20, 30, 40, 50}}}},
	{"group(s.a.x, s.c.y)", []want{{"s.a.x", nil}, {"s.c.y", nil}}},
	{"applyByNode(s.*.x, 1, 'sumSeries(%.*)')", []want{{"sumSeries(s.a.*)", []float64{1, 2, 3, 4, 5}}, {"sumSeries(s.b.*)", []float64{2, N, 6, 8, 10}}}},
	{"applyByNode(s.*.x, 1, 'sumSeries(%.*)', '%.total')", []want{{"s.a.total", nil}, {"s.b.total", nil}}},
	// lcm of 10 and 20: s.a.x averaged in pairs (1.5, 3.5, 5) plus t.w (4, 8, null)
	{"sumSeries(s.a.x, t.w)", []want{{"sumSeries(s.a.x,t.w)", []float64{5.5, 11.5, 5}}}},
	{"sumSeriesLists(s.*.x, s.*.x)", []want{{"sumSeries(s.a.x,s.a.x)", []float64{2, 4, 6, 8, 10}}, {"sumSeries(s.b.x,s.b.x)", []float64{4, N, 12, 16, 20}}}},
	// Transform
	{"scale(s.a.x, 2)", []want{{"scale(s.a.x,2)", []float64{2, 4, 6, 8, 10}}}},
	{"scale(s.a.x, 0.5)", []want{{"scale(s.a.x,0.5)", []float64{0.5, 1, 1.5, 2, 2.5}}}},
	{"scale(s.a.x, 1e7)", []want{{"scale(s.a.x,1e+07)", []float64{1e7, 2e7, 3e7, 4e7, 5e7}}}},
	{"scale(s.c.y, -1)", []want{{"scale(s.c.y,-1)", []float64{-5, -5, N, N, -1}}}},
	{"scaleToSeconds(s.a.x, 1)", []want{{"scaleToSeconds(s.a.x,1)", []float64{0.1, 0.2, 0.3, 0.4, 0.5}}}},
	{"offset(neg.n, 1)", []want{{"offset(neg.n,1)", []float64{0, 4, -4, 1, 3}}}},
	{"offsetToZero(neg.n)", []want{{"offsetToZero(neg.n)", []float64{4, 8, 0, 5, 7}}}},
	{"absolute(neg.n)", []want{{"absolute(neg.n)", []float64{1, 3, 5, 0, 2}}}},
	{"invert(neg.n)", []want{{"invert(neg.n)", []float64{-1, 1.0 / 3, -0.2, N, 0.5}}}},
	{"log(s.b.x, 2)", []want{{"log(s.b.x, 2)", []float64{1, N, math.Log2(6), 3, math.Log2(10)}}}},
	{"log(neg.n)", []want{{"log(neg.n, 10)", []float64{N, math.Log10(3), N, N, math.Log10(2)}}}},
	{"pow(s.a.x, 2)", []want{{"pow(s.a.x,2)", []float64{1, 4, 9, 16, 25}}}},
	{"squareRoot(neg.n)", []want{{"squareRoot(neg.n)", []float64{N, math.Sqrt(3), N, 0, math.Sqrt(2)}}}},
	{"sqrt(s.a.x)", []want{{"squareRoot(s.a.x)", []float64{1, math.Sqrt(2), math.Sqrt(3), 2, math.Sqrt(5)}}}},
	// counter 10,20,5,15,25: the drop to 5 is a reset
	{"perSecond(cnt.c)", []want{{"perSecond(cnt.c)", []float64{N, 1, N, 1, 1}}}},
	{"derivative(cnt.c)", []want{{"derivative(cnt.c)", []float64{N, 10, -15, 10, 10}}}},
	{"nonNegativeDerivative(cnt.c)", []want{{"nonNegativeDerivative(cnt.c)", []float64{N, 10, N, 10, 10}}}},
	// wrap at 30: 30+1+5-20 = 16
	{"nonNegativeDerivative(cnt.c, 30)", []want{{"nonNegativeDerivative(cnt.c)", []float64{N, 10, 16, 10, 10}}}},
	{"integral(s.b.x)", []want{{"integral(s.b.x)", []float64{2, N, 8, 16, 26}}}},
	{"delay(s.a.x, 2)", []want{{"delay(s.a.x,2)", []float64{N, N, 1, 2, 3}}}},
	{"delay(s.a.x, -2)", []want{{"delay(s.a.x,-2)", []float64{3, 4, 5, N, N}}}},
	{"keepLastValue(s.c.y)", []want{{"keepLastValue(s.c.y)", []float64{5, 5, 5, 5, 1}}}},
	{"keepLastValue(s.c.y, 1)", []want{{"keepLastValue(s.c.y)", []float64{5, 5, N, N, 1}}}},
	{"interpolate(s.c.y)", []want{{"interpolate(s.c.y)", []float64{5, 5, 11.0 / 3, 7.0 / 3, 1}}}},
	{"transformNull(s.c.y)", []want{{"transformNull(s.c.y,0)", []float64{5, 5, 0, 0, 1}}}},
	{"transformNull(s.c.y, -1.5)", []want{{"transformNull(s.c.y,-1.5)", []float64{5, 5, -1.5, -1.5, 1}}}},
	{"transformNull(s.c.y, 0, s.b.x)", []want{{"transformNull(s.c.y,0,referenceSeries)", []float64{5, 5, 0, 0, 1}}}},
	{"isNonNull(s.c.y)", []want{{"isNonNull(s.c.y)", []float64{1, 1, 0, 0, 1}}}},
	{"changed(s.c.y)", []want{{"changed(s.c.y)", []float64{0, 0, 0, 0, 1}}}},
	{"consolidateBy(s.a.x, 'max')", []want{{"consolidateBy(s.a.x,\"max\")", []float64{1, 2, 3, 4, 5}}}},
	// buckets [1000,1020) [1020,1040) [1040,1060)
	{"summarize(s.a.x, '20s')", []want{{"summarize(s.a.x, \"20s\", \"sum\")", []float64{3, 7, 5}}}},
	{"summarize(s.a.x, '20s', 'avg')", []want{{"summarize(s.a.x, \"20s\", \"avg\")", []float64{1.5, 3.5, 5}}}},
	{"summarize(s.a.x, '30s', 'max', true)", []want{{"summarize(s.a.x, \"30s\", \"max\", true)", []float64{3, 5}}}},
	{"smartSummarize(s.a.x, '20s')", []want{{"smartSummarize(s.a.x, \"20s\", \"sum\")", []float64{3, 7, 5}}}},
	// rate*seconds spread over 20s buckets starting at 1050-60=990
	{"hitcount(s.a.x, '20s')", []want{{"hitcount(s.a.x, \"20s\")", []float64{10, 50, 90}}}},
	// Calculate: windows of the two points before each point (30,40 precede 1000)
	{"movingAverage(s.a.x, 2)", []want{{"movingAverage(s.a.x,2)", []float64{35, 20.5, 1.5, 2.5, 3.5}}}},
	{"movingSum(s.a.x, '20s')", []want{{"movingSum(s.a.x,\"20s\")", []float64{70, 41, 3, 5, 7}}}},
	{"movingMax(s.a.x, 2)", []want{{"movingMax(s.a.x,2)", []float64{40, 40, 2, 3, 4}}}},
	{"movingMin(s.a.x, 2)", []want{{"movingMin(s.a.x,2)", []float64{30, 1, 1, 2, 3}}}},
	{"movingMedian(s.a.x, 3)", []want{{"movingMedian(s.a.x,3)", []float64{30, 30, 2, 2, 3}}}},
	{"movingAverage(s.b.x, 2)", []want{{"movingAverage(s.b.x,2)", []float64{N, 2, 2, 6, 7}}}},
	{"movingAverage(s.b.x, 2, 0.6)", []want{{"movingAverage(s.b.x,2)", []float64{N, N, N, N, 7}}}},
	{"movingWindow(s.a.x, 2, 'sum')", []want{{"movingSum(s.a.x,2)", []float64{70, 41, 3, 5, 7}}}},
	{"nPercentile(s.a.x, 50)", []want{{"nPercentile(s.a.x, 50)", []float64{3, 3, 3, 3, 3}}}},
	{"stdev(s.a.x, 2)", []want{{"stdev(s.a.x,2)", []float64{0, 0.5, 0.5, 0.5, 0.5}}}},
	// Filter series (sums: a 15, b 26, c 11; averages: 3, 6.5, 11/3; last: 5, 10, 1)
	{"highestCurrent(s.*.*, 1)", []want{{"s.b.x", nil}}},
	{"highestMax(s.*.*, 2)", []want{{"s.b.x", nil}, {"s.a.x", nil}}},
	{"highestAverage(s.*.*, 1)", []want{{"s.b.x", nil}}},
	{"lowestCurrent(s.*.*, 1)", []want{{"s.c.y", nil}}},
	{"lowestAverage(s.*.*, 1)", []want{{"s.a.x", nil}}},
	{"highest(s.*.*, 2, 'sum')", []want{{"s.b.x", nil}, {"s.a.x", nil}}},
	{"lowest(s.*.*)", []want{{"s.a.x", nil}}},
	{"limit(s.*.*, 2)", []want{{"s.a.x", nil}, {"s.b.x", nil}}},
	{"currentAbove(s.*.*, 4)", []want{{"s.a.x", nil}, {"s.b.x", nil}}},
	{"currentBelow(s.*.*, 5)", []want{{"s.a.x", nil}, {"s.c.y", nil}}},
	{"maximumAbove(s.*.*, 5)", []want{{"s.b.x", nil}}},
	{"averageAbove(s.*.*, 3.5)", []want{{"s.b.x", nil}, {"s.c.y", nil}}},
	{"filterSeries(s.*.*, 'sum', '<', 15)", []want{{"s.c.y", nil}}},
	{"removeEmptySeries(removeAboveValue(s.*.*, 0))", nil},
	{"removeEmptySeries(s.*.*, 0.9)", []want{{"s.a.x", nil}}},
	{"exclude(s.*.*, 'b')", []want{{"s.a.x", nil}, {"s.c.y", nil}}},
	{"grep(s.*.*, '\\.x$')", []want{{"s.a.x", nil}, {"s.b.x", nil}}},
	// variances: a 2, b 8.75, c 32/9
	{"mostDeviant(s.*.*, 1)", []want{{"s.b.x", nil}}},
	{"unique(s.a.x, s.*.x)", []want{{"s.a.x", nil}, {"s.b.x", nil}}},
	{"fallbackSeries(does.not.exist, s.a.x)", []want{{"s.a.x", nil}}},
	{"fallbackSeries(s.b.x, s.a.x)", []want{{"s.b.x", nil}}},
	// Filter data
	{"removeBelowValue(s.a.x, 3)", []want{{"removeBelowValue(s.a.x, 3)", []float64{N, N, 3, 4, 5}}}},
	{"removeAboveValue(s.a.x, 3)", []want{{"removeAboveValue(s.a.x, 3)", []float64{1, 2, 3, N, N}}}},
	// Sorting
	{"sortByMaxima(s.*.*)", []want{{"s.b.x", nil}, {"s.a.x", nil}, {"s.c.y", nil}}},
	{"sortByTotal(s.*.*)", []want{{"s.b.x", nil}, {"s.a.x", nil}, {"s.c.y", nil}}},
	{"sortBy(s.*.*, 'last')", []want{{"s.c.y", nil}, {"s.a.x", nil}, {"s.b.x", nil}}},
	{"sortBy(s.*.*, 'last', true)", []want{{"s.b.x", nil}, {"s.a.x", nil}, {"s.c.y", nil}}},
	{"sortByName(srv.*)", []want{{"srv.h10", nil}, {"srv.h2", nil}}},
	{"sortByName(srv.*, true)", []want{{"srv.h2", nil}, {"srv.h10", nil}}},
	{"sortByName(s.*.*, reverse=true)", []want{{"s.c.y", nil}, {"s.b.x", nil}, {"s.a.x", nil}}},
	// Alias
	{"alias(s.a.x, 'foo')", []want{{"foo", []float64{1, 2, 3, 4, 5}}}},
	{"aliasByNode(s.*.x, 1)", []want{{"a", nil}, {"b", nil}}},
	{"aliasByNode(s.*.x, 1, -1)", []want{{"a.x", nil}, {"b.x", nil}}},
	{"aliasByNode(sumSeries(s.a.x), 0, 2)", []want{{"s.x", nil}}},
	{"aliasByNode(sumSeries(s.*.x), 1)", []want{{"*", nil}}},
	{"aliasByTags(seriesByTag('name=cpu'), 'host', 'name')", []want{{"h1.cpu", nil}, {"h2.cpu", nil}}},
	{"aliasByMetric(s.a.x)", []want{{"x", nil}}},
	{"aliasByMetric(scale(s.a.x, 2))", []want{{"x", nil}}},
	{`aliasSub(s.a.x, '(^.*$)', '\1 A')`, []want{{"s.a.x A", []float64{1, 2, 3, 4, 5}}}},
	{`aliasSub(sumSeries(s.*.x), "(^.*$)", "\1 A")`, []want{{"sumSeries(s.*.x) A", []float64{3, 2, 9, 12, 15}}}},
	{`aliasSub(s.a.x, '^s\.(\w+)\.x$', 'node-\g<1>')`, []want{{"node-a", nil}}},
	{`aliasSub(s.a.x, '\.', '_')`, []want{{"s_a_x", nil}}},
	{"legendValue(s.a.x, 'avg')", []want{{"s.a.x (avg: 3.0)", nil}}},
	{"legendValue(s.a.x, 'avg', 'last')", []want{{"s.a.x (avg: 3.0) (last: 5.0)", nil}}},
	{"legendValue(s.a.x, 'last', 'si')", []want{{"s.a.x               last 5.00      ", nil}}},
	// Special
	{"seriesByTag('name=cpu', 'dc=east')", []want{{"cpu;dc=east;host=h1", []float64{1, 2, 3, 4, 5}}}},
	{"seriesByTag('name=cpu', 'host=~h[2-9]')", []want{{"cpu;dc=west;host=h2", nil}}},
	{"sumSeries(seriesByTag('name=cpu'))", []want{{"sumSeries(seriesByTag('name=cpu'))", []float64{11, 22, 33, 44, 55}}}},
	// step = (1040-990)/2 = 25: points at 990, 1015, 1040
	{"constantLine(100)", []want{{"100.0", []float64{100, 100, 100}}}},
	{"constantLine(1.5)", []want{{"1.5", []float64{1.5, 1.5, 1.5}}}},
	{"threshold(5, 'limit')", []want{{"limit", []float64{5, 5, 5}}}},
	{"threshold(5)", []want{{"5.0", []float64{5, 5, 5}}}},
	// Graph: styling keeps the values
	{"color(s.a.x, 'red')", []want{{"s.a.x", []float64{1, 2, 3, 4, 5}}}},
	{"lineWidth(s.a.x, 2)", []want{{"s.a.x", []float64{1, 2, 3, 4, 5}}}},
	{"alpha(s.a.x, 0.5)", []want{{"s.a.x", []float64{1, 2, 3, 4, 5}}}},
	{"dashed(s.a.x)", []want{{"dashed(s.a.x, 5)", []float64{1, 2, 3, 4, 5}}}},
	{"secondYAxis(s.a.x)", []want{{"secondYAxis(s.a.x)", []float64{1, 2, 3, 4, 5}}}},
	{"drawAsInfinite(s.a.x)", []want{{"drawAsInfinite(s.a.x)", []float64{1, 2, 3, 4, 5}}}},
	{"stacked(s.*.x)", []want{{"stacked(s.a.x)", []float64{1, 2, 3, 4, 5}}, {"stacked(s.b.x)", []float64{3, N, 9, 12, 15}}}},
	// the remaining graphite-web functions
	{"diff(s.a.x, s.b.x)", []want{{"diffSeries(s.a.x,s.b.x)", []float64{-1, 2, -3, -4, -5}}}},
	{"pct(s.a.x, 10)", []want{{"asPercent(s.a.x,10)", []float64{10, 20, 30, 40, 50}}}},
	{"xFilesFactor(s.b.x, 0.5)", []want{{"s.b.x", []float64{2, N, 6, 8, 10}}}},
	// xFilesFactor 1: a 20s bucket needs both of its points
	{"summarize(setXFilesFactor(s.b.x, 1), '20s')", []want{{`summarize(s.b.x, "20s", "sum")`, []float64{N, 14, N}}}},
	{"areaBetween(s.*.x)", []want{{"areaBetween(s.*.x)", []float64{1, 2, 3, 4, 5}}, {"areaBetween(s.*.x)", []float64{2, N, 6, 8, 10}}}},
	{"round(invert(neg.n), 2)", []want{{"round(invert(neg.n),2)", []float64{-1, 0.33, -0.2, N, 0.5}}}},
	// 0.35 0.7 1.05 1.4 1.75 rounded to whole numbers as Python rounds them
	{"round(scale(s.a.x, 0.35))", []want{{"round(scale(s.a.x,0.35))", []float64{0, 1, 1, 1, 2}}}},
	{"aggregateLine(s.a.x)", []want{{"aggregateLine(s.a.x, 3)", []float64{3, 3, 3}}}},
	{"aggregateLine(s.a.x, 'max', true)", []want{{"aggregateLine(s.a.x, 5)", []float64{5, 5, 5, 5, 5}}}},
	{"identity('t')", []want{{"t", []float64{990}}}},
	{"exp(neg.n)", []want{{"exp(neg.n)", []float64{math.Exp(-1), math.Exp(3), math.Exp(-5), 1, math.Exp(2)}}}},
	{"sigmoid(neg.n)", []want{{"sigmoid(neg.n)", []float64{1 / (1 + math.E), 1 / (1 + math.Exp(-3)), 1 / (1 + math.Exp(5)), 0.5, 1 / (1 + math.Exp(-2))}}}},
	// invert gives 1, 1/2, 1/3, 1/4, 1/5; logit(1) divides by zero
	{"logit(invert(s.a.x))", []want{{"logit(invert(s.a.x))", []float64{N, 0, math.Log(0.5), math.Log(1.0 / 3), math.Log(0.25)}}}},
	// graphite-web names add() with %d
	{"add(s.a.x, 1.5)", []want{{"add(s.a.x,1)", []float64{2.5, 3.5, 4.5, 5.5, 6.5}}}},
	{"diffSeriesLists(s.*.x, s.*.x)", []want{{"diffSeries(s.a.x,s.a.x)", []float64{0, 0, 0, 0, 0}}, {"diffSeries(s.b.x,s.b.x)", []float64{0, N, 0, 0, 0}}}},
	{"multiplySeriesLists(s.*.x, s.*.x)", []want{{"multiplySeries(s.a.x,s.a.x)", []float64{1, 4, 9, 16, 25}}, {"multiplySeries(s.b.x,s.b.x)", []float64{4, N, 36, 64, 100}}}},
	{"aggregateSeriesLists(s.*.x, s.*.x, 'max')", []want{{"maxSeries(s.a.x,s.a.x)", []float64{1, 2, 3, 4, 5}}, {"maxSeries(s.b.x,s.b.x)", []float64{2, N, 6, 8, 10}}}},
	{"multiplySeriesWithWildcards(s.*.x, 1)", []want{{"s.x", []float64{2, N, 18, 32, 50}}}},
	{"powSeries(s.a.x, s.b.x)", []want{{"powSeries(s.a.x,s.b.x)", []float64{1, N, 729, 65536, 9765625}}}},
	// products a*a and b*b summed, divided by the summed weights a+b
	{"weightedAverage(s.*.x, s.*.x, 1)", []want{{"weightedAverage(s.*.x, s.*.x, 1)", []float64{5.0 / 3, 2, 5, 80.0 / 12, 125.0 / 15}}}},
	{"substr(scale(s.a.x, 2), 1, 2)", []want{{"a", nil}}},
	{"averageBelow(s.*.*, 3.5)", []want{{"s.a.x", nil}}},
	{"minimumAbove(s.*.*, 1)", []want{{"s.b.x", nil}}},
	{"minimumBelow(s.*.*, 1)", []want{{"s.a.x", nil}, {"s.c.y", nil}}},
	{"maximumBelow(s.*.*, 5)", []want{{"s.a.x", nil}, {"s.c.y", nil}}},
	{"sortByMinima(group(neg.n, s.*.x))", []want{{"neg.n", nil}, {"s.a.x", nil}, {"s.b.x", nil}}},
	// 50th percentile of 1..5 is 3
	{"removeAbovePercentile(s.a.x, 50)", []want{{"removeAbovePercentile(s.a.x, 50)", []float64{1, 2, 3, N, N}}}},
	{"removeBelowPercentile(s.a.x, 50)", []want{{"removeBelowPercentile(s.a.x, 50)", []float64{N, N, 3, 4, 5}}}},
	// averages 3, 6.5, 11/3: the 20th and 80th percentiles are 3 and 6.5
	{"averageOutsidePercentile(s.*.*, 80)", []want{{"s.a.x", nil}, {"s.b.x", nil}}},
	{"removeBetweenPercentile(srv.*, 80)", []want{{"srv.h10", nil}, {"srv.h2", nil}}},
	{"minMax(neg.n)", []want{{"minMax(neg.n)", []float64{0.5, 1, 0, 0.625, 0.875}}}},
	// reset whenever (t-from)//20 changes, from = 990
	{"integralByInterval(s.a.x, '20s')", []want{{"integralByInterval(s.a.x,'20s')", []float64{1, 2, 5, 4, 9}}}},
	{"cumulative(s.a.x)", []want{{`consolidateBy(s.a.x,"sum")`, []float64{1, 2, 3, 4, 5}}}},
	{"cactiStyle(s.a.x)", []want{{"s.a.x Current:5.00    Max:5.00    Min:1.00    ", nil}}},
	// fetched from 980 (30, 40 precede): seeded with avg(30,40), then ema = 2/3*v + 1/3*ema
	{"exponentialMovingAverage(s.a.x, 2)", []want{{"exponentialMovingAverage(s.a.x,2)", []float64{35, 12.333333, 5.444444, 3.814815, 3.938272, 4.646091}}}},
	{"timeStack(s.a.x, '10s', 1, 3)", []want{{"timeShift(s.a.x, -10s, 1)", []float64{40, 1, 2, 3, 4}}, {"timeShift(s.a.x, -10s, 2)", []float64{30, 40, 1, 2, 3}}}},
	// pipes
	{"s.*.x|sumSeries()|scale(2)", []want{{"scale(sumSeries(s.*.x),2)", []float64{6, 4, 18, 24, 30}}}},
}

func TestFunctions(t *testing.T) {
	for _, tc := range functionCases {
		got, err := evalTarget(t, newFake(), tc.target, 990, 1040)
		if err != nil {
			t.Errorf("%s: %v", tc.target, err)
			continue
		}
		checkSeries(t, tc.target, got, tc.want)
	}
}

// Functions that need another time range fetch it through the Fetcher.
func TestRefetchRanges(t *testing.T) {
	f := newFake()
	got, err := evalTarget(t, f, "timeShift(s.a.x, '20s')", 990, 1040)
	if err != nil {
		t.Fatal(err)
	}
	// (970, 1020] gives 980..1020 = 30,40,1,2,3, drawn from the request's start
	checkSeries(t, "timeShift", got, []want{{`timeShift(s.a.x, "-20s")`, []float64{30, 40, 1, 2, 3}}})
	if got[0].Start != 1000 {
		t.Errorf("timeShift start %d, want 1000", got[0].Start)
	}
	if want := "s.a.x 970 1020"; f.log[len(f.log)-1] != want {
		t.Errorf("timeShift fetched %q, want %q", f.log[len(f.log)-1], want)
	}
	f = newFake()
	got, _ = evalTarget(t, f, "movingAverage(s.a.x, '30s')", 990, 1040)
	if want := "s.a.x 960 1040"; f.log[len(f.log)-1] != want {
		t.Errorf("movingAverage fetched %q, want %q", f.log[len(f.log)-1], want)
	}
	// windows of 3 before each point: (20,30,40) (30,40,1) (40,1,2) (1,2,3) (2,3,4)
	checkSeries(t, "movingAverage", got, []want{{`movingAverage(s.a.x,"30s")`, []float64{30, 71.0 / 3, 43.0 / 3, 2, 3}}})
	if got[0].Start != 1000 || got[0].Step != 10 {
		t.Errorf("movingAverage start %d step %d", got[0].Start, got[0].Step)
	}
}

func TestConstantLineTimestamps(t *testing.T) {
	got, err := evalTarget(t, newFake(), "constantLine(100)", 1000, 1060)
	if err != nil {
		t.Fatal(err)
	}
	s := got[0]
	// graphite-web: step = (until-from)/2, three points from "from"
	if s.Start != 1000 || s.Step != 30 || len(s.Values) != 3 || s.PathExpression != "constantLine(100.0)" {
		t.Fatalf("constantLine: %+v", s)
	}
	got, _ = evalTarget(t, newFake(), `aliasSub(constantLine(100), '(^.*$)', '\1 A')`, 1000, 1060)
	if got[0].Name != "100.0 A" {
		t.Fatalf("grafana test query name %q", got[0].Name)
	}
}

func TestEvalErrors(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{"foo(s.a.x)", `unknown function "foo"`},
		{"scale(s.a.x)", `scale: missing required argument "factor"`},
		{"scale(s.a.x, 'x')", `scale: argument "factor" must be a number`},
		{"scale(s.a.x, 2, 3)", "scale: too many arguments"},
		{"scale(s.a.x, foo=2)", `scale: unexpected keyword argument "foo"`},
		{"limit(s.a.x, 1.5)", `limit: argument "n" must be an integer`},
		{"grep(s.a.x, '(')", "grep: invalid regular expression"},
		{`aliasSub(s.a.x, 'a', '\9')`, "aliasSub: invalid replacement"},
		{"summarize(s.a.x, 'xx')", `summarize: argument "intervalString"`},
		{"sumSeries(1)", `sumSeries: argument "seriesLists" must be a series list`},
		{"movingAverage(s.a.x, 'abc')", `movingAverage: argument "windowSize"`},
		{"aggregate(s.a.x, 'nope')", "unsupported aggregation function"},
		{"divideSeries(s.a.x, s.*.x)", "divideSeries: the divisor must be exactly one series"},
		{"seriesByTag('dc!=x')", "at least one tag expression must match"},
		{"seriesByTag(s.a.x)", "seriesByTag: argument 1 must be a quoted tag expression"},
		{"consolidateBy(s.a.x, 'median')", "invalid option"},
		{"filterSeries(s.a.x, 'max', '~', 1)", "invalid option"},
		{"groupByNode(s.a.x, 1, 'nope')", "unsupported aggregation function"},
	} {
		_, err := evalTarget(t, newFake(), tc.target, 990, 1040)
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Errorf("%s: want *InputError, got %v", tc.target, err)
			continue
		}
		if !strings.Contains(ie.Msg, tc.want) {
			t.Errorf("%s: error %q does not contain %q", tc.target, ie.Msg, tc.want)
		}
	}
	// keyword arguments work where positional ones do
	got, err := evalTarget(t, newFake(), "scale(s.a.x, factor=3)", 990, 1040)
	if err != nil {
		t.Fatal(err)
	}
	checkSeries(t, "scale kw", got, []want{{"scale(s.a.x,3)", []float64{3, 6, 9, 12, 15}}})
}

var nestedCases = []funcCase{
	{"aliasByNode(sumSeries(s.*.x), 0)", []want{{"s", []float64{3, 2, 9, 12, 15}}}},
	{"scale(sumSeries(s.a.x, s.b.x), 2)", []want{{"scale(sumSeries(s.a.x,s.b.x),2)", []float64{6, 4, 18, 24, 30}}}},
	// pathExpression of a transformed series is its name
	{"sumSeries(scale(s.*.x, 2))", []want{{"sumSeries(scale(s.a.x,2),scale(s.b.x,2))", []float64{6, 4, 18, 24, 30}}}},
	{"asPercent(s.a.x, sumSeries(s.*.x))", []want{{"asPercent(s.a.x,sumSeries(s.*.x))", []float64{100.0 / 3, 100, 100.0 / 3, 100.0 / 3, 100.0 / 3}}}},
	{"highestMax(groupByNode(s.*.*, 2, 'sum'), 1)", []want{{"x", []float64{3, 2, 9, 12, 15}}}},
	{"sumSeries(transformNull(s.c.y), keepLastValue(s.c.y))", []want{{"sumSeries(transformNull(s.c.y,0),keepLastValue(s.c.y))", []float64{10, 10, 5, 5, 2}}}},
	{"movingSum(scale(s.a.x, 10), 1)", []want{{"movingSum(scale(s.a.x,10),1)", []float64{400, 10, 20, 30, 40}}}},
	{"timeShift(sumSeries(s.a.x), '10s')", []want{{`timeShift(sumSeries(s.a.x), "-10s")`, []float64{40, 1, 2, 3, 4}}}},
	{"derivative(summarize(s.a.x, '20s'))", []want{{`derivative(summarize(s.a.x, "20s", "sum"))`, []float64{N, 4, -2}}}},
}

func TestNestedEvaluation(t *testing.T) {
	for _, tc := range nestedCases {
		got, err := evalTarget(t, newFake(), tc.target, 990, 1040)
		if err != nil {
			t.Errorf("%s: %v", tc.target, err)
			continue
		}
		checkSeries(t, tc.target, got, tc.want)
	}
}

func TestConsolidate(t *testing.T) {
	mk := func(vals []float64, cf string, xff float64) *Series {
		return &Series{Name: "x", Start: 1000, Step: 10, End: 1000 + 10*int64(len(vals)), Values: vals, ConsolidationFunc: cf, XFilesFactor: xff}
	}
	// 10 points into 5: valuesPerPoint 2; graphite-web nudges the start by
	// one bucket (1020) and drops one leading value, then averages pairs:
	// (2,3) (4,5) (6,7) (8,9) (10)
	s := Consolidate(mk([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, "average", 0), 5)
	if s.Start != 1020 || s.Step != 20 || !sameFloats(s.Values, []float64{2.5, 4.5, 6.5, 8.5, 10}) {
		t.Errorf("average: start %d step %d %v", s.Start, s.Step, s.Values)
	}
	s = Consolidate(mk([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, "sum", 0), 5)
	if !sameFloats(s.Values, []float64{5, 9, 13, 17, 10}) {
		t.Errorf("sum: %v", s.Values)
	}
	s = Consolidate(mk([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, "max", 0), 4)
	// valuesPerPoint ceil(10/4)=3; nudge 30+0-(1000%30=10)=20, drop 1: (2,3,4) (5,6,7) (8,9,10)
	if s.Start != 1020 || s.Step != 30 || !sameFloats(s.Values, []float64{4, 7, 10}) {
		t.Errorf("max: start %d step %d %v", s.Start, s.Step, s.Values)
	}
	// xFilesFactor 0.6: a bucket with one value of two is null
	s = Consolidate(mk([]float64{1, 2, N, 4, 5, N, 7, 8, 9, 10}, "average", 0.6), 5)
	if !sameFloats(s.Values, []float64{N, 4.5, N, 8.5, N}) {
		t.Errorf("xff: %v", s.Values)
	}
	s = Consolidate(mk([]float64{1, 2, 3, 4}, "average", 0), 1)
	if len(s.Values) != 1 || s.Values[0] != 2.5 || s.Step != 40 {
		t.Errorf("one point: %+v", s)
	}
	in := mk([]float64{1, 2, 3}, "average", 0)
	if s = Consolidate(in, 10); s != in {
		t.Errorf("fewer points than maxDataPoints must be unchanged")
	}
}

func TestCatalog(t *testing.T) {
	cat := Catalog()
	required := strings.Fields(`alias aliasByNode aliasByTags aliasSub aliasByMetric sumSeries averageSeries maxSeries minSeries
multiplySeries diffSeries divideSeries asPercent stddevSeries percentileOfSeries countSeries groupByNode groupByNodes groupByTags
scale scaleToSeconds offset offsetToZero absolute invert log pow sqrt squareRoot perSecond derivative nonNegativeDerivative integral
summarize smartSummarize hitcount movingAverage movingMedian movingSum movingMax movingMin nPercentile highestCurrent highestMax
highestAverage lowestCurrent lowestAverage highest lowest limit sortByMaxima sortByName sortByTotal sortBy currentAbove currentBelow
maximumAbove averageAbove removeBelowValue removeAboveValue removeEmptySeries keepLastValue transformNull timeShift delay
consolidateBy exclude grep applyByNode mostDeviant constantLine threshold legendValue seriesByTag aggregate aggregateWithWildcards
sumSeriesWithWildcards averageSeriesWithWildcards changed isNonNull fallbackSeries filterSeries unique color lineWidth dashed
stacked secondYAxis alpha drawAsInfinite sum avg max min`)
	for _, name := range required {
		entry, ok := cat[name].(map[string]any)
		if !ok {
			t.Errorf("catalog lacks %s", name)
			continue
		}
		if entry["group"] == "" || entry["description"] == "" || !strings.HasPrefix(entry["function"].(string), name+"(") {
			t.Errorf("%s: incomplete entry %v", name, entry)
		}
	}
	// every catalogued function is evaluable (seriesByTag is handled by the evaluator)
	for name := range cat {
		if d := registry[name]; d == nil || (d.fn == nil && name != "seriesByTag") {
			t.Errorf("%s is catalogued but not implemented", name)
		}
	}
	ma := cat["movingAverage"].(map[string]any)
	if ma["function"] != "movingAverage(seriesList, windowSize, xFilesFactor=None)" {
		t.Errorf("movingAverage signature %q", ma["function"])
	}
	params := ma["params"].([]any)
	p1 := params[1].(map[string]any)
	if p1["name"] != "windowSize" || p1["type"] != "intOrInterval" || p1["required"] != true {
		t.Errorf("movingAverage windowSize param %v", p1)
	}
	ss := cat["sumSeries"].(map[string]any)["params"].([]any)[0].(map[string]any)
	if ss["multiple"] != true || ss["type"] != "seriesList" {
		t.Errorf("sumSeries param %v", ss)
	}
	if _, err := jsonMarshal(cat); err != nil {
		t.Fatalf("catalog is not JSON: %v", err)
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		f      float64
		g, str string
	}{
		{2, "2", "2.0"}, {0.5, "0.5", "0.5"}, {1e7, "1e+07", "10000000.0"}, {1234567, "1.23457e+06", "1234567.0"},
		{0.0001, "0.0001", "0.0001"}, {0.00001, "1e-05", "1e-05"}, {1e16, "1e+16", "1e+16"}, {-1.5, "-1.5", "-1.5"},
		{math.Inf(1), "inf", "inf"},
	} {
		if got := pyG(tc.f); got != tc.g {
			t.Errorf("%%g %v: %q want %q", tc.f, got, tc.g)
		}
		if got := pyFloat(tc.f); got != tc.str {
			t.Errorf("str %v: %q want %q", tc.f, got, tc.str)
		}
	}
	for in, want := range map[string]int64{"5min": 300, "-1h": -3600, "1d12h": 129600, "2w": 1209600, "1mon": 2592000, "1y": 31536000, "30s": 30, "+10seconds": 10} {
		got, err := parseTimeOffset(in)
		if err != nil || got != want {
			t.Errorf("offset %q: %d %v want %d", in, got, err, want)
		}
	}
	if _, err := parseTimeOffset("5x"); err == nil {
		t.Error("offset 5x accepted")
	}
	_ = fmt.Sprint
}
