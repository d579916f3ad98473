package api

import (
	"math"
	"math/rand"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
)

// chunkedSeries is a series given as ordered chunks, as the querier's.
type chunkedSeries struct {
	*storage.SeriesEntry
	chks []chunkenc.Chunk
}

func (c chunkedSeries) OrderedChunks() []chunkenc.Chunk { return c.chks }

// naiveAlign is the definition: a sample at t ms belongs to the interval of
// floor(t/1000) seconds; the last non-stale sample of an interval wins.
func naiveAlign(ts []int64, vs []float64, start, end, step int64) []float64 {
	out := make([]float64, (end-start)/step)
	for i := range out {
		out[i] = math.NaN()
	}
	for i, t := range ts {
		sec := t / 1000
		if t < 0 && t%1000 != 0 {
			sec--
		}
		idx := (sec - start) / step
		if sec < start || idx >= int64(len(out)) || value.IsStaleNaN(vs[i]) {
			continue
		}
		out[idx] = vs[i]
	}
	return out
}

// TestAlignMatchesDefinition: the boundary-walking aligner, over ordered
// chunks and over a plain series iterator, gives the definition's values for
// irregular samples (gaps, several samples per interval, stale markers,
// samples before and after the range).
func TestAlignMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for round := 0; round < 300; round++ {
		step := int64(1 + rng.Intn(60))
		start := int64(rng.Intn(100000)) / step * step
		end := start + step*int64(rng.Intn(200))
		var ts []int64
		var vs []float64
		for t := start*1000 - int64(rng.Intn(5*int(step)*1000)); t < end*1000+int64(step)*3000; {
			ts = append(ts, t)
			v := float64(rng.Intn(1000))
			if rng.Intn(20) == 0 {
				v = math.Float64frombits(value.StaleNaN)
			}
			vs = append(vs, v)
			switch rng.Intn(4) {
			case 0: // a gap of many intervals
				t += int64(rng.Intn(20*int(step)*1000)) + 1
			default:
				t += int64(rng.Intn(int(step)*1000)) + 1
			}
		}
		want := naiveAlign(ts, vs, start, end, step)

		var samples []chunks.Sample
		var chks []chunkenc.Chunk
		for i := 0; i < len(ts); {
			n := min(len(ts)-i, 1+rng.Intn(150))
			chk := chunkenc.NewXORChunk()
			app, err := chk.Appender()
			require.NoError(t, err)
			for k := i; k < i+n; k++ {
				app.Append(0, ts[k], vs[k])
				samples = append(samples, floatSample{t: ts[k], f: vs[k]})
			}
			chks = append(chks, chk)
			i += n
		}
		plain := storage.NewListSeries(labels.FromStrings("__name__", "x"), samples)
		for name, s := range map[string]storage.Series{"plain": plain, "chunks": chunkedSeries{SeriesEntry: plain, chks: chks}} {
			got := (*valuesPool)(nil).get(len(want))
			_, err := align(got, s, nil, start, end, step)
			require.NoError(t, err)
			require.Len(t, got, len(want))
			for i := range want {
				if math.IsNaN(want[i]) {
					require.True(t, math.IsNaN(got[i]), "%s round %d interval %d: want null, got %v", name, round, i, got[i])
				} else {
					require.Equal(t, want[i], got[i], "%s round %d interval %d", name, round, i)
				}
			}
		}
	}
}

type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

// TestValuesPool: slices come back NaN-filled whatever they held, are
// reused up to the pool's bound, and a nil pool allocates.
func TestValuesPool(t *testing.T) {
	vp := newValuesPool(3 * 10 * 8) // three slices of 10
	var got [][]float64
	for i := 0; i < 4; i++ {
		v := vp.get(10)
		require.Len(t, v, 10)
		for j := range v {
			require.True(t, math.IsNaN(v[j]))
			v[j] = float64(j)
		}
		got = append(got, v)
	}
	for _, v := range got {
		vp.put(v)
	}
	require.Len(t, vp.free, 3, "the fourth is over the bound")
	again := vp.get(8)
	require.Len(t, again, 8)
	require.Same(t, &got[2][0], &again[0], "the last kept slice is reused")
	for _, x := range again {
		require.True(t, math.IsNaN(x))
	}
	require.Len(t, vp.get(20), 20, "a longer request than the kept slices allocates")
	require.Len(t, (*valuesPool)(nil).get(5), 5)
}
