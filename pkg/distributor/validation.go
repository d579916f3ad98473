package distributor

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/meridianhq/meridian/pkg/limits"
)

// maxShownRejections is how many rejected series a response lists.
const maxShownRejections = 5

// rejections accumulates the series removed from one request. Its maps are
// only allocated once something is rejected, so the happy path costs nothing.
type rejections struct {
	series      int            // series rejected
	seriesByID  map[string]int // series rejected per error ID
	samplesByID map[string]int // samples and histogram samples rejected per error ID
	shown       []string       // the first maxShownRejections lines: "<id>: <message>"

	track   bool           // record byIndex
	byIndex map[int]string // index in the request as passed → error ID, when track
}

// validateOptions choose the rules of validateRequest.
type validateOptions struct {
	// graphiteNames accepts metric and label names as Graphite writes them
	// (any non-empty UTF-8) instead of Prometheus' legacy character set.
	graphiteNames bool
	// trackIndexes records which series, by index as passed, were rejected.
	trackIndexes bool
}

// add records one rejected series; render is only called for the lines that
// will be shown.
func (r *rejections) add(id string, samples int, render func() string) {
	r.addAt(-1, id, samples, render)
}

// addAt is add for the series at index idx of the request as passed (-1:
// unknown).
func (r *rejections) addAt(idx int, id string, samples int, render func() string) {
	if r.seriesByID == nil {
		r.seriesByID = map[string]int{}
		r.samplesByID = map[string]int{}
	}
	if r.track && idx >= 0 {
		if r.byIndex == nil {
			r.byIndex = map[int]string{}
		}
		r.byIndex[idx] = id
	}
	r.series++
	r.seriesByID[id]++
	r.samplesByID[id] += samples
	if len(r.shown) < maxShownRejections {
		r.shown = append(r.shown, id+": "+render())
	}
}

// report renders the rejections as a response body; othersStored says
// whether the series not listed were stored.
func (r *rejections) report(totalSeries int, othersStored bool) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.series))
	b.WriteString(" of ")
	b.WriteString(strconv.Itoa(totalSeries))
	b.WriteString(" series rejected")
	if r.series > len(r.shown) {
		b.WriteString(" (first ")
		b.WriteString(strconv.Itoa(len(r.shown)))
		b.WriteString(" shown)")
	}
	if othersStored {
		b.WriteString(", the other series were stored:\n")
	} else {
		b.WriteString(":\n")
	}
	for _, line := range r.shown {
		b.WriteByte(' ')
		b.WriteString(line)
		b.WriteByte('\n')
	}
	ids := make([]string, 0, len(r.seriesByID))
	for id := range r.seriesByID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	b.WriteString("rejected series per error ID:")
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte(' ')
		b.WriteString(id)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(r.seriesByID[id]))
	}
	b.WriteByte('\n')
	return b.String()
}

// validateRequest removes from req.Timeseries, in place and keeping their
// order, the series that fail validation (recorded in rej) and the series
// that carry neither samples nor histograms (ignored, as Prometheus does).
// It sorts unsorted label sets and drops labels with empty values.
// A rejected series is rejected whole, good samples included: a sender
// whose series fails here fails the same way on every retry.
//
// With opts.trackIndexes it returns, for each series kept, its index in the
// request as passed; otherwise nil.
func validateRequest(req *prompb.WriteRequest, lim *limits.Limits, now time.Time, rej *rejections, opts validateOptions) []int {
	nowMs := now.UnixMilli()
	maxTs := nowMs + time.Duration(lim.CreationGracePeriod).Milliseconds()
	var origIdx []int
	if opts.trackIndexes {
		origIdx = make([]int, 0, len(req.Timeseries))
	}
	kept := 0
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		if len(ts.Samples) == 0 && len(ts.Histograms) == 0 {
			continue
		}
		if verr, ok := validateSeries(ts, lim, maxTs, opts.graphiteNames); !ok {
			rej.addAt(i, verr.id, len(ts.Samples)+len(ts.Histograms), func() string { return verr.message(ts, nowMs) })
			continue
		}
		if kept != i {
			req.Timeseries[kept] = req.Timeseries[i]
		}
		if opts.trackIndexes {
			origIdx = append(origIdx, i)
		}
		kept++
	}
	clear(req.Timeseries[kept:])
	req.Timeseries = req.Timeseries[:kept]
	return origIdx
}

// validateSeries checks one series that has samples or histograms. It
// normalises the labels first (drops empty values, sorts) and does not
// allocate when the series is valid.
//
// graphiteNames accepts any non-empty UTF-8 metric and label names (Graphite
// paths have dots, tags any character but ;!^=).
func validateSeries(ts *prompb.TimeSeries, lim *limits.Limits, maxTs int64, graphiteNames bool) (validationError, bool) {
	ls := ts.Labels
	n := 0
	for i := range ls {
		if ls[i].Value == "" {
			continue
		}
		if n != i {
			ls[n] = ls[i]
		}
		n++
	}
	if n != len(ls) {
		clear(ls[n:])
		ls = ls[:n]
		ts.Labels = ls
	}
	if !labelsSorted(ls) {
		slices.SortStableFunc(ls, compareLabelNames)
	}

	if len(ls) > lim.MaxLabelNamesPerSeries {
		return validationError{id: ErrIDTooManyLabels, labelIdx: -1, actual: int64(len(ls)), limit: int64(lim.MaxLabelNamesPerSeries)}, false
	}
	hasName := false
	for i := range ls {
		name, value := ls[i].Name, ls[i].Value
		switch {
		case !utf8.ValidString(name):
			return validationError{id: ErrIDInvalidUTF8, labelIdx: i}, false
		case len(name) > lim.MaxLabelNameLength:
			return validationError{id: ErrIDLabelNameTooLong, labelIdx: i, actual: int64(len(name)), limit: int64(lim.MaxLabelNameLength)}, false
		case !validLabelName(name) && !(graphiteNames && name != ""):
			return validationError{id: ErrIDInvalidLabelName, labelIdx: i}, false
		case i > 0 && ls[i-1].Name == name:
			return validationError{id: ErrIDDuplicateLabelNames, labelIdx: i}, false
		case !utf8.ValidString(value):
			return validationError{id: ErrIDInvalidUTF8, labelIdx: i}, false
		case len(value) > lim.MaxLabelValueLength:
			return validationError{id: ErrIDLabelValueTooLong, labelIdx: i, actual: int64(len(value)), limit: int64(lim.MaxLabelValueLength)}, false
		}
		if name == model.MetricNameLabel {
			if !validMetricName(value) && !graphiteNames {
				return validationError{id: ErrIDInvalidMetricName, labelIdx: i}, false
			}
			hasName = true
		}
	}
	if !hasName {
		return validationError{id: ErrIDMissingMetricName, labelIdx: -1}, false
	}

	graceMs := time.Duration(lim.CreationGracePeriod).Milliseconds()
	for i := range ts.Samples {
		if t := ts.Samples[i].Timestamp; t > maxTs {
			return validationError{id: ErrIDSampleTooFarInFuture, labelIdx: -1, actual: t, limit: graceMs}, false
		}
	}
	for i := range ts.Histograms {
		if t := ts.Histograms[i].Timestamp; t > maxTs {
			return validationError{id: ErrIDSampleTooFarInFuture, labelIdx: -1, actual: t, limit: graceMs}, false
		}
	}
	return validationError{}, true
}

func compareLabelNames(a, b prompb.Label) int {
	return strings.Compare(a.Name, b.Name)
}

func labelsSorted(ls []prompb.Label) bool {
	for i := 1; i < len(ls); i++ {
		if ls[i-1].Name > ls[i].Name {
			return false
		}
	}
	return true
}

// validLabelName reports whether s matches [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// validMetricName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}
