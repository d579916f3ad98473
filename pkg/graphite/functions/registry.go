package functions

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
)

// registry maps every function name (aliases included) to its definition.
// It is built once at start-up and only read afterwards.
var registry map[string]*funcDef

func init() { registry = buildRegistry() }

func sl(name string) param { return param{name: name, typ: tSeriesList, required: true} }
func slMulti(name string, required bool) param {
	return param{name: name, typ: tSeriesList, required: required, multiple: true}
}
func req(name string, t ptype) param { return param{name: name, typ: t, required: true} }
func lenientReq(name string, t ptype) param {
	return param{name: name, typ: t, required: true, lenient: true}
}
func opt(name string, t ptype, def any) param { return param{name: name, typ: t, def: def} }
func multi(name string, t ptype, r bool) param {
	return param{name: name, typ: t, required: r, multiple: true}
}
func withOptions(p param, opts ...any) param  { p.options = opts; return p }
func withSuggestions(p param, s ...any) param { p.suggestions = s; return p }
func aggParam(name string, def any) param     { return withAggOptions(opt(name, tAggFunc, def)) }
func aggParamReq(name string) param           { return withAggOptions(req(name, tAggFunc)) }
func withAggOptions(p param) param {
	for _, n := range aggFuncNames {
		p.options = append(p.options, n)
	}
	return p
}

var intervalSuggestions = []any{"10min", "1h", "1d"}
var windowSuggestions = []any{5, 7, 10, "1min", "5min", "10min", "30min", "1hour"}

func buildRegistry() map[string]*funcDef {
	const (
		gCombine   = "Combine"
		gTransform = "Transform"
		gCalculate = "Calculate"
		gFilter    = "Filter Series"
		gFilterD   = "Filter Data"
		gSorting   = "Sorting"
		gAlias     = "Alias"
		gGraph     = "Graph"
		gSpecial   = "Special"
	)
	seriesLists := []param{slMulti("seriesLists", true)}
	window := withSuggestions(req("windowSize", tIntOrInterval), windowSuggestions...)
	defs := []*funcDef{
		// Combine
		{name: "aggregate", group: gCombine, time: timeRowWise, desc: "Aggregates the series into one with the given function (sum, average, min, max, median, diff, stddev, count, range, multiply, last, avg_zero).", params: []param{sl("seriesList"), aggParamReq("func"), opt("xFilesFactor", tFloat, nil)}, fn: fnAggregate},
		{name: "sumSeries", group: gCombine, time: timeRowWise, desc: "Adds the series together point by point.", params: seriesLists, aggregator: true, fn: aggregateFn("sum")},
		{name: "averageSeries", group: gCombine, time: timeRowWise, desc: "Averages the series point by point (nulls ignored).", params: seriesLists, aggregator: true, fn: aggregateFn("average")},
		{name: "maxSeries", group: gCombine, time: timeRowWise, desc: "The maximum of the series at each point.", params: seriesLists, aggregator: true, fn: aggregateFn("max")},
		{name: "minSeries", group: gCombine, time: timeRowWise, desc: "The minimum of the series at each point.", params: seriesLists, aggregator: true, fn: aggregateFn("min")},
		{name: "diffSeries", group: gCombine, time: timeRowWise, desc: "Subtracts the other series from the first one point by point.", params: seriesLists, aggregator: true, fn: aggregateFn("diff")},
		{name: "stddevSeries", group: gCombine, time: timeRowWise, desc: "The population standard deviation of the series at each point.", params: seriesLists, aggregator: true, fn: aggregateFn("stddev")},
		{name: "rangeOfSeries", group: gCombine, time: timeRowWise, desc: "The difference between the largest and smallest value at each point.", params: seriesLists, aggregator: true, fn: aggregateFn("rangeOf")},
		{name: "powSeries", group: gCombine, time: timeRowWise, desc: "Raises the first series to the power of the second, and so on, point by point.", params: []param{slMulti("seriesList", true)}, aggregator: true, fn: fnPowSeries},
		{name: "multiplySeries", group: gCombine, time: timeRowWise, desc: "Multiplies the series point by point; a null factor gives null.", params: seriesLists, aggregator: true, fn: fnMultiplySeries},
		{name: "countSeries", group: gCombine, time: timeRowWise, desc: "The number of series, as a series.", params: []param{slMulti("seriesLists", false)}, aggregator: true, fn: fnCountSeries},
		{name: "percentileOfSeries", group: gCombine, time: timeRowWise, desc: "The n-th percentile of the series' values at each point.", params: []param{sl("seriesList"), req("n", tFloat), opt("interpolate", tBoolean, false)}, fn: fnPercentileOfSeries},
		{name: "divideSeries", group: gCombine, time: timeRowWise, desc: "Divides each series by the single divisor series.", params: []param{sl("dividendSeriesList"), sl("divisorSeries")}, fn: fnDivideSeries},
		{name: "divideSeriesLists", group: gCombine, time: timeRowWise, desc: "Divides the i-th dividend series by the i-th divisor series.", params: []param{sl("dividendSeriesList"), sl("divisorSeriesList")}, fn: fnDivideSeriesLists},
		{name: "asPercent", group: gCombine, time: timeUnverified, desc: "Each series as a percentage of a total: the sum of the series, a number, one series, matching series, or per node group.", params: []param{sl("seriesList"), opt("total", tAny, nil), multi("nodes", tNodeOrTag, false)}, aggregator: true, fn: fnAsPercent},
		{name: "aggregateWithWildcards", group: gCombine, time: timeRowWise, desc: "Aggregates the series whose names are equal once the given nodes are removed.", params: []param{sl("seriesList"), aggParamReq("func"), multi("position", tNode, false)}, signature: "aggregateWithWildcards(seriesList, func, *positions)", fn: fnAggregateWithWildcards},
		{name: "sumSeriesWithWildcards", group: gCombine, time: timeRowWise, desc: "sumSeries over the series whose names are equal once the given nodes are removed.", params: []param{sl("seriesList"), multi("position", tNode, false)}, aggregator: true, fn: wildcardsFn("sum")},
		{name: "averageSeriesWithWildcards", group: gCombine, time: timeRowWise, desc: "averageSeries over the series whose names are equal once the given nodes are removed.", params: []param{sl("seriesList"), multi("position", tNode, false)}, aggregator: true, fn: wildcardsFn("average")},
		{name: "multiplySeriesWithWildcards", group: gCombine, time: timeRowWise, desc: "multiplySeries over the series whose names are equal once the given nodes are removed.", params: []param{sl("seriesList"), multi("position", tNode, false)}, aggregator: true, fn: wildcardsFn("multiply")},
		{name: "aggregateSeriesLists", group: gCombine, time: timeRowWise, desc: "Aggregates list1[i] with list2[i] for each i.", params: []param{sl("seriesListFirstPos"), sl("seriesListSecondPos"), aggParamReq("func"), opt("xFilesFactor", tFloat, nil)}, fn: fnAggregateSeriesLists},
		{name: "sumSeriesLists", group: gCombine, time: timeRowWise, desc: "Adds list1[i] and list2[i] for each i.", params: []param{sl("seriesListFirstPos"), sl("seriesListSecondPos")}, aggregator: true, fn: seriesListsFn("sum")},
		{name: "diffSeriesLists", group: gCombine, time: timeRowWise, desc: "Subtracts list2[i] from list1[i] for each i.", params: []param{sl("seriesListFirstPos"), sl("seriesListSecondPos")}, aggregator: true, fn: seriesListsFn("diff")},
		{name: "multiplySeriesLists", group: gCombine, time: timeRowWise, desc: "Multiplies list1[i] by list2[i] for each i.", params: []param{sl("seriesListFirstPos"), sl("seriesListSecondPos")}, aggregator: true, fn: seriesListsFn("multiply")},
		{name: "weightedAverage", group: gCombine, time: timeUnverified, desc: "The average of the first list weighted by the second, matched by nodes.", params: []param{sl("seriesListAvg"), sl("seriesListWeight"), multi("nodes", tNodeOrTag, false)}, fn: fnWeightedAverage},
		{name: "group", group: gCombine, time: timeNamesOnly, desc: "Puts the series lists together into one list.", params: []param{slMulti("seriesLists", false)}, fn: fnGroup},
		{name: "groupByNode", group: gCombine, time: timeRowWise, desc: "Groups the series by one node (or tag) and aggregates each group with the callback.", params: []param{sl("seriesList"), req("nodeNum", tNodeOrTag), opt("callback", tAggOrSeriesFunc, "average")}, fn: fnGroupByNode},
		{name: "groupByNodes", group: gCombine, time: timeRowWise, desc: "Groups the series by several nodes (or tags) and aggregates each group with the callback.", params: []param{sl("seriesList"), req("callback", tAggOrSeriesFunc), multi("nodes", tNodeOrTag, false)}, fn: fnGroupByNodes},
		{name: "groupByTags", group: gCombine, time: timeRowWise, desc: "Groups tagged series by the given tags and aggregates each group with the callback.", params: []param{sl("seriesList"), req("callback", tAggOrSeriesFunc), multi("tags", tTag, true)}, fn: fnGroupByTags},
		{name: "applyByNode", group: gCombine, time: timeRuntimeTargets, desc: "Evaluates the template (with % replaced by the name prefix up to nodeNum) once per distinct prefix.", params: []param{sl("seriesList"), req("nodeNum", tNode), req("templateFunction", tString), opt("newName", tString, nil)}, fn: fnApplyByNode},

		// Transform
		{name: "scale", group: gTransform, time: timeValueMap, desc: "Multiplies every value by a factor.", params: []param{sl("seriesList"), req("factor", tFloat)}, fn: fnScale},
		{name: "scaleToSeconds", group: gTransform, time: timeValueMap, desc: "Scales per-step values to per-seconds values.", params: []param{sl("seriesList"), req("seconds", tFloat)}, fn: fnScaleToSeconds},
		{name: "offset", group: gTransform, time: timeValueMap, desc: "Adds a constant to every value.", params: []param{sl("seriesList"), req("factor", tFloat)}, fn: fnOffset},
		{name: "add", group: gTransform, time: timeValueMap, desc: "Adds a constant to every value.", params: []param{sl("seriesList"), req("constant", tFloat)}, fn: fnAdd},
		{name: "offsetToZero", group: gTransform, time: timeByValues, desc: "Subtracts the series' minimum from every value.", params: []param{sl("seriesList")}, fn: fnOffsetToZero},
		{name: "absolute", group: gTransform, time: timeValueMap, desc: "The absolute value of every point.", params: []param{sl("seriesList")}, fn: fnAbsolute},
		{name: "invert", group: gTransform, time: timeValueMap, desc: "1/x for every point (0 gives null).", params: []param{sl("seriesList")}, fn: fnInvert},
		{name: "log", group: gTransform, time: timeValueMap, desc: "The logarithm of every point in the given base (non-positive values give null).", params: []param{sl("seriesList"), opt("base", tInteger, 10)}, fn: fnLog},
		{name: "pow", group: gTransform, time: timeValueMap, desc: "Raises every value to a power.", params: []param{sl("seriesList"), req("factor", tFloat)}, fn: fnPow},
		{name: "squareRoot", group: gTransform, time: timeValueMap, desc: "The square root of every value.", params: []param{sl("seriesList")}, fn: fnSquareRoot},
		{name: "exp", group: gTransform, time: timeValueMap, desc: "e raised to every value.", params: []param{sl("seriesList")}, fn: fnExp},
		{name: "sigmoid", group: gTransform, time: timeValueMap, desc: "The sigmoid of every value.", params: []param{sl("seriesList")}, fn: fnSigmoid},
		{name: "logit", group: gTransform, time: timeValueMap, desc: "The logit of every value.", params: []param{sl("seriesList")}, fn: fnLogit},
		{name: "round", group: gTransform, time: timeValueMap, desc: "Rounds every value to the given number of decimals.", params: []param{sl("seriesList"), opt("precision", tInteger, 0)}, signature: "round(seriesList, precision=None)", fn: fnRound},
		{name: "perSecond", group: gTransform, time: timeNeighbours, desc: "The non-negative per-second rate of a counter.", params: []param{sl("seriesList"), opt("maxValue", tFloat, nil), opt("minValue", tFloat, nil)}, fn: fnPerSecond},
		{name: "derivative", group: gTransform, time: timeNeighbours, desc: "The difference between each value and the previous one.", params: []param{sl("seriesList")}, fn: fnDerivative},
		{name: "nonNegativeDerivative", group: gTransform, time: timeNeighbours, desc: "The derivative, with counter wraps and resets giving null (or wrapped at maxValue).", params: []param{sl("seriesList"), opt("maxValue", tFloat, nil), opt("minValue", tFloat, nil)}, fn: fnNonNegativeDerivative},
		{name: "integral", group: gTransform, time: timeNeighbours, desc: "The running total of the values.", params: []param{sl("seriesList")}, fn: fnIntegral},
		{name: "integralByInterval", group: gTransform, time: timeNeighbours, desc: "The running total, reset at every interval.", params: []param{sl("seriesList"), req("intervalUnit", tString)}, fn: fnIntegralByInterval},
		{name: "delay", group: gTransform, time: timeNeighbours, desc: "Shifts the values by a number of steps.", params: []param{sl("seriesList"), req("steps", tInteger)}, fn: fnDelay},
		{name: "keepLastValue", group: gTransform, time: timeNeighbours, desc: "Replaces runs of up to limit nulls by the last value before them.", params: []param{sl("seriesList"), opt("limit", tIntOrInf, math.Inf(1))}, fn: fnKeepLastValue},
		{name: "interpolate", group: gTransform, time: timeNeighbours, desc: "Fills runs of up to limit nulls by linear interpolation.", params: []param{sl("seriesList"), opt("limit", tIntOrInf, math.Inf(1))}, fn: fnInterpolate},
		{name: "transformNull", group: gTransform, time: timeValueMap, desc: "Replaces nulls by a default value (only where a reference series has data, if given).", params: []param{sl("seriesList"), opt("default", tFloat, 0), opt("referenceSeries", tSeriesList, nil)}, fn: fnTransformNull},
		{name: "isNonNull", group: gTransform, time: timeValueMap, desc: "1 where the series has a value, 0 where it is null.", params: []param{sl("seriesList")}, fn: fnIsNonNull},
		{name: "minMax", group: gTransform, time: timeByValues, desc: "Scales the values to [0,1] between the series' minimum and maximum.", params: []param{sl("seriesList")}, fn: fnMinMax},
		{name: "timeShift", group: gTransform, time: timeOtherRange, desc: "Draws the series as they were at a time offset (fetched again for the shifted range).", params: []param{sl("seriesList"), withSuggestions(req("timeShift", tInterval), "1h", "6h", "12h", "1d", "2d", "7d", "14d", "30d"), opt("resetEnd", tBoolean, true), opt("alignDst", tBoolean, false)}, signature: "timeShift(seriesList, timeShift, resetEnd=True, alignDST=False)", fn: fnTimeShift},
		{name: "timeStack", group: gTransform, time: timeOtherRange, desc: "timeShift for each multiple of the unit from timeShiftStart to timeShiftEnd.", params: []param{sl("seriesList"), opt("timeShiftUnit", tInterval, "1d"), opt("timeShiftStart", tInteger, 0), opt("timeShiftEnd", tInteger, 7)}, fn: fnTimeStack},
		{name: "summarize", group: gTransform, time: timeNeighbours, desc: "Aggregates the values into buckets of the interval (aligned to the interval, or to from).", params: []param{sl("seriesList"), withSuggestions(req("intervalString", tInterval), intervalSuggestions...), aggParam("func", "sum"), opt("alignToFrom", tBoolean, false)}, fn: fnSummarize},
		{name: "smartSummarize", group: gTransform, time: timeNeighbours, desc: "Aggregates the values into buckets of the interval starting at from (aligned to a unit if alignTo is given).", params: []param{sl("seriesList"), withSuggestions(req("intervalString", tInterval), intervalSuggestions...), aggParam("func", "sum"), withOptions(opt("alignTo", tString, nil), nil, "years", "months", "weeks", "days", "hours", "minutes", "seconds", true, false)}, fn: fnSmartSummarize},
		{name: "hitcount", group: gTransform, time: timeNeighbours, desc: "Estimates hit counts from a rate series over buckets of the interval.", params: []param{sl("seriesList"), withSuggestions(req("intervalString", tInterval), intervalSuggestions...), opt("alignToInterval", tBoolean, false)}, fn: fnHitcount},

		// Calculate
		{name: "movingAverage", group: gCalculate, time: timeNeighbours, desc: "The average of the previous windowSize points (or time).", params: []param{sl("seriesList"), window, opt("xFilesFactor", tFloat, nil)}, fn: movingFn("average")},
		{name: "movingMedian", group: gCalculate, time: timeNeighbours, desc: "The median of the previous windowSize points (or time).", params: []param{sl("seriesList"), window, opt("xFilesFactor", tFloat, nil)}, fn: movingFn("median")},
		{name: "movingSum", group: gCalculate, time: timeNeighbours, desc: "The sum of the previous windowSize points (or time).", params: []param{sl("seriesList"), window, opt("xFilesFactor", tFloat, nil)}, fn: movingFn("sum")},
		{name: "movingMin", group: gCalculate, time: timeNeighbours, desc: "The minimum of the previous windowSize points (or time).", params: []param{sl("seriesList"), window, opt("xFilesFactor", tFloat, nil)}, fn: movingFn("min")},
		{name: "movingMax", group: gCalculate, time: timeNeighbours, desc: "The maximum of the previous windowSize points (or time).", params: []param{sl("seriesList"), window, opt("xFilesFactor", tFloat, nil)}, fn: movingFn("max")},
		{name: "movingWindow", group: gCalculate, time: timeNeighbours, desc: "An aggregate of the previous windowSize points (or time).", params: []param{sl("seriesList"), window, aggParam("func", "average"), opt("xFilesFactor", tFloat, nil)}, fn: fnMovingWindow},
		{name: "exponentialMovingAverage", group: gCalculate, time: timeNeighbours, desc: "The exponential moving average over windowSize points (or time).", params: []param{sl("seriesList"), window}, fn: fnExponentialMovingAverage},
		{name: "nPercentile", group: gCalculate, time: timeRequestRange, desc: "A constant line at the n-th percentile of each series.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: fnNPercentile},
		{name: "stdev", group: gCalculate, time: timeNeighbours, desc: "The standard deviation over a sliding window of points.", params: []param{sl("seriesList"), req("points", tInteger), opt("windowTolerance", tFloat, 0.1)}, fn: fnStdev},
		{name: "aggregateLine", group: gCalculate, time: timeRequestRange, desc: "A constant line at an aggregate of each series.", params: []param{sl("seriesList"), aggParam("func", "average"), opt("keepStep", tBoolean, false)}, fn: fnAggregateLine},
		{name: "identity", group: gCalculate, time: timeRequestRange, desc: "A series whose value is its timestamp.", params: []param{req("name", tString)}, fn: fnIdentity},

		// Filter Series
		{name: "highest", group: gFilter, time: timeByValues, desc: "The n series with the highest aggregate.", params: []param{sl("seriesList"), lenientReq("n", tInteger), aggParam("func", "average")}, signature: "highest(seriesList, n=1, func='average')", fn: fnHighest},
		{name: "lowest", group: gFilter, time: timeByValues, desc: "The n series with the lowest aggregate.", params: []param{sl("seriesList"), lenientReq("n", tInteger), aggParam("func", "average")}, signature: "lowest(seriesList, n=1, func='average')", fn: fnLowest},
		{name: "highestCurrent", group: gFilter, time: timeByValues, desc: "The n series with the highest last value.", params: []param{sl("seriesList"), req("n", tInteger)}, fn: highestFn("current", true)},
		{name: "highestMax", group: gFilter, time: timeByValues, desc: "The n series with the highest maximum.", params: []param{sl("seriesList"), req("n", tInteger)}, fn: highestFn("max", true)},
		{name: "highestAverage", group: gFilter, time: timeByValues, desc: "The n series with the highest average.", params: []param{sl("seriesList"), req("n", tInteger)}, fn: highestFn("average", true)},
		{name: "lowestCurrent", group: gFilter, time: timeByValues, desc: "The n series with the lowest last value.", params: []param{sl("seriesList"), req("n", tInteger)}, fn: highestFn("current", false)},
		{name: "lowestAverage", group: gFilter, time: timeByValues, desc: "The n series with the lowest average.", params: []param{sl("seriesList"), req("n", tInteger)}, fn: highestFn("average", false)},
		{name: "limit", group: gFilter, time: timeNamesOnly, desc: "The first n series.", params: []param{sl("seriesList"), req("n", tInteger)}, fn: fnLimit},
		{name: "filterSeries", group: gFilter, time: timeByValues, desc: "The series whose aggregate compares to the threshold with the operator.", params: []param{sl("seriesList"), aggParamReq("func"), withOptions(req("operator", tString), "!=", "<", "<=", "=", ">", ">="), req("threshold", tFloat)}, fn: fnFilterSeries},
		{name: "currentAbove", group: gFilter, time: timeByValues, desc: "The series whose last value is above n.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: filterFn("last", ">")},
		{name: "currentBelow", group: gFilter, time: timeByValues, desc: "The series whose last value is at most n.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: filterFn("last", "<=")},
		{name: "maximumAbove", group: gFilter, time: timeByValues, desc: "The series whose maximum is above n.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: filterFn("max", ">")},
		{name: "maximumBelow", group: gFilter, time: timeByValues, desc: "The series whose maximum is at most n.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: filterFn("max", "<=")},
		{name: "minimumAbove", group: gFilter, time: timeByValues, desc: "The series whose minimum is above n.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: filterFn("min", ">")},
		{name: "minimumBelow", group: gFilter, time: timeByValues, desc: "The series whose minimum is at most n.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: filterFn("min", "<=")},
		{name: "averageAbove", group: gFilter, time: timeByValues, desc: "The series whose average is above n.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: filterFn("average", ">")},
		{name: "averageBelow", group: gFilter, time: timeByValues, desc: "The series whose average is at most n.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: filterFn("average", "<=")},
		{name: "removeEmptySeries", group: gFilter, time: timeByValues, desc: "Drops series with no values (or fewer than xFilesFactor of them).", params: []param{sl("seriesList"), opt("xFilesFactor", tFloat, nil)}, fn: fnRemoveEmptySeries},
		{name: "exclude", group: gFilter, time: timeNamesOnly, desc: "Drops the series whose name matches the regular expression.", params: []param{sl("seriesList"), req("pattern", tString)}, fn: fnExclude},
		{name: "grep", group: gFilter, time: timeNamesOnly, desc: "Keeps the series whose name matches the regular expression.", params: []param{sl("seriesList"), req("pattern", tString)}, fn: fnGrep},
		{name: "mostDeviant", group: gFilter, time: timeByValues, desc: "The n series with the largest variance.", params: []param{sl("seriesList"), req("n", tInteger)}, fn: fnMostDeviant},
		{name: "unique", group: gFilter, time: timeNamesOnly, desc: "Drops series whose name was already seen.", params: []param{slMulti("seriesLists", true)}, fn: fnUnique},
		{name: "averageOutsidePercentile", group: gFilter, time: timeByValues, desc: "The series whose average is outside the n-th percentile band of the averages.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: fnAverageOutsidePercentile},
		{name: "removeBetweenPercentile", group: gFilter, time: timeByValues, desc: "The series with a value outside the n-th percentile band at some point.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: fnRemoveBetweenPercentile},

		// Filter Data
		{name: "removeBelowValue", group: gFilterD, time: timeValueMap, desc: "Sets values below n to null.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: removeFn("removeBelowValue", false, false)},
		{name: "removeAboveValue", group: gFilterD, time: timeValueMap, desc: "Sets values above n to null.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: removeFn("removeAboveValue", true, false)},
		{name: "removeBelowPercentile", group: gFilterD, time: timeByValues, desc: "Sets values below the n-th percentile to null.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: removeFn("removeBelowPercentile", false, true)},
		{name: "removeAbovePercentile", group: gFilterD, time: timeByValues, desc: "Sets values above the n-th percentile to null.", params: []param{sl("seriesList"), req("n", tFloat)}, fn: removeFn("removeAbovePercentile", true, true)},

		// Sorting
		{name: "sortBy", group: gSorting, time: timeByValues, desc: "Sorts by an aggregate of each series.", params: []param{sl("seriesList"), aggParam("func", "average"), opt("reverse", tBoolean, false)}, fn: fnSortBy},
		{name: "sortByName", group: gSorting, time: timeNamesOnly, desc: "Sorts by name (natural order puts 2 before 10).", params: []param{sl("seriesList"), opt("natural", tBoolean, false), opt("reverse", tBoolean, false)}, fn: fnSortByName},
		{name: "sortByTotal", group: gSorting, time: timeByValues, desc: "Sorts by the sum of each series, largest first.", params: []param{sl("seriesList")}, fn: fnSortByTotal},
		{name: "sortByMaxima", group: gSorting, time: timeByValues, desc: "Sorts by the maximum of each series, largest first.", params: []param{sl("seriesList")}, fn: fnSortByMaxima},
		{name: "sortByMinima", group: gSorting, time: timeByValues, desc: "Sorts by the minimum of each series, smallest first, dropping series whose maximum is not positive.", params: []param{sl("seriesList")}, fn: fnSortByMinima},

		// Alias
		{name: "alias", group: gAlias, time: timeRename, desc: "Names the series.", params: []param{sl("seriesList"), req("newName", tString)}, fn: fnAlias},
		{name: "aliasByNode", group: gAlias, time: timeRename, desc: "Names each series after the given nodes (or tags) of its path.", params: []param{sl("seriesList"), multi("nodes", tNodeOrTag, true)}, fn: fnAliasByNode},
		{name: "aliasByTags", group: gAlias, time: timeRename, desc: "Names each series after the given tags (or nodes).", params: []param{sl("seriesList"), multi("tags", tNodeOrTag, true)}, fn: fnAliasByNode},
		{name: "aliasByMetric", group: gAlias, time: timeRename, desc: "Names each series after the last node of its path.", params: []param{sl("seriesList")}, fn: fnAliasByMetric},
		{name: "aliasSub", group: gAlias, time: timeRename, desc: "Renames each series with a regular expression substitution (\\1 and \\g<1> refer to groups).", params: []param{sl("seriesList"), req("search", tString), req("replace", tString)}, fn: fnAliasSub},
		{name: "legendValue", group: gAlias, time: timeByValues, desc: "Appends aggregates of each series to its name.", params: []param{sl("seriesList"), withOptions(multi("valuesTypes", tString, false), legendOptions()...)}, signature: "legendValue(seriesList, *valueTypes)", fn: fnLegendValue},
		{name: "cactiStyle", group: gSpecial, time: timeByValues, desc: "Appends current, max and min to each name, Cacti style.", params: []param{sl("seriesList"), withOptions(opt("system", tString, nil), "binary", "si"), opt("units", tString, nil)}, fn: fnCactiStyle},
		{name: "substr", group: gSpecial, time: timeRename, desc: "Names each series after nodes start to stop of its path.", params: []param{sl("seriesList"), opt("start", tNode, 0), opt("stop", tNode, 0)}, fn: fnSubstr},

		// Graph (render-only)
		{name: "color", group: gGraph, time: timeStyling, desc: "Sets the line colour (render only; values unchanged).", params: []param{sl("seriesList"), req("theColor", tString)}, fn: passThrough},
		{name: "lineWidth", group: gGraph, time: timeStyling, desc: "Sets the line width (render only; values unchanged).", params: []param{sl("seriesList"), req("width", tFloat)}, fn: passThrough},
		{name: "alpha", group: gGraph, time: timeStyling, desc: "Sets the line transparency (render only; values unchanged).", params: []param{sl("seriesList"), req("alpha", tFloat)}, fn: passThrough},
		{name: "dashed", group: gGraph, time: timeStyling, desc: "Draws dashed lines (render only; values unchanged).", params: []param{sl("seriesList"), opt("dashLength", tInteger, 5)}, fn: fnDashed},
		{name: "stacked", group: gGraph, time: timeStyling, desc: "Stacks the series on each other.", params: []param{sl("seriesList"), opt("stack", tString, nil)}, signature: "stacked(seriesLists, stackName='__DEFAULT__')", fn: fnStacked},
		{name: "secondYAxis", group: gGraph, time: timeStyling, desc: "Draws on the second Y axis (render only; values unchanged).", params: []param{sl("seriesList")}, fn: renameFn("secondYAxis", "secondYAxis")},
		{name: "drawAsInfinite", group: gGraph, time: timeStyling, desc: "Draws non-zero values as vertical lines (render only; values unchanged).", params: []param{sl("seriesList")}, fn: renameFn("drawAsInfinite", "drawAsInfinite")},
		{name: "areaBetween", group: gGraph, time: timeStyling, desc: "Fills the area between exactly two series.", params: []param{sl("seriesList")}, fn: fnAreaBetween},
		{name: "threshold", group: gGraph, time: timeRequestRange, desc: "A constant line at value, optionally labelled.", params: []param{req("value", tFloat), opt("label", tString, nil), opt("color", tString, nil)}, fn: fnThreshold},

		// Special
		{name: "constantLine", group: gSpecial, time: timeRequestRange, desc: "A constant line at value over the request range.", params: []param{req("value", tFloat)}, fn: fnConstantLine},
		{name: "consolidateBy", group: gSpecial, time: timeRename, desc: "Sets how points are consolidated when there are more than maxDataPoints.", params: []param{sl("seriesList"), withOptions(req("consolidationFunc", tString), "sum", "average", "avg", "avg_zero", "min", "max", "first", "last")}, fn: fnConsolidateBy},
		{name: "cumulative", group: gSpecial, time: timeRename, desc: "consolidateBy(seriesList, 'sum').", params: []param{sl("seriesList")}, fn: fnCumulative},
		{name: "changed", group: gSpecial, time: timeNeighbours, desc: "1 where the value changed from the previous non-null one, else 0.", params: []param{sl("seriesList")}, fn: fnChanged},
		{name: "fallbackSeries", group: gSpecial, time: timeNamesOnly, desc: "The fallback when the series list is empty.", params: []param{sl("seriesList"), sl("fallback")}, fn: fnFallbackSeries},
		{name: "setXFilesFactor", group: gSpecial, time: timeRename, desc: "Sets the share of non-null values consolidation needs.", params: []param{sl("seriesList"), req("xFilesFactor", tFloat)}, fn: fnSetXFilesFactor},
		{name: "seriesByTag", group: gSpecial, time: timeFetch, desc: "The tagged series matching all tag expressions (tag=value, tag!=value, tag=~regex, tag!=~regex).", params: []param{multi("tagExpressions", tString, true)}, fn: nil},
	}
	reg := map[string]*funcDef{}
	for _, d := range defs {
		reg[d.name] = d
	}
	for alias, target := range map[string]string{
		"sum": "sumSeries", "avg": "averageSeries", "max": "maxSeries", "min": "minSeries",
		"pct": "asPercent", "sqrt": "squareRoot", "xFilesFactor": "setXFilesFactor", "diff": "diffSeries",
	} {
		d := *reg[target]
		d.name = alias
		d.signature = ""
		d.time = timeAlias
		reg[alias] = &d
	}
	// groupBy callbacks: an aggregation or an aggregating series function.
	var callbacks []any
	seen := map[string]bool{}
	for _, n := range aggFuncNames {
		callbacks, seen[n] = append(callbacks, n), true
	}
	for n, d := range reg {
		if d.aggregator && !seen[n] {
			callbacks, seen[n] = append(callbacks, n), true
		}
	}
	for _, d := range reg {
		for i := range d.params {
			if d.params[i].typ == tAggOrSeriesFunc {
				d.params[i].options = callbacks
			}
		}
	}
	// timeShift keeps graphite-web's parameter name alignDst in the catalog
	// while callers write alignDST too.
	return reg
}

func legendOptions() []any {
	var out []any
	for _, n := range aggFuncNames {
		out = append(out, n)
	}
	for _, n := range aggFuncNames {
		out = append(out, n+"Series")
	}
	return append(out, "si", "binary")
}

// Catalog is the JSON document /graphite/functions serves (graphite-web's
// format: function name → {name, function, description, module, group, params}).
func Catalog() map[string]any {
	out := make(map[string]any, len(registry))
	for name, d := range registry {
		var params []any
		for _, p := range d.params {
			m := map[string]any{"name": p.name, "type": string(p.typ)}
			if p.required {
				m["required"] = true
			}
			if p.def != nil {
				m["default"] = jsonValue(p.def)
			}
			if p.multiple {
				m["multiple"] = true
			}
			if len(p.options) > 0 {
				opts := make([]any, len(p.options))
				for i, o := range p.options {
					opts[i] = jsonValue(o)
				}
				sort.SliceStable(opts, func(i, j int) bool { return optKey(opts[i]) < optKey(opts[j]) })
				m["options"] = opts
			}
			if len(p.suggestions) > 0 {
				m["suggestions"] = p.suggestions
			}
			params = append(params, m)
		}
		if params == nil {
			params = []any{}
		}
		sig := d.signature
		if sig == "" {
			sig = signature(name, d.params)
		}
		out[name] = map[string]any{
			"name":        name,
			"function":    sig,
			"description": d.desc,
			"module":      "graphite.render.functions",
			"group":       d.group,
			"params":      params,
		}
	}
	return out
}

func optKey(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return x
	}
	return ""
}

// jsonValue makes a default JSON-safe: infinity is written 1e9999 as
// graphite-web's encoder does (JSON parsers read it as Infinity).
func jsonValue(v any) any {
	if f, ok := v.(float64); ok && math.IsInf(f, 1) {
		return json.Number("1e9999")
	}
	return v
}

// signature renders a Python-style signature, e.g. "movingAverage(seriesList, windowSize, xFilesFactor=None)".
func signature(name string, params []param) string {
	var parts []string
	for _, p := range params {
		switch {
		case p.multiple:
			parts = append(parts, "*"+p.name)
		case p.required:
			parts = append(parts, p.name)
		default:
			parts = append(parts, p.name+"="+pyRepr(p.def))
		}
	}
	return name + "(" + strings.Join(parts, ", ") + ")"
}

func pyRepr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return "'" + x + "'"
	case int:
		return strconv.Itoa(x)
	case float64:
		if math.IsInf(x, 1) {
			return "inf"
		}
		return pyFloat(x)
	}
	return "None"
}
