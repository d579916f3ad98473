// Package functions evaluates parsed Graphite targets with graphite-web's
// semantics: the function library, consolidation and null handling.
package functions

import "context"

// Series is one Graphite series on a fixed step. Values[i] is the value of
// the interval starting at Start+i*Step; math.NaN() is Graphite's null.
// End is Start+len(Values)*Step (exclusive), as graphite-web's TimeSeries.
type Series struct {
	Name           string            // display name (what render returns as "target")
	Tags           map[string]string // always has "name"; parsed from the path for untagged series
	PathExpression string            // the expression that produced it (graphite-web's pathExpression)
	Start, End     int64             // seconds
	Step           int64             // seconds
	Values         []float64

	ConsolidationFunc string  // "average" (default), "sum", "min", "max", "first", "last"
	XFilesFactor      float64 // share of non-null points a consolidated bucket needs
}

// Fetcher reads raw series from storage. from is exclusive and until
// inclusive, as in graphite-web; the returned series are aligned to their step.
type Fetcher interface {
	// FetchPath returns the untagged series whose path matches a glob.
	FetchPath(ctx context.Context, glob string, from, until int64) ([]*Series, error)
	// FetchTagged returns the tagged series matching seriesByTag expressions
	// such as "name=cpu", "dc!=x", "host=~web.*", "env!=~dev|test".
	FetchTagged(ctx context.Context, exprs []string, from, until int64) ([]*Series, error)
}

// Request is one render: the targets share its time range and limits.
type Request struct {
	From, Until   int64 // seconds; from exclusive, until inclusive
	MaxDataPoints int   // 0 = no consolidation
	Fetcher       Fetcher

	// MutableFetches says the Fetcher returns new slices on every call
	// that the evaluator may change in place; without it every fetched
	// series is copied first (graphite functions modify their input).
	MutableFetches bool
}
