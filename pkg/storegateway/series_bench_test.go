package storegateway

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/matchers"
)

// BenchmarkSeries reads every series of the fixture's blocks (200 series,
// 6h at 15s, two 2h blocks) from a warm cache, as a querier's range query
// over all of them does, with the range cutting into the first and last
// chunks.
func BenchmarkSeries(b *testing.B) {
	f := newFixture(b, 1<<30)
	pms, err := matchers.ToProto([]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "requests_total")})
	if err != nil {
		b.Fatal(err)
	}
	req := &meridianpb.StoreSeriesRequest{MinTimeMs: hourMs / 3, MaxTimeMs: 4*hourMs - hourMs/3, Matchers: pms, BlockIds: f.ids(f.metas...)}
	read := func() (series, chunks int) {
		err := f.store.Series(context.Background(), testTenant, req, func(r *meridianpb.StoreSeriesResponse) error {
			for _, cs := range r.Series {
				series++
				chunks += len(cs.Chunks)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		return series, chunks
	}
	series, chunks := read() // warms the cache
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		read()
	}
	b.ReportMetric(float64(series), "series/op")
	b.ReportMetric(float64(chunks), "chunks/op")
}
