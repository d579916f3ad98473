package storegateway

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/matchers"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// storedChunk is a chunk as a block holds it.
type storedChunk struct {
	mint, maxt int64
	data       []byte
}

// storedChunks reads the chunks of the local blocks overlapping
// [mint, maxt] whole, per series, with Prometheus' own block reader.
func (f *fixture) storedChunks(t *testing.T, mint, maxt int64, ms ...*labels.Matcher) map[string][]storedChunk {
	t.Helper()
	out := map[string][]storedChunk{}
	f.eachLocalBlock(t, func(blk *tsdb.Block) {
		q, err := tsdb.NewBlockChunkQuerier(blk, mint, maxt)
		require.NoError(t, err)
		set := q.Select(context.Background(), true, &storage.SelectHints{Start: mint, End: maxt, DisableTrimming: true}, ms...)
		for set.Next() {
			s := set.At()
			it := s.Iterator(nil)
			for it.Next() {
				m := it.At()
				out[s.Labels().String()] = append(out[s.Labels().String()], storedChunk{m.MinTime, m.MaxTime, bytes.Clone(m.Chunk.Bytes())})
			}
			require.NoError(t, it.Err())
		}
		require.NoError(t, set.Err())
		require.NoError(t, q.Close())
	})
	return out
}

// rawSeries asks the store and returns the series as sent, in order.
func (f *fixture) rawSeries(t *testing.T, req *meridianpb.StoreSeriesRequest, ms ...*labels.Matcher) []prompb.ChunkedSeries {
	t.Helper()
	pms, err := matchers.ToProto(ms)
	require.NoError(t, err)
	req.Matchers = pms
	var out []prompb.ChunkedSeries
	require.NoError(t, f.store.Series(context.Background(), testTenant, req, func(r *meridianpb.StoreSeriesResponse) error {
		out = append(out, r.Series...)
		return nil
	}))
	return out
}

// The store sends each series once, sorted by labels across its messages,
// with the chunks of every block that overlap the range, whole and as
// stored, oldest first.
func TestSeriesSendsStoredChunksWhole(t *testing.T) {
	f := newFixture(t, 1<<30)
	all := labels.MustNewMatcher(labels.MatchEqual, "__name__", "requests_total")
	for _, r := range []struct{ mint, maxt int64 }{
		{0, 6 * hourMs},
		{hourMs + 7, 3*hourMs - 7}, // starts and ends inside chunks, spans both blocks
		{5 * hourMs, 7 * hourMs},   // only the last block's tail is in range; that block is not shipped
	} {
		want := f.storedChunks(t, r.mint, r.maxt, all)
		got := f.rawSeries(t, &meridianpb.StoreSeriesRequest{MinTimeMs: r.mint, MaxTimeMs: r.maxt, BlockIds: f.ids(f.metas...)}, all)
		require.Len(t, got, len(want), "range %v", r)
		for i, cs := range got {
			lset := labelsOf(cs)
			if i > 0 {
				require.Negative(t, labels.Compare(labelsOf(got[i-1]), lset), "series sorted by labels")
			}
			w := want[lset.String()]
			require.Len(t, cs.Chunks, len(w), "chunks of %s in %v", lset, r)
			for j, c := range cs.Chunks {
				require.Equal(t, w[j].mint, c.MinTimeMs)
				require.Equal(t, w[j].maxt, c.MaxTimeMs)
				require.Equal(t, w[j].data, c.Data, "chunk %d of %s is sent as stored", j, lset)
				require.Equal(t, prompb.Chunk_XOR, c.Type)
			}
		}
	}

	// Labels only: the same series, no chunks.
	got := f.rawSeries(t, &meridianpb.StoreSeriesRequest{MinTimeMs: hourMs, MaxTimeMs: 3 * hourMs, BlockIds: f.ids(f.metas...), SkipChunks: true},
		labels.MustNewMatcher(labels.MatchEqual, "job", "job-2"))
	require.Len(t, got, len(f.storedChunks(t, hourMs, 3*hourMs, labels.MustNewMatcher(labels.MatchEqual, "job", "job-2"))))
	for _, cs := range got {
		require.Empty(t, cs.Chunks)
	}
}

// Blocks that overlap in time (two replicas' blocks before compaction):
// a series' chunks from both come in one series, ordered by start time,
// and together hold every sample of each.
func TestSeriesOverlappingBlocks(t *testing.T) {
	f := newFixture(t, 1<<30)
	_, again := shipBlocks(t, f.bkt, testTenant) // a second replica's blocks of the same samples
	ms := labels.MustNewMatcher(labels.MatchRegexp, "instance", "i-0[0-4].")
	want := f.local(t, 0, 6*hourMs, ms)
	got := f.rawSeries(t, &meridianpb.StoreSeriesRequest{MinTimeMs: 0, MaxTimeMs: 6 * hourMs, BlockIds: f.ids(append(f.metas, again...)...)}, ms)
	require.Len(t, got, len(want))
	for _, cs := range got {
		for j := 1; j < len(cs.Chunks); j++ {
			require.LessOrEqual(t, cs.Chunks[j-1].MinTimeMs, cs.Chunks[j].MinTimeMs)
		}
	}
	samples, _, err := f.series(t, 0, 6*hourMs, f.ids(append(f.metas, again...)...), ms)
	require.NoError(t, err)
	for key, w := range want {
		// Each sample twice, once per replica.
		twice := make([]sample, 0, 2*len(w))
		for _, s := range w {
			twice = append(twice, s, s)
		}
		g := samples[key]
		slices.SortStableFunc(g, func(a, b sample) int { return cmp.Compare(a.t, b.t) })
		require.Equal(t, twice, g, key)
	}
}

// The block's symbol table finds every symbol the index reader lists, by
// number, and series read through it equal the index reader's.
func TestSymbolTable(t *testing.T) {
	f := newFixture(t, 1<<30)
	blk, err := f.store.block(context.Background(), testTenant, f.metas[0].ULID)
	require.NoError(t, err)
	defer blk.release()

	it := blk.index.Symbols()
	n := uint32(0)
	for ; it.Next(); n++ {
		got, err := blk.symbols.lookup(context.Background(), n)
		require.NoError(t, err)
		require.Equal(t, it.At(), got, "symbol %d", n)
	}
	require.NoError(t, it.Err())
	require.Greater(t, n, uint32(numSeries), "the instances' names alone are more symbols than that")
	_, err = blk.symbols.lookup(context.Background(), n)
	require.ErrorIs(t, err, bucket.ErrCorrupted)

	// Prometheus' reader over the whole index, object storage included.
	full, err := index.NewReader(blk.indexBytesFor(context.Background()), index.DecodePostingsRaw)
	require.NoError(t, err)
	p, err := full.Postings(context.Background(), "__name__", "requests_total")
	require.NoError(t, err)
	var want, got labels.ScratchBuilder
	var wantChks, gotChks []chunks.Meta
	series := 0
	for ; p.Next(); series++ {
		require.NoError(t, full.Series(p.At(), &want, &wantChks))
		require.NoError(t, blk.series(blk.indexBytesFor(context.Background()), p.At(), &got, &gotChks))
		require.Equal(t, want.Labels(), got.Labels())
		require.Equal(t, wantChks, gotChks)
	}
	require.NoError(t, p.Err())
	require.Equal(t, numSeries, series)
}
