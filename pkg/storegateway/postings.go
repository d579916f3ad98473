package storegateway

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// postingsSample: the postings table keeps the position of every
// postingsSample-th entry of a label name, as Prometheus' reader does.
const postingsSample = 32

// postingsTable finds the offsets of postings lists in a v2 index's
// postings offset table, which the index header holds in memory. The
// block's Prometheus index reader knows them too but reads the lists
// itself, through a byte source no query's context reaches; with these
// offsets each query reads the lists with its own.
type postingsTable struct {
	data []byte // the table's entries (in the header mapping)
	// samples are the positions in data of every postingsSample-th entry
	// of each label name, the first included.
	samples map[string][]int
}

// newPostingsTable indexes the postings offset table of the index in bs
// (header sections only), which the TOC says starts at off.
func newPostingsTable(bs index.ByteSlice, off uint64) (*postingsTable, error) {
	d := encoding.NewDecbufAt(bs, int(off), castagnoli)
	count := d.Be32int()
	if d.Err() != nil {
		return nil, fmt.Errorf("%w: read postings offset table: %v", bucket.ErrCorrupted, d.Err())
	}
	t := &postingsTable{data: d.B, samples: map[string][]int{}}
	var last []byte
	n := 0
	for pos := 0; count > 0; count-- {
		name, _, _, next, err := t.entry(pos)
		if err != nil {
			return nil, err
		}
		if last == nil || !bytes.Equal(name, last) {
			last, n = name, 0
		}
		if n%postingsSample == 0 {
			t.samples[string(name)] = append(t.samples[string(name)], pos)
		}
		n++
		pos = next
	}
	return t, nil
}

// entry decodes the entry at pos and returns the position of the next.
func (t *postingsTable) entry(pos int) (name, value []byte, off uint64, next int, err error) {
	d := encoding.Decbuf{B: t.data[pos:]}
	if k := d.Uvarint(); k != 2 && d.Err() == nil {
		return nil, nil, 0, 0, fmt.Errorf("%w: postings offset table entry with %d keys, expected 2", bucket.ErrCorrupted, k)
	}
	name = d.UvarintBytes()
	value = d.UvarintBytes()
	off = d.Uvarint64()
	if d.Err() != nil {
		return nil, nil, 0, 0, fmt.Errorf("%w: read postings offset table: %v", bucket.ErrCorrupted, d.Err())
	}
	return name, value, off, len(t.data) - d.Len(), nil
}

// scan calls f with the value and postings offset of each entry of name
// from position pos on, until the entries of name end or f returns false.
func (t *postingsTable) scan(name string, pos int, f func(value []byte, off uint64) bool) error {
	for pos < len(t.data) {
		n, v, off, next, err := t.entry(pos)
		if err != nil {
			return err
		}
		if string(n) != name || !f(v, off) {
			return nil
		}
		pos = next
	}
	return nil
}

// bytes is the memory of the samples (their names are counted with the
// symbols).
func (t *postingsTable) bytes() int64 {
	var n int64
	for _, s := range t.samples {
		n += int64(len(s)) * 8
	}
	return n
}

// yoloString views b as a string without copying it; b is in the header
// mapping, which outlives every query, and the callers keep no strings.
func yoloString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// queryIndex is a block's index as one query reads it: postings lists and
// series entries are read from object storage with the query's context.
// Symbols, label names and values come from the block's shared Prometheus
// reader, whose byte source holds the index header only. A failed read
// panics with a fetchPanic: callers go through catchIndexRead.
type queryIndex struct {
	*index.Reader
	b  *bucketBlock
	bs indexByteSlice
}

// indexFor returns the block's index as the query of ctx reads it.
func (b *bucketBlock) indexFor(ctx context.Context) *queryIndex {
	return &queryIndex{Reader: b.index, b: b, bs: indexByteSlice{ctx: ctx, header: b.header, r: b.indexFile}}
}

var _ tsdb.IndexReader = (*queryIndex)(nil)

// Close keeps a querier from closing the block's shared reader.
func (*queryIndex) Close() error { return nil }

// postingsAt reads the postings list at off.
func (q *queryIndex) postingsAt(off uint64) (index.Postings, error) {
	_, p, err := index.DecodePostingsRaw(encoding.NewDecbufAt(&q.bs, int(off), castagnoli))
	if err != nil {
		return nil, fmt.Errorf("decode postings: %w", err)
	}
	return p, nil
}

func (q *queryIndex) Postings(ctx context.Context, name string, values ...string) (index.Postings, error) {
	t := q.b.postings
	samples := t.samples[name]
	if len(samples) == 0 || len(values) == 0 {
		return index.EmptyPostings(), nil
	}
	if len(values) > 1 {
		values = slices.Clone(values) // the caller's, not ours to sort
		slices.Sort(values)
		values = slices.Compact(values)
	}
	res := make([]index.Postings, 0, len(values))
	for _, want := range values {
		// The last sample at or before want; its entries run up to the
		// next sample.
		i := sort.Search(len(samples), func(i int) bool {
			_, v, _, _, err := t.entry(samples[i])
			return err != nil || string(v) > want
		}) - 1
		if i < 0 {
			continue
		}
		var off uint64
		found := false
		if err := t.scan(name, samples[i], func(v []byte, o uint64) bool {
			if string(v) < want {
				return true
			}
			off, found = o, string(v) == want
			return false
		}); err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		p, err := q.postingsAt(off)
		if err != nil {
			return nil, err
		}
		res = append(res, p)
	}
	return index.Merge(ctx, res...), nil
}

func (q *queryIndex) PostingsForLabelMatching(ctx context.Context, name string, match func(string) bool) index.Postings {
	return q.postingsMatching(ctx, name, match)
}

func (q *queryIndex) PostingsForAllLabelValues(ctx context.Context, name string) index.Postings {
	return q.postingsMatching(ctx, name, nil)
}

// postingsMatching merges the postings of the values of name that match
// (all of them if match is nil).
func (q *queryIndex) postingsMatching(ctx context.Context, name string, match func(string) bool) index.Postings {
	t := q.b.postings
	samples := t.samples[name]
	if len(samples) == 0 {
		return index.EmptyPostings()
	}
	var its []index.Postings
	var err error
	if serr := t.scan(name, samples[0], func(v []byte, off uint64) bool {
		if match != nil && !match(yoloString(v)) {
			return true
		}
		var p index.Postings
		if p, err = q.postingsAt(off); err != nil {
			return false
		}
		its = append(its, p)
		return ctx.Err() == nil
	}); serr != nil {
		return index.ErrPostings(serr)
	}
	if err != nil {
		return index.ErrPostings(err)
	}
	if err := ctx.Err(); err != nil {
		return index.ErrPostings(err)
	}
	return index.Merge(ctx, its...)
}

func (q *queryIndex) Series(ref storage.SeriesRef, builder *labels.ScratchBuilder, chks *[]chunks.Meta) error {
	return q.b.series(&q.bs, ref, builder, chks)
}

// ShardedPostings keeps the series of p whose labels hash to shard
// shardIndex, as Prometheus' reader does.
func (q *queryIndex) ShardedPostings(p index.Postings, shardIndex, shardCount uint64) index.Postings {
	var out []storage.SeriesRef
	var b labels.ScratchBuilder
	for p.Next() {
		if err := q.Series(p.At(), &b, nil); err != nil {
			return index.ErrPostings(fmt.Errorf("series %d not found", p.At()))
		}
		if labels.StableHash(b.Labels())%shardCount == shardIndex {
			out = append(out, p.At())
		}
	}
	if err := p.Err(); err != nil {
		return index.ErrPostings(fmt.Errorf("expand postings: %w", err))
	}
	return index.NewListPostings(out)
}

// Prometheus' index reader answers label queries without matchers only;
// tsdb's own block wraps it the same way.

func (q *queryIndex) SortedLabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, error) {
	if len(ms) == 0 {
		return q.Reader.SortedLabelValues(ctx, name, hints)
	}
	vals, err := q.LabelValues(ctx, name, hints, ms...)
	slices.Sort(vals)
	return vals, err
}

func (q *queryIndex) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, error) {
	if len(ms) == 0 {
		return q.Reader.LabelValues(ctx, name, hints)
	}
	p, err := tsdb.PostingsForMatchers(ctx, q, ms...)
	if err != nil {
		return nil, err
	}
	seen := map[string]struct{}{}
	var b labels.ScratchBuilder
	for p.Next() {
		if err := q.Series(p.At(), &b, nil); err != nil {
			return nil, err
		}
		if v := b.Labels().Get(name); v != "" {
			seen[v] = struct{}{}
		}
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		slices.Sort(out)
		out = out[:hints.Limit]
	}
	return out, nil
}

func (q *queryIndex) LabelNames(ctx context.Context, ms ...*labels.Matcher) ([]string, error) {
	if len(ms) == 0 {
		return q.Reader.LabelNames(ctx)
	}
	p, err := tsdb.PostingsForMatchers(ctx, q, ms...)
	if err != nil {
		return nil, err
	}
	return q.LabelNamesFor(ctx, p)
}

// LabelNamesFor returns the sorted label names of the series of p.
func (q *queryIndex) LabelNamesFor(ctx context.Context, p index.Postings) ([]string, error) {
	seen := map[string]struct{}{}
	var b labels.ScratchBuilder
	for p.Next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := q.Series(p.At(), &b, nil); err != nil {
			return nil, fmt.Errorf("get buffer for series: %w", err)
		}
		b.Labels().Range(func(l labels.Label) { seen[l.Name] = struct{}{} })
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}
