package functions

import (
	"math"
	"strconv"
	"time"
)

// mapValues renames each series to name(series) and maps its values in
// place, as graphite-web's simple transforms do.
func mapValues(list []*Series, rename func(s *Series) string, tag, tagVal string, f func(v float64) float64) []*Series {
	for _, s := range list {
		if tag != "" {
			s.Tags[tag] = tagVal
		}
		s.Name = rename(s)
		s.PathExpression = s.Name
		for i, v := range s.Values {
			s.Values[i] = f(v)
		}
	}
	return list
}

func keepNull(f func(v float64) float64) func(v float64) float64 {
	return func(v float64) float64 {
		if isNull(v) {
			return v
		}
		return f(v)
	}
}

// safePow is graphite's safePow: math errors and overflow give null.
func safePow(a, b float64) float64 {
	if isNull(a) || isNull(b) {
		return nan
	}
	r := math.Pow(a, b)
	if math.IsNaN(r) || (math.IsInf(r, 0) && !math.IsInf(a, 0) && !math.IsInf(b, 0)) {
		return nan
	}
	return r
}

func fnScale(e *env, a *args) ([]*Series, error) {
	f := a.float(1, 1)
	return mapValues(a.series(0), func(s *Series) string { return "scale(" + s.Name + "," + pyG(f) + ")" }, "scale", pyFloat(f),
		keepNull(func(v float64) float64 { return v * f })), nil
}

func fnScaleToSeconds(e *env, a *args) ([]*Series, error) {
	secs := a.float(1, 1)
	for _, s := range a.series(0) {
		s.Tags["scaleToSeconds"] = pyFloat(secs)
		s.Name = "scaleToSeconds(" + s.Name + "," + pyD(secs) + ")"
		s.PathExpression = s.Name
		factor := secs / float64(s.Step)
		for i, v := range s.Values {
			if !isNull(v) {
				s.Values[i] = pyRound(v*factor, 6)
			}
		}
	}
	return a.series(0), nil
}

func fnOffset(e *env, a *args) ([]*Series, error) {
	f := a.float(1, 0)
	return mapValues(a.series(0), func(s *Series) string { return "offset(" + s.Name + "," + pyG(f) + ")" }, "offset", pyFloat(f),
		keepNull(func(v float64) float64 { return v + f })), nil
}

func fnAdd(e *env, a *args) ([]*Series, error) {
	f := a.float(1, 0)
	return mapValues(a.series(0), func(s *Series) string { return "add(" + s.Name + "," + pyD(f) + ")" }, "add", pyFloat(f),
		keepNull(func(v float64) float64 { return v + f })), nil
}

func fnOffsetToZero(e *env, a *args) ([]*Series, error) {
	for _, s := range a.series(0) {
		m := safeMin(s.Values)
		if isNull(m) {
			s.Tags["offsetToZero"] = "None"
		} else {
			s.Tags["offsetToZero"] = pyFloat(m)
		}
		s.Name = "offsetToZero(" + s.Name + ")"
		s.PathExpression = s.Name
		for i, v := range s.Values {
			if !isNull(v) {
				s.Values[i] = v - m
			}
		}
	}
	return a.series(0), nil
}

func fnAbsolute(e *env, a *args) ([]*Series, error) {
	return mapValues(a.series(0), func(s *Series) string { return "absolute(" + s.Name + ")" }, "absolute", "1", math.Abs), nil
}

func fnInvert(e *env, a *args) ([]*Series, error) {
	return mapValues(a.series(0), func(s *Series) string { return "invert(" + s.Name + ")" }, "invert", "1",
		func(v float64) float64 { return safePow(v, -1) }), nil
}

func fnPow(e *env, a *args) ([]*Series, error) {
	f := a.float(1, 1)
	return mapValues(a.series(0), func(s *Series) string { return "pow(" + s.Name + "," + pyG(f) + ")" }, "pow", pyFloat(f),
		func(v float64) float64 { return safePow(v, f) }), nil
}

func fnSquareRoot(e *env, a *args) ([]*Series, error) {
	return mapValues(a.series(0), func(s *Series) string { return "squareRoot(" + s.Name + ")" }, "squareRoot", "1",
		func(v float64) float64 { return safePow(v, 0.5) }), nil
}

func fnExp(e *env, a *args) ([]*Series, error) {
	return mapValues(a.series(0), func(s *Series) string { return "exp(" + s.Name + ")" }, "exp", "e",
		keepNull(math.Exp)), nil
}

func fnSigmoid(e *env, a *args) ([]*Series, error) {
	return mapValues(a.series(0), func(s *Series) string { return "sigmoid(" + s.Name + ")" }, "sigmoid", "sigmoid",
		keepNull(func(v float64) float64 { return 1 / (1 + math.Exp(-v)) })), nil
}

func fnLogit(e *env, a *args) ([]*Series, error) {
	return mapValues(a.series(0), func(s *Series) string { return "logit(" + s.Name + ")" }, "logit", "logit",
		keepNull(func(v float64) float64 {
			if v == 1 || v/(1-v) <= 0 {
				return nan
			}
			return math.Log(v / (1 - v))
		})), nil
}

func fnRound(e *env, a *args) ([]*Series, error) {
	given := a.has(1)
	p := a.int(1, 0)
	for _, s := range a.series(0) {
		s.Tags["round"] = strconv.Itoa(p)
		if !given {
			s.Name = "round(" + s.Name + ")"
		} else {
			s.Name = "round(" + s.Name + "," + strconv.Itoa(p) + ")"
		}
		s.PathExpression = s.Name
		for i, v := range s.Values {
			if !isNull(v) {
				if p >= 0 {
					s.Values[i] = pyRound(v, p)
				} else {
					m := math.Pow(10, float64(-p))
					s.Values[i] = math.RoundToEven(v/m) * m
				}
			}
		}
	}
	return a.series(0), nil
}

func fnLog(e *env, a *args) ([]*Series, error) {
	base := a.float(1, 10)
	var out []*Series
	for _, s := range a.series(0) {
		vals := make([]float64, len(s.Values))
		for i, v := range s.Values {
			if isNull(v) || v <= 0 {
				vals[i] = nan
			} else {
				vals[i] = math.Log(v) / math.Log(base)
			}
		}
		s.Tags["log"] = pyNum(base, true)
		out = append(out, copySeries(s, "log("+s.Name+", "+pyNum(base, true)+")", vals))
	}
	return out, nil
}

func fnDerivative(e *env, a *args) ([]*Series, error) {
	var out []*Series
	for _, s := range a.series(0) {
		vals := make([]float64, len(s.Values))
		prev := nan
		for i, v := range s.Values {
			if isNull(prev) || isNull(v) {
				vals[i] = nan
			} else {
				vals[i] = v - prev
			}
			prev = v
		}
		s.Tags["derivative"] = "1"
		out = append(out, copySeries(s, "derivative("+s.Name+")", vals))
	}
	return out, nil
}

// nonNegativeDelta is graphite-web's _nonNegativeDelta; maxValue/minValue are
// NaN when not given.
func nonNegativeDelta(val, prev, maxValue, minValue float64) (float64, float64) {
	if !isNull(maxValue) && !isNull(val) && val > maxValue {
		return nan, nan
	}
	if !isNull(minValue) && !isNull(val) && val < minValue {
		return nan, nan
	}
	if isNull(prev) || isNull(val) {
		return nan, val
	}
	if val >= prev {
		return val - prev, val
	}
	if !isNull(maxValue) {
		mv := 0.0
		if !isNull(minValue) {
			mv = minValue
		}
		return maxValue + 1 + val - prev - mv, val
	}
	if !isNull(minValue) {
		return val - minValue, val
	}
	return nan, val
}

func fnNonNegativeDerivative(e *env, a *args) ([]*Series, error) {
	maxV, minV := a.float(1, nan), a.float(2, nan)
	var out []*Series
	for _, s := range a.series(0) {
		vals := make([]float64, len(s.Values))
		prev := nan
		for i, v := range s.Values {
			vals[i], prev = nonNegativeDelta(v, prev, maxV, minV)
		}
		s.Tags["nonNegativeDerivative"] = "1"
		out = append(out, copySeries(s, "nonNegativeDerivative("+s.Name+")", vals))
	}
	return out, nil
}

func fnPerSecond(e *env, a *args) ([]*Series, error) {
	maxV, minV := a.float(1, nan), a.float(2, nan)
	var out []*Series
	for _, s := range a.series(0) {
		vals := make([]float64, len(s.Values))
		prev := nan
		for i, v := range s.Values {
			var d float64
			d, prev = nonNegativeDelta(v, prev, maxV, minV)
			if isNull(d) {
				vals[i] = nan
			} else {
				vals[i] = pyRound(d/float64(s.Step), 6)
			}
		}
		s.Tags["perSecond"] = "1"
		out = append(out, copySeries(s, "perSecond("+s.Name+")", vals))
	}
	return out, nil
}

func fnIntegral(e *env, a *args) ([]*Series, error) {
	var out []*Series
	for _, s := range a.series(0) {
		vals := make([]float64, len(s.Values))
		cur := 0.0
		for i, v := range s.Values {
			if isNull(v) {
				vals[i] = nan
			} else {
				cur += v
				vals[i] = cur
			}
		}
		s.Tags["integral"] = "1"
		out = append(out, copySeries(s, "integral("+s.Name+")", vals))
	}
	return out, nil
}

func fnIntegralByInterval(e *env, a *args) ([]*Series, error) {
	unit := a.str(1, "")
	d, _ := parseTimeOffset(unit)
	if d < 0 {
		d = -d
	}
	if d == 0 {
		return nil, a.errorf("intervalUnit must not be zero")
	}
	start := e.from
	var out []*Series
	for _, s := range a.series(0) {
		vals := make([]float64, len(s.Values))
		cur := 0.0
		t := s.Start
		for i, v := range s.Values {
			if floorDiv(t-start, d) != floorDiv(t-start-s.Step, d) {
				cur = 0
			}
			if !isNull(v) {
				cur += v
			}
			vals[i] = cur
			t += s.Step
		}
		s.Tags["integralByInterval"] = unit
		out = append(out, copySeries(s, "integralByInterval("+s.Name+",'"+unit+"')", vals))
	}
	return out, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

func fnDelay(e *env, a *args) ([]*Series, error) {
	steps := a.int(1, 0)
	var out []*Series
	for _, s := range a.series(0) {
		n := len(s.Values)
		var vals []float64
		if steps < 0 {
			k := -steps
			if k < n {
				vals = append(vals, s.Values[k:]...)
			}
			for i := 0; i < min(k, n); i++ {
				vals = append(vals, nan)
			}
		} else {
			for i := 0; i < min(steps, n); i++ {
				vals = append(vals, nan)
			}
			// series[:-steps]; graphite-web's delay(x, 0) yields no values.
			if steps > 0 && steps < n {
				vals = append(vals, s.Values[:n-steps]...)
			}
		}
		if vals == nil {
			vals = []float64{}
		}
		s.Tags["delay"] = strconv.Itoa(steps)
		out = append(out, copySeries(s, "delay("+s.Name+","+strconv.Itoa(steps)+")", vals))
	}
	return out, nil
}

func fnKeepLastValue(e *env, a *args) ([]*Series, error) {
	limit := math.Inf(1)
	if a.has(1) {
		limit = a.float(1, limit)
	}
	for _, s := range a.series(0) {
		s.Name = "keepLastValue(" + s.Name + ")"
		s.PathExpression = s.Name
		nones := 0
		last := nan
		for i, v := range s.Values {
			if isNull(v) {
				nones++
				continue
			}
			if nones > 0 && float64(nones) <= limit && !isNull(last) {
				for j := i - nones; j < i; j++ {
					s.Values[j] = last
				}
			}
			nones = 0
			last = v
		}
		if nones > 0 && float64(nones) <= limit && !isNull(last) {
			for j := len(s.Values) - nones; j < len(s.Values); j++ {
				s.Values[j] = last
			}
		}
	}
	return a.series(0), nil
}

func fnInterpolate(e *env, a *args) ([]*Series, error) {
	limit := math.Inf(1)
	if a.has(1) {
		limit = a.float(1, limit)
	}
	for _, s := range a.series(0) {
		s.Name = "interpolate(" + s.Name + ")"
		s.PathExpression = s.Name
		nones := 0
		for i, v := range s.Values {
			if i == 0 {
				continue
			}
			if isNull(v) {
				nones++
				continue
			}
			if nones == 0 {
				continue
			}
			before := s.Values[i-nones-1]
			if isNull(before) {
				nones = 0
				continue
			}
			if float64(nones) <= limit {
				for j := i - nones; j < i; j++ {
					s.Values[j] = before + float64(j-(i-nones-1))*(v-before)/float64(nones+1)
				}
			}
			nones = 0
		}
	}
	return a.series(0), nil
}

func fnTransformNull(e *env, a *args) ([]*Series, error) {
	def := a.float(1, 0)
	refs := a.series(2)
	ref := len(refs) > 0 // an empty reference list counts as none, as in graphite-web
	var defaults []float64
	if ref {
		n := 0
		for _, r := range refs {
			n = max(n, len(r.Values))
		}
		defaults = make([]float64, n)
		for i := range defaults {
			defaults[i] = nan
			for _, r := range refs {
				if i < len(r.Values) && !isNull(r.Values[i]) {
					defaults[i] = def
					break
				}
			}
		}
	}
	defTag := "0" // graphite-web's unvalidated default is the int 0
	if a.has(1) {
		defTag = pyFloat(def)
	}
	for _, s := range a.series(0) {
		s.Tags["transformNull"] = defTag
		if ref {
			s.Tags["referenceSeries"] = "1"
			s.Name = "transformNull(" + s.Name + "," + pyG(def) + ",referenceSeries)"
		} else {
			s.Name = "transformNull(" + s.Name + "," + pyG(def) + ")"
		}
		s.PathExpression = s.Name
		if !ref {
			for i, v := range s.Values {
				if isNull(v) {
					s.Values[i] = def
				}
			}
			continue
		}
		n := max(len(s.Values), len(defaults))
		vals := make([]float64, n)
		for i := range vals {
			v := at(s.Values, i)
			if isNull(v) {
				v = at(defaults, i)
			}
			vals[i] = v
		}
		// graphite-web replaces the values with series.extend(values) and
		// del series[:len(values)]: when the reference is longer, the
		// series keeps the last len(series) values.
		s.Values = vals[n-len(s.Values):]
	}
	return a.series(0), nil
}

func fnIsNonNull(e *env, a *args) ([]*Series, error) {
	return mapValues(a.series(0), func(s *Series) string { return "isNonNull(" + s.Name + ")" }, "isNonNull", "1",
		func(v float64) float64 {
			if isNull(v) {
				return 0
			}
			return 1
		}), nil
}

func fnChanged(e *env, a *args) ([]*Series, error) {
	for _, s := range a.series(0) {
		s.Name = "changed(" + s.Name + ")"
		s.PathExpression = s.Name
		prev := nan
		for i, v := range s.Values {
			switch {
			case isNull(prev):
				prev = v
				s.Values[i] = 0
			case !isNull(v) && prev != v:
				s.Values[i] = 1
				prev = v
			default:
				s.Values[i] = 0
			}
		}
	}
	return a.series(0), nil
}

func fnMinMax(e *env, a *args) ([]*Series, error) {
	for _, s := range a.series(0) {
		s.Name = "minMax(" + s.Name + ")"
		s.PathExpression = s.Name
		mn, mx := safeMin(s.Values), safeMax(s.Values)
		if isNull(mn) {
			mn, mx = 0, 0
		}
		for i, v := range s.Values {
			if isNull(v) {
				continue
			}
			if mx == mn {
				s.Values[i] = 0
			} else {
				s.Values[i] = (v - mn) / (mx - mn)
			}
		}
	}
	return a.series(0), nil
}

func fnConsolidateBy(e *env, a *args) ([]*Series, error) {
	cf := a.str(1, "average")
	for _, s := range a.series(0) {
		s.ConsolidationFunc = cf
		s.Tags["consolidateBy"] = cf
		s.Name = "consolidateBy(" + s.Name + ",\"" + cf + "\")"
		s.PathExpression = s.Name
	}
	return a.series(0), nil
}

func fnCumulative(e *env, a *args) ([]*Series, error) {
	b := &args{fn: a.fn, vals: []value{a.vals[0], {kind: vString, str: "sum"}}, multi: make([][]value, 2)}
	return fnConsolidateBy(e, b)
}

func fnSetXFilesFactor(e *env, a *args) ([]*Series, error) {
	x := a.float(1, 0)
	for _, s := range a.series(0) {
		s.XFilesFactor = x
		s.Tags["xFilesFactor"] = pyFloat(x)
	}
	return a.series(0), nil
}

// ---- functions that fetch another time range ----

func fnTimeShift(e *env, a *args) ([]*Series, error) {
	shift := a.str(1, "")
	if shift != "" && shift[0] >= '0' && shift[0] <= '9' {
		shift = "-" + shift
	}
	delta, _ := parseTimeOffset(shift)
	resetEnd := a.bool(2, true)
	list := a.series(0)
	if len(list) == 0 {
		return nil, nil
	}
	first := list[0]
	v, err := e.withRange(e.from+delta, e.until+delta).eval(a.val(0).expr)
	if err != nil {
		return nil, err
	}
	for _, s := range v.series {
		s.Tags["timeShift"] = shift
		s.Name = "timeShift(" + s.Name + ", \"" + shift + "\")"
		if resetEnd {
			s.End = first.End
		} else {
			s.End = s.End - s.Start + first.Start
		}
		s.Start = first.Start
	}
	return v.series, nil
}

func fnTimeStack(e *env, a *args) ([]*Series, error) {
	unit := a.str(1, "1d")
	if unit != "" && unit[0] >= '0' && unit[0] <= '9' {
		unit = "-" + unit
	}
	delta, err := parseTimeOffset(unit)
	if err != nil {
		return nil, a.errorf("%v", err)
	}
	list := a.series(0)
	if len(list) == 0 {
		return nil, nil
	}
	first := list[0]
	var out []*Series
	for shft := a.int(2, 0); shft < a.int(3, 7); shft++ {
		d := delta * int64(shft)
		v, err := e.withRange(e.from+d, e.until+d).eval(a.val(0).expr)
		if err != nil {
			return nil, err
		}
		for _, s := range v.series {
			s.Tags["timeShiftUnit"] = unit
			s.Tags["timeShift"] = strconv.Itoa(shft)
			s.Name = "timeShift(" + s.Name + ", " + unit + ", " + strconv.Itoa(shft) + ")"
			s.PathExpression = s.Name
			s.Start, s.End = first.Start, first.End
			out = append(out, s)
		}
	}
	return out, nil
}

// maxBuckets bounds the points summarize, smartSummarize and hitcount may
// produce for one series (a 1s interval over years would be millions).
const maxBuckets = 1 << 22

func checkBuckets(a *args, s *Series, interval int64) error {
	if (s.End-s.Start)/interval > maxBuckets {
		return a.errorf("interval %ds over %ds gives more than %d points: use a larger interval", interval, s.End-s.Start, maxBuckets)
	}
	return nil
}

// summarizeValues is graphite-web's _summarizeValues.
func summarizeValues(s *Series, f aggFunc, interval, newStart, newEnd int64) ([]float64, int64) {
	var ts []int64
	for t := s.Start; t < s.End; t += s.Step {
		ts = append(ts, t)
	}
	n := min(len(ts), len(s.Values))
	intervalPoints := float64(interval) / float64(s.Step)
	var out []float64
	i := 0
	t := newStart
	for ; t < newEnd; t += interval {
		st := i
		nn := 0
		for i < n && ts[i] < t+interval {
			if ts[i] <= t {
				st = i
			}
			if ts[i] >= t && !isNull(s.Values[i]) {
				nn++
			}
			i++
		}
		if xffOK(nn, intervalPoints, s.XFilesFactor) {
			out = append(out, f(s.Values[st:i]))
		} else {
			out = append(out, nan)
		}
	}
	return out, t
}

func fnSummarize(e *env, a *args) ([]*Series, error) {
	istr := a.str(1, "")
	fname := a.str(2, "sum")
	alignToFrom := a.bool(3, false)
	interval, _ := parseTimeOffset(istr)
	if interval <= 0 {
		return nil, a.errorf("the interval %q must be positive", istr)
	}
	f, _, _ := lookupAgg(fname)
	var out []*Series
	for _, s := range a.series(0) {
		if err := checkBuckets(a, s, interval); err != nil {
			return nil, err
		}
		var newStart, newEnd int64
		if alignToFrom {
			newStart, newEnd = s.Start, s.End
		} else {
			newStart = s.Start - floorMod(s.Start, interval)
			newEnd = s.End - floorMod(s.End, interval) + interval
		}
		vals, alignedEnd := summarizeValues(s, f, interval, newStart, newEnd)
		if alignToFrom {
			newEnd = alignedEnd
		}
		s.Tags["summarize"] = istr
		s.Tags["summarizeFunction"] = fname
		suffix := ""
		if alignToFrom {
			suffix = ", true"
		}
		c := copySeries(s, "summarize("+s.Name+", \""+istr+"\", \""+fname+"\""+suffix+")", vals)
		c.Start, c.End, c.Step = newStart, newEnd, interval
		out = append(out, c)
	}
	return out, nil
}

func fnSmartSummarize(e *env, a *args) ([]*Series, error) {
	istr := a.str(1, "")
	fname := a.str(2, "sum")
	interval, _ := parseTimeOffset(istr)
	if interval <= 0 {
		return nil, a.errorf("the interval %q must be positive", istr)
	}
	f, _, _ := lookupAgg(fname)
	list := a.series(0)
	if al := a.val(3); al.kind == vString && al.str != "" {
		from := alignStart(e.from, al.str)
		if from < 0 {
			return nil, a.errorf("invalid alignTo %q: use a unit such as 1d, 1h, 1min, 1w, 1mon or 1y", al.str)
		}
		v, err := e.withRange(from, e.until).eval(a.val(0).expr)
		if err != nil {
			return nil, err
		}
		list = v.series
	}
	var out []*Series
	for _, s := range list {
		if err := checkBuckets(a, s, interval); err != nil {
			return nil, err
		}
		vals, alignedEnd := summarizeValues(s, f, interval, s.Start, s.End)
		s.Tags["smartSummarize"] = istr
		s.Tags["smartSummarizeFunction"] = fname
		c := copySeries(s, "smartSummarize("+s.Name+", \""+istr+"\", \""+fname+"\")", vals)
		c.End, c.Step = alignedEnd, interval
		out = append(out, c)
	}
	return out, nil
}

// alignStart truncates from (UTC) to the start of the unit alignTo names.
func alignStart(from int64, alignTo string) int64 {
	unit := alignTo
	for len(unit) > 0 && ((unit[0] >= '0' && unit[0] <= '9') || unit[0] == '-' || unit[0] == '+') {
		unit = unit[1:]
	}
	t := time.Unix(from, 0).UTC()
	switch unitName(unit) {
	case "years":
		return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	case "months":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).Unix()
	case "weeks":
		day := 1
		if last := alignTo[len(alignTo)-1]; last >= '0' && last <= '9' {
			day = int(last - '0')
		}
		iso := int(t.Weekday())
		if iso == 0 {
			iso = 7
		}
		sub := iso - day
		if sub < 0 {
			sub += 7
		}
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -sub).Unix()
	case "days":
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix()
	case "hours":
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, time.UTC).Unix()
	case "minutes":
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC).Unix()
	case "seconds":
		return from
	}
	return -1
}

func fnHitcount(e *env, a *args) ([]*Series, error) {
	istr := a.str(1, "")
	interval, _ := parseTimeOffset(istr)
	if interval <= 0 {
		return nil, a.errorf("the interval %q must be positive", istr)
	}
	align := a.bool(2, false)
	list := a.series(0)
	if align {
		t := time.Unix(e.from, 0).UTC()
		from := e.from
		switch {
		case interval >= 86400:
			from = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix()
		case interval >= 3600:
			from = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, time.UTC).Unix()
		case interval >= 60:
			from = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC).Unix()
		}
		v, err := e.withRange(from, e.until).eval(a.val(0).expr)
		if err != nil {
			return nil, err
		}
		list = v.series
		for _, s := range list {
			count := floorDiv(s.End-s.Start, interval)
			s.End = s.Start + count*interval + interval
		}
	}
	var out []*Series
	for _, s := range list {
		if err := checkBuckets(a, s, interval); err != nil {
			return nil, err
		}
		step := s.Step
		bucketCount := int64(math.Ceil(float64(s.End-s.Start) / float64(interval)))
		if bucketCount < 0 {
			bucketCount = 0
		}
		sums := make([]float64, bucketCount)
		used := make([]bool, bucketCount)
		add := func(b int64, v float64) {
			sums[b] += v
			used[b] = true
		}
		newStart := s.End - bucketCount*interval
		for i, v := range s.Values {
			if isNull(v) || bucketCount == 0 {
				continue
			}
			startTime := s.Start + int64(i)*step
			sb, sm := floorDiv(startTime-newStart, interval), floorMod(startTime-newStart, interval)
			endTime := startTime + step
			eb, em := floorDiv(endTime-newStart, interval), floorMod(endTime-newStart, interval)
			if eb >= bucketCount {
				eb = bucketCount - 1
				em = interval
			}
			if sb == eb {
				if sb >= 0 {
					add(sb, v*float64(em-sm))
				}
			} else {
				if sb >= 0 {
					add(sb, v*float64(interval-sm))
				}
				for j := sb + 1; j < eb; j++ {
					if j >= 0 {
						add(j, v*float64(interval))
					}
				}
				if em > 0 {
					add(eb, v*float64(em))
				}
			}
		}
		vals := make([]float64, bucketCount)
		for i := range vals {
			if used[i] {
				vals[i] = sums[i]
			} else {
				vals[i] = nan
			}
		}
		s.Tags["hitcount"] = istr
		suffix := ""
		if align {
			suffix = ", true"
		}
		c := copySeries(s, "hitcount("+s.Name+", \""+istr+"\""+suffix+")", vals)
		c.Start, c.Step = newStart, interval
		out = append(out, c)
	}
	return out, nil
}
