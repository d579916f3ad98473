package frontend

import (
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

func TestSplitByInterval(t *testing.T) {
	const h = int64(3600_000)
	tests := []struct {
		name                       string
		start, end, step, interval int64
		want                       []timeRange
	}{
		{"shorter than the interval", 60_000, 600_000, 60_000, 24 * h, []timeRange{{60_000, 600_000}}},
		{"aligned, two intervals", 0, 2*h - 60_000, 60_000, h, []timeRange{{0, h - 60_000}, {h, 2*h - 60_000}}},
		{"end on the boundary", 0, 2 * h, 60_000, h, []timeRange{{0, h - 60_000}, {h, 2*h - 60_000}, {2 * h, 2 * h}}},
		{"start not aligned to step or interval", 1234, 2*h + 400_000, 7 * 60_000, h, []timeRange{
			{1234, 1234 + 8*420_000}, {1234 + 9*420_000, 1234 + 17*420_000}, {1234 + 18*420_000, 1234 + 18*420_000},
		}},
		{"end not on a point", 0, h + 59_999, 60_000, h, []timeRange{{0, h - 60_000}, {h, h}}},
		{"step larger than the interval", 0, 10 * h, 3 * h, h, []timeRange{{0, 0}, {3 * h, 3 * h}, {6 * h, 6 * h}, {9 * h, 9 * h}}},
		{"one point", 5 * h, 5 * h, 60_000, h, []timeRange{{5 * h, 5 * h}}},
		{"negative times", -h - 30_000, h, 60_000, h, []timeRange{{-h - 30_000, -h - 30_000}, {-h + 30_000, -30_000}, {30_000, h - 30_000}}},
		{"no split", 0, 10 * h, 60_000, 0, []timeRange{{0, 10 * h}}},
		{"end before start", 10, 5, 1, h, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, splitByInterval(tc.start, tc.end, tc.step, tc.interval))
		})
	}
}

// TestSplitPartitionsPoints checks on many shapes that the sub-ranges hold
// every point of the query exactly once and never cross an interval.
func TestSplitPartitionsPoints(t *testing.T) {
	for _, interval := range []int64{7, 10, 60, 100} {
		for _, step := range []int64{1, 3, 7, 10, 61, 250} {
			for _, start := range []int64{-37, 0, 5, 59, 60} {
				for _, end := range []int64{start, start + 1, start + 59, start + 600, start + 1001} {
					var got []int64
					for _, r := range splitByInterval(start, end, step, interval) {
						require.Equal(t, floorDiv(r.start, interval), floorDiv(r.end, interval), "range crosses an interval boundary")
						for p := r.start; p <= r.end; p += step {
							got = append(got, p)
						}
					}
					var want []int64
					for p := start; p <= end; p += step {
						want = append(want, p)
					}
					require.Equal(t, want, got, "interval %d step %d start %d end %d", interval, step, start, end)
				}
			}
		}
	}
}

func TestRewriteStartEnd(t *testing.T) {
	tests := []struct {
		in, want string
		changed  bool
	}{
		{`up @ start()`, `up @ 1.234`, true},
		{`rate(up[5m] @ end())`, `rate(up[5m] @ 3600.000)`, true},
		{`max_over_time(rate(up[5m])[30m:1m] @ end()) - up @ start()`, `max_over_time(rate(up[5m])[30m:1m] @ 3600.000) - up @ 1.234`, true},
		{`up offset 5m @ 100`, `up @ 100.000 offset 5m`, false},
		{`up`, `up`, false},
	}
	p := parser.NewParser(parser.Options{})
	for _, tc := range tests {
		expr, err := p.ParseExpr(tc.in)
		require.NoError(t, err)
		require.Equal(t, tc.changed, rewriteStartEnd(expr, 1234, 3600_000), tc.in)
		require.Equal(t, tc.want, expr.String())
		// What is printed parses back to the same query.
		_, err = p.ParseExpr(expr.String())
		require.NoError(t, err)
	}
}
