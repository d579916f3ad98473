package storegateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// pageSize is the unit of ranged reads and of the cache: a read is
// widened to whole pages, and each page is cached on its own, so reads
// close to each other share pages.
const pageSize = 16 << 10

// objectReader reads byte ranges of one object through the cache.
type objectReader struct {
	bkt      objstore.BucketReader
	name     string // object name in the bucket
	size     int64
	kind     string // kindIndex or kindChunks, for metrics
	cacheKey string // prefix of the cache keys of its pages
	cache    Cache
	m        *metrics
	// The cache counters of kind, resolved once: reads are per chunk and
	// per series entry, too frequent for a label lookup each.
	cacheRequests, cacheHits prometheus.Counter
}

func newObjectReader(bkt objstore.BucketReader, name string, size int64, kind, cacheKey string, cache Cache, m *metrics) *objectReader {
	return &objectReader{
		bkt: bkt, name: name, size: size, kind: kind, cacheKey: cacheKey, cache: cache, m: m,
		cacheRequests: m.cacheRequests.WithLabelValues(kind), cacheHits: m.cacheHits.WithLabelValues(kind),
	}
}

// cachedPage looks page p up in an in-process cache without allocating
// its key: most reads (a chunk, a series entry) fall within one page, and
// they are many.
func (r *objectReader) cachedPage(p int64) ([]byte, bool) {
	lru, ok := r.cache.(*LRUCache)
	if !ok {
		return nil, false
	}
	var buf [128]byte
	key := strconv.AppendInt(append(buf[:0], r.cacheKey...), p, 10)
	pg, ok := lru.getBytes(key)
	if ok {
		r.cacheRequests.Inc()
		r.cacheHits.Inc()
	}
	return pg, ok
}

// page returns page p of the object whole.
func (r *objectReader) page(ctx context.Context, p int64) ([]byte, error) {
	if pg, ok := r.cachedPage(p); ok {
		return pg, nil
	}
	return r.read(ctx, p*pageSize, min((p+1)*pageSize, r.size))
}

// read returns bytes [start, end) of the object.
func (r *objectReader) read(ctx context.Context, start, end int64) ([]byte, error) {
	if start < 0 || end < start || end > r.size {
		return nil, fmt.Errorf("%w: read of bytes %d to %d of %s, which has %d bytes", bucket.ErrCorrupted, start, end, r.name, r.size)
	}
	if start == end {
		return []byte{}, nil
	}
	first, last := start/pageSize, (end-1)/pageSize
	if first == last {
		// Look it up without the key list and result map of a multi-key
		// fetch. A miss goes on to the general path, which counts it.
		if pg, ok := r.cachedPage(first); ok {
			lo, hi := start-first*pageSize, end-first*pageSize
			if hi > int64(len(pg)) {
				return nil, fmt.Errorf("%w: cached page of %s is short", bucket.ErrCorrupted, r.name)
			}
			return pg[lo:hi:hi], nil
		}
	}
	keys := make([]string, 0, last-first+1)
	for p := first; p <= last; p++ {
		keys = append(keys, r.cacheKey+strconv.FormatInt(p, 10))
	}
	r.cacheRequests.Add(float64(len(keys)))
	pages := r.cache.Fetch(ctx, keys)
	r.cacheHits.Add(float64(len(pages)))

	// Fetch each run of consecutive missing pages with one ranged GET.
	for p := first; p <= last; {
		if _, ok := pages[keys[p-first]]; ok {
			p++
			continue
		}
		runEnd := p
		for runEnd+1 <= last {
			if _, ok := pages[keys[runEnd+1-first]]; ok {
				break
			}
			runEnd++
		}
		off := p * pageSize
		length := min((runEnd+1)*pageSize, r.size) - off
		buf, err := r.getRange(ctx, off, length)
		if err != nil {
			return nil, err
		}
		for q := p; q <= runEnd; q++ {
			lo := (q - p) * pageSize
			hi := min(lo+pageSize, int64(len(buf)))
			page := buf[lo:hi:hi]
			pages[keys[q-first]] = page
			r.cache.Store(keys[q-first], page)
		}
		p = runEnd + 1
	}

	if first == last {
		pg := pages[keys[0]]
		lo, hi := start-first*pageSize, end-first*pageSize
		if hi > int64(len(pg)) {
			return nil, fmt.Errorf("%w: cached page of %s is short", bucket.ErrCorrupted, r.name)
		}
		return pg[lo:hi:hi], nil
	}
	out := make([]byte, 0, end-start)
	for p := first; p <= last; p++ {
		pg := pages[keys[p-first]]
		lo, hi := int64(0), int64(len(pg))
		if p == first {
			lo = start - first*pageSize
		}
		if p == last {
			hi = end - last*pageSize
		}
		if hi > int64(len(pg)) || lo > hi {
			return nil, fmt.Errorf("%w: cached page of %s is short", bucket.ErrCorrupted, r.name)
		}
		out = append(out, pg[lo:hi]...)
	}
	return out, nil
}

// getRange reads [off, off+length) from object storage, uncached.
func (r *objectReader) getRange(ctx context.Context, off, length int64) ([]byte, error) {
	// A cancelled query issues no more reads.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read bytes %d to %d of %s: %w", off, off+length, r.name, err)
	}
	r.m.getRangeRequests.WithLabelValues(r.kind).Inc()
	rc, err := r.bkt.GetRange(ctx, r.name, off, length)
	if err != nil {
		return nil, fmt.Errorf("read bytes %d to %d of %s: %w", off, off+length, r.name, err)
	}
	defer rc.Close()
	buf := make([]byte, length)
	n, err := io.ReadFull(rc, buf)
	r.m.bytesFetched.WithLabelValues(r.kind).Add(float64(n))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s ends at byte %d, expected at least %d", bucket.ErrCorrupted, r.name, off+int64(n), off+length)
		}
		return nil, fmt.Errorf("read bytes %d to %d of %s: %w", off, off+length, r.name, err)
	}
	return buf, nil
}
