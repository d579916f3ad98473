package querier

import (
	"math/rand"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// wireSeries cuts samples at timestamps ts (value = timestamp/10) into XOR
// chunks of at most per samples each.
func wireSeries(t *testing.T, ts []int64, per int) prompb.ChunkedSeries {
	t.Helper()
	cs := prompb.ChunkedSeries{Labels: []prompb.Label{{Name: "__name__", Value: "x"}}}
	for len(ts) > 0 {
		n := min(per, len(ts))
		chk := chunkenc.NewXORChunk()
		app, err := chk.Appender()
		require.NoError(t, err)
		for _, tt := range ts[:n] {
			app.Append(0, tt, float64(tt)/10)
		}
		cs.Chunks = append(cs.Chunks, prompb.Chunk{MinTimeMs: ts[0], MaxTimeMs: ts[n-1], Type: prompb.Chunk_XOR, Data: chk.Bytes()})
		ts = ts[n:]
	}
	return cs
}

// TestSeriesFromWireOrderedChunks: a series of consecutive chunks reads, with
// any mix of Next and Seek, the same samples as the samples themselves.
func TestSeriesFromWireOrderedChunks(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 200; round++ {
		var ts []int64
		for tt, n := int64(rng.Intn(50)), rng.Intn(400); len(ts) < n; tt += 1 + int64(rng.Intn(30)) {
			ts = append(ts, tt)
		}
		s, err := seriesFromWire(wireSeries(t, ts, 1+rng.Intn(130)), false)
		require.NoError(t, err)
		it := s.Iterator(nil)
		pos := -1 // index in ts of the sample the iterator is at
		for step := 0; step < 60; step++ {
			if rng.Intn(2) == 0 {
				vt := it.Next()
				pos++
				if pos >= len(ts) {
					require.Equal(t, chunkenc.ValNone, vt, "round %d", round)
					break
				}
			} else {
				// Seek to a random time around the current position, also
				// backwards (a no-op) and between samples.
				target := int64(5)
				if len(ts) > 0 {
					target = int64(rng.Intn(int(ts[len(ts)-1]+1+40))) - 20
				}
				vt := it.Seek(target)
				next := max(pos, 0)
				for next < len(ts) && ts[next] < target {
					next++
				}
				pos = next
				if pos >= len(ts) {
					require.Equal(t, chunkenc.ValNone, vt, "round %d seek %d", round, target)
					break
				}
				require.Equal(t, chunkenc.ValFloat, vt)
			}
			gotT, gotV := it.At()
			require.Equal(t, ts[pos], gotT, "round %d step %d", round, step)
			require.Equal(t, float64(ts[pos])/10, gotV)
		}
		require.NoError(t, it.Err())
	}
}

// TestSeriesFromWireOverlappingChunks: overlapping chunks (an out-of-order
// head) are merged in time order without duplicates.
func TestSeriesFromWireOverlappingChunks(t *testing.T) {
	a := wireSeries(t, []int64{10, 20, 30, 40}, 10)
	b := wireSeries(t, []int64{15, 30, 35}, 10)
	a.Chunks = append(a.Chunks, b.Chunks...)
	s, err := seriesFromWire(a, false)
	require.NoError(t, err)
	var got []int64
	it := s.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		tt, _ := it.At()
		got = append(got, tt)
	}
	require.Equal(t, []int64{10, 15, 20, 30, 35, 40}, got)
}

// TestMergeStrings: the values of several sources, sorted or not and with
// duplicates within and across them, merge into one sorted list of distinct
// values, cut at the hint's limit.
func TestMergeStrings(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for round := 0; round < 200; round++ {
		var results []any
		distinct := map[string]bool{}
		for s := rng.Intn(4); s > 0; s-- {
			var vals []string
			for n := rng.Intn(30); n > 0; n-- {
				v := string(rune('a' + rng.Intn(26)))
				vals = append(vals, v)
				distinct[v] = true
			}
			if rng.Intn(2) == 0 {
				slices.Sort(vals)
			}
			results = append(results, vals)
		}
		want := make([]string, 0, len(distinct))
		for v := range distinct {
			want = append(want, v)
		}
		slices.Sort(want)
		limit := rng.Intn(30)
		if limit > 0 && len(want) > limit {
			want = want[:limit]
		}
		got := mergeStrings(results, &storage.LabelHints{Limit: limit})
		if len(want) == 0 {
			require.Empty(t, got, "round %d", round)
			continue
		}
		require.Equal(t, want, got, "round %d", round)
	}
}

// TestMergeSeriesDeduplicatesChunks: copies of a series whose chunks are the
// same bytes (replicas, an ingester's block and its shipped copy) merge into
// ordered chunks, each kept once; copies that differ merge sample by sample.
// Either way the samples are every distinct timestamp once.
func TestMergeSeriesDeduplicatesChunks(t *testing.T) {
	ts := func(from, to, step int64) []int64 {
		var out []int64
		for t := from; t <= to; t += step {
			out = append(out, t)
		}
		return out
	}
	read := func(s storage.Series) []int64 {
		var got []int64
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			tt, v := it.At()
			require.Equal(t, float64(tt)/10, v)
			got = append(got, tt)
		}
		require.NoError(t, it.Err())
		return got
	}
	fromWire := func(cs prompb.ChunkedSeries) storage.Series {
		s, err := seriesFromWire(cs, false)
		require.NoError(t, err)
		return s
	}
	old := wireSeries(t, ts(0, 2390, 10), 120)       // two chunks: a shipped block
	recent := wireSeries(t, ts(2400, 3590, 10), 120) // the ingester's head
	ingester := old
	ingester.Chunks = append(append([]prompb.Chunk{}, old.Chunks...), recent.Chunks...)

	merged := mergeSeries(fromWire(ingester), fromWire(old), fromWire(ingester))
	oc, ok := merged.(*OrderedChunksSeries)
	require.True(t, ok, "identical chunks keep the ordered form")
	require.Len(t, oc.OrderedChunks(), 3)
	require.Equal(t, ts(0, 3590, 10), read(merged))

	// A replica whose chunk was cut elsewhere overlaps without being equal.
	other := wireSeries(t, ts(1000, 3590, 10), 100)
	merged = mergeSeries(fromWire(ingester), fromWire(other))
	_, ok = merged.(*OrderedChunksSeries)
	require.False(t, ok)
	require.Equal(t, ts(0, 3590, 10), read(merged))
}
