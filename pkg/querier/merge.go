package querier

import (
	"bytes"

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
	total := 0
	for _, s := range series {
		oc, ok := s.(*OrderedChunksSeries)
		if !ok {
			return storage.ChainedSeriesMerge(series...)
		}
		total += len(oc.chunks)
	}
	// Each copy's chunks are in time order already: take the earliest
	// next chunk of all copies in turn.
	next := make([]int, len(series))
	merged := &OrderedChunksSeries{Lset: series[0].Labels(), chunks: make([]chunkenc.Chunk, 0, total), times: make([]chunkTimes, 0, total)}
	for {
		pick := -1
		var pt chunkTimes
		for i, s := range series {
			oc := s.(*OrderedChunksSeries)
			if next[i] == len(oc.chunks) {
				continue
			}
			t := oc.times[next[i]]
			if pick < 0 || t.mint < pt.mint || (t.mint == pt.mint && t.maxt < pt.maxt) {
				pick, pt = i, t
			}
		}
		if pick < 0 {
			return merged
		}
		oc := series[pick].(*OrderedChunksSeries)
		c := oc.chunks[next[pick]]
		next[pick]++
		if n := len(merged.chunks); n > 0 {
			last := merged.chunks[n-1]
			if pt == merged.times[n-1] && c.Encoding() == last.Encoding() && bytes.Equal(c.Bytes(), last.Bytes()) {
				continue // the same chunk from another source
			}
			if pt.mint <= merged.times[n-1].maxt {
				return storage.ChainedSeriesMerge(series...)
			}
		}
		merged.chunks = append(merged.chunks, c)
		merged.times = append(merged.times, pt)
	}
}
