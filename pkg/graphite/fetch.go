package graphite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/meridianhq/meridian/pkg/graphite/functions"
	"github.com/meridianhq/meridian/pkg/limits"
)

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

// TenantLimits gives a tenant's limits.
type TenantLimits interface {
	Limits(tenant string) limits.Limits
}

// alignedRange returns the intervals a fetch of (from, until] covers, as
// whisper does: from the first interval start after from, up to the end of
// the interval holding until. Start and end are multiples of step.
func alignedRange(from, until, step int64) (start, end int64) {
	start = from - mod(from, step) + step
	end = until - mod(until, step) + step
	if end < start {
		end = start
	}
	return start, end
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// fetcher reads Graphite series for one request of one tenant. It keeps the
// request's series and points budget.
type fetcher struct {
	queryable storage.Queryable
	lim       limits.Limits
	step      int64 // seconds
	// seriesFrom and seriesUntil, when seriesUntil > seriesFrom, widen the
	// set of series a fetch returns to those with data in (seriesFrom,
	// seriesUntil]; those without data in the fetched range are all null.
	// The query-frontend asks for the parts of a split render this way,
	// so that every part has the series of the whole render.
	seriesFrom, seriesUntil int64

	mtx    sync.Mutex
	series int
	points int64
}

var _ functions.Fetcher = (*fetcher)(nil)

func newFetcher(q storage.Queryable, lim limits.Limits) *fetcher {
	step := int64(time.Duration(lim.GraphiteStep) / time.Second)
	if step <= 0 {
		step = 60
	}
	return &fetcher{queryable: q, lim: lim, step: step}
}

// charge takes n series of points each from the request's budget.
func (f *fetcher) charge(n int, points int64) error {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	f.series += n
	f.points += int64(n) * points
	return RenderLimitError(f.lim.GraphiteMaxSeriesPerRender, f.lim.GraphiteMaxPointsPerRender, f.series, f.points)
}

// FetchPath returns the untagged series whose path matches glob, on the
// tenant's graphite_step.
func (f *fetcher) FetchPath(ctx context.Context, glob string, from, until int64) ([]*functions.Series, error) {
	var sets [][]*labels.Matcher
	for _, g := range expandDottedBraces(glob) {
		ms, err := globMatchers(g)
		if err != nil {
			return nil, &functions.InputError{Msg: fmt.Sprintf("invalid path expression %q: %v", glob, err)}
		}
		sets = append(sets, ms)
	}
	return f.fetch(ctx, sets, glob, from, until)
}

// FetchTagged returns the tagged series matching seriesByTag expressions.
func (f *fetcher) FetchTagged(ctx context.Context, exprs []string, from, until int64) ([]*functions.Series, error) {
	ms, err := tagMatchers(exprs)
	if err != nil {
		return nil, &functions.InputError{Msg: "seriesByTag: " + err.Error()}
	}
	quoted := make([]string, len(exprs))
	for i, e := range exprs {
		quoted[i] = "'" + e + "'"
	}
	return f.fetch(ctx, [][]*labels.Matcher{ms}, "seriesByTag("+strings.Join(quoted, ",")+")", from, until)
}

func (f *fetcher) fetch(ctx context.Context, sets [][]*labels.Matcher, pathExpr string, from, until int64) ([]*functions.Series, error) {
	start, end := alignedRange(from, until, f.step)
	n := int((end - start) / f.step)
	q, err := f.queryable.Querier(start*1000, end*1000-1)
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	defer q.Close()
	seen := map[uint64]bool{}
	var out []*functions.Series
	for _, ms := range sets {
		hints := &storage.SelectHints{Start: start * 1000, End: end*1000 - 1, Step: f.step * 1000, Func: "graphite"}
		ss := q.Select(ctx, false, hints, ms...)
		var it chunkenc.Iterator
		for ss.Next() {
			s := ss.At()
			ls := s.Labels()
			h := ls.Hash()
			if seen[h] {
				continue
			}
			seen[h] = true
			if err := f.charge(1, int64(n)); err != nil {
				return nil, err
			}
			name, tags := SeriesName(ls)
			vals := make([]float64, n)
			for i := range vals {
				vals[i] = math.NaN()
			}
			it = s.Iterator(it)
			for vt := it.Seek(start * 1000); vt != chunkenc.ValNone; vt = it.Next() {
				if vt != chunkenc.ValFloat {
					continue // native histograms have no Graphite form
				}
				t, v := it.At()
				if t >= end*1000 {
					break
				}
				if value.IsStaleNaN(v) {
					continue
				}
				// The interval of a sample is its second, aligned down to the
				// step; the last sample of an interval is its value.
				sec := floorDiv(t, 1000)
				idx := (sec - start) / f.step
				if idx >= 0 && idx < int64(n) {
					vals[idx] = v
				}
			}
			if err := it.Err(); err != nil {
				return nil, storageError(err)
			}
			out = append(out, &functions.Series{
				Name: name, Tags: tags, PathExpression: pathExpr,
				Start: start, End: end, Step: f.step, Values: vals,
				ConsolidationFunc: "average",
			})
		}
		if err := ss.Err(); err != nil {
			return nil, storageError(err)
		}
	}
	if f.seriesUntil > f.seriesFrom {
		// The series of the wider range, labels only.
		ws, we := alignedRange(f.seriesFrom, f.seriesUntil, f.step)
		wq, err := f.queryable.Querier(ws*1000, we*1000-1)
		if err != nil {
			return nil, fmt.Errorf("open storage: %w", err)
		}
		defer wq.Close()
		for _, ms := range sets {
			ss := wq.Select(ctx, false, &storage.SelectHints{Start: ws * 1000, End: we*1000 - 1, Func: "series"}, ms...)
			for ss.Next() {
				ls := ss.At().Labels()
				h := ls.Hash()
				if seen[h] {
					continue
				}
				seen[h] = true
				if err := f.charge(1, int64(n)); err != nil {
					return nil, err
				}
				name, tags := SeriesName(ls)
				vals := make([]float64, n)
				for i := range vals {
					vals[i] = math.NaN()
				}
				out = append(out, &functions.Series{
					Name: name, Tags: tags, PathExpression: pathExpr,
					Start: start, End: end, Step: f.step, Values: vals,
					ConsolidationFunc: "average",
				})
			}
			if err := ss.Err(); err != nil {
				return nil, storageError(err)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// StorageError is a failure to read storage: the API answers 5xx, or the
// storage's own 4xx (a querier limit such as max fetched series).
type StorageError struct {
	Status int
	Err    error
}

func (e *StorageError) Error() string { return "read storage: " + e.Err.Error() }
func (e *StorageError) Unwrap() error { return e.Err }

func storageError(err error) error {
	var le *LimitError
	if errors.As(err, &le) {
		return err
	}
	return &StorageError{Status: httpStatusOf(err), Err: err}
}

// httpStatusOf keeps a 4xx the querier attached (httpgrpc) and makes every
// other failure a 500.
func httpStatusOf(err error) int {
	if errors.Is(err, context.Canceled) {
		return 499
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusServiceUnavailable
	}
	if code := httpgrpcCode(err); code >= 400 && code < 500 {
		return code
	}
	return http.StatusInternalServerError
}

func httpgrpcCode(err error) int {
	if resp, ok := httpgrpc.HTTPResponseFromError(err); ok {
		return int(resp.Code)
	}
	return 0
}
