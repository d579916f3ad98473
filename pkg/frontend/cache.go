package frontend

import (
	"container/list"
	"context"
	"slices"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
)

// extent is a range of step-grid points and the series samples in it.
// Its matrix is never modified once the extent is built.
type extent struct {
	timeRange
	m model.Matrix
	// ann are the annotations of the sub-queries that fetched parts of the
	// extent: disjoint, sorted, each within the extent. An annotation is a
	// fact about all the points of its span, not of one point, so a span is
	// used whole or not at all (see trim).
	ann []annSpan
}

// annSpan is the range of one sub-query that answered with warnings or
// infos, and those.
type annSpan struct {
	timeRange
	warnings, infos []string
}

// trim returns the part of e within r, shrunk further so that it holds no
// annotated span only partly: such a span's annotations might come from
// points outside the part. ok is false when nothing is left.
func trim(e extent, r timeRange, step int64) (extent, bool) {
	r = timeRange{max(e.start, r.start), min(e.end, r.end)}
	for _, a := range e.ann {
		if a.start < r.start && a.end >= r.start {
			r.start = a.end + step
		}
		if a.end > r.end && a.start <= r.end {
			r.end = a.start - step
		}
	}
	if r.start > r.end {
		return extent{}, false
	}
	out := extent{timeRange: r, m: e.m}
	if r != e.timeRange {
		out.m = extract(e.m, r)
	}
	for _, a := range e.ann {
		if a.start >= r.start && a.end <= r.end {
			out.ann = append(out.ann, a)
		}
	}
	return out, true
}

// annSize estimates the bytes of annotations, for the cache budget.
func annSize(ann []annSpan) int {
	n := 0
	for _, a := range ann {
		n += 48
		for _, s := range a.warnings {
			n += len(s) + 16
		}
		for _, s := range a.infos {
			n += len(s) + 16
		}
	}
	return n
}

// cacheEntry holds the extents of one key, sorted and disjoint.
type cacheEntry struct {
	key     string
	extents []extent
	size    int
}

// resultsCache is an in-memory LRU of extents per key, bounded in bytes.
type resultsCache struct {
	maxBytes int

	mu    sync.Mutex
	size  int
	ll    *list.List // of *cacheEntry, most recently used first
	items map[string]*list.Element

	evictions prometheus.Counter
	bytes     prometheus.Gauge
	entries   prometheus.Gauge
}

func newResultsCache(maxBytes int, reg prometheus.Registerer) *resultsCache {
	return &resultsCache{
		maxBytes: maxBytes,
		ll:       list.New(),
		items:    map[string]*list.Element{},
		evictions: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "meridian_frontend_cache_evictions_total",
			Help: "Results cache entries evicted to stay within -frontend.results-cache.max-size-bytes.",
		}),
		bytes: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "meridian_frontend_cache_bytes",
			Help: "Estimated bytes held by the results cache.",
		}),
		entries: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "meridian_frontend_cache_entries",
			Help: "Keys (tenant, query, step, grid) held by the results cache.",
		}),
	}
}

// get returns the extents of key (shared: read only) and marks it used.
func (c *resultsCache) get(_ context.Context, key string) []extent {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil
	}
	c.ll.MoveToFront(el)
	return el.Value.(*cacheEntry).extents
}

// add stores n under key, combined with the extents already there: n's
// samples replace theirs where they overlap, and touching extents join.
func (c *resultsCache) add(_ context.Context, key string, _ []extent, n extent, step int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var old []extent
	if el, ok := c.items[key]; ok {
		old = el.Value.(*cacheEntry).extents
	}
	exts := addExtent(old, n, step)
	size := len(key) + 64
	for _, e := range exts {
		size += matrixSize(e.m) + annSize(e.ann) + 32
	}
	if el, ok := c.items[key]; ok {
		c.size -= el.Value.(*cacheEntry).size
		c.ll.Remove(el)
		delete(c.items, key)
	}
	if size <= c.maxBytes {
		c.items[key] = c.ll.PushFront(&cacheEntry{key: key, extents: exts, size: size})
		c.size += size
	}
	for c.size > c.maxBytes && c.ll.Len() > 0 {
		el := c.ll.Back()
		e := el.Value.(*cacheEntry)
		c.ll.Remove(el)
		delete(c.items, e.key)
		c.size -= e.size
		c.evictions.Inc()
	}
	c.bytes.Set(float64(c.size))
	c.entries.Set(float64(c.ll.Len()))
}

// addExtent returns old (sorted, disjoint) with n added: the parts of old
// extents that n covers are dropped, and extents that touch on the grid are
// joined.
func addExtent(old []extent, n extent, step int64) []extent {
	out := make([]extent, 0, len(old)+1)
	for _, e := range old {
		if e.end < n.start || e.start > n.end {
			out = append(out, e)
			continue
		}
		if e.start < n.start {
			if t, ok := trim(e, timeRange{e.start, n.start - step}, step); ok {
				out = append(out, t)
			}
		}
		if e.end > n.end {
			if t, ok := trim(e, timeRange{n.end + step, e.end}, step); ok {
				out = append(out, t)
			}
		}
	}
	out = append(out, n)
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	joined := out[:1]
	for _, e := range out[1:] {
		last := &joined[len(joined)-1]
		if last.end+step == e.start {
			*last = extent{timeRange{last.start, e.end}, concat(last.m, e.m), append(slices.Clip(last.ann), e.ann...)}
			continue
		}
		joined = append(joined, e)
	}
	return joined
}

// lookup splits r into the parts cached extents answer and the gaps to
// fetch. All ranges are on the grid of r and step. A hit carries the
// annotations of the spans it covers whole; a span r covers only partly is
// fetched again.
func lookup(r timeRange, exts []extent, step int64) (hits []part, gaps []timeRange) {
	cur := r.start
	for _, e := range exts {
		if e.end < cur || e.start > r.end {
			continue
		}
		t, ok := trim(e, timeRange{cur, r.end}, step)
		if !ok {
			continue
		}
		if t.start > cur {
			gaps = append(gaps, timeRange{cur, t.start - step})
		}
		p := part{r: t.timeRange, m: extract(t.m, t.timeRange), cached: true}
		for _, a := range t.ann {
			p.warnings = union(p.warnings, a.warnings)
			p.infos = union(p.infos, a.infos)
		}
		hits = append(hits, p)
		cur = t.end + step
	}
	if cur <= r.end {
		gaps = append(gaps, timeRange{cur, r.end})
	}
	return hits, gaps
}
