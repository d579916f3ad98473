// Package render is the Graphite render answer: its parameters, its formats
// (json, csv, raw) and the query-frontend's part format, the render budget
// and Graphite's time syntax. The querier's API (package api) answers with
// it; the query-frontend parses, merges and encodes split renders with it.
package render

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Render formats.
const (
	FormatJSON = "json"
	FormatCSV  = "csv"
	FormatRaw  = "raw"
	// FormatPart is the query-frontend's internal format (docs/graphite.md):
	// every series with its metadata and exact values, and the series each
	// fetch returned, so that the frontend can merge the answers of time
	// splits and consolidate and encode them itself. maxDataPoints and
	// noNullPoints are ignored with it; with it, the parameters seriesFrom
	// and seriesUntil (Unix seconds) make every fetch return the series
	// with data in (seriesFrom, seriesUntil], all null where they have no
	// data in (from, until].
	FormatPart = "meridian-part"
)

// Params are the parameters of a render request.
type Params struct {
	// Targets are the non-blank targets, in request order.
	Targets       []string
	From, Until   int64 // Unix seconds; from exclusive, until inclusive
	MaxDataPoints int   // 0: no consolidation
	Format        string
	NoNullPoints  bool
	// SeriesFrom and SeriesUntil are FormatPart's wider range for the set
	// of series (both 0 when not given).
	SeriesFrom, SeriesUntil int64
}

// ParseParams reads the parameters of /graphite/render from form
// (query string and POSTed form); now resolves relative times. An error is
// the client's (answered 400).
func ParseParams(form url.Values, now time.Time) (Params, error) {
	from, until, err := FormRange(form, now, "-24h")
	if err != nil {
		return Params{}, err
	}
	p := Params{From: from, Until: until, Format: form.Get("format"), NoNullPoints: Truthy(form.Get("noNullPoints"))}
	if v := form.Get("maxDataPoints"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return Params{}, paramError("maxDataPoints=%q is not a positive number", v)
		}
		p.MaxDataPoints = int(f)
	}
	if p.Format == "" {
		p.Format = FormatJSON
	}
	switch p.Format {
	case FormatJSON, FormatCSV, FormatRaw, FormatPart:
	default:
		return Params{}, paramError("format=%q is not supported; use json, csv or raw", p.Format)
	}
	if p.Format == FormatPart && (form.Get("seriesFrom") != "" || form.Get("seriesUntil") != "") {
		sf, err1 := strconv.ParseInt(form.Get("seriesFrom"), 10, 64)
		su, err2 := strconv.ParseInt(form.Get("seriesUntil"), 10, 64)
		if err1 != nil || err2 != nil || sf >= su {
			return Params{}, paramError("seriesFrom=%q and seriesUntil=%q must be Unix seconds, seriesFrom before seriesUntil", form.Get("seriesFrom"), form.Get("seriesUntil"))
		}
		p.SeriesFrom, p.SeriesUntil = sf, su
	}
	for _, t := range form["target"] {
		if strings.TrimSpace(t) != "" {
			p.Targets = append(p.Targets, t)
		}
	}
	return p, nil
}

// ParamError is a request parameter the client got wrong: the API answers
// it 400 with its message.
type ParamError struct{ msg string }

func (e *ParamError) Error() string { return e.msg }

func paramError(format string, args ...any) *ParamError {
	return &ParamError{msg: fmt.Sprintf(format, args...)}
}

// FormRange reads from (default defFrom) and until (default now) of form,
// in the time zone tz, as Unix seconds.
func FormRange(form url.Values, now time.Time, defFrom string) (int64, int64, error) {
	loc, err := location(form)
	if err != nil {
		return 0, 0, err
	}
	parse := func(name, def string) (int64, error) {
		v := form.Get(name)
		if v == "" {
			v = def
		}
		t, err := ParseTime(v, now, loc)
		if err != nil {
			return 0, paramError("parameter %s: %v", name, err)
		}
		return t.Unix(), nil
	}
	from, err := parse("from", defFrom)
	if err != nil {
		return 0, 0, err
	}
	until, err := parse("until", "now")
	if err != nil {
		return 0, 0, err
	}
	if from >= until {
		return 0, 0, paramError("from (%d) must be before until (%d)", from, until)
	}
	return from, until, nil
}

// location is the tz parameter (UTC when absent).
func location(form url.Values) (*time.Location, error) {
	tz := form.Get("tz")
	if tz == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, paramError("unknown time zone tz=%q", tz)
	}
	return loc, nil
}

// Truthy reports whether a boolean parameter is set, as graphite-web reads
// it.
func Truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}
