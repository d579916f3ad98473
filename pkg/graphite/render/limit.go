package render

import "fmt"

// Error IDs of the Graphite query API (docs/errors.md).
const (
	ErrIDMaxSeriesPerRender = "err-meridian-graphite-max-series-per-render"
	ErrIDMaxPointsPerRender = "err-meridian-graphite-max-points-per-render"
)

// LimitError is a per-tenant limit a render ran into; the API answers 422.
type LimitError struct {
	ID  string
	Msg string
}

func (e *LimitError) Error() string { return e.ID + ": " + e.Msg }

// CheckLimits is the error of the per-tenant render budget
// (graphite_max_series_per_render, graphite_max_points_per_render; 0 means
// no limit) once a render has fetched series series and points points, or
// nil within it. A render checks it after every series it fetches.
func CheckLimits(maxSeries, maxPoints int, series int, points int64) error {
	if maxSeries > 0 && series > maxSeries {
		return &LimitError{ID: ErrIDMaxSeriesPerRender, Msg: fmt.Sprintf("the request fetches more than %d series; narrow the globs or raise the per-tenant limit graphite_max_series_per_render (-graphite.max-series-per-render)", maxSeries)}
	}
	if maxPoints > 0 && points > int64(maxPoints) {
		return &LimitError{ID: ErrIDMaxPointsPerRender, Msg: fmt.Sprintf("the request fetches more than %d points (series × intervals of graphite_step); shorten the time range, narrow the globs or raise the per-tenant limit graphite_max_points_per_render (-graphite.max-points-per-render)", maxPoints)}
	}
	return nil
}
