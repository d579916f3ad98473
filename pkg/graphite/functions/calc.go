package functions

import (
	"math"
	"strconv"
	"strings"
)

// movingWindow is graphite-web's movingWindow: the series are fetched again
// from windowSize earlier, and each point is the aggregate of the
// windowPoints points before it (the point itself excluded).
func movingWindow(e *env, a *args, fname string, xffIdx int) ([]*Series, error) {
	list := a.series(0)
	if len(list) == 0 {
		return nil, nil
	}
	win := a.val(1)
	var preview int64
	isInterval := win.kind == vString
	if isInterval {
		d, _ := parseTimeOffset(win.str)
		if d < 0 {
			d = -d
		}
		preview = d
	} else {
		if win.num < 0 {
			return nil, a.errorf("windowSize must not be negative")
		}
		var maxStep int64
		for _, s := range list {
			maxStep = max(maxStep, s.Step)
		}
		preview = maxStep * int64(win.num)
	}
	f := aggOf(fname)
	v, err := e.withRange(e.from-preview, e.until).eval(a.val(0).expr)
	if err != nil {
		return nil, err
	}
	tagName := "moving" + strings.ToUpper(fname[:1]) + fname[1:]
	var out []*Series
	for _, s := range v.series {
		var name string
		var points int
		if isInterval {
			name = tagName + "(" + s.Name + ",\"" + win.str + "\")"
			points = int(preview / s.Step)
			s.Tags[tagName] = win.str
		} else {
			name = tagName + "(" + s.Name + "," + pyNum(win.num, win.isInt) + ")"
			points = int(win.num)
			s.Tags[tagName] = pyNum(win.num, win.isInt)
		}
		xff := s.XFilesFactor
		if xffIdx >= 0 && a.has(xffIdx) {
			xff = a.float(xffIdx, 0)
		}
		var vals []float64
		for i := points; i < len(s.Values); i++ {
			window := s.Values[i-points : i]
			nn := countNonNull(window)
			if nn > 0 && xffOK(nn, float64(points), xff) {
				vals = append(vals, f(window))
			} else {
				vals = append(vals, nan)
			}
		}
		if vals == nil {
			vals = []float64{}
		}
		c := copySeries(s, name, vals)
		c.Start = s.Start + preview
		out = append(out, c)
	}
	return out, nil
}

func movingFn(fname string) func(e *env, a *args) ([]*Series, error) {
	return func(e *env, a *args) ([]*Series, error) { return movingWindow(e, a, fname, 2) }
}

func fnMovingWindow(e *env, a *args) ([]*Series, error) {
	return movingWindow(e, a, a.str(2, "average"), 3)
}

func fnExponentialMovingAverage(e *env, a *args) ([]*Series, error) {
	list := a.series(0)
	if len(list) == 0 {
		return nil, nil
	}
	win := a.val(1)
	var preview int64
	var constant float64
	isInterval := win.kind == vString
	if isInterval {
		d, _ := parseTimeOffset(win.str)
		if d < 0 {
			d = -d
		}
		preview = d
		constant = 2.0 / float64(preview+1)
	} else {
		var maxStep int64
		for _, s := range list {
			maxStep = max(maxStep, s.Step)
		}
		preview = maxStep * int64(win.num)
		constant = 2.0 / (float64(int(win.num)) + 1)
	}
	v, err := e.withRange(e.from-preview, e.until).eval(a.val(0).expr)
	if err != nil {
		return nil, err
	}
	var out []*Series
	for _, s := range v.series {
		var name string
		var points int
		if isInterval {
			name = "exponentialMovingAverage(" + s.Name + ",\"" + win.str + "\")"
			points = int(preview / s.Step)
			s.Tags["exponentialMovingAverage"] = win.str
		} else {
			name = "exponentialMovingAverage(" + s.Name + "," + pyNum(win.num, win.isInt) + ")"
			points = int(win.num)
			s.Tags["exponentialMovingAverage"] = pyNum(win.num, win.isInt)
		}
		ema := safeAvg(s.Values[:min(points, len(s.Values))])
		if isNull(ema) || ema == 0 {
			ema = 0
		}
		vals := []float64{pyRound(ema, 6)}
		for i := points; i < len(s.Values); i++ {
			if isNull(s.Values[i]) {
				vals = append(vals, nan)
				continue
			}
			ema = constant*s.Values[i] + (1-constant)*ema
			vals = append(vals, pyRound(ema, 6))
		}
		c := copySeries(s, name, vals)
		c.Start = s.Start + preview
		out = append(out, c)
	}
	return out, nil
}

func fnStdev(e *env, a *args) ([]*Series, error) {
	points := a.int(1, 0)
	tol := a.float(2, 0.1)
	if points <= 0 {
		return nil, a.errorf("points must be positive")
	}
	list := a.series(0)
	for idx, s := range list {
		s.Tags["stdev"] = strconv.Itoa(points)
		vals := make([]float64, 0, len(s.Values))
		valid := 0
		sum, sumSq := 0.0, 0.0
		for i, nv := range s.Values {
			if i >= points {
				if dv := s.Values[i-points]; !isNull(dv) {
					valid--
					sum -= dv
					sumSq -= dv * dv
				}
			}
			if !isNull(nv) {
				valid++
				sum += nv
				sumSq += nv * nv
			}
			if valid > 0 && float64(valid)/float64(points) >= tol {
				d := float64(valid)*sumSq - sum*sum
				if d < 0 {
					vals = append(vals, nan)
				} else {
					vals = append(vals, math.Sqrt(d)/float64(valid))
				}
			} else {
				vals = append(vals, nan)
			}
		}
		list[idx] = copySeries(s, "stdev("+s.Name+","+strconv.Itoa(points)+")", vals)
	}
	return list, nil
}

// constantLine is graphite-web's constantLine: three points, at from,
// from+step and from+2*step where step is half the request range.
func constantLine(e *env, value float64, isInt bool) *Series {
	start, end := e.from, e.until
	step := (end - start) / 2
	if step < 1 {
		step = 1
	}
	s := newSeries(pyNum(value, isInt), start, end, step, []float64{value, value, value}, nil)
	s.PathExpression = "constantLine(" + pyNum(value, isInt) + ")"
	return s
}

func fnConstantLine(e *env, a *args) ([]*Series, error) {
	return []*Series{constantLine(e, a.float(0, 0), false)}, nil
}

func fnThreshold(e *env, a *args) ([]*Series, error) {
	s := constantLine(e, a.float(0, 0), false)
	if l := a.str(1, ""); l != "" {
		s.Name = l
	}
	return []*Series{s}, nil
}

func fnAggregateLine(e *env, a *args) ([]*Series, error) {
	fname := a.str(1, "average")
	f := aggOf(fname)
	keepStep := a.bool(2, false)
	var out []*Series
	for _, s := range a.series(0) {
		v := f(s.Values)
		name := "aggregateLine(" + s.Name + ", None)"
		if !isNull(v) {
			name = "aggregateLine(" + s.Name + ", " + pyG(v) + ")"
		}
		if keepStep {
			vals := make([]float64, len(s.Values))
			for i := range vals {
				vals[i] = v
			}
			out = append(out, copySeries(s, name, vals))
			continue
		}
		c := constantLine(e, v, false)
		c.Name, c.PathExpression = name, name
		out = append(out, c)
	}
	return out, nil
}

func fnIdentity(e *env, a *args) ([]*Series, error) {
	name := a.str(0, "")
	var vals []float64
	for t := e.from; t < e.until; t += 60 {
		vals = append(vals, float64(t))
	}
	s := newSeries(name, e.from, e.until, 60, vals, nil)
	s.PathExpression = "identity(\"" + name + "\")"
	return []*Series{s}, nil
}

// ---- render-only styling: graphite-web keeps the values; some of them
// rename the series, and stacked accumulates. ----

func passThrough(e *env, a *args) ([]*Series, error) { return a.series(0), nil }

func renameFn(prefix, tag string) func(e *env, a *args) ([]*Series, error) {
	return func(e *env, a *args) ([]*Series, error) {
		for _, s := range a.series(0) {
			s.Tags[tag] = "1"
			s.Name = prefix + "(" + s.Name + ")"
		}
		return a.series(0), nil
	}
}

func fnDashed(e *env, a *args) ([]*Series, error) {
	l := a.float(1, 5)
	for _, s := range a.series(0) {
		s.Tags["dashed"] = pyNum(l, a.val(1).kind == 0 || a.val(1).isInt)
		s.Name = "dashed(" + s.Name + ", " + pyG(l) + ")"
	}
	return a.series(0), nil
}

func fnStacked(e *env, a *args) ([]*Series, error) {
	stack := a.str(1, "__DEFAULT__")
	total := e.stacks[stack]
	var out []*Series
	for _, s := range a.series(0) {
		vals := make([]float64, len(s.Values))
		for i, v := range s.Values {
			if len(total) <= i {
				total = append(total, 0)
			}
			if isNull(v) {
				vals[i] = nan
				continue
			}
			total[i] += v
			vals[i] = total[i]
		}
		name := s.Name
		if stack == "__DEFAULT__" {
			s.Tags["stacked"] = stack
			name = "stacked(" + s.Name + ")"
		}
		out = append(out, copySeries(s, name, vals))
	}
	e.stacks[stack] = total
	return out, nil
}

func fnAreaBetween(e *env, a *args) ([]*Series, error) {
	list := a.series(0)
	if len(list) != 2 {
		return nil, a.errorf("the series list must have exactly 2 series (got %d)", len(list))
	}
	lower, upper := list[0], list[1]
	upper.Tags["areaBetween"] = "1"
	lower.Tags = cloneTags(upper.Tags)
	name := "areaBetween(" + upper.PathExpression + ")"
	lower.Name, upper.Name = name, name
	return list, nil
}
