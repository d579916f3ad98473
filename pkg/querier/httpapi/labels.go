package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/meridianhq/meridian/pkg/util/promtime"
)

// checkContextEvery is how many series the series endpoint reads between
// checks of the request context.
const checkContextEvery = 128

var errTruncated = errors.New("results truncated due to limit")

// lookupParams are the parameters shared by series, labels and label values.
type lookupParams struct {
	start, end  time.Time
	limit       int
	matcherSets [][]*labels.Matcher
}

// parseLookup reads the parameters; a bad match[] is reported through
// matchErr, as the endpoints word it differently.
func (a *API) parseLookup(r *http.Request, matchErr func(error) *apiError) (lookupParams, *apiError) {
	var p lookupParams
	var apiErr *apiError
	if p.limit, apiErr = parseLimit(r); apiErr != nil {
		return p, apiErr
	}
	if p.start, apiErr = parseTimeParam(r, "start", promtime.MinTime); apiErr != nil {
		return p, apiErr
	}
	if p.end, apiErr = parseTimeParam(r, "end", promtime.MaxTime); apiErr != nil {
		return p, apiErr
	}
	sets, err := parseMatchers(a.parser, r.Form["match[]"])
	if err != nil {
		return p, matchErr(err)
	}
	p.matcherSets = sets
	return p, nil
}

func (a *API) series(r *http.Request, _ string) (res result) {
	if len(r.Form["match[]"]) == 0 {
		return result{err: badData(errors.New("no match[] parameter provided"))}
	}
	p, apiErr := a.parseLookup(r, func(err error) *apiError { return invalidParam("match[]", err) })
	if apiErr != nil {
		return result{err: apiErr}
	}
	ctx := r.Context()
	q, err := a.queryable.Querier(timestamp.FromTime(p.start), timestamp.FromTime(p.end))
	if err != nil {
		return result{err: classify(err, 0)}
	}
	// Series labels may point into the querier's memory: keep it open until
	// the answer is written.
	res.finalizer = func() { _ = q.Close() }

	hints := &storage.SelectHints{
		Start: timestamp.FromTime(p.start),
		End:   timestamp.FromTime(p.end),
		Func:  "series", // Not a function: tells storage no samples are needed.
		Limit: hintLimit(p.limit),
	}
	var set storage.SeriesSet
	if len(p.matcherSets) > 1 {
		sets := make([]storage.SeriesSet, 0, len(p.matcherSets))
		for _, ms := range p.matcherSets {
			sets = append(sets, q.Select(ctx, true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	} else {
		// Sorted, unlike Prometheus, so that answers are deterministic
		// however many storage components merged them.
		set = q.Select(ctx, true, hints, p.matcherSets[0]...)
	}

	metrics := []labels.Labels{}
	for i := 1; set.Next(); i++ {
		if i%checkContextEvery == 0 {
			if err := ctx.Err(); err != nil {
				res.err, res.warnings = classify(err, 0), set.Warnings()
				return res
			}
		}
		metrics = append(metrics, set.At().Labels())
		if p.limit > 0 && len(metrics) > p.limit {
			ws := set.Warnings()
			res.data, res.warnings = metrics[:p.limit], ws.Add(errTruncated)
			return res
		}
	}
	res.warnings = set.Warnings()
	if err := set.Err(); err != nil {
		res.err = classify(err, 0)
		return res
	}
	res.data = metrics
	return res
}

func (a *API) labelNames(r *http.Request, _ string) result {
	p, apiErr := a.parseLookup(r, badData)
	if apiErr != nil {
		return result{err: apiErr}
	}
	q, err := a.queryable.Querier(timestamp.FromTime(p.start), timestamp.FromTime(p.end))
	if err != nil {
		return result{err: classify(err, 0)}
	}
	defer q.Close()

	hints := &storage.LabelHints{Limit: hintLimit(p.limit)}
	names, warnings, err := unionStrings(p.matcherSets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(r.Context(), hints, ms...)
	})
	if err != nil {
		return result{err: classify(err, 0), warnings: warnings}
	}
	if p.limit > 0 && len(names) > p.limit {
		names = names[:p.limit]
		warnings = warnings.Add(errTruncated)
	}
	return result{data: names, warnings: warnings}
}

func (a *API) labelValues(r *http.Request, _ string) result {
	name := mux.Vars(r)["name"]
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.LegacyValidation.IsValidLabelName(name) {
		return result{err: badData(fmt.Errorf("invalid label name: %q", name))}
	}
	p, apiErr := a.parseLookup(r, badData)
	if apiErr != nil {
		return result{err: apiErr}
	}
	q, err := a.queryable.Querier(timestamp.FromTime(p.start), timestamp.FromTime(p.end))
	if err != nil {
		return result{err: classify(err, 0)}
	}
	defer q.Close()

	hints := &storage.LabelHints{Limit: hintLimit(p.limit)}
	vals, warnings, err := unionStrings(p.matcherSets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(r.Context(), name, hints, ms...)
	})
	if err != nil {
		return result{err: classify(err, 0), warnings: warnings}
	}
	if p.limit > 0 && len(vals) > p.limit {
		vals = vals[:p.limit]
		warnings = warnings.Add(errTruncated)
	}
	return result{data: vals, warnings: warnings}
}

// unionStrings calls lookup once per matcher set (once with no matchers
// when there are none) and returns the sorted union, never nil. The
// strings are copied: they may point into the querier's memory.
func unionStrings(sets [][]*labels.Matcher, lookup func([]*labels.Matcher) ([]string, annotations.Annotations, error)) ([]string, annotations.Annotations, error) {
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	var warnings annotations.Annotations
	seen := map[string]struct{}{}
	out := []string{}
	for _, ms := range sets {
		vals, ws, err := lookup(ms)
		warnings.Merge(ws)
		if err != nil {
			return nil, warnings, err
		}
		for _, v := range vals {
			if _, ok := seen[v]; ok {
				continue
			}
			v = strings.Clone(v)
			seen[v] = struct{}{}
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out, warnings, nil
}

func (a *API) metricMetadata(r *http.Request, _ string) result {
	limit := -1
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil {
			return result{err: badData(errors.New("limit must be a number"))}
		}
	}
	limitPerMetric := -1
	if s := r.FormValue("limit_per_metric"); s != "" {
		var err error
		if limitPerMetric, err = strconv.Atoi(s); err != nil {
			return result{err: badData(errors.New("limit_per_metric must be a number"))}
		}
	}
	out := map[string][]metadata.Metadata{}
	if limit == 0 {
		return result{data: out}
	}
	mds, err := a.metadata.MetricsMetadata(r.Context(), r.FormValue("metric"), limit)
	if err != nil {
		return result{err: classify(err, 0)}
	}
	for _, md := range mds {
		name := md.MetricFamilyName
		entries, ok := out[name]
		if !ok && limit > 0 && len(out) >= limit {
			continue
		}
		if limitPerMetric > 0 && len(entries) >= limitPerMetric {
			continue
		}
		m := metadata.Metadata{
			Type: model.MetricType(strings.ToLower(md.Type.String())),
			Unit: md.Unit,
			Help: md.Help,
		}
		if !slices.Contains(entries, m) {
			out[name] = append(entries, m)
		}
	}
	return result{data: out}
}
