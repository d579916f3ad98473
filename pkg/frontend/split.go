package frontend

import (
	"github.com/prometheus/prometheus/promql/parser"
)

// timeRange is an inclusive range of points on a step grid, in Unix
// milliseconds: start, start+step, ..., end.
type timeRange struct {
	start, end int64
}

// floorDiv is a / b rounded towards negative infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// lastPoint is the last point start + k*step that is not after end.
func lastPoint(start, end, step int64) int64 {
	return start + (end-start)/step*step
}

// splitByInterval splits the points start + k*step (up to end) into
// sub-ranges, one per interval [n*interval, (n+1)*interval) holding at least
// one point. The sub-ranges partition the points: each starts and ends on a
// point, and no point is in two of them. interval <= 0 means one range.
// The loop runs at most once per point.
func splitByInterval(start, end, step, interval int64) []timeRange {
	if end < start || step <= 0 {
		return nil
	}
	end = lastPoint(start, end, step)
	if interval <= 0 {
		return []timeRange{{start, end}}
	}
	var out []timeRange
	for s := start; s <= end; {
		next := (floorDiv(s, interval) + 1) * interval // first instant of the next interval
		e := s + (next-1-s)/step*step                  // last point before it
		if e > end {
			e = end
		}
		out = append(out, timeRange{s, e})
		s = e + step
	}
	return out
}

// rewriteStartEnd replaces `@ start()` and `@ end()` in expr with the
// timestamps of the original query, so that every sub-query evaluates them
// the same. It reports whether anything changed.
func rewriteStartEnd(expr parser.Expr, start, end int64) bool {
	changed := false
	set := func(ts **int64, se *parser.ItemType) {
		var v int64
		switch *se {
		case parser.START:
			v = start
		case parser.END:
			v = end
		default:
			return
		}
		*ts = &v
		*se = 0
		changed = true
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			set(&n.Timestamp, &n.StartOrEnd)
		case *parser.SubqueryExpr:
			set(&n.Timestamp, &n.StartOrEnd)
		}
		return nil
	})
	return changed
}
