package storegateway

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/meridianhq/meridian/pkg/meridianpb"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// sendSeries streams the series of blocks matching ms, sorted by labels,
// each with the chunks of every block that overlap the request's range,
// oldest first, in batches of seriesBatch.
//
// It reads the index and the chunk bytes itself rather than through tsdb's
// block chunk querier: that querier decodes and re-encodes the chunks at
// the edges of the range to trim them, and merges the blocks chunk by
// chunk through a heap, which together were most of a store-gateway's
// time in a large read. Here chunks go out as stored, whole. Their samples
// outside the range are dropped by the querier's readers (PromQL and
// Graphite read only the range they ask for), and chunks of blocks that
// overlap in time (replicas not yet compacted) are merged sample by sample
// by the querier.
func (s *Store) sendSeries(ctx context.Context, blocks []*bucketBlock, ms []*labels.Matcher, req *meridianpb.StoreSeriesRequest, send func(*meridianpb.StoreSeriesResponse) error) error {
	// Oldest block first, so that a series' chunks come out in time order
	// when the blocks do not overlap.
	blocks = slices.Clone(blocks)
	slices.SortStableFunc(blocks, func(a, b *bucketBlock) int { return cmp.Compare(a.meta.MinTime, b.meta.MinTime) })
	cursors := make([]*blockSeries, 0, len(blocks))
	for _, blk := range blocks {
		c := &blockSeries{blk: blk, mint: req.MinTimeMs, maxt: req.MaxTimeMs, index: blk.indexFor(ctx), chunks: &chunkReader{b: blk, ctx: ctx}}
		if err := c.open(ctx, ms); err != nil {
			return err
		}
		if c.next() {
			cursors = append(cursors, c)
		} else if c.err != nil {
			return c.err
		}
	}

	batch := make([]prompb.ChunkedSeries, 0, seriesBatch)
	var arena chunkArena
	same := make([]*blockSeries, 0, len(cursors))
	for len(cursors) > 0 {
		// The cursors whose series sorts first: the same series in each of
		// those blocks.
		same = same[:0]
		for _, c := range cursors {
			if len(same) > 0 {
				d := labels.Compare(c.lset, same[0].lset)
				if d > 0 {
					continue
				}
				if d < 0 {
					same = same[:0]
				}
			}
			same = append(same, c)
		}
		cs := prompb.ChunkedSeries{Labels: prompb.FromLabels(same[0].lset, nil)}
		if !req.SkipChunks {
			n := 0
			for _, c := range same {
				n += len(c.metas)
			}
			cs.Chunks = arena.take(n)
			for _, c := range same {
				for _, m := range c.metas {
					wc, err := c.wireChunk(m)
					if err != nil {
						return err
					}
					cs.Chunks = append(cs.Chunks, wc)
				}
			}
			if len(same) > 1 {
				slices.SortStableFunc(cs.Chunks, func(a, b prompb.Chunk) int { return cmp.Compare(a.MinTimeMs, b.MinTimeMs) })
			}
		}
		batch = append(batch, cs)
		if len(batch) == seriesBatch {
			if err := send(&meridianpb.StoreSeriesResponse{Series: batch}); err != nil {
				return err
			}
			batch = make([]prompb.ChunkedSeries, 0, seriesBatch)
		}

		// Move the cursors just read on; drop those at their end.
		for _, c := range same {
			if !c.next() {
				if c.err != nil {
					return c.err
				}
				c.done = true
			}
		}
		cursors = slices.DeleteFunc(cursors, func(c *blockSeries) bool { return c.done })
	}
	if len(batch) > 0 {
		return send(&meridianpb.StoreSeriesResponse{Series: batch})
	}
	return nil
}

// chunkArena hands out chunk slices carved from larger allocations: one
// allocation for many series instead of a growing slice each.
type chunkArena struct{ free []prompb.Chunk }

// take returns an empty slice with room for n chunks.
func (a *chunkArena) take(n int) []prompb.Chunk {
	if n > cap(a.free)-len(a.free) {
		a.free = make([]prompb.Chunk, 0, max(n, 4096))
	}
	l := len(a.free)
	a.free = a.free[:l+n]
	return a.free[l : l : l+n]
}

// blockSeries walks the series of one block that match, with their chunk
// metas in the range. Failed index reads become its error.
type blockSeries struct {
	blk        *bucketBlock
	mint, maxt int64
	index      *queryIndex // the block's index as this query reads it
	chunks     *chunkReader
	postings   index.Postings

	builder labels.ScratchBuilder
	lset    labels.Labels
	metas   []chunks.Meta
	err     error
	done    bool
}

func (c *blockSeries) open(ctx context.Context, ms []*labels.Matcher) error {
	err := catchIndexRead(func() error {
		var err error
		c.postings, err = tsdb.PostingsForMatchers(ctx, c.index, ms...)
		return err
	})
	if err != nil {
		return c.blk.readError(err)
	}
	return nil
}

// next moves to the next matching series with chunks in the range.
func (c *blockSeries) next() bool {
	var ok bool
	if err := catchIndexRead(func() error { ok = c.advance(); return nil }); err != nil {
		c.err = c.blk.readError(err)
		return false
	}
	return ok
}

func (c *blockSeries) advance() bool {
	for c.postings.Next() {
		// A block's postings only name series its index holds: any
		// failure to read one is corruption, not a stale reference.
		if err := c.index.Series(c.postings.At(), &c.builder, &c.metas); err != nil {
			c.err = fmt.Errorf("read series %d of block %s of tenant %s: %w", c.postings.At(), c.blk.meta.ULID, c.blk.tenant, err)
			return false
		}
		c.metas = slices.DeleteFunc(c.metas, func(m chunks.Meta) bool { return m.MaxTime < c.mint || m.MinTime > c.maxt })
		if len(c.metas) == 0 {
			continue
		}
		c.lset = c.builder.Labels()
		return true
	}
	if err := c.postings.Err(); err != nil {
		c.err = fmt.Errorf("read postings of block %s of tenant %s: %w", c.blk.meta.ULID, c.blk.tenant, err)
	}
	return false
}

// wireChunk reads the chunk of m as it is stored.
func (c *blockSeries) wireChunk(m chunks.Meta) (prompb.Chunk, error) {
	enc, data, err := c.chunks.raw(m.Ref)
	if err != nil {
		return prompb.Chunk{}, err
	}
	out, err := meridianpb.WireChunk(m.MinTime, m.MaxTime, enc, data)
	if err != nil {
		return out, c.chunks.failed(fmt.Errorf("%w: chunk %d: %v", bucket.ErrCorrupted, m.Ref, err))
	}
	return out, nil
}
