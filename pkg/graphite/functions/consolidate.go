package functions

import "math"

// Consolidate reduces s to at most maxDataPoints points with its
// ConsolidationFunc and XFilesFactor, as graphite-web's render does for the
// series' own time range. See ConsolidateRange.
func Consolidate(s *Series, maxDataPoints int) *Series {
	return ConsolidateRange(s, maxDataPoints, s.End-s.Start)
}

// ConsolidateRange is graphite-web's json render consolidation with the
// render's time range (max end - min start over all series of the
// response): valuesPerPoint = ceil(timeRange/step / maxDataPoints); the start
// is nudged so that buckets line up with multiples of step*valuesPerPoint
// (stable buckets across refreshes), and each bucket of valuesPerPoint
// values is reduced with the consolidation function, null when fewer than
// xFilesFactor of its values are non-null. maxDataPoints 1 reduces the whole
// series to one point. The input is not modified.
func ConsolidateRange(s *Series, maxDataPoints int, timeRange int64) *Series {
	if maxDataPoints <= 0 || s.Step <= 0 || len(s.Values) == 0 {
		return s
	}
	out := *s
	if maxDataPoints == 1 {
		vpp := len(s.Values)
		out.Values = consolidatedValues(s, vpp)
		out.Step = s.Step * int64(vpp)
		out.End = out.Start + int64(len(out.Values))*out.Step
		return &out
	}
	points := float64(timeRange) / float64(s.Step)
	if float64(maxDataPoints) >= points {
		return s
	}
	vpp := int64(math.Ceil(points / float64(maxDataPoints)))
	if vpp <= 1 {
		return s
	}
	secondsPerPoint := vpp * s.Step
	nudge := secondsPerPoint + pyMod(s.Start, s.Step) - pyMod(s.Start, secondsPerPoint)
	out.Start = s.Start + nudge
	// graphite-web drops nudge/step-1 leading values (range(1, valuesToLose)).
	lose := int(nudge/s.Step) - 1
	vals := s.Values
	if lose > 0 {
		if lose > len(vals) {
			lose = len(vals)
		}
		vals = vals[lose:]
	}
	tmp := *s
	tmp.Values = vals
	out.Values = consolidatedValues(&tmp, int(vpp))
	out.Step = secondsPerPoint
	// timestamps run from the nudged start to the original end inclusive.
	if out.Start <= s.End {
		n := int((s.End-out.Start)/out.Step) + 1
		if len(out.Values) > n {
			out.Values = out.Values[:n]
		}
	} else {
		out.Values = nil
	}
	out.End = out.Start + int64(len(out.Values))*out.Step
	return &out
}

func pyMod(a, b int64) int64 { return floorMod(a, b) }
