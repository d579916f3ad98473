package querier

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// chunkTimes is the first and last timestamp of a chunk.
type chunkTimes struct{ mint, maxt int64 }

// OrderedChunksSeries is a series read from compressed chunks that follow
// one another in time without overlapping. Readers that only walk forward
// (Graphite's step alignment) can read OrderedChunks in turn, without the
// sample merge its Iterator needs to implement Seek.
type OrderedChunksSeries struct {
	Lset   labels.Labels
	chunks []chunkenc.Chunk
	times  []chunkTimes
}

func (s *OrderedChunksSeries) Labels() labels.Labels { return s.Lset }

// OrderedChunks returns the chunks, oldest first, none overlapping another.
func (s *OrderedChunksSeries) OrderedChunks() []chunkenc.Chunk { return s.chunks }

func (s *OrderedChunksSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if len(s.chunks) == 1 {
		return s.chunks[0].Iterator(it)
	}
	return chainedChunksSeries(s.Lset, s.chunks).Iterator(it)
}

// chainedChunksSeries reads chunks through one merging iterator: in order it
// reads them in turn, overlapping ones are merged without duplicates.
func chainedChunksSeries(lset labels.Labels, chks []chunkenc.Chunk) storage.Series {
	iterables := make([]chunkenc.Iterable, len(chks))
	for i, c := range chks {
		iterables[i] = c
	}
	return &storage.SeriesEntry{
		Lset: lset,
		SampleIteratorFn: func(it chunkenc.Iterator) chunkenc.Iterator {
			return storage.ChainSampleIteratorFromIterables(it, iterables)
		},
	}
}

// mergeSeries merges the copies of one series from several sources: replicas
// of an ingester, an ingester's local block and its shipped copy read by a
// store-gateway. Copies are mostly the same chunks byte for byte; those are
// kept once, so the samples are decoded once and the result stays ordered
// chunks. Chunks that overlap without being identical fall back to
// Prometheus' sample-by-sample merge, which drops equal timestamps.
func mergeSeries(series ...storage.Series) storage.Series {
	if len(series) == 1 {
		return series[0]
	}
	type timedChunk struct {
		chunkTimes
		chk chunkenc.Chunk
	}
	total := 0
	for _, s := range series {
		oc, ok := s.(*OrderedChunksSeries)
		if !ok {
			return storage.ChainedSeriesMerge(series...)
		}
		total += len(oc.chunks)
	}
	all := make([]timedChunk, 0, total)
	for _, s := range series {
		oc := s.(*OrderedChunksSeries)
		for i, c := range oc.chunks {
			all = append(all, timedChunk{oc.times[i], c})
		}
	}
	slices.SortFunc(all, func(a, b timedChunk) int {
		if c := cmp.Compare(a.mint, b.mint); c != 0 {
			return c
		}
		return cmp.Compare(a.maxt, b.maxt)
	})
	merged := &OrderedChunksSeries{Lset: series[0].Labels(), chunks: make([]chunkenc.Chunk, 0, total), times: make([]chunkTimes, 0, total)}
	for i, c := range all {
		if i > 0 {
			last := all[i-1]
			if c.chunkTimes == last.chunkTimes && c.chk.Encoding() == last.chk.Encoding() && bytes.Equal(c.chk.Bytes(), last.chk.Bytes()) {
				continue // the same chunk from another source
			}
			if c.mint <= merged.times[len(merged.times)-1].maxt {
				return storage.ChainedSeriesMerge(series...)
			}
		}
		merged.chunks = append(merged.chunks, c.chk)
		merged.times = append(merged.times, c.chunkTimes)
	}
	return merged
}
