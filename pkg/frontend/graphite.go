package frontend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/common/model"

	"github.com/meridianhq/meridian/pkg/graphite/functions"
	gparser "github.com/meridianhq/meridian/pkg/graphite/parser"
	"github.com/meridianhq/meridian/pkg/graphite/render"
)

// graphiteRenderParams are the render parameters a split render honours;
// with any other the request is proxied as it is.
var graphiteRenderParams = map[string]bool{"target": true, "from": true, "until": true, "format": true, "maxDataPoints": true, "noNullPoints": true, "tz": true}

// graphiteRenderQuery is a render the frontend splits: its intervals
// [start, end) of step seconds, whose starts are the points of grid (in
// Unix milliseconds, as the results cache keeps them).
type graphiteRenderQuery struct {
	params     render.Params
	step       int64 // seconds
	start, end int64 // seconds
	grid       rangeQuery
}

// parseGraphiteRender reads a render the frontend may split; false means
// proxy it unchanged.
func (f *Frontend) parseGraphiteRender(form url.Values, lim TenantLimits) (graphiteRenderQuery, bool) {
	for k := range form {
		if !graphiteRenderParams[k] {
			return graphiteRenderQuery{}, false
		}
	}
	p, err := render.ParseParams(form, f.now())
	if err != nil || p.Format == render.FormatPart || len(p.Targets) == 0 {
		return graphiteRenderQuery{}, false
	}
	for _, t := range p.Targets {
		// Only a target whose every function is point-wise in time gives
		// the unsplit answer when evaluated part by part; a target that
		// uses any other is proxied unsplit and uncached.
		x, err := gparser.Parse(t)
		if err != nil || !functions.Pointwise(x) {
			return graphiteRenderQuery{}, false
		}
	}
	step := int64(lim.GraphiteStep / time.Second)
	if step <= 0 {
		step = 60
	}
	// Meridian's fetch is from-exclusive: (from, until] covers the
	// intervals from the first one starting after from up to the one
	// holding until (graphite alignedRange).
	start := p.From - floorMod(p.From, step) + step
	end := p.Until - floorMod(p.Until, step) + step
	if end <= start {
		return graphiteRenderQuery{}, false
	}
	return graphiteRenderQuery{
		params: p, step: step, start: start, end: end,
		grid: rangeQuery{start: start * 1000, end: (end - step) * 1000, step: step * 1000},
	}, true
}

// graphiteCacheKey names the cached parts of one target. Every key's
// points are interval starts, multiples of step.
func graphiteCacheKey(tenantID string, step int64, target string) string {
	return strings.Join([]string{tenantID, "graphite-v1", strconv.FormatInt(step, 10), target}, "\x00")
}

// errGraphiteUnsplit is the answer of a part that shows the render must be
// answered unsplit: the querier refused the part (a 4xx that the whole
// range might not get, e.g. divideSeries whose divisor has no data in the
// part) or answered series the merge cannot place.
var errGraphiteUnsplit = &answer{status: http.StatusTeapot}

// graphiteTarget is the state of one target of a split render.
type graphiteTarget struct {
	target  string
	key     string
	cached  []extent
	hits    []part
	jobs    []timeRange
	fetched []part
}

// graphiteRender answers /graphite/render: split and cached when every
// target is point-wise in time, proxied as it is otherwise.
func (f *Frontend) graphiteRender(r *http.Request, ds downstreamRequest, lim TenantLimits, ql *queryLog) *answer {
	ctx := r.Context()
	q, ok := f.parseGraphiteRender(r.Form, lim)
	if !ok {
		f.graphiteUnsplit.WithLabelValues("not_pointwise").Inc()
		ql.downstream = 1
		return f.proxy(ctx, ds)
	}
	useCache := f.cache != nil && !noStore(r.Header)
	points := (q.end - q.start) / q.step
	whole := timeRange{q.grid.start, q.grid.end}
	targets := make([]*graphiteTarget, len(q.params.Targets))
	for ti, target := range q.params.Targets {
		t := &graphiteTarget{target: target, key: graphiteCacheKey(ds.tenant, q.step, target)}
		targets[ti] = t
		gaps := []timeRange{whole}
		ql.points += points
		if useCache {
			t.cached = f.cache.get(ctx, t.key)
			t.hits, gaps = lookup(whole, t.cached, q.grid.step)
			f.cacheHits.Add(float64(len(t.hits)))
			f.cacheMisses.Add(float64(len(gaps)))
			for _, p := range t.hits {
				ql.cachedPoints += (p.r.end-p.r.start)/q.grid.step + 1
			}
		}
		t.split(gaps, q, f.cfg.SplitInterval)
		if len(t.jobs) == 0 && !sameSeriesRange(t.hits, q) {
			t.probe(q)
		}
	}
	if a := f.fetchGraphiteTargets(ctx, ds, lim, q, targets, ql); a != nil {
		return a
	}

	var all []*functions.Series
	var fetches [][]string
	for _, t := range targets {
		merged := t.merge()
		fetched, series, ok := decodeGraphiteTarget(merged, q)
		if ok {
			merged = withSeriesRange(merged, q)
		}
		if useCache && len(t.jobs) > 0 && (ok || len(t.hits) == 0) {
			f.cacheGraphite(ctx, q, t, merged)
		}
		if !ok && len(t.hits) > 0 {
			// The cached parts were fetched for renders whose ranges held
			// other series than this one's: fetch the whole range again,
			// for this render's series, and replace them.
			f.graphiteRefetched.Inc()
			t.hits, t.cached = nil, nil
			t.split([]timeRange{whole}, q, f.cfg.SplitInterval)
			if a := f.fetchGraphiteTargets(ctx, ds, lim, q, []*graphiteTarget{t}, ql); a != nil {
				return a
			}
			merged = t.merge()
			fetched, series, ok = decodeGraphiteTarget(merged, q)
			if ok {
				merged = withSeriesRange(merged, q)
			}
			if useCache {
				f.cacheGraphite(ctx, q, t, merged)
			}
		}
		if !ok {
			// The parts disagree on the series although they were fetched
			// together (data arrived meanwhile, or a function's output
			// depends on more than it should): answer unsplit.
			f.graphiteUnsplit.WithLabelValues("series_differ").Inc()
			ql.downstream++
			return f.proxy(ctx, ds)
		}
		fetches = append(fetches, fetched...)
		all = append(all, series...)
	}
	if err := graphiteBudget(lim, fetches, points); err != nil {
		return plainErrorAnswer(http.StatusUnprocessableEntity, err.Error())
	}
	all = render.Consolidate(all, q.params.MaxDataPoints)
	var buf bytes.Buffer
	render.Write(&buf, all, q.params.Format, q.params.NoNullPoints)
	h := http.Header{}
	h.Set("Content-Type", render.ContentType(q.params.Format))
	return &answer{status: http.StatusOK, header: h, body: buf.Bytes()}
}

// split sets t's jobs to the gaps split at multiples of the split interval.
func (t *graphiteTarget) split(gaps []timeRange, q graphiteRenderQuery, interval time.Duration) {
	t.jobs = nil
	for _, g := range gaps {
		t.jobs = append(t.jobs, splitByInterval(g.start, g.end, q.grid.step, interval.Milliseconds())...)
	}
	t.fetched = make([]part, len(t.jobs))
}

// sameSeriesRange reports whether every cached part is known to have the
// series of q's own range: it was fetched, or confirmed, for a render of
// exactly that range (see graphiteRangeLabel).
func sameSeriesRange(hits []part, q graphiteRenderQuery) bool {
	want := q.seriesRange()
	for _, p := range hits {
		covered := 0
		for _, s := range p.m {
			if r, ok := s.Metric[graphiteRangeLabel]; ok && slices.Contains(strings.Split(string(r), ","), want) {
				covered += len(s.Values)
			}
		}
		if int64(covered) != (p.r.end-p.r.start)/q.grid.step+1 {
			return false
		}
	}
	return true
}

// maxSeriesRanges bounds the render ranges a cached target remembers as
// confirmed.
const maxSeriesRanges = 16

// withSeriesRange returns the merged matrix of a target whose parts all
// have the series of q's range (decodeGraphiteTarget succeeded), marked as
// confirmed for q's range everywhere. A range confirmed before (on some
// of the parts) stays confirmed, now on all of them: a confirmation says
// that the range's series are those of the header, and one header holds
// everywhere. The ranges are one label of one series; the most recent
// maxSeriesRanges are kept.
func withSeriesRange(m model.Matrix, q graphiteRenderQuery) model.Matrix {
	ranges := []string{q.seriesRange()}
	out := make(model.Matrix, 0, len(m)+1)
	var header *model.SampleStream
	for _, s := range m {
		if r, ok := s.Metric[graphiteRangeLabel]; ok {
			for _, x := range strings.Split(string(r), ",") {
				if !slices.Contains(ranges, x) {
					ranges = append(ranges, x)
				}
			}
			continue
		}
		if _, ok := s.Metric[graphiteHeaderLabel]; ok {
			header = s
		}
		out = append(out, s)
	}
	if header == nil {
		return m
	}
	ranges = ranges[:min(len(ranges), maxSeriesRanges)]
	return append(out, &model.SampleStream{Metric: model.Metric{graphiteRangeLabel: model.LabelValue(strings.Join(ranges, ","))}, Values: header.Values})
}

// probe fetches the last interval of a render whose parts are all cached,
// but for the series of other ranges: the part fetched for q's range
// shows q's series, which the cached parts must then have too.
func (t *graphiteTarget) probe(q graphiteRenderQuery) {
	last := len(t.hits) - 1
	if last < 0 {
		return
	}
	p := t.hits[last]
	r := timeRange{p.r.start, p.r.end - q.grid.step}
	if r.start > r.end {
		t.hits = t.hits[:last]
	} else {
		t.hits[last] = part{r: r, m: extract(p.m, r), cached: true}
	}
	t.jobs = []timeRange{{p.r.end, p.r.end}}
	t.fetched = make([]part, 1)
}

// merge is t's cached and fetched parts in one matrix.
func (t *graphiteTarget) merge() model.Matrix {
	parts := append(append([]part{}, t.hits...), t.fetched...)
	sortParts(parts)
	ms := make([]model.Matrix, len(parts))
	for i, p := range parts {
		ms[i] = p.m
	}
	return concat(ms...)
}

// cacheGraphite stores what t fetched. Graphite points are interval
// starts: an interval is cached only when all of it is older than the
// freshness cutoff.
func (f *Frontend) cacheGraphite(ctx context.Context, q graphiteRenderQuery, t *graphiteTarget, merged model.Matrix) {
	cutoff := f.now().Add(-f.cfg.MaxCacheFreshness).UnixMilli() - q.grid.step
	if e, ok := newExtent(q.grid, merged, t.fetched, cutoff); ok {
		f.cache.add(ctx, t.key, t.cached, e, q.grid.step)
	}
}

// fetchGraphiteTargets runs the jobs of targets downstream, in parallel up
// to the tenant's max query parallelism. A part the querier refused makes
// the whole render go unsplit.
func (f *Frontend) fetchGraphiteTargets(ctx context.Context, ds downstreamRequest, lim TenantLimits, q graphiteRenderQuery, targets []*graphiteTarget, ql *queryLog) *answer {
	type job struct {
		t *graphiteTarget
		i int
	}
	var jobs []job
	for _, t := range targets {
		for i := range t.jobs {
			jobs = append(jobs, job{t, i})
		}
	}
	ql.downstream += len(jobs)
	f.splitQueries.Add(float64(len(jobs)))
	fail := runJobs(ctx, lim.MaxQueryParallelism, len(jobs), func(ctx context.Context, i int) *answer {
		j := jobs[i]
		rng := j.t.jobs[j.i]
		m, a := f.fetchGraphitePart(ctx, ds, j.t.target, rng, q)
		if a != nil {
			return a
		}
		j.t.fetched[j.i] = part{r: rng, m: m}
		return nil
	})
	if fail == errGraphiteUnsplit {
		f.graphiteUnsplit.WithLabelValues("part_refused").Inc()
		ql.downstream++
		return f.proxy(ctx, ds)
	}
	return fail
}

// graphiteBudget checks the merged render against the tenant's render
// budget as the querier charges an unsplit one: each fetched series, in
// fetch order, costs one series and points points.
func graphiteBudget(lim TenantLimits, fetches [][]string, points int64) error {
	if lim.GraphiteMaxSeriesPerRender <= 0 && lim.GraphiteMaxPointsPerRender <= 0 {
		return nil
	}
	series, total := 0, int64(0)
	for _, names := range fetches {
		for range names {
			series++
			total += points
			if err := render.CheckLimits(lim.GraphiteMaxSeriesPerRender, lim.GraphiteMaxPointsPerRender, series, total); err != nil {
				return err
			}
		}
	}
	return nil
}

// fetchGraphitePart renders target for the intervals whose starts are the
// points of r (Unix milliseconds) downstream, in render.FormatPart, as a
// matrix the results cache can keep (see graphitePartMatrix).
func (f *Frontend) fetchGraphitePart(ctx context.Context, ds downstreamRequest, target string, r timeRange, q graphiteRenderQuery) (model.Matrix, *answer) {
	step := q.step
	first, last := r.start/1000, r.end/1000
	form := url.Values{}
	form.Set("target", target)
	// (first-step, last] covers the intervals first ... last exactly.
	form.Set("from", strconv.FormatInt(first-step, 10))
	form.Set("until", strconv.FormatInt(last, 10))
	form.Set("format", render.FormatPart)
	// Every part has the series of the whole render, as the unsplit one.
	form.Set("seriesFrom", strconv.FormatInt(q.start-step, 10))
	form.Set("seriesUntil", strconv.FormatInt(q.end-step, 10))
	seriesRange := q.seriesRange()
	ds.method, ds.form = http.MethodPost, form
	ans := f.roundTrip(ctx, ds)
	if ans.status != http.StatusOK {
		if ans.msg == "" && ans.status >= 400 && ans.status < 500 && ans.status != http.StatusTooManyRequests && ans.status != statusClientClosedRequest {
			return nil, errGraphiteUnsplit
		}
		return nil, ans
	}
	var p render.Part
	if err := json.Unmarshal(ans.body, &p); err != nil {
		return nil, plainErrorAnswer(http.StatusBadGateway, "decode the querier's answer to a Graphite render part: "+err.Error())
	}
	m, err := graphitePartMatrix(p, r, step, seriesRange)
	if err != nil {
		level.Debug(f.logger).Log("msg", "graphite render part cannot be merged; answering unsplit", "tenant", ds.tenant, "target", target, "err", err)
		return nil, errGraphiteUnsplit
	}
	return m, nil
}

// Labels of the matrix form of a render part. The header series carries
// what every series of the part is (and what the evaluation fetched), with
// one sample per interval so that the cache's extents keep it for every
// interval; data series carry the header's hash and their index in it.
// Extents joined by the cache keep one header series only where the
// adjacent parts agree on it. The range series names the render ranges
// (start:end, comma-separated) known to have the part's series: the one it
// was fetched for, and those confirmed since (withSeriesRange).
const (
	graphiteHeaderLabel = "__graphite_header__"
	graphiteHashLabel   = "__graphite_header_hash__"
	graphiteIndexLabel  = "__graphite_index__"
	graphiteRangeLabel  = "__graphite_series_range__"
)

// seriesRange names q's range for graphiteRangeLabel.
func (q graphiteRenderQuery) seriesRange() string {
	return strconv.FormatInt(q.start, 10) + ":" + strconv.FormatInt(q.end, 10)
}

// graphiteHeader is what a render part's series are, without values.
type graphiteHeader struct {
	Fetched [][]string           `json:"f"`
	Series  []graphiteSeriesMeta `json:"s"`
}

type graphiteSeriesMeta struct {
	Name              string            `json:"n"`
	Tags              map[string]string `json:"t,omitempty"`
	PathExpression    string            `json:"p,omitempty"`
	ConsolidationFunc string            `json:"c,omitempty"`
	XFilesFactor      float64           `json:"x,omitempty"`
}

// graphitePartMatrix converts a part answered for the intervals starting at
// the points of r. Every series must cover exactly those intervals.
func graphitePartMatrix(p render.Part, r timeRange, step int64, seriesRange string) (model.Matrix, error) {
	stepMs := step * 1000
	n := int((r.end-r.start)/stepMs + 1)
	h := graphiteHeader{Fetched: p.Fetched, Series: make([]graphiteSeriesMeta, len(p.Series))}
	if h.Fetched == nil {
		h.Fetched = [][]string{}
	}
	for i, s := range p.Series {
		if s.Step != step || s.Start*1000 != r.start || s.End*1000 != r.end+stepMs || len(s.Values) != n {
			return nil, errors.New("series " + strconv.Quote(s.Name) + " does not cover the part's intervals on the tenant's graphite_step")
		}
		h.Series[i] = graphiteSeriesMeta{Name: s.Name, Tags: s.Tags, PathExpression: s.PathExpression, ConsolidationFunc: s.ConsolidationFunc, XFilesFactor: s.XFilesFactor}
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(hj)
	hash := hex.EncodeToString(sum[:16])
	m := make(model.Matrix, 0, len(p.Series)+1)
	hs := &model.SampleStream{Metric: model.Metric{graphiteHeaderLabel: model.LabelValue(hj)}, Values: make([]model.SamplePair, n)}
	for i := range n {
		hs.Values[i] = model.SamplePair{Timestamp: model.Time(r.start + int64(i)*stepMs)}
	}
	rs := &model.SampleStream{Metric: model.Metric{graphiteRangeLabel: model.LabelValue(seriesRange)}, Values: hs.Values}
	m = append(m, hs, rs)
	for i, s := range p.Series {
		ss := &model.SampleStream{
			Metric: model.Metric{graphiteHashLabel: model.LabelValue(hash), graphiteIndexLabel: model.LabelValue(strconv.Itoa(i))},
			Values: make([]model.SamplePair, n),
		}
		for k, v := range s.Values {
			ss.Values[k] = model.SamplePair{Timestamp: model.Time(r.start + int64(k)*stepMs), Value: model.SampleValue(v)}
		}
		m = append(m, ss)
	}
	return m, nil
}

// decodeGraphiteTarget turns the merged matrix of one target over the whole
// render back into series. ok is false unless one header holds for every
// interval, i.e. every part fetched the same series and answered the same
// series.
func decodeGraphiteTarget(m model.Matrix, q graphiteRenderQuery) (fetched [][]string, out []*functions.Series, ok bool) {
	n := int((q.end - q.start) / q.step)
	var header *model.SampleStream
	for _, s := range m {
		if _, isHeader := s.Metric[graphiteHeaderLabel]; isHeader {
			if header != nil {
				return nil, nil, false
			}
			header = s
		}
	}
	if header == nil || len(header.Values) != n {
		return nil, nil, false
	}
	hj := string(header.Metric[graphiteHeaderLabel])
	var h graphiteHeader
	if err := json.Unmarshal([]byte(hj), &h); err != nil {
		return nil, nil, false
	}
	sum := sha256.Sum256([]byte(hj))
	hash := model.LabelValue(hex.EncodeToString(sum[:16]))
	out = make([]*functions.Series, len(h.Series))
	for _, s := range m {
		if _, isRange := s.Metric[graphiteRangeLabel]; isRange || s == header {
			continue
		}
		i, err := strconv.Atoi(string(s.Metric[graphiteIndexLabel]))
		if s.Metric[graphiteHashLabel] != hash || err != nil || i < 0 || i >= len(out) || out[i] != nil || len(s.Values) != n {
			return nil, nil, false
		}
		meta := h.Series[i]
		vals := make([]float64, n)
		for k, v := range s.Values {
			vals[k] = float64(v.Value)
		}
		tags := meta.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		out[i] = &functions.Series{
			Name: meta.Name, Tags: tags, PathExpression: meta.PathExpression,
			ConsolidationFunc: meta.ConsolidationFunc, XFilesFactor: meta.XFilesFactor,
			Start: q.start, End: q.end, Step: q.step, Values: vals,
		}
	}
	for _, s := range out {
		if s == nil {
			return nil, nil, false
		}
	}
	return h.Fetched, out, true
}
