package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/meridianhq/meridian/pkg/graphite/functions"
	"github.com/meridianhq/meridian/pkg/graphite/mapping"
	"github.com/meridianhq/meridian/pkg/graphite/render"
	"github.com/meridianhq/meridian/pkg/limits"
)

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

	pool *valuesPool // nil: no recycling

	mtx    sync.Mutex
	series int
	points int64
	owned  [][]float64 // value slices to give back to pool
}

var _ functions.Fetcher = (*fetcher)(nil)

func newFetcher(q storage.Queryable, lim limits.Limits, pool *valuesPool) *fetcher {
	step := int64(time.Duration(lim.GraphiteStep) / time.Second)
	if step <= 0 {
		step = 60
	}
	return &fetcher{queryable: q, lim: lim, step: step, pool: pool}
}

// release gives the fetched series' values back for the next request. Call
// it only when nothing reads them any more (the response is written).
func (f *fetcher) release() {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	for _, v := range f.owned {
		f.pool.put(v)
	}
	f.owned = nil
}

// valuesPool recycles the value slices of fetched series between requests:
// for a large render they are most of what it allocates, and allocating
// them anew drives the garbage collector. It is a bounded free list rather
// than a sync.Pool: a render's own allocations (the series read from the
// ingesters) run several collections before its values are taken, and a
// sync.Pool is emptied by every second one.
type valuesPool struct {
	maxBytes int64 // most bytes of slices kept

	mu    sync.Mutex
	free  [][]float64
	bytes int64
}

func newValuesPool(maxBytes int64) *valuesPool { return &valuesPool{maxBytes: maxBytes} }

// get returns n values, all NaN.
func (vp *valuesPool) get(n int) []float64 {
	var vals []float64
	if vp != nil {
		vp.mu.Lock()
		for len(vp.free) > 0 && vals == nil {
			v := vp.free[len(vp.free)-1]
			vp.free = vp.free[:len(vp.free)-1]
			vp.bytes -= int64(cap(v)) * 8
			if cap(v) >= n {
				vals = v[:n]
			} // a shorter one is dropped: requests of one size follow each other
		}
		vp.mu.Unlock()
	}
	if vals == nil {
		vals = make([]float64, n)
	}
	nan := math.NaN()
	for i := range vals {
		vals[i] = nan
	}
	return vals
}

// put keeps v for a later get, while the pool holds less than its bound.
func (vp *valuesPool) put(v []float64) {
	if vp == nil {
		return
	}
	vp.mu.Lock()
	defer vp.mu.Unlock()
	if sz := int64(cap(v)) * 8; vp.bytes+sz <= vp.maxBytes {
		vp.free = append(vp.free, v)
		vp.bytes += sz
	}
}

// charge takes n series of points each from the request's budget.
func (f *fetcher) charge(n int, points int64) error {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	f.series += n
	f.points += int64(n) * points
	return render.CheckLimits(f.lim.GraphiteMaxSeriesPerRender, f.lim.GraphiteMaxPointsPerRender, f.series, f.points)
}

// FetchPath returns the untagged series whose path matches glob, on the
// tenant's graphite_step.
func (f *fetcher) FetchPath(ctx context.Context, glob string, from, until int64) ([]*functions.Series, error) {
	var sets [][]*labels.Matcher
	for _, g := range mapping.ExpandDottedBraces(glob) {
		ms, err := mapping.GlobMatchers(g)
		if err != nil {
			return nil, &functions.InputError{Msg: fmt.Sprintf("invalid path expression %q: %v", glob, err)}
		}
		sets = append(sets, ms)
	}
	return f.fetch(ctx, sets, glob, from, until)
}

// FetchTagged returns the tagged series matching seriesByTag expressions.
func (f *fetcher) FetchTagged(ctx context.Context, exprs []string, from, until int64) ([]*functions.Series, error) {
	ms, err := mapping.TagMatchers(exprs)
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
	var (
		series []storage.Series
		out    []*functions.Series
	)
	newSeries := func(ls labels.Labels) *functions.Series {
		name, tags := mapping.SeriesName(ls)
		return &functions.Series{
			Name: name, Tags: tags, PathExpression: pathExpr,
			Start: start, End: end, Step: f.step,
			ConsolidationFunc: "average",
		}
	}
	hints := &storage.SelectHints{Start: start * 1000, End: end*1000 - 1, Step: f.step * 1000, Func: "graphite"}
	if err := f.selectNew(ctx, q, hints, sets, seen, int64(n), func(s storage.Series) {
		series = append(series, s)
		out = append(out, newSeries(s.Labels()))
	}); err != nil {
		return nil, err
	}
	err = alignAll(ctx, series, out, start, end, f.step, f.pool)
	f.mtx.Lock()
	for _, s := range out {
		if s.Values != nil {
			f.owned = append(f.owned, s.Values)
		}
	}
	f.mtx.Unlock()
	if err != nil {
		return nil, storageError(err)
	}
	if f.seriesUntil > f.seriesFrom {
		// The series of the wider range, labels only, all null here.
		ws, we := alignedRange(f.seriesFrom, f.seriesUntil, f.step)
		wq, err := f.queryable.Querier(ws*1000, we*1000-1)
		if err != nil {
			return nil, fmt.Errorf("open storage: %w", err)
		}
		defer wq.Close()
		wideHints := &storage.SelectHints{Start: ws * 1000, End: we*1000 - 1, Func: "series"}
		if err := f.selectNew(ctx, wq, wideHints, sets, seen, int64(n), func(s storage.Series) {
			gs := newSeries(s.Labels())
			gs.Values = f.pool.get(n)
			f.mtx.Lock()
			f.owned = append(f.owned, gs.Values)
			f.mtx.Unlock()
			out = append(out, gs)
		}); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// selectNew runs every matcher set on q and passes each series not seen
// before to add, after charging it to the request's budget.
func (f *fetcher) selectNew(ctx context.Context, q storage.Querier, hints *storage.SelectHints, sets [][]*labels.Matcher, seen map[uint64]bool, points int64, add func(storage.Series)) error {
	for _, ms := range sets {
		ss := q.Select(ctx, false, hints, ms...)
		for ss.Next() {
			s := ss.At()
			h := s.Labels().Hash()
			if seen[h] {
				continue
			}
			seen[h] = true
			if err := f.charge(1, points); err != nil {
				return err
			}
			add(s)
		}
		if err := ss.Err(); err != nil {
			return storageError(err)
		}
	}
	return nil
}

// alignAll fills out[i].Values from series[i]. Series given as ordered
// chunks (the querier's) are self-contained and decoded on every CPU:
// decoding is most of a large render's time. Any other series is read in
// this goroutine: a storage's series may share a reader that is not safe
// for concurrent use (a TSDB's head chunk reader is not).
func alignAll(ctx context.Context, series []storage.Series, out []*functions.Series, start, end, step int64, pool *valuesPool) error {
	n := int((end - start) / step)
	var parallel []int
	var it chunkenc.Iterator
	for i, s := range series {
		if _, ok := s.(orderedChunks); ok {
			parallel = append(parallel, i)
			continue
		}
		out[i].Values = pool.get(n)
		var err error
		if it, err = align(out[i].Values, s, it, start, end, step); err != nil {
			return err
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(parallel))
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var it chunkenc.Iterator
			for {
				k := int(next.Add(1) - 1)
				if k >= len(parallel) || ctx.Err() != nil {
					return
				}
				i := parallel[k]
				var err error
				out[i].Values = pool.get(n)
				if it, err = align(out[i].Values, series[i], it, start, end, step); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// orderedChunks is a series whose compressed chunks follow one another in
// time without overlapping (the querier's series read from one ingester or
// block): align reads them in turn instead of through a merging iterator.
type orderedChunks interface {
	OrderedChunks() []chunkenc.Chunk
}

// align reads one series into vals (all NaN), one value per step interval of
// [start, end) seconds: the interval of a sample is its second aligned down to the step,
// and the last sample of an interval is its value. It returns the iterator
// for reuse.
func align(vals []float64, s storage.Series, it chunkenc.Iterator, start, end, step int64) (chunkenc.Iterator, error) {
	a := &aligner{vals: vals, startMs: start * 1000, endMs: end * 1000, stepMs: step * 1000, idx: -1, boundaryMs: start * 1000}
	if oc, ok := s.(orderedChunks); ok {
		for _, chk := range oc.OrderedChunks() {
			it = chk.Iterator(it)
			if !a.read(it, false) {
				break
			}
			if err := it.Err(); err != nil {
				return it, err
			}
		}
		return it, nil
	}
	it = s.Iterator(it)
	a.read(it, true)
	return it, it.Err()
}

// aligner fills one value per step interval from samples in time order.
type aligner struct {
	vals       []float64
	startMs    int64
	endMs      int64
	stepMs     int64
	idx        int   // interval of the last sample
	boundaryMs int64 // start of interval idx+1
}

// read takes it's samples (from a Seek to the start when seek is set) and
// reports whether later samples may still fall in the range. Intervals are
// found by moving a boundary forward, not by dividing every timestamp:
// alignment is a large share of a render's time.
func (a *aligner) read(it chunkenc.Iterator, seek bool) bool {
	t := chunkenc.ValNone
	if seek {
		t = it.Seek(a.startMs)
	} else {
		t = it.Next()
	}
	for ; t != chunkenc.ValNone; t = it.Next() {
		if t != chunkenc.ValFloat {
			continue // native histograms have no Graphite form
		}
		ts, v := it.At()
		if ts < a.startMs {
			continue
		}
		if ts >= a.endMs {
			return false
		}
		if ts >= a.boundaryMs {
			if ts < a.boundaryMs+a.stepMs { // the next interval: the usual case
				a.idx++
				a.boundaryMs += a.stepMs
			} else {
				a.idx = int((ts - a.startMs) / a.stepMs)
				a.boundaryMs = a.startMs + int64(a.idx+1)*a.stepMs
			}
		}
		if value.IsStaleNaN(v) {
			continue
		}
		a.vals[a.idx] = v
	}
	return true
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
	var le *render.LimitError
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
