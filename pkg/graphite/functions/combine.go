package functions

import (
	"sort"
	"strconv"
	"strings"

	"github.com/meridianhq/meridian/pkg/graphite/parser"
)

// aggregateList is graphite's aggregate(): normalize to a common step, then
// reduce each row with fname honouring xFilesFactor.
func aggregateList(list []*Series, fname string, xff float64) []*Series {
	if len(list) == 0 {
		return nil
	}
	f, base, _ := lookupAgg(fname)
	n, _ := normalize(list)
	name := base + "Series(" + formatPathExpressions(list) + ")"
	vals, ok := aggregateColumns(n, base, xff)
	if !ok {
		vals = make([]float64, n.maxLen)
		buf := make([]float64, 0, len(list))
		for i := range vals {
			row := n.row(i, buf)
			if xffOK(countNonNull(row), float64(len(row)), xff) {
				vals[i] = f(row)
			} else {
				vals[i] = nan
			}
		}
	}
	tags := commonTags(list)
	if _, ok := tags["name"]; !ok {
		tags["name"] = name
	}
	tags["aggregatedBy"] = base
	s := newSeries(name, n.start, n.end, n.step, vals, tags)
	s.XFilesFactor = xff
	return []*Series{s}
}

// aggregateColumns computes sum, average, min, max and count series by
// series (sequential memory access) instead of row by row; the results are
// the same, additions happen in the same order.
func aggregateColumns(n *normalized, fname string, xff float64) ([]float64, bool) {
	switch fname {
	case "sum", "total", "average", "avg", "min", "max", "count":
	default:
		return nil, false
	}
	acc := make([]float64, n.maxLen)
	counts := make([]int32, n.maxLen)
	for _, vals := range n.values {
		a, c := acc[:len(vals)], counts[:len(vals)]
		switch fname {
		case "min":
			for i, v := range vals {
				if v == v && (c[i] == 0 || v < a[i]) {
					a[i] = v
				}
				if v == v {
					c[i]++
				}
			}
		case "max":
			for i, v := range vals {
				if v == v && (c[i] == 0 || v > a[i]) {
					a[i] = v
				}
				if v == v {
					c[i]++
				}
			}
		default: // sums start at 0 like Python's sum()
			for i, v := range vals {
				if v == v { // not NaN (null)
					a[i] += v
					c[i]++
				}
			}
		}
	}
	total := float64(len(n.values))
	for i := range acc {
		c := int(counts[i])
		switch {
		case !xffOK(c, total, xff):
			acc[i] = nan
		case fname == "average" || fname == "avg":
			acc[i] /= float64(c)
		case fname == "count":
			acc[i] = float64(c)
		}
	}
	return acc, true
}

func aggregateFn(fname string) func(e *env, a *args) ([]*Series, error) {
	return func(e *env, a *args) ([]*Series, error) {
		return aggregateList(a.flatSeries(0), fname, 0), nil
	}
}

func fnAggregate(e *env, a *args) ([]*Series, error) {
	return aggregateList(a.series(0), a.str(1, ""), a.float(2, 0)), nil
}

func fnMultiplySeries(e *env, a *args) ([]*Series, error) {
	if len(a.multi[0]) == 1 && len(a.multi[0][0].series) == 1 {
		return a.multi[0][0].series, nil
	}
	return aggregateList(a.flatSeries(0), "multiply", 0), nil
}

// aggregateSeriesLists pairs list1[i] with list2[i].
func aggregateSeriesLists(a *args, l1, l2 []*Series, fname string, xff float64) ([]*Series, error) {
	if len(l1) != len(l2) {
		return nil, a.errorf("both series lists must have the same length (got %d and %d)", len(l1), len(l2))
	}
	var out []*Series
	for i := range l1 {
		r := aggregateList([]*Series{l1[i], l2[i]}, fname, xff)
		if len(r) == 0 {
			continue
		}
		s := r[0]
		s.Name = s.Name[:strings.Index(s.Name, "Series(")] + "Series(" + l1[i].Name + "," + l2[i].Name + ")"
		out = append(out, s)
	}
	return out, nil
}

func seriesListsFn(fname string) func(e *env, a *args) ([]*Series, error) {
	return func(e *env, a *args) ([]*Series, error) {
		return aggregateSeriesLists(a, a.series(0), a.series(1), fname, 0)
	}
}

func fnAggregateSeriesLists(e *env, a *args) ([]*Series, error) {
	return aggregateSeriesLists(a, a.series(0), a.series(1), a.str(2, ""), a.float(3, 0))
}

// aggregateWithWildcards groups by the name without the given node positions.
func aggregateWithWildcards(list []*Series, fname string, positions []int) []*Series {
	var keys []string
	groups := map[string][]*Series{}
	for _, s := range list {
		var parts []string
		for i, p := range strings.Split(s.Name, ".") {
			skip := false
			for _, q := range positions {
				if q == i {
					skip = true
				}
			}
			if !skip {
				parts = append(parts, p)
			}
		}
		key := strings.Join(parts, ".")
		if _, ok := groups[key]; !ok {
			keys = append(keys, key)
		}
		groups[key] = append(groups[key], s)
	}
	var out []*Series
	for _, k := range keys {
		r := aggregateList(groups[k], fname, 0)[0]
		r.Name = k
		out = append(out, r)
	}
	return out
}

func nodeInts(vs []value) []int {
	var out []int
	for _, v := range vs {
		out = append(out, int(v.num))
	}
	return out
}

func wildcardsFn(fname string) func(e *env, a *args) ([]*Series, error) {
	return func(e *env, a *args) ([]*Series, error) {
		return aggregateWithWildcards(a.series(0), fname, nodeInts(a.multiVals(1))), nil
	}
}

func fnAggregateWithWildcards(e *env, a *args) ([]*Series, error) {
	return aggregateWithWildcards(a.series(0), a.str(1, ""), nodeInts(a.multiVals(2))), nil
}

func fnPercentileOfSeries(e *env, a *args) ([]*Series, error) {
	list := a.series(0)
	n := a.float(1, 0)
	if n <= 0 {
		return nil, a.errorf("the requested percent must be greater than 0")
	}
	if len(list) == 0 {
		return nil, nil
	}
	name := "percentileOfSeries(" + list[0].PathExpression + "," + pyG(n) + ")"
	nz, _ := normalize(list)
	vals := make([]float64, nz.maxLen)
	buf := make([]float64, 0, len(list))
	for i := range vals {
		vals[i] = percentile(nz.row(i, buf), n, a.bool(2, false))
	}
	return []*Series{newSeries(name, nz.start, nz.end, nz.step, vals, nil)}, nil
}

func fnCountSeries(e *env, a *args) ([]*Series, error) {
	if len(a.multi[0]) == 0 {
		s := constantLine(e, 0, true)
		s.PathExpression = "countSeries()"
		return []*Series{s}, nil
	}
	list := a.flatSeries(0)
	if len(list) == 0 {
		return nil, nil
	}
	nz, _ := normalize(list)
	name := "countSeries(" + formatPathExpressions(list) + ")"
	vals := make([]float64, nz.maxLen)
	for i := range vals {
		vals[i] = float64(len(list))
	}
	return []*Series{newSeries(name, nz.start, nz.end, nz.step, vals, nil)}, nil
}

func safeDiv(a, b float64) float64 {
	if isNull(a) || isNull(b) || b == 0 {
		return nan
	}
	return a / b
}

func divide(dividend, divisor *Series, name string) *Series {
	nz, _ := normalize([]*Series{dividend, divisor})
	vals := make([]float64, nz.maxLen)
	buf := make([]float64, 0, 2)
	for i := range vals {
		r := nz.row(i, buf)
		vals[i] = safeDiv(r[0], r[1])
	}
	return newSeries(name, nz.start, nz.end, nz.step, vals, nil)
}

func fnDivideSeries(e *env, a *args) ([]*Series, error) {
	dividends, divisors := a.series(0), a.series(1)
	if len(divisors) == 0 {
		for _, s := range dividends {
			s.Name = "divideSeries(" + s.Name + ",MISSING)"
			s.PathExpression = s.Name
			for i := range s.Values {
				s.Values[i] = nan
			}
		}
		return dividends, nil
	}
	if len(divisors) > 1 {
		return nil, a.errorf("the divisor must be exactly one series (got %d); use divideSeriesLists or sumSeries", len(divisors))
	}
	var out []*Series
	for _, d := range dividends {
		out = append(out, divide(d, divisors[0], "divideSeries("+d.Name+","+divisors[0].Name+")"))
	}
	return out, nil
}

func fnDivideSeriesLists(e *env, a *args) ([]*Series, error) {
	l1, l2 := a.series(0), a.series(1)
	if len(l1) != len(l2) {
		return nil, a.errorf("dividendSeriesList and divisorSeriesList must have the same length (got %d and %d)", len(l1), len(l2))
	}
	var out []*Series
	for i := range l1 {
		out = append(out, divide(l1[i], l2[i], "divideSeries("+l1[i].Name+","+l2[i].Name+")"))
	}
	return out, nil
}

func percentOf(v, total float64) float64 {
	q := safeDiv(v, total)
	if isNull(q) {
		return nan
	}
	return q * 100
}

func sumRows(list []*Series) (*normalized, []float64) {
	nz, _ := normalize(list)
	vals := make([]float64, nz.maxLen)
	buf := make([]float64, 0, len(list))
	for i := range vals {
		vals[i] = safeSum(nz.row(i, buf))
	}
	return nz, vals
}

func pairPercent(s1, s2 *Series) *Series {
	nz, _ := normalize([]*Series{s1, s2})
	vals := make([]float64, nz.maxLen)
	buf := make([]float64, 0, 2)
	for i := range vals {
		r := nz.row(i, buf)
		vals[i] = percentOf(r[0], r[1])
	}
	return newSeries("asPercent("+s1.Name+","+s2.Name+")", nz.start, nz.end, nz.step, vals, nil)
}

func fnAsPercent(e *env, a *args) ([]*Series, error) {
	list := a.series(0)
	total := a.val(1)
	if len(a.multiVals(2)) > 0 {
		return asPercentByNodes(a, list, total, a.multiVals(2))
	}
	if len(list) == 0 {
		return nil, nil // graphite-web's normalize() of nothing
	}
	// graphite-web normalizes the series list in place first: from here on
	// (unless a later normalize of a pair overrides it) its series are read
	// at the list's common step, while keeping their own start and step.
	rawLen0 := len(list[0].Values)
	nzTop, _ := normalize(list)
	consolidateInPlace := func() {
		for i, s := range list {
			s.Values = nzTop.values[i]
		}
	}
	var totalVals []float64
	var totalText string
	switch total.kind {
	case 0:
		totalVals = make([]float64, nzTop.maxLen)
		buf := make([]float64, 0, len(list))
		for i := range totalVals {
			totalVals[i] = safeSum(nzTop.row(i, buf))
		}
		consolidateInPlace()
		totalText = "sumSeries(" + formatPathExpressions(list) + ")"
	case vSeries:
		tl := total.series
		if len(tl) != 1 && len(tl) != len(list) {
			return nil, a.errorf("the total must be missing, a number, exactly one series or as many series as the first argument (got %d and %d)", len(tl), len(list))
		}
		if len(tl) == len(list) {
			s1 := append([]*Series(nil), list...)
			s2 := append([]*Series(nil), tl...)
			sort.SliceStable(s1, func(i, j int) bool { return s1[i].Name < s1[j].Name })
			sort.SliceStable(s2, func(i, j int) bool { return s2[i].Name < s2[j].Name })
			var out []*Series
			for i := range s1 {
				out = append(out, pairPercent(s1[i], s2[i]))
			}
			return out, nil
		}
		all := append(append([]*Series(nil), list...), tl[0])
		nz, _ := normalize(all)
		for i, s := range list {
			s.Values = nz.values[i]
		}
		totalVals = nz.values[len(list)]
		totalText = tl[0].Name
	case vNumber:
		consolidateInPlace()
		totalVals = make([]float64, rawLen0)
		for i := range totalVals {
			totalVals[i] = total.num
		}
		totalText = pyNum(total.num, total.isInt)
	default:
		return nil, a.errorf("the total must be a number or a series list, got %s", total.expr.Source)
	}
	var out []*Series
	for _, s := range list {
		n := len(s.Values)
		if len(totalVals) > n {
			n = len(totalVals)
		}
		vals := make([]float64, n)
		for i := range vals {
			v, t := nan, nan
			if i < len(s.Values) {
				v = s.Values[i]
			}
			if i < len(totalVals) {
				t = totalVals[i]
			}
			vals[i] = percentOf(v, t)
		}
		text := totalText
		if text == "" {
			text = s.PathExpression
		}
		out = append(out, newSeries("asPercent("+s.Name+","+text+")", s.Start, s.End, s.Step, vals, nil))
	}
	return out, nil
}

// asPercentByNodes is asPercent with nodes: series and totals are grouped by
// the given nodes and each series is divided by its group's total.
func asPercentByNodes(a *args, list []*Series, total value, nodeVals []value) ([]*Series, error) {
	keys, meta := groupInOrder(list, func(s *Series) string { return aggKey(s, nodeVals) })
	totals := map[string]*Series{}
	sumGroup := func(g []*Series) *Series {
		if len(g) == 1 {
			return g[0]
		}
		nz, vals := sumRows(g)
		return newSeries("sumSeries("+formatPathExpressions(g)+")", nz.start, nz.end, nz.step, vals, nil)
	}
	switch total.kind {
	case 0:
		for _, k := range keys {
			totals[k] = sumGroup(meta[k])
		}
	case vSeries:
		tkeys, groups := groupInOrder(total.series, func(s *Series) string { return aggKey(s, nodeVals) })
		for _, k := range tkeys {
			if _, ok := meta[k]; !ok {
				keys = append(keys, k) // a total without series
			}
			totals[k] = sumGroup(groups[k])
		}
	default:
		return nil, a.errorf("the total must be None or a series list when nodes are given")
	}
	var out []*Series
	for _, k := range keys {
		g, ok := meta[k]
		if !ok {
			t := totals[k]
			vals := make([]float64, len(t.Values))
			for i := range vals {
				vals[i] = nan
			}
			out = append(out, newSeries("asPercent(MISSING,"+t.Name+")", t.Start, t.End, t.Step, vals, nil))
			continue
		}
		for _, s := range g {
			t, ok := totals[k]
			if !ok {
				vals := make([]float64, len(s.Values))
				for i := range vals {
					vals[i] = nan
				}
				out = append(out, newSeries("asPercent("+s.Name+",MISSING)", s.Start, s.End, s.Step, vals, nil))
				continue
			}
			out = append(out, pairPercent(s, t))
		}
	}
	return out, nil
}

// firstPathExpression digs the first metric path out of a function-call
// name, as graphite-web's _getFirstPathExpression.
func firstPathExpression(name string) string {
	x, err := parser.ParsePrefix(name)
	if err != nil {
		return name
	}
	for x.Kind == parser.KindCall && len(x.Args) > 0 {
		x = x.Args[0]
	}
	if x.Kind == parser.KindPath {
		return x.Path
	}
	return name
}

// nodeOrTag is graphite-web's getNodeOrTag.
func nodeOrTag(s *Series, v value, pathExpr string) string {
	if v.kind == vNumber {
		n := int(v.num)
		src := pathExpr
		if src == "" {
			src = s.Name
		}
		if i := strings.Index(src, ";"); i >= 0 {
			src = src[:i]
		}
		parts := strings.Split(src, ".")
		if n < 0 {
			n += len(parts)
		}
		if n >= 0 && n < len(parts) {
			return parts[n]
		}
		return s.Tags[pyNum(v.num, true)]
	}
	return s.Tags[v.str]
}

func aggKey(s *Series, nodes []value) string {
	pathExpr := ""
	if strings.HasSuffix(s.Name, ")") {
		pathExpr = firstPathExpression(s.Name)
	}
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = nodeOrTag(s, n, pathExpr)
	}
	return strings.Join(parts, ".")
}

// callAggregator applies a groupBy callback: an aggregation name or an
// aggregating series function such as sumSeries.
func callAggregator(e *env, callback string, list []*Series) (*Series, error) {
	if def, ok := registry[callback]; ok && def.aggregator {
		a := &args{fn: def.name, defs: def.params, vals: make([]value, len(def.params)), multi: make([][]value, len(def.params))}
		v := value{kind: vSeries, series: list}
		if def.params[0].multiple {
			a.multi[0] = []value{v}
		} else {
			a.vals[0] = v
		}
		out, err := def.fn(e, a)
		if err != nil || len(out) == 0 {
			return nil, err
		}
		return out[0], nil
	}
	r := aggregateList(list, callback, 0)
	if len(r) == 0 {
		return nil, nil
	}
	return r[0], nil
}

func groupByNodes(e *env, list []*Series, callback string, nodes []value) ([]*Series, error) {
	keys, meta := groupInOrder(list, func(s *Series) string { return aggKey(s, nodes) })
	return aggregateGroups(e, callback, keys, meta, func(r *Series, k string) { r.Name = k })
}

// groupInOrder groups list by key, keys in the order they first appear.
func groupInOrder(list []*Series, key func(*Series) string) ([]string, map[string][]*Series) {
	var keys []string
	groups := map[string][]*Series{}
	for _, s := range list {
		k := key(s)
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], s)
	}
	return keys, groups
}

// aggregateGroups runs the aggregation callback over each group, in keys'
// order, and names each result with name.
func aggregateGroups(e *env, callback string, keys []string, groups map[string][]*Series, name func(r *Series, k string)) ([]*Series, error) {
	var out []*Series
	for _, k := range keys {
		r, err := callAggregator(e, callback, groups[k])
		if err != nil {
			return nil, err
		}
		if r == nil {
			continue
		}
		name(r, k)
		out = append(out, r)
	}
	return out, nil
}

func fnGroupByNode(e *env, a *args) ([]*Series, error) {
	return groupByNodes(e, a.series(0), a.str(2, "average"), []value{a.val(1)})
}

func fnGroupByNodes(e *env, a *args) ([]*Series, error) {
	return groupByNodes(e, a.series(0), a.str(1, ""), a.multiVals(2))
}

func fnGroupByTags(e *env, a *args) ([]*Series, error) {
	list := a.series(0)
	callback := a.str(1, "")
	var tags []string
	for _, v := range a.multiVals(2) {
		tags = append(tags, v.str)
	}
	hasName := false
	for _, t := range tags {
		if t == "name" {
			hasName = true
		}
	}
	name := callback
	if !hasName {
		names := map[string]bool{}
		var one string
		for _, s := range list {
			names[s.Tags["name"]] = true
			one = s.Tags["name"]
		}
		if len(names) == 1 {
			name = one
		}
	}
	keys, meta := groupInOrder(list, func(s *Series) string {
		var parts []string
		for _, t := range tags {
			if t == "name" {
				continue
			}
			parts = append(parts, t+"="+s.Tags[t])
		}
		sort.Strings(parts)
		first := name
		if hasName {
			first = s.Tags["name"]
		}
		return strings.Join(append([]string{first}, parts...), ";")
	})
	return aggregateGroups(e, callback, keys, meta, func(r *Series, k string) {
		r.Name = k
		r.PathExpression = k
		r.Tags = tagsFromName(k)
	})
}

func fnGroup(e *env, a *args) ([]*Series, error) { return a.flatSeries(0), nil }

func fnApplyByNode(e *env, a *args) ([]*Series, error) {
	list := a.series(0)
	nodeNum := a.int(1, 0)
	tmpl := a.str(2, "")
	newName := a.str(3, "")
	prefixes := map[string]bool{}
	for _, s := range list {
		parts := strings.Split(s.Name, ".")
		end := nodeNum + 1
		if end > len(parts) {
			end = len(parts)
		}
		if end < 0 {
			end = 0
		}
		prefixes[strings.Join(parts[:end], ".")] = true
	}
	var sorted []string
	for p := range prefixes {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	var out []*Series
	for _, p := range sorted {
		target := strings.ReplaceAll(tmpl, "%", p)
		x, err := parser.Parse(target)
		if err != nil {
			return nil, a.errorf("template %q gives an invalid target: %v", tmpl, err)
		}
		v, err := e.eval(x)
		if err != nil {
			return nil, err
		}
		if v.kind != vSeries {
			return nil, a.errorf("template %q does not give series", tmpl)
		}
		last := list[len(list)-1]
		for _, r := range v.series {
			if newName != "" {
				r.Name = strings.ReplaceAll(newName, "%", p)
			}
			r.PathExpression = p
			r.Start, r.End = last.Start, last.End
			out = append(out, r)
		}
	}
	return out, nil
}

func fnWeightedAverage(e *env, a *args) ([]*Series, error) {
	avgs, weights := a.series(0), a.series(1)
	nodes := a.multiVals(2)
	if len(avgs) != len(weights) {
		return nil, a.errorf("seriesListAvg and seriesListWeight must have the same number of series (got %d and %d)", len(avgs), len(weights))
	}
	type pair struct{ avg, weight *Series }
	groups := map[string]*pair{}
	var keys []string
	get := func(k string) *pair {
		if p, ok := groups[k]; ok {
			return p
		}
		keys = append(keys, k)
		groups[k] = &pair{}
		return groups[k]
	}
	for i := range avgs {
		get(aggKey(avgs[i], nodes)).avg = avgs[i]
		get(aggKey(weights[i], nodes)).weight = weights[i]
	}
	var products []*Series
	for _, k := range keys {
		p := groups[k]
		if p.avg == nil || p.weight == nil {
			continue
		}
		n := len(p.avg.Values)
		if len(p.weight.Values) > n {
			n = len(p.weight.Values)
		}
		vals := make([]float64, n)
		for i := range vals {
			vals[i] = safeMultiply([]float64{at(p.avg.Values, i), at(p.weight.Values, i)})
		}
		products = append(products, newSeries("product("+p.weight.Name+","+p.avg.Name+")", p.avg.Start, p.avg.End, p.avg.Step, vals, nil))
	}
	if len(products) == 0 {
		return nil, nil
	}
	sp := aggregateList(products, "sum", 0)[0]
	sw := aggregateList(weights, "sum", 0)[0]
	n := len(sp.Values)
	if len(sw.Values) > n {
		n = len(sw.Values)
	}
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = safeDiv(at(sp.Values, i), at(sw.Values, i))
	}
	pe := func(l []*Series) string {
		set := map[string]bool{}
		var out []string
		for _, s := range l {
			if !set[s.PathExpression] {
				set[s.PathExpression] = true
				out = append(out, s.PathExpression)
			}
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	var ns []string
	for _, v := range nodes {
		if v.kind == vNumber {
			ns = append(ns, strconv.Itoa(int(v.num)))
		} else {
			ns = append(ns, v.str)
		}
	}
	name := "weightedAverage(" + pe(avgs) + ", " + pe(weights) + ", " + strings.Join(ns, ",") + ")"
	return []*Series{newSeries(name, sp.Start, sp.End, sp.Step, vals, nil)}, nil
}

func at(v []float64, i int) float64 {
	if i < len(v) {
		return v[i]
	}
	return nan
}

func fnPowSeries(e *env, a *args) ([]*Series, error) {
	list := a.flatSeries(0)
	if len(list) == 0 {
		return nil, nil
	}
	nz, _ := normalize(list)
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
	}
	vals := make([]float64, nz.maxLen)
	buf := make([]float64, 0, len(list))
	for i := range vals {
		row := nz.row(i, buf)
		v := row[0]
		for _, x := range row[1:] {
			v = safePow(v, x)
		}
		vals[i] = v
	}
	return []*Series{newSeries("powSeries("+strings.Join(names, ",")+")", nz.start, nz.end, nz.step, vals, nil)}, nil
}
