package functions

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/graphite/parser"
)

// TestEveryFunctionDeclaresTime: a function added to the registry without
// saying whether it is point-wise in time fails here instead of being
// left out of (or let into) split renders silently.
func TestEveryFunctionDeclaresTime(t *testing.T) {
	for name, d := range registry {
		require.NotEqual(t, timeUndeclared, d.time, "%s declares no time kind (funcDef.time, see pointwise.go)", name)
		require.Less(t, int(d.time), len(timeKinds), name)
		require.NotEmpty(t, timeKinds[d.time].why, name)
	}
}

// frontendPointwiseList is the allow-list the query-frontend kept itself
// before the registry declared the property: the registry must answer the
// same.
var frontendPointwiseList = []string{
	// A value map.
	"scale", "scaleToSeconds", "offset", "add", "absolute", "invert", "log", "pow",
	"squareRoot", "exp", "sigmoid", "logit", "round", "isNonNull", "transformNull",
	"removeBelowValue", "removeAboveValue",
	// Renames and metadata.
	"alias", "aliasByNode", "aliasByTags", "aliasByMetric", "aliasSub", "substr",
	"consolidateBy", "cumulative", "setXFilesFactor",
	// Styling pass-throughs.
	"color", "lineWidth", "alpha", "dashed", "stacked", "secondYAxis", "drawAsInfinite", "areaBetween",
	// Row-wise combinations.
	"aggregate", "sumSeries", "averageSeries", "maxSeries", "minSeries", "diffSeries",
	"stddevSeries", "rangeOfSeries", "multiplySeries", "powSeries", "countSeries",
	"percentileOfSeries", "divideSeries", "divideSeriesLists", "aggregateSeriesLists",
	"sumSeriesLists", "diffSeriesLists", "multiplySeriesLists", "aggregateWithWildcards",
	"sumSeriesWithWildcards", "averageSeriesWithWildcards", "multiplySeriesWithWildcards",
	"groupByNode", "groupByNodes", "groupByTags",
	// List structure from names only.
	"group", "exclude", "grep", "unique", "sortByName", "limit", "fallbackSeries",
	// Fetches.
	"seriesByTag",
}

func TestPointwiseSetIsTheFrontendsOldList(t *testing.T) {
	var got []string
	for name, d := range registry {
		if timeKinds[d.time].pointwise {
			got = append(got, name)
		}
	}
	want := append([]string(nil), frontendPointwiseList...)
	sort.Strings(got)
	sort.Strings(want)
	require.Equal(t, want, got)
}

func TestPointwise(t *testing.T) {
	for target, want := range map[string]bool{
		"a.b.c":                       true,
		"sumSeries(a.*, b.*)":         true,
		"aliasByNode(scale(a.*,2),1)": true,
		"groupByTags(seriesByTag('name=x'), 'sum', 'dc')": true,
		"sumSeries(movingAverage(a.*, 5))":                false,
		"highestMax(a.*, 2)":                              false,
		"constantLine(1)":                                 false,
		"countSeries()":                                   false,
		"countSeries(a.*)":                                true,
		"alias(a.b, name=keepLastValue(a.b))":             false,
		"sum(a.*)":                                        false,
		"noSuchFunction(a.*)":                             false,
	} {
		x, err := parser.Parse(target)
		require.NoError(t, err)
		require.Equal(t, want, Pointwise(x), target)
	}
}
