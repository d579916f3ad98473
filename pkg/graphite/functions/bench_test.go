package functions

import (
	"context"
	"fmt"
	"testing"

	"github.com/meridianhq/meridian/pkg/graphite/parser"
)

// memFetcher serves pre-built series (no storage cost) so that the
// benchmarks measure the evaluator alone.
type memFetcher struct{ series []*Series }

func (m *memFetcher) FetchPath(ctx context.Context, glob string, from, until int64) ([]*Series, error) {
	return m.series, nil
}

func (m *memFetcher) FetchTagged(ctx context.Context, exprs []string, from, until int64) ([]*Series, error) {
	return nil, nil
}

// 1000 series x 24h at 10s, as the render benchmark.
func benchFetcher() *memFetcher {
	const points = 8640
	m := &memFetcher{}
	for i := 0; i < 1000; i++ {
		vals := make([]float64, points)
		for j := range vals {
			vals[j] = float64((i*j)%97) + 0.5
		}
		m.series = append(m.series, &Series{Name: fmt.Sprintf("servers.s%04d.cpu.user", i), Start: 0, End: points * 10, Step: 10, Values: vals})
	}
	return m
}

func BenchmarkEval(b *testing.B) {
	f := benchFetcher()
	for _, target := range []string{
		"sumSeries(servers.*.cpu.user)",
		"aliasByNode(sumSeries(servers.*.cpu.user), 1)",
		"groupByNode(servers.*.cpu.user, 2, 'sum')",
		"highestMax(servers.*.cpu.user, 5)",
		"scale(servers.*.cpu.user, 2)",
	} {
		x, err := parser.Parse(target)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(target, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Eval(context.Background(), &Request{From: 0, Until: 86400, Fetcher: f}, x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
