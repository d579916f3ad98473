package functions

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var nan = math.NaN()

func isNull(v float64) bool { return math.IsNaN(v) }

// pyG formats like Python's "%g": six significant digits, trailing zeros
// removed, exponent form below 1e-4 and from 1e6.
func pyG(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return fmt.Sprintf("%.6g", f)
}

// pyD formats like Python's "%d" applied to a float (truncation).
func pyD(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return pyG(f)
	}
	return strconv.FormatFloat(math.Trunc(f), 'f', 0, 64)
}

// pyFloat formats like Python's str(float): the shortest repr, always with
// a fraction or an exponent ("100.0", "0.5", "1e+16", "1.5e-05").
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expS, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expS)
	if exp < -4 || exp >= 16 {
		sign := "+"
		if exp < 0 {
			sign = "-"
			exp = -exp
		}
		return fmt.Sprintf("%se%s%02d", mant, sign, exp)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// pyNum formats a literal argument as Python's str() would: ints without a
// fraction, floats with one.
func pyNum(f float64, isInt bool) string {
	if isInt && !math.IsInf(f, 0) && !math.IsNaN(f) {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return pyFloat(f)
}

// pyRound is Python's round(x, n) for a float.
func pyRound(x float64, n int) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(x, 'f', n, 64), 64)
	if err != nil {
		return x
	}
	return r
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func lcm(a, b int64) int64 {
	if a == b {
		return a
	}
	if a < b {
		a, b = b, a
	}
	return a / gcd(a, b) * b
}

// parseTimeOffset parses graphite's relative time strings ("5min", "-1h",
// "1d12h", "2w", "1mon" = 30 days, "1y" = 365 days) into seconds.
func parseTimeOffset(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	sign := int64(1)
	switch s[0] {
	case '+':
		s = s[1:]
	case '-':
		sign = -1
		s = s[1:]
	default:
		if s[0] < '0' || s[0] > '9' {
			return 0, fmt.Errorf("invalid offset %q: it must start with a number or a sign", s)
		}
	}
	var total int64
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("invalid offset: expected a number before %q", s)
		}
		num, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid offset number %q", s[:i])
		}
		s = s[i:]
		j := 0
		for j < len(s) && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z')) {
			j++
		}
		unit := s[:j]
		s = s[j:]
		secs, err := unitSeconds(unit)
		if err != nil {
			return 0, err
		}
		total += num * secs
	}
	return sign * total, nil
}

func unitSeconds(u string) (int64, error) {
	switch {
	case strings.HasPrefix(u, "s"):
		return 1, nil
	case strings.HasPrefix(u, "min"):
		return 60, nil
	case strings.HasPrefix(u, "h"):
		return 3600, nil
	case strings.HasPrefix(u, "d"):
		return 86400, nil
	case strings.HasPrefix(u, "w"):
		return 7 * 86400, nil
	case strings.HasPrefix(u, "mon"):
		return 30 * 86400, nil
	case strings.HasPrefix(u, "y"):
		return 365 * 86400, nil
	}
	return 0, fmt.Errorf("invalid offset unit %q (use s, min, h, d, w, mon or y)", u)
}

// unitName is graphite's getUnitString: the unit an alignment string names.
func unitName(u string) string {
	switch {
	case strings.HasPrefix(u, "s"):
		return "seconds"
	case strings.HasPrefix(u, "min"):
		return "minutes"
	case strings.HasPrefix(u, "h"):
		return "hours"
	case strings.HasPrefix(u, "d"):
		return "days"
	case strings.HasPrefix(u, "w"):
		return "weeks"
	case strings.HasPrefix(u, "mon"):
		return "months"
	case strings.HasPrefix(u, "y"):
		return "years"
	}
	return ""
}

// ---- aggregation functions (graphite's safe.* helpers) ----

type aggFunc func(vals []float64) float64

func nonNull(vals []float64) []float64 {
	out := make([]float64, 0, len(vals))
	for _, v := range vals {
		if !isNull(v) {
			out = append(out, v)
		}
	}
	return out
}

func countNonNull(vals []float64) int {
	n := 0
	for _, v := range vals {
		if !isNull(v) {
			n++
		}
	}
	return n
}

func safeSum(vals []float64) float64 {
	s, n := 0.0, 0
	for _, v := range vals {
		if !isNull(v) {
			s += v
			n++
		}
	}
	if n == 0 {
		return nan
	}
	return s
}

func safeAvg(vals []float64) float64 {
	if s := safeSum(vals); !isNull(s) {
		return s / float64(countNonNull(vals))
	}
	return nan
}

func safeAvgZero(vals []float64) float64 {
	if len(vals) == 0 {
		return nan
	}
	s := 0.0
	for _, v := range vals {
		if !isNull(v) {
			s += v
		}
	}
	return s / float64(len(vals))
}

func safeMedian(vals []float64) float64 {
	nn := nonNull(vals)
	if len(nn) == 0 {
		return nan
	}
	sort.Float64s(nn)
	mid := len(nn) / 2
	if len(nn)%2 == 0 {
		return (nn[mid-1] + nn[mid]) / 2
	}
	return nn[mid]
}

func safeMin(vals []float64) float64 {
	m, ok := 0.0, false
	for _, v := range vals {
		if !isNull(v) && (!ok || v < m) {
			m, ok = v, true
		}
	}
	if !ok {
		return nan
	}
	return m
}

func safeMax(vals []float64) float64 {
	m, ok := 0.0, false
	for _, v := range vals {
		if !isNull(v) && (!ok || v > m) {
			m, ok = v, true
		}
	}
	if !ok {
		return nan
	}
	return m
}

func safeDiff(vals []float64) float64 {
	nn := nonNull(vals)
	if len(nn) == 0 {
		return nan
	}
	d := nn[0]
	for _, v := range nn[1:] {
		d -= v
	}
	return d
}

func safeStddev(vals []float64) float64 {
	nn := nonNull(vals)
	if len(nn) == 0 {
		return nan
	}
	avg := safeAvg(nn)
	s := 0.0
	for _, v := range nn {
		s += (v - avg) * (v - avg)
	}
	return math.Sqrt(s / float64(len(nn)))
}

func safeCount(vals []float64) float64 { return float64(countNonNull(vals)) }

func safeRange(vals []float64) float64 { return safeMax(vals) - safeMin(vals) }

// safeMultiply is null as soon as one factor is null, as graphite's safeMul.
func safeMultiply(vals []float64) float64 {
	if len(vals) == 0 {
		return nan
	}
	p := 1.0
	for _, v := range vals {
		if isNull(v) {
			return nan
		}
		p *= v
	}
	return p
}

func safeLast(vals []float64) float64 {
	for i := len(vals) - 1; i >= 0; i-- {
		if !isNull(vals[i]) {
			return vals[i]
		}
	}
	return nan
}

var aggFuncs = map[string]aggFunc{
	"average":  safeAvg,
	"avg_zero": safeAvgZero,
	"median":   safeMedian,
	"sum":      safeSum,
	"min":      safeMin,
	"max":      safeMax,
	"diff":     safeDiff,
	"stddev":   safeStddev,
	"count":    safeCount,
	"range":    safeRange,
	"multiply": safeMultiply,
	"last":     safeLast,
	// aliases
	"rangeOf": safeRange,
	"avg":     safeAvg,
	"total":   safeSum,
	"current": safeLast,
}

// aggFuncNames lists the valid aggregation names in graphite-web's order.
var aggFuncNames = []string{"average", "avg_zero", "median", "sum", "min", "max", "diff", "stddev", "count", "range", "multiply", "last", "rangeOf", "avg", "total", "current"}

// lookupAgg resolves an aggregation name; the deprecated "<name>Series"
// spelling is accepted as graphite-web does.
func lookupAgg(name string) (aggFunc, string, bool) {
	if f, ok := aggFuncs[name]; ok {
		return f, name, true
	}
	if base, ok := strings.CutSuffix(name, "Series"); ok {
		if f, ok := aggFuncs[base]; ok {
			return f, base, true
		}
	}
	return nil, "", false
}

// xffOK is graphite's xff(): enough non-null values (and at least one).
func xffOK(nonNull int, total float64, xff float64) bool {
	if nonNull == 0 || total == 0 {
		return false
	}
	return float64(nonNull)/total >= xff
}

// percentile is graphite's _getPercentile.
func percentile(points []float64, n float64, interpolate bool) float64 {
	sorted := nonNull(points)
	if len(sorted) == 0 {
		return nan
	}
	sort.Float64s(sorted)
	fractionalRank := n / 100.0 * float64(len(sorted)+1)
	rank := int(fractionalRank)
	rankFraction := fractionalRank - float64(rank)
	if !interpolate {
		rank += int(math.Ceil(rankFraction))
	}
	var p float64
	switch {
	case rank == 0:
		p = sorted[0]
	case rank-1 >= len(sorted):
		p = sorted[len(sorted)-1]
	default:
		p = sorted[rank-1]
	}
	if interpolate && rank != len(sorted) && rank < len(sorted) {
		p = p + rankFraction*(sorted[rank]-p)
	}
	return p
}

// ---- series helpers ----

func cloneTags(t map[string]string) map[string]string {
	out := make(map[string]string, len(t)+1)
	for k, v := range t {
		out[k] = v
	}
	return out
}

// copySeries is graphite's TimeSeries.copy(name=..., values=...): the copy's
// pathExpression is its new name.
func copySeries(s *Series, name string, values []float64) *Series {
	c := *s
	c.Name = name
	c.PathExpression = name
	c.Tags = cloneTags(s.Tags)
	c.Values = values
	return &c
}

// newSeries builds a fresh series as graphite's TimeSeries(name, ...) does.
func newSeries(name string, start, end, step int64, values []float64, tags map[string]string) *Series {
	if tags == nil {
		tags = tagsFromName(name)
	}
	return &Series{Name: name, PathExpression: name, Tags: tags, Start: start, End: end, Step: step, Values: values, ConsolidationFunc: "average"}
}

// tagsFromName parses "a.b;k=v;k2=v2" into tags, as graphite's tagdb.parse
// does for names that are not function calls.
func tagsFromName(name string) map[string]string {
	if looksLikeCall(name) {
		return map[string]string{"name": name}
	}
	parts := strings.Split(name, ";")
	tags := map[string]string{"name": parts[0]}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return map[string]string{"name": name}
		}
		tags[k] = v
	}
	return tags
}

var callNameRE = regexp.MustCompile(`(?i)^[a-z]+[(].+[)]$`)

func looksLikeCall(name string) bool { return callNameRE.MatchString(name) }

// formatPathExpressions joins the distinct pathExpressions in order.
func formatPathExpressions(list []*Series) string {
	var out []string
	seen := map[string]bool{}
	for _, s := range list {
		if !seen[s.PathExpression] {
			seen[s.PathExpression] = true
			out = append(out, s.PathExpression)
		}
	}
	return strings.Join(out, ",")
}

// consolidatedValues is graphite's TimeSeries iterated with valuesPerPoint:
// buckets of vpp values from the first one, reduced by the series'
// consolidation function honouring its xFilesFactor.
func consolidatedValues(s *Series, vpp int) []float64 {
	if vpp <= 1 {
		return s.Values
	}
	cf := s.ConsolidationFunc
	out := make([]float64, 0, (len(s.Values)+vpp-1)/vpp)
	buf := make([]float64, 0, vpp)
	for i := 0; i < len(s.Values); i += vpp {
		end := i + vpp
		if end > len(s.Values) {
			end = len(s.Values)
		}
		buf = buf[:0]
		nn := 0
		for _, v := range s.Values[i:end] {
			if !isNull(v) {
				buf = append(buf, v)
				nn++
			} else if cf == "avg_zero" {
				buf = append(buf, 0)
			}
		}
		if nn > 0 && float64(nn)/float64(vpp) >= s.XFilesFactor {
			out = append(out, consolidate(cf, buf))
		} else {
			out = append(out, nan)
		}
	}
	return out
}

func consolidate(cf string, buf []float64) float64 {
	switch cf {
	case "sum":
		s := 0.0
		for _, v := range buf {
			s += v
		}
		return s
	case "max":
		return safeMax(buf)
	case "min":
		return safeMin(buf)
	case "first":
		return buf[0]
	case "last":
		return buf[len(buf)-1]
	default: // average, avg, avg_zero
		s := 0.0
		for _, v := range buf {
			s += v
		}
		return s / float64(len(buf))
	}
}

// normalized is the result of graphite's normalize(): every series'
// values consolidated to the common step (the lcm of the steps).
type normalized struct {
	series     []*Series
	values     [][]float64
	start, end int64
	step       int64
	maxLen     int
}

func normalize(list []*Series) (*normalized, bool) {
	if len(list) == 0 {
		return nil, false
	}
	step := list[0].Step
	for _, s := range list[1:] {
		step = lcm(step, s.Step)
	}
	n := &normalized{series: list, step: step, start: list[0].Start, end: list[0].End}
	for _, s := range list {
		vpp := 1
		if s.Step > 0 {
			vpp = int(step / s.Step)
		}
		vals := consolidatedValues(s, vpp)
		n.values = append(n.values, vals)
		if len(vals) > n.maxLen {
			n.maxLen = len(vals)
		}
		if s.Start < n.start {
			n.start = s.Start
		}
		if s.End > n.end {
			n.end = s.End
		}
	}
	if step > 0 {
		n.end -= (n.end - n.start) % step
	}
	return n, true
}

// row returns the i-th values of all normalized series, padding with null
// (izip_longest).
func (n *normalized) row(i int, buf []float64) []float64 {
	buf = buf[:0]
	for _, vals := range n.values {
		if i < len(vals) {
			buf = append(buf, vals[i])
		} else {
			buf = append(buf, nan)
		}
	}
	return buf
}

// commonTags keeps the tags every series shares with the first one.
func commonTags(list []*Series) map[string]string {
	tags := cloneTags(list[0].Tags)
	for _, s := range list[1:] {
		for k, v := range tags {
			if sv, ok := s.Tags[k]; !ok || sv != v {
				delete(tags, k)
			}
		}
	}
	return tags
}
