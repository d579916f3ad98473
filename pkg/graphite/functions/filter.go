package functions

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
)

// keyValue is graphite-web's keyFunc: null sorts as -inf.
func keyValue(f aggFunc, s *Series) float64 {
	v := f(s.Values)
	if isNull(v) {
		return math.Inf(-1)
	}
	return v
}

// sortSeries sorts stably by key; reverse keeps equal keys in input order,
// as Python's sort(reverse=True) does.
func sortSeries(list []*Series, key func(s *Series) float64, reverse bool) {
	keys := make(map[*Series]float64, len(list))
	for _, s := range list {
		keys[s] = key(s)
	}
	sort.SliceStable(list, func(i, j int) bool {
		if reverse {
			return keys[list[i]] > keys[list[j]]
		}
		return keys[list[i]] < keys[list[j]]
	})
}

func aggOf(name string) aggFunc {
	f, _, _ := lookupAgg(name)
	return f
}

func highestN(list []*Series, n int, fname string, reverse bool) []*Series {
	f := aggOf(fname)
	sortSeries(list, func(s *Series) float64 { return keyValue(f, s) }, reverse)
	if n < 0 {
		n = max(0, len(list)+n)
	}
	if n < len(list) {
		list = list[:n]
	}
	return list
}

func fnHighest(e *env, a *args) ([]*Series, error) {
	return highestN(a.series(0), a.int(1, 1), a.str(2, "average"), true), nil
}

func fnLowest(e *env, a *args) ([]*Series, error) {
	return highestN(a.series(0), a.int(1, 1), a.str(2, "average"), false), nil
}

func highestFn(fname string, reverse bool) func(e *env, a *args) ([]*Series, error) {
	return func(e *env, a *args) ([]*Series, error) {
		return highestN(a.series(0), a.int(1, 1), fname, reverse), nil
	}
}

var operators = map[string]func(v, t float64) bool{
	"=":  func(v, t float64) bool { return !isNull(v) && v == t },
	"!=": func(v, t float64) bool { return isNull(v) || v != t },
	">":  func(v, t float64) bool { return !isNull(v) && v > t },
	">=": func(v, t float64) bool { return !isNull(v) && v >= t },
	"<":  func(v, t float64) bool { return isNull(v) || v < t },
	"<=": func(v, t float64) bool { return isNull(v) || v <= t },
}

func filterList(list []*Series, fname, op string, threshold float64) []*Series {
	f := aggOf(fname)
	cmp := operators[op]
	var out []*Series
	for _, s := range list {
		if cmp(f(s.Values), threshold) {
			out = append(out, s)
		}
	}
	return out
}

func fnFilterSeries(e *env, a *args) ([]*Series, error) {
	op := a.str(2, "")
	if _, ok := operators[op]; !ok {
		return nil, a.errorf("unsupported operator %q (use =, !=, >, >=, < or <=)", op)
	}
	return filterList(a.series(0), a.str(1, ""), op, a.float(3, 0)), nil
}

func filterFn(fname, op string) func(e *env, a *args) ([]*Series, error) {
	return func(e *env, a *args) ([]*Series, error) {
		return filterList(a.series(0), fname, op, a.float(1, 0)), nil
	}
}

// removeFn builds removeAboveValue, removeBelowValue, removeAbovePercentile
// and removeBelowPercentile: values beyond a threshold (n itself, or the
// series' n-th percentile) become null.
func removeFn(fname string, above, percentileOfN bool) func(e *env, a *args) ([]*Series, error) {
	return func(e *env, a *args) ([]*Series, error) {
		n := a.float(1, 0)
		for _, s := range a.series(0) {
			s.Name = fname + "(" + s.Name + ", " + pyG(n) + ")"
			s.PathExpression = s.Name
			limit := n
			if percentileOfN {
				if limit = percentile(s.Values, n, false); isNull(limit) {
					continue
				}
				s.Tags["nPercentile"] = pyFloat(n) // set through nPercentile's copy, which shares the tags
			}
			for i, v := range s.Values {
				if !isNull(v) && (above && v > limit || !above && v < limit) {
					s.Values[i] = nan
				}
			}
		}
		return a.series(0), nil
	}
}

func fnRemoveEmptySeries(e *env, a *args) ([]*Series, error) {
	xff := a.float(1, 0)
	var out []*Series
	for _, s := range a.series(0) {
		if len(s.Values) > 0 && xffOK(countNonNull(s.Values), float64(len(s.Values)), xff) {
			out = append(out, s)
		}
	}
	return out, nil
}

func fnLimit(e *env, a *args) ([]*Series, error) {
	list := a.series(0)
	n := a.int(1, 0)
	if n < 0 {
		n = max(0, len(list)+n)
	}
	if n < len(list) {
		list = list[:n]
	}
	return list, nil
}

func fnSortBy(e *env, a *args) ([]*Series, error) {
	f := aggOf(a.str(1, "average"))
	list := a.series(0)
	sortSeries(list, func(s *Series) float64 { return keyValue(f, s) }, a.bool(2, false))
	return list, nil
}

func fnSortByTotal(e *env, a *args) ([]*Series, error) {
	list := a.series(0)
	sortSeries(list, func(s *Series) float64 { return keyValue(safeSum, s) }, true)
	return list, nil
}

func fnSortByMaxima(e *env, a *args) ([]*Series, error) {
	list := a.series(0)
	sortSeries(list, func(s *Series) float64 { return keyValue(safeMax, s) }, true)
	return list, nil
}

func fnSortByMinima(e *env, a *args) ([]*Series, error) {
	var list []*Series
	for _, s := range a.series(0) {
		m := safeMax(s.Values)
		if !isNull(m) && m > 0 {
			list = append(list, s)
		}
	}
	sortSeries(list, func(s *Series) float64 { return keyValue(safeMin, s) }, false)
	return list, nil
}

var digitsRE = regexp.MustCompile(`\d+`)

func naturalKey(name string) string {
	return digitsRE.ReplaceAllStringFunc(name, func(d string) string {
		d = strings.TrimLeft(d, "0")
		if len(d) < 10 {
			d = strings.Repeat("0", 10-len(d)) + d
		}
		return d
	})
}

func fnSortByName(e *env, a *args) ([]*Series, error) {
	list := a.series(0)
	natural, reverse := a.bool(1, false), a.bool(2, false)
	key := func(s *Series) string { return s.Name }
	if natural {
		key = func(s *Series) string { return naturalKey(s.Name) }
	}
	sort.SliceStable(list, func(i, j int) bool {
		if reverse {
			return key(list[i]) > key(list[j])
		}
		return key(list[i]) < key(list[j])
	})
	return list, nil
}

func compilePattern(a *args, pattern string) (*regexp.Regexp, error) {
	re, err := compilePython(pattern)
	if err != nil {
		return nil, a.errorf("invalid regular expression %q: %v", pattern, err)
	}
	return re, nil
}

func fnGrep(e *env, a *args) ([]*Series, error) {
	re, err := compilePattern(a, a.str(1, ""))
	if err != nil {
		return nil, err
	}
	var out []*Series
	for _, s := range a.series(0) {
		if re.MatchString(s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}

func fnExclude(e *env, a *args) ([]*Series, error) {
	re, err := compilePattern(a, a.str(1, ""))
	if err != nil {
		return nil, err
	}
	var out []*Series
	for _, s := range a.series(0) {
		if !re.MatchString(s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}

func fnMostDeviant(e *env, a *args) ([]*Series, error) {
	type dev struct {
		sigma float64
		s     *Series
	}
	var devs []dev
	for _, s := range a.series(0) {
		mean := safeAvg(s.Values)
		if isNull(mean) {
			continue
		}
		sq := 0.0
		for _, v := range s.Values {
			if !isNull(v) {
				sq += (v - mean) * (v - mean)
			}
		}
		devs = append(devs, dev{sq / float64(countNonNull(s.Values)), s})
	}
	sort.SliceStable(devs, func(i, j int) bool { return devs[i].sigma > devs[j].sigma })
	n := a.int(1, 0)
	var out []*Series
	for i, d := range devs {
		if i >= n {
			break
		}
		out = append(out, d.s)
	}
	return out, nil
}

func fnUnique(e *env, a *args) ([]*Series, error) {
	seen := map[string]bool{}
	var out []*Series
	for _, s := range a.flatSeries(0) {
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s)
		}
	}
	return out, nil
}

func fnFallbackSeries(e *env, a *args) ([]*Series, error) {
	if len(a.series(0)) > 0 {
		return a.series(0), nil
	}
	return a.series(1), nil
}

func fnNPercentile(e *env, a *args) ([]*Series, error) {
	n := a.float(1, 0)
	if n == 0 {
		return nil, a.errorf("the requested percent must be greater than 0")
	}
	var out []*Series
	for _, s := range a.series(0) {
		if countNonNull(s.Values) == 0 {
			continue
		}
		p := percentile(s.Values, n, false)
		if isNull(p) {
			continue
		}
		s.Tags["nPercentile"] = pyFloat(n) // set through nPercentile's copy, which shares the tags
		count := int((s.End - s.Start) / s.Step)
		vals := make([]float64, count)
		for i := range vals {
			vals[i] = p
		}
		s.Tags["nPercentile"] = pyFloat(n)
		out = append(out, copySeries(s, "nPercentile("+s.Name+", "+pyG(n)+")", vals))
	}
	return out, nil
}

func fnAverageOutsidePercentile(e *env, a *args) ([]*Series, error) {
	n := a.float(1, 0)
	list := a.series(0)
	avgs := make([]float64, len(list))
	for i, s := range list {
		avgs[i] = safeAvg(s.Values)
	}
	if n < 50 {
		n = 100 - n
	}
	lo, hi := percentile(avgs, 100-n, false), percentile(avgs, n, false)
	var out []*Series
	for i, s := range list {
		if !(lo < avgs[i] && avgs[i] < hi) {
			out = append(out, s)
		}
	}
	return out, nil
}

func fnRemoveBetweenPercentile(e *env, a *args) ([]*Series, error) {
	n := a.float(1, 0)
	list := a.series(0)
	if n < 50 {
		n = 100 - n
	}
	cols := math.MaxInt
	for _, s := range list {
		cols = min(cols, len(s.Values))
	}
	if len(list) == 0 {
		return nil, nil
	}
	lo, hi := make([]float64, cols), make([]float64, cols)
	col := make([]float64, len(list))
	for c := 0; c < cols; c++ {
		for i, s := range list {
			col[i] = s.Values[c]
		}
		lo[c], hi[c] = percentile(col, 100-n, false), percentile(col, n, false)
	}
	var out []*Series
	for _, s := range list {
		for c := 0; c < cols; c++ {
			v := s.Values[c]
			if !(lo[c] < v && v < hi[c]) {
				out = append(out, s)
				break
			}
		}
	}
	return out, nil
}

// compilePython compiles a Python regular expression with Go's engine; the
// syntax graphite users write (classes, groups, (?P<name>...), anchors) is
// shared, look-arounds and backreferences are not supported.
func compilePython(pattern string) (*regexp.Regexp, error) {
	return regexp.Compile(pattern)
}

// pySub is Python's re.sub(pattern, repl, s) with \1, \g<1>, \g<name>
// backreferences and Python's escapes in repl.
func pySub(re *regexp.Regexp, repl, s string) (string, error) {
	type piece struct {
		lit   string
		group int // -1 = literal
	}
	var pieces []piece
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			pieces = append(pieces, piece{lit: lit.String(), group: -1})
			lit.Reset()
		}
	}
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		if c != '\\' || i+1 >= len(repl) {
			lit.WriteByte(c)
			continue
		}
		i++
		c = repl[i]
		switch {
		case c >= '0' && c <= '9':
			j := i
			for j < len(repl) && j < i+2 && repl[j] >= '0' && repl[j] <= '9' {
				j++
			}
			g := 0
			fmt.Sscanf(repl[i:j], "%d", &g)
			if g > re.NumSubexp() {
				return "", fmt.Errorf("invalid group reference %d", g)
			}
			flush()
			pieces = append(pieces, piece{group: g})
			i = j - 1
		case c == 'g':
			end := strings.IndexByte(repl[i:], '>')
			if i+1 >= len(repl) || repl[i+1] != '<' || end < 0 {
				return "", fmt.Errorf("missing group name in \\g<...>")
			}
			name := repl[i+2 : i+end]
			g := -1
			if _, err := fmt.Sscanf(name, "%d", &g); err != nil || fmt.Sprint(g) != name {
				g = re.SubexpIndex(name)
			}
			if g < 0 || g > re.NumSubexp() {
				return "", fmt.Errorf("unknown group name %q", name)
			}
			flush()
			pieces = append(pieces, piece{group: g})
			i += end
		case c == 'n':
			lit.WriteByte('\n')
		case c == 't':
			lit.WriteByte('\t')
		case c == 'r':
			lit.WriteByte('\r')
		case c == '\\':
			lit.WriteByte('\\')
		case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
			return "", fmt.Errorf("bad escape \\%c", c)
		default:
			lit.WriteByte('\\')
			lit.WriteByte(c)
		}
	}
	flush()
	var out strings.Builder
	last := 0
	for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
		out.WriteString(s[last:m[0]])
		for _, p := range pieces {
			if p.group < 0 {
				out.WriteString(p.lit)
			} else if m[2*p.group] >= 0 {
				out.WriteString(s[m[2*p.group]:m[2*p.group+1]])
			}
		}
		last = m[1]
	}
	out.WriteString(s[last:])
	return out.String(), nil
}
