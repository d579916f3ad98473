package functions

import "github.com/meridianhq/meridian/pkg/graphite/parser"

// timeKind says how a function's output depends on time, which decides
// whether the query-frontend may split a render that uses it over time.
// Every registered function declares one (funcDef.time); the zero value is
// an error the registry test reports, so a new function cannot be split or
// left unsplit by accident.
type timeKind uint8

const (
	timeUndeclared timeKind = iota

	// Point-wise in time.
	timeValueMap
	timeRename
	timeStyling
	timeRowWise
	timeNamesOnly
	timeFetch

	// Not point-wise in time.
	timeByValues
	timeNeighbours
	timeOtherRange
	timeRequestRange
	timeRuntimeTargets
	timeUnverified
	timeAlias
)

// timeKinds gives each kind's answer and the reason for it.
//
// A point-wise function, given the same input series (names, tags and
// order), returns the same output series (how many, their names, tags,
// order, consolidation settings and time range) whatever the time range,
// and an output value at an interval depends only on the input values at
// that interval. Evaluating such a target over each part of a range
// therefore gives the unsplit answer's values for that part, provided every
// part fetched the same series; the frontend checks that when it merges the
// parts and answers unsplit otherwise.
var timeKinds = [...]struct {
	pointwise bool
	why       string
}{
	timeUndeclared: {false, ""},

	timeValueMap: {true, "a value map: the output at t is a function of the same series' value at t " +
		"(and constants, and the step for scaleToSeconds); names are derived from the input name; " +
		"transformNull's referenceSeries is read at t too"},
	timeRename: {true, "renames and metadata: values untouched, the new name comes from the old name, " +
		"tags or the arguments only"},
	timeStyling: {true, "a styling pass-through: render options only (stacked adds the series before " +
		"it at the same t)"},
	timeRowWise: {true, "a row-wise combination: the output at t aggregates the inputs' values at t; " +
		"which groups exist comes from the input names; every aggregation and groupBy callback is row-wise"},
	timeNamesOnly: {true, "list structure from names only"},
	timeFetch:     {true, "a fetch (the parser makes seriesByTag a call)"},

	timeByValues: {false, "filters, sorts, renames or rescales series by an aggregate of their values " +
		"over the whole range (highestMax, removeEmptySeries, sortByMaxima, currentAbove, minMax, " +
		"legendValue, ...): each part would decide on its own values"},
	timeNeighbours: {false, "looks at neighbouring points (perSecond, derivative, moving*, integral, " +
		"summarize, hitcount, keepLastValue, delay, changed, ...)"},
	timeOtherRange:   {false, "fetches another range (timeShift, timeStack)"},
	timeRequestRange: {false, "makes series over the request range (constantLine, threshold, identity, aggregateLine, nPercentile)"},
	timeRuntimeTargets: {false, "evaluates targets it builds at run time from series names (applyByNode's " +
		"template), whose functions cannot be checked beforehand"},
	timeUnverified: {false, "not shown to be point-wise in all its forms (asPercent's totals and node " +
		"groups, weightedAverage's pairing by nodes); answered unsplit until checked"},
	timeAlias: {false, "a short alias (sum, avg, max, min, diff, sqrt, pct, xFilesFactor): the split " +
		"allow-list has always named functions by their full name only"},
}

// Pointwise reports whether every function target calls is point-wise in
// time (see timeKinds), so that the query-frontend may evaluate it over
// parts of the range and join the answers. A function that is not
// registered is not.
func Pointwise(target *parser.Expr) bool {
	if target.Kind != parser.KindCall {
		return true
	}
	d, ok := registry[target.Name]
	if !ok || !timeKinds[d.time].pointwise {
		return false
	}
	if target.Name == "countSeries" && len(target.Args)+len(target.KwArgs) == 0 {
		return false // constantLine(0) over the request range
	}
	for _, a := range target.Args {
		if !Pointwise(a) {
			return false
		}
	}
	for _, kw := range target.KwArgs {
		if !Pointwise(kw.Value) {
			return false
		}
	}
	return true
}
