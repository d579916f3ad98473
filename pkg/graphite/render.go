package graphite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meridianhq/meridian/pkg/graphite/functions"
	"github.com/meridianhq/meridian/pkg/graphite/parser"
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

// RenderParams are the parameters of a render request.
type RenderParams struct {
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

// ParseRenderParams reads the parameters of /graphite/render from form
// (query string and POSTed form); now resolves relative times. An error is
// the client's (answered 400).
func ParseRenderParams(form url.Values, now time.Time) (RenderParams, error) {
	from, until, err := formRange(form, now, "-24h")
	if err != nil {
		return RenderParams{}, err
	}
	p := RenderParams{From: from, Until: until, Format: form.Get("format"), NoNullPoints: truthy(form.Get("noNullPoints"))}
	if v := form.Get("maxDataPoints"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return RenderParams{}, badRequest("maxDataPoints=%q is not a positive number", v)
		}
		p.MaxDataPoints = int(f)
	}
	if p.Format == "" {
		p.Format = FormatJSON
	}
	switch p.Format {
	case FormatJSON, FormatCSV, FormatRaw, FormatPart:
	default:
		return RenderParams{}, badRequest("format=%q is not supported; use json, csv or raw", p.Format)
	}
	if p.Format == FormatPart && (form.Get("seriesFrom") != "" || form.Get("seriesUntil") != "") {
		sf, err1 := strconv.ParseInt(form.Get("seriesFrom"), 10, 64)
		su, err2 := strconv.ParseInt(form.Get("seriesUntil"), 10, 64)
		if err1 != nil || err2 != nil || sf >= su {
			return RenderParams{}, badRequest("seriesFrom=%q and seriesUntil=%q must be Unix seconds, seriesFrom before seriesUntil", form.Get("seriesFrom"), form.Get("seriesUntil"))
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

// Render is /graphite/render: every target is parsed, evaluated over
// (from, until] and consolidated to maxDataPoints.
func (a *API) Render(w http.ResponseWriter, r *http.Request) { a.serve(w, r, a.render) }

func (a *API) render(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	p, err := ParseRenderParams(r.Form, a.now())
	if err != nil {
		return err
	}
	f, err := a.tenantLimits(r.Context())
	if err != nil {
		return err
	}
	// The answer written below is the last reader of the fetched values.
	defer f.release()
	// The fetcher decodes new series on every call: no copy needed.
	req := &functions.Request{From: p.From, Until: p.Until, MaxDataPoints: p.MaxDataPoints, Fetcher: f, MutableFetches: true}
	var rec *recordingFetcher
	if p.Format == FormatPart {
		f.seriesFrom, f.seriesUntil = p.SeriesFrom, p.SeriesUntil
		rec = &recordingFetcher{f: f}
		req.Fetcher, req.MaxDataPoints = rec, 0
	}
	var all []*functions.Series
	for _, target := range p.Targets {
		expr, err := parser.Parse(target)
		if err != nil {
			a.targets.WithLabelValues("invalid").Inc()
			return err
		}
		series, err := a.eval(r.Context(), req, expr)
		if err != nil {
			a.targets.WithLabelValues(outcome(err)).Inc()
			return err
		}
		a.targets.WithLabelValues("ok").Inc()
		all = append(all, series...)
	}
	a.renderSeries.Observe(float64(len(all)))
	if rec != nil {
		b, err := json.Marshal(NewPart(rec.fetched, all))
		if err != nil {
			return fmt.Errorf("encode the render answer: %w", err)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return nil
	}
	all = ConsolidateRender(all, p.MaxDataPoints)
	w.Header().Set("Content-Type", RenderContentType(p.Format))
	WriteRender(w, all, p.Format, p.NoNullPoints)
	return nil
}

// ConsolidateRender consolidates every series of a render answer to at
// most maxDataPoints points (0: unchanged), as graphite-web's render does:
// over the answer's whole span (latest end - earliest start), not each
// series' own.
func ConsolidateRender(all []*functions.Series, maxDataPoints int) []*functions.Series {
	if maxDataPoints <= 0 || len(all) == 0 {
		return all
	}
	lo, hi := all[0].Start, all[0].End
	for _, s := range all {
		lo, hi = min(lo, s.Start), max(hi, s.End)
	}
	out := make([]*functions.Series, len(all))
	for i, s := range all {
		out[i] = functions.ConsolidateRange(s, maxDataPoints, hi-lo)
	}
	return out
}

// RenderContentType is the Content-Type of a render answer in format.
func RenderContentType(format string) string {
	switch format {
	case FormatCSV:
		return "text/csv"
	case FormatRaw:
		return "text/plain"
	}
	return "application/json"
}

// WriteRender encodes a render answer in format (json, csv or raw).
func WriteRender(w io.Writer, all []*functions.Series, format string, noNull bool) {
	switch format {
	case FormatCSV:
		writeCSV(w, all, noNull)
	case FormatRaw:
		writeRaw(w, all)
	default:
		writeRenderJSON(w, all, noNull)
	}
}

// RenderLimitError is the error of the per-tenant render budget
// (graphite_max_series_per_render, graphite_max_points_per_render; 0 means
// no limit) once a render has fetched series series and points points, or
// nil within it. A render checks it after every series it fetches.
func RenderLimitError(maxSeries, maxPoints int, series int, points int64) error {
	if maxSeries > 0 && series > maxSeries {
		return &LimitError{ID: ErrIDMaxSeriesPerRender, Msg: fmt.Sprintf("the request fetches more than %d series; narrow the globs or raise the per-tenant limit graphite_max_series_per_render (-graphite.max-series-per-render)", maxSeries)}
	}
	if maxPoints > 0 && points > int64(maxPoints) {
		return &LimitError{ID: ErrIDMaxPointsPerRender, Msg: fmt.Sprintf("the request fetches more than %d points (series × intervals of graphite_step); shorten the time range, narrow the globs or raise the per-tenant limit graphite_max_points_per_render (-graphite.max-points-per-render)", maxPoints)}
	}
	return nil
}

// Part is a render answer in FormatPart.
type Part struct {
	// Fetched are the names of the series each fetch of the evaluation
	// returned, fetches in the order they were made.
	Fetched [][]string `json:"fetched"`
	// Series is the answer before consolidation.
	Series []PartSeries `json:"series"`
}

// PartSeries is one series of a Part.
type PartSeries struct {
	Name              string            `json:"name"`
	Tags              map[string]string `json:"tags"`
	PathExpression    string            `json:"pathExpression"`
	ConsolidationFunc string            `json:"consolidationFunc"`
	XFilesFactor      float64           `json:"xFilesFactor"`
	Start             int64             `json:"start"`
	End               int64             `json:"end"`
	Step              int64             `json:"step"`
	Values            PartValues        `json:"values"`
}

// NewPart is the Part of evaluated series and the fetches that made them.
func NewPart(fetched [][]string, all []*functions.Series) Part {
	p := Part{Fetched: fetched, Series: make([]PartSeries, len(all))}
	if p.Fetched == nil {
		p.Fetched = [][]string{}
	}
	for i, s := range all {
		p.Series[i] = PartSeries{
			Name: s.Name, Tags: s.Tags, PathExpression: s.PathExpression,
			ConsolidationFunc: s.ConsolidationFunc, XFilesFactor: s.XFilesFactor,
			Start: s.Start, End: s.End, Step: s.Step, Values: s.Values,
		}
	}
	return p
}

// Series is s as the evaluator's series.
func (s PartSeries) Series() *functions.Series {
	return &functions.Series{
		Name: s.Name, Tags: s.Tags, PathExpression: s.PathExpression,
		ConsolidationFunc: s.ConsolidationFunc, XFilesFactor: s.XFilesFactor,
		Start: s.Start, End: s.End, Step: s.Step, Values: s.Values,
	}
}

// PartValues are values in JSON that keep every float64: null for NaN
// (Graphite's null), "+Inf" and "-Inf" for the infinities, numbers
// otherwise.
type PartValues []float64

// MarshalJSON implements json.Marshaler.
func (v PartValues) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+8*len(v))
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case math.IsNaN(x):
			b = append(b, "null"...)
		case math.IsInf(x, 1):
			b = append(b, `"+Inf"`...)
		case math.IsInf(x, -1):
			b = append(b, `"-Inf"`...)
		default:
			b = strconv.AppendFloat(b, x, 'g', -1, 64)
		}
	}
	return append(b, ']'), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (v *PartValues) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*v = nil
		return nil
	}
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return errors.New("values: not an array")
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	out := PartValues{}
	if s != "" {
		out = make(PartValues, 0, strings.Count(s, ",")+1)
		for e := range strings.SplitSeq(s, ",") {
			e = strings.TrimSpace(e)
			switch e {
			case "null":
				out = append(out, math.NaN())
			case `"+Inf"`:
				out = append(out, math.Inf(1))
			case `"-Inf"`:
				out = append(out, math.Inf(-1))
			default:
				x, err := strconv.ParseFloat(e, 64)
				if err != nil {
					return fmt.Errorf("values: %q is not a number", e)
				}
				out = append(out, x)
			}
		}
	}
	*v = out
	return nil
}

// recordingFetcher notes the names of the series of every fetch, for
// FormatPart.
type recordingFetcher struct {
	f functions.Fetcher

	mu      sync.Mutex
	fetched [][]string
}

func (r *recordingFetcher) note(list []*functions.Series) {
	names := make([]string, len(list))
	for i, s := range list {
		names[i] = s.Name
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fetched = append(r.fetched, names)
}

func (r *recordingFetcher) FetchPath(ctx context.Context, glob string, from, until int64) ([]*functions.Series, error) {
	list, err := r.f.FetchPath(ctx, glob, from, until)
	if err == nil {
		r.note(list)
	}
	return list, err
}

func (r *recordingFetcher) FetchTagged(ctx context.Context, exprs []string, from, until int64) ([]*functions.Series, error) {
	list, err := r.f.FetchTagged(ctx, exprs, from, until)
	if err == nil {
		r.note(list)
	}
	return list, err
}

func outcome(err error) string {
	var le *LimitError
	var ie *functions.InputError
	switch {
	case errors.As(err, &le):
		return "limit"
	case errors.As(err, &ie):
		return "invalid"
	}
	return "error"
}

func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// formatValue writes a value as graphite-web's JSON does: null for NaN,
// 1e9999 / -1e9999 for infinities (Python's float encoder), shortest
// round-tripping decimal otherwise.
func formatValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "null"...)
	case math.IsInf(v, 1):
		return append(b, "1e9999"...)
	case math.IsInf(v, -1):
		return append(b, "-1e9999"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func writeRenderJSON(w io.Writer, all []*functions.Series, noNull bool) {
	b := make([]byte, 0, 4096)
	b = append(b, '[')
	first := true
	for _, s := range all {
		if noNull && allNull(s.Values) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		name, _ := json.Marshal(s.Name)
		tags := s.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		tj, _ := json.Marshal(tags)
		b = append(b, `{"target":`...)
		b = append(b, name...)
		b = append(b, `,"tags":`...)
		b = append(b, tj...)
		b = append(b, `,"datapoints":[`...)
		firstPoint := true
		for i, v := range s.Values {
			if noNull && math.IsNaN(v) {
				continue
			}
			if !firstPoint {
				b = append(b, ',')
			}
			firstPoint = false
			b = append(b, '[')
			b = formatValue(b, v)
			b = append(b, ',')
			b = strconv.AppendInt(b, s.Start+int64(i)*s.Step, 10)
			b = append(b, ']')
		}
		b = append(b, "]}"...)
		if len(b) > 1<<20 {
			_, _ = w.Write(b)
			b = b[:0]
		}
	}
	b = append(b, ']')
	_, _ = w.Write(b)
}

func allNull(vs []float64) bool {
	for _, v := range vs {
		if !math.IsNaN(v) {
			return false
		}
	}
	return true
}

// writeCSV writes name,YYYY-MM-DD HH:MM:SS,value lines (UTC), an empty value
// for null, as graphite-web's csv format.
func writeCSV(w io.Writer, all []*functions.Series, noNull bool) {
	var b []byte
	for _, s := range all {
		name := s.Name
		if strings.ContainsAny(name, ",\"\n") {
			name = `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
		}
		for i, v := range s.Values {
			if noNull && math.IsNaN(v) {
				continue
			}
			b = append(b, name...)
			b = append(b, ',')
			b = time.Unix(s.Start+int64(i)*s.Step, 0).UTC().AppendFormat(b, "2006-01-02 15:04:05")
			b = append(b, ',')
			if !math.IsNaN(v) {
				b = strconv.AppendFloat(b, v, 'g', -1, 64)
			}
			b = append(b, '\r', '\n')
		}
	}
	_, _ = w.Write(b)
}

// writeRaw writes name,start,end,step|v1,v2,... per series, None for null.
func writeRaw(w io.Writer, all []*functions.Series) {
	var b []byte
	for _, s := range all {
		b = append(b, s.Name...)
		b = append(b, ',')
		b = strconv.AppendInt(b, s.Start, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, s.End, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, s.Step, 10)
		b = append(b, '|')
		for i, v := range s.Values {
			if i > 0 {
				b = append(b, ',')
			}
			if math.IsNaN(v) {
				b = append(b, "None"...)
			} else {
				b = strconv.AppendFloat(b, v, 'g', -1, 64)
			}
		}
		b = append(b, '\n')
	}
	_, _ = w.Write(b)
}
