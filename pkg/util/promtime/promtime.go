// Package promtime parses the times and durations of Prometheus' HTTP API
// (start, end, time, step, timeout, lookback_delta) exactly as Prometheus'
// web/api/v1 does, and converts them to the milliseconds the PromQL engine
// evaluates at.
//
// It is the one home of these rules: the query-frontend splits a range
// query on the grid of points the querier will evaluate, so both must read
// the parameters the same way, down to the rounding of fractional seconds
// and the sentinel times MinTime and MaxTime. They do because both call
// ParseTime and ParseDuration.
package promtime

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
)

var (
	// MinTime and MaxTime are the defaults of an optional start and end,
	// the same instants as Prometheus' v1.MinTime and v1.MaxTime (which
	// are not the extremes of int64 milliseconds, for historical reasons
	// Prometheus keeps).
	MinTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	MaxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	// minTimeFormatted and maxTimeFormatted are accepted although
	// time.Parse reads four-digit years only, so that a client can send
	// back the defaults it was shown.
	minTimeFormatted = MinTime.Format(time.RFC3339Nano)
	maxTimeFormatted = MaxTime.Format(time.RFC3339Nano)

	// minNano and maxNano bound the times whose Unix nanoseconds fit in
	// an int64, which the engine's conversion to milliseconds needs.
	minNano = time.Unix(0, math.MinInt64)
	maxNano = time.Unix(0, math.MaxInt64)
)

// ParseTime reads a time: Unix seconds with an optional fraction (rounded
// to milliseconds), an RFC 3339 time, or the formatted MinTime or MaxTime.
func ParseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(t)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTimeFormatted:
		return MinTime, nil
	case maxTimeFormatted:
		return MaxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// ParseTimeParam reads the optional time parameter name of form values
// got by get (such as http.Request.FormValue); def when it is empty.
func ParseTimeParam(get func(string) string, name string, def time.Time) (time.Time, error) {
	v := get(name)
	if v == "" {
		return def, nil
	}
	t, err := ParseTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time value for '%s': %w", name, err)
	}
	return t, nil
}

// ParseDuration reads a duration: seconds as a float (truncated to
// nanoseconds), or a Prometheus duration such as 5m or 1h30m.
func ParseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ns := d * float64(time.Second)
		// float64(math.MaxInt64) is 2^63, which int64 cannot hold, and
		// NaN passes every comparison.
		if math.IsNaN(ns) || ns >= float64(math.MaxInt64) || ns < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ns), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// Millis is t in Unix milliseconds as the PromQL engine converts it (from
// Unix nanoseconds, truncated towards zero). ok is false when the engine's
// conversion is not exact: t is not a whole millisecond, or lies outside
// the years 1678 to 2262 whose nanoseconds an int64 holds (the engine's
// milliseconds are then not t's, e.g. for MinTime and MaxTime).
func Millis(t time.Time) (ms int64, ok bool) {
	if t.Before(minNano) || t.After(maxNano) {
		return 0, false
	}
	ns := t.UnixNano()
	return ns / int64(time.Millisecond), ns%int64(time.Millisecond) == 0
}

// DurationMillis is d in milliseconds; ok is false when d is not a whole
// number of them (the engine would truncate it).
func DurationMillis(d time.Duration) (ms int64, ok bool) {
	return int64(d / time.Millisecond), d%time.Millisecond == 0
}

// FormatMillis writes Unix milliseconds as seconds that ParseTime reads
// back to the same instant.
func FormatMillis(ms int64) string {
	return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)
}

// FormatDurationMillis writes milliseconds as a duration that
// ParseDuration reads back exactly: whole seconds as a number, anything
// else in milliseconds ("1.001" as float seconds would read back as
// 1.000999999s).
func FormatDurationMillis(ms int64) string {
	if ms%1000 == 0 {
		return strconv.FormatInt(ms/1000, 10)
	}
	return strconv.FormatInt(ms, 10) + "ms"
}
