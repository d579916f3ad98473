package functions

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/meridianhq/meridian/pkg/graphite/parser"
)

// InputError is a problem with the target the user wrote (unknown function,
// wrong argument); the HTTP layer answers it with 400.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// maxDepth bounds nested evaluation (templates in applyByNode can recurse).
const maxDepth = 64

// Eval evaluates one parsed target over req's time range.
func Eval(ctx context.Context, req *Request, target *parser.Expr) (_ []*Series, err error) {
	defer func() {
		// A bug in one function must not take the process down with it.
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error evaluating %q: %v", target.Source, r)
		}
	}()
	if req == nil || req.Fetcher == nil {
		return nil, fmt.Errorf("graphite evaluation needs a fetcher")
	}
	e := &env{ctx: ctx, req: req, from: req.From, until: req.Until, stacks: map[string][]float64{}}
	if target.Kind != parser.KindPath && target.Kind != parser.KindCall {
		return nil, inputErrorf("a target must be a metric path or a function call, not %s", target.Source)
	}
	v, err := e.eval(target)
	if err != nil {
		return nil, err
	}
	if v.kind != vSeries {
		return nil, inputErrorf("target %s does not return series", target.Source)
	}
	for _, s := range v.series {
		finish(s)
	}
	return v.series, nil
}

// finish makes End agree with Values as the render output does: graphite
// zips the values with range(start, end+1, step), so values past the end are
// dropped, and End becomes Start+len(Values)*Step.
func finish(s *Series) {
	if s.Step <= 0 {
		s.Step = 1
	}
	if s.End >= s.Start {
		n := int((s.End-s.Start)/s.Step) + 1
		if len(s.Values) > n {
			s.Values = s.Values[:n]
		}
	} else {
		s.Values = s.Values[:0]
	}
	s.End = s.Start + int64(len(s.Values))*s.Step
	if s.Tags == nil {
		s.Tags = map[string]string{"name": s.Name}
	}
	if s.ConsolidationFunc == "" {
		s.ConsolidationFunc = "average"
	}
}

// env is one evaluation: the time range the series are fetched for.
type env struct {
	ctx         context.Context
	req         *Request
	from, until int64
	depth       int
	// stacks are stacked()'s running totals by stack name. Like
	// graphite-web's requestContext['totalStack'] they are shared by every
	// evaluation of the target, re-fetches included.
	stacks map[string][]float64
}

// withRange is the same evaluation over another time range (timeShift,
// moving windows), as graphite-web re-evaluates with a copied context.
func (e *env) withRange(from, until int64) *env {
	c := *e
	c.from, c.until = from, until
	return &c
}

type vkind int

const (
	vSeries vkind = iota + 1
	vString
	vNumber
	vBool
	vNone
)

// value is an evaluated argument.
type value struct {
	kind   vkind
	expr   *parser.Expr
	series []*Series
	str    string
	num    float64
	isInt  bool
	b      bool
}

func (e *env) eval(x *parser.Expr) (value, error) {
	if err := e.ctx.Err(); err != nil {
		return value{}, err
	}
	switch x.Kind {
	case parser.KindPath:
		list, err := e.req.Fetcher.FetchPath(e.ctx, x.Path, e.from, e.until)
		if err != nil {
			return value{}, err
		}
		return value{kind: vSeries, expr: x, series: prepareFetched(list, x.Path, !e.req.MutableFetches)}, nil
	case parser.KindCall:
		if x.Name == "seriesByTag" {
			return e.seriesByTag(x)
		}
		e.depth++
		defer func() { e.depth-- }()
		if e.depth > maxDepth {
			return value{}, inputErrorf("target nests functions deeper than %d levels", maxDepth)
		}
		def, ok := registry[x.Name]
		if !ok {
			return value{}, inputErrorf("unknown function %q at position %d", x.Name, x.Pos)
		}
		a, err := e.bind(def, x)
		if err != nil {
			return value{}, err
		}
		out, err := def.fn(e, a)
		if err != nil {
			return value{}, err
		}
		return value{kind: vSeries, expr: x, series: out}, nil
	case parser.KindString:
		return value{kind: vString, expr: x, str: x.Str}, nil
	case parser.KindNumber:
		return value{kind: vNumber, expr: x, num: x.Num, isInt: x.IsInt}, nil
	case parser.KindBool:
		return value{kind: vBool, expr: x, b: x.Bool}, nil
	case parser.KindNone:
		return value{kind: vNone, expr: x}, nil
	}
	return value{}, inputErrorf("unsupported expression %q", x.Source)
}

// prepareFetched copies what the fetcher returned (functions change series in
// place, as graphite-web's do) and fills the defaults.
func prepareFetched(list []*Series, pathExpr string, copyValues bool) []*Series {
	out := make([]*Series, 0, len(list))
	// graphite-web returns the series of a fetch sorted by name.
	list = append([]*Series(nil), list...)
	sort.SliceStable(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	for _, s := range list {
		c := *s
		if copyValues {
			c.Values = append([]float64(nil), s.Values...)
		}
		if s.Tags != nil {
			c.Tags = cloneTags(s.Tags)
		} else {
			c.Tags = tagsFromName(s.Name)
		}
		if c.Tags["name"] == "" {
			c.Tags["name"] = s.Name
		}
		c.PathExpression = pathExpr
		if c.ConsolidationFunc == "" {
			c.ConsolidationFunc = "average"
		}
		if c.Step <= 0 {
			c.Step = 1
		}
		out = append(out, &c)
	}
	return out
}

func (e *env) seriesByTag(x *parser.Expr) (value, error) {
	if len(x.KwArgs) > 0 {
		return value{}, inputErrorf("seriesByTag: keyword arguments are not accepted")
	}
	if len(x.Args) == 0 {
		return value{}, inputErrorf("seriesByTag: at least one tag expression such as 'name=cpu' is required")
	}
	var exprs []string
	hasPositive := false
	for i, a := range x.Args {
		if a.Kind != parser.KindString {
			return value{}, inputErrorf("seriesByTag: argument %d must be a quoted tag expression such as 'name=cpu', got %s", i+1, a.Source)
		}
		k, op, _, ok := splitTagExpr(a.Str)
		if !ok {
			return value{}, inputErrorf("seriesByTag: invalid tag expression %q: use tag=value, tag!=value, tag=~regex or tag!=~regex", a.Str)
		}
		if k == "" {
			return value{}, inputErrorf("seriesByTag: tag expression %q has no tag name", a.Str)
		}
		if op == "=" || op == "=~" {
			hasPositive = true
		}
		exprs = append(exprs, a.Str)
	}
	if !hasPositive {
		return value{}, inputErrorf("seriesByTag: at least one tag expression must match with = or =~")
	}
	list, err := e.req.Fetcher.FetchTagged(e.ctx, exprs, e.from, e.until)
	if err != nil {
		return value{}, err
	}
	return value{kind: vSeries, expr: x, series: prepareFetched(list, x.Source, !e.req.MutableFetches)}, nil
}

// splitTagExpr splits "tag=value", "tag!=value", "tag=~re", "tag!=~re".
func splitTagExpr(s string) (tag, op, val string, ok bool) {
	i := strings.IndexAny(s, "=!")
	if i < 0 {
		return "", "", "", false
	}
	tag = s[:i]
	rest := s[i:]
	for _, o := range []string{"!=~", "=~", "!=", "="} {
		if strings.HasPrefix(rest, o) {
			return tag, o, rest[len(o):], true
		}
	}
	return "", "", "", false
}

// ---- function definitions and argument binding ----

type ptype string

const (
	tSeriesList      ptype = "seriesList"
	tSeriesLists     ptype = "seriesLists"
	tFloat           ptype = "float"
	tInteger         ptype = "integer"
	tIntOrInf        ptype = "intOrInf"
	tIntOrInterval   ptype = "intOrInterval"
	tInterval        ptype = "interval"
	tNode            ptype = "node"
	tNodeOrTag       ptype = "nodeOrTag"
	tTag             ptype = "tag"
	tString          ptype = "string"
	tBoolean         ptype = "boolean"
	tAggFunc         ptype = "aggFunc"
	tAggOrSeriesFunc ptype = "aggOrSeriesFunc"
	tAny             ptype = "any"
	tDate            ptype = "date"
)

type param struct {
	name        string
	typ         ptype
	required    bool
	def         any // default shown in the catalog and used when absent
	multiple    bool
	options     []any
	suggestions []any
	// lenient: required in the catalog, but graphite-web's function has a
	// default and runs without it (highest/lowest n=1).
	lenient bool
}

type funcDef struct {
	name       string
	group      string
	desc       string
	params     []param
	aggregator bool     // usable as a groupByNode callback
	signature  string   // graphite-web's Python signature when it differs from the params
	time       timeKind // whether it is point-wise in time (Pointwise)
	fn         func(e *env, a *args) ([]*Series, error)
}

// args are a call's arguments bound to its parameters.
type args struct {
	fn    string
	call  *parser.Expr
	defs  []param
	vals  []value   // by parameter index; kind 0 = not given
	multi [][]value // by parameter index, for multiple parameters
}

func (e *env) bind(def *funcDef, call *parser.Expr) (*args, error) {
	a := &args{fn: def.name, call: call, defs: def.params, vals: make([]value, len(def.params)), multi: make([][]value, len(def.params))}
	np := len(def.params)
	for i, x := range call.Args {
		pi := i
		if pi >= np {
			if np == 0 || !def.params[np-1].multiple {
				return nil, inputErrorf("%s: too many arguments (it takes %d)", call.Name, np)
			}
			pi = np - 1
		}
		p := def.params[pi]
		v, err := e.argValue(call.Name, p, x)
		if err != nil {
			return nil, err
		}
		if p.multiple {
			a.multi[pi] = append(a.multi[pi], v)
		} else {
			a.vals[pi] = v
		}
	}
	for _, kw := range call.KwArgs {
		pi := -1
		for i, p := range def.params {
			if strings.EqualFold(p.name, kw.Name) {
				pi = i
				break
			}
		}
		if pi < 0 {
			return nil, inputErrorf("%s: unexpected keyword argument %q", call.Name, kw.Name)
		}
		p := def.params[pi]
		if a.vals[pi].kind != 0 || len(a.multi[pi]) > 0 {
			return nil, inputErrorf("%s: argument %q given twice", call.Name, kw.Name)
		}
		v, err := e.argValue(call.Name, p, kw.Value)
		if err != nil {
			return nil, err
		}
		if p.multiple {
			a.multi[pi] = append(a.multi[pi], v)
		} else {
			a.vals[pi] = v
		}
	}
	for i, p := range def.params {
		if p.required && !p.lenient && a.vals[i].kind == 0 && len(a.multi[i]) == 0 {
			return nil, inputErrorf("%s: missing required argument %q", call.Name, p.name)
		}
	}
	return a, nil
}

// argValue evaluates one argument and checks it against its parameter type.
func (e *env) argValue(fn string, p param, x *parser.Expr) (value, error) {
	bad := func(what string) (value, error) {
		return value{}, inputErrorf("%s: argument %q must be %s, got %s", fn, p.name, what, x.Source)
	}
	isSeriesExpr := x.Kind == parser.KindPath || x.Kind == parser.KindCall
	if x.Kind == parser.KindNone && !p.required {
		return value{}, nil // None is "not given"
	}
	switch p.typ {
	case tSeriesList, tSeriesLists:
		if !isSeriesExpr {
			return bad("a series list (a metric path or a function call)")
		}
		return e.eval(x)
	case tAny:
		if isSeriesExpr {
			return e.eval(x)
		}
	}
	if isSeriesExpr {
		if x.Kind == parser.KindPath && (p.typ == tString || p.typ == tTag || p.typ == tAggFunc || p.typ == tAggOrSeriesFunc || p.typ == tInterval || p.typ == tIntOrInterval || p.typ == tDate) {
			return bad("a quoted string")
		}
		return bad("a literal")
	}
	v, _ := e.eval(x) // literals cannot fail
	if v.kind == vNone {
		if p.required {
			return bad("a value")
		}
		return value{}, nil // None is "not given"
	}
	switch p.typ {
	case tFloat:
		switch v.kind {
		case vNumber:
		case vBool:
			v = value{kind: vNumber, expr: x, num: b2f(v.b), isInt: true}
		case vString:
			f, err := strconv.ParseFloat(strings.TrimSpace(v.str), 64)
			if err != nil {
				return bad("a number")
			}
			v = value{kind: vNumber, expr: x, num: f}
		default:
			return bad("a number")
		}
		v.isInt = false // graphite-web converts float parameters with float()
	case tInteger, tNode:
		switch v.kind {
		case vNumber:
			if !v.isInt {
				return bad("an integer")
			}
		case vBool:
			v = value{kind: vNumber, expr: x, num: b2f(v.b), isInt: true}
		case vString:
			n, err := strconv.ParseInt(strings.TrimSpace(v.str), 10, 64)
			if err != nil {
				return bad("an integer")
			}
			v = value{kind: vNumber, expr: x, num: float64(n), isInt: true}
		default:
			return bad("an integer")
		}
	case tIntOrInf:
		if !(v.kind == vNumber && (v.isInt || math.IsInf(v.num, 1))) {
			return bad("an integer or inf")
		}
	case tNodeOrTag:
		if !(v.kind == vNumber && v.isInt) && v.kind != vString {
			return bad("a node number or a tag name")
		}
	case tIntOrInterval:
		switch v.kind {
		case vNumber:
		case vString:
			if _, err := parseTimeOffset(v.str); err != nil {
				return bad("a number of points or an interval such as '5min'")
			}
		default:
			return bad("a number of points or an interval such as '5min'")
		}
	case tInterval:
		if v.kind != vString {
			return bad("an interval such as '1h'")
		}
		if _, err := parseTimeOffset(v.str); err != nil {
			return value{}, inputErrorf("%s: argument %q: %v", fn, p.name, err)
		}
	case tBoolean:
		switch v.kind {
		case vBool:
		case vString:
			switch strings.ToLower(v.str) {
			case "true":
				v = value{kind: vBool, expr: x, b: true}
			case "false":
				v = value{kind: vBool, expr: x}
			default:
				return bad("true or false")
			}
		case vNumber:
			if v.num != 0 && v.num != 1 {
				return bad("true or false")
			}
			v = value{kind: vBool, expr: x, b: v.num == 1}
		}
	case tAggFunc:
		if v.kind != vString {
			return bad("an aggregation function name")
		}
		if _, _, ok := lookupAgg(v.str); !ok {
			return value{}, inputErrorf("%s: argument %q: unsupported aggregation function %q (use one of %s)", fn, p.name, v.str, strings.Join(aggFuncNames, ", "))
		}
	case tAggOrSeriesFunc:
		if v.kind != vString {
			return bad("an aggregation function name")
		}
		if _, _, ok := lookupAgg(v.str); !ok {
			if d, ok := registry[v.str]; !ok || !d.aggregator {
				return value{}, inputErrorf("%s: argument %q: unsupported aggregation function %q", fn, p.name, v.str)
			}
		}
	case tString, tTag, tDate:
		switch v.kind {
		case vString:
		case vNumber:
			v = value{kind: vString, expr: x, str: pyNum(v.num, v.isInt)}
		case vBool:
			v = value{kind: vString, expr: x, str: map[bool]string{true: "True", false: "False"}[v.b]}
		}
	}
	if len(p.options) > 0 && v.kind == vString {
		found := false
		for _, o := range p.options {
			if s, ok := o.(string); ok && s == v.str {
				found = true
			}
		}
		if !found {
			return value{}, inputErrorf("%s: argument %q: invalid option %q", fn, p.name, v.str)
		}
	}
	return v, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ---- accessors used by the function implementations ----

func (a *args) has(i int) bool { return a.vals[i].kind != 0 || len(a.multi[i]) > 0 }

func (a *args) series(i int) []*Series { return a.vals[i].series }

func (a *args) flatSeries(i int) []*Series {
	var out []*Series
	for _, v := range a.multi[i] {
		out = append(out, v.series...)
	}
	return out
}

func (a *args) float(i int, def float64) float64 {
	if a.vals[i].kind == vNumber {
		return a.vals[i].num
	}
	return def
}

func (a *args) int(i int, def int) int {
	if a.vals[i].kind == vNumber {
		return int(a.vals[i].num)
	}
	return def
}

func (a *args) str(i int, def string) string {
	if a.vals[i].kind == vString {
		return a.vals[i].str
	}
	return def
}

func (a *args) bool(i int, def bool) bool {
	if a.vals[i].kind == vBool {
		return a.vals[i].b
	}
	return def
}

func (a *args) val(i int) value { return a.vals[i] }

// multiVals returns the values given to a multiple parameter.
func (a *args) multiVals(i int) []value { return a.multi[i] }

func (a *args) errorf(format string, v ...any) error {
	return &InputError{Msg: a.fn + ": " + fmt.Sprintf(format, v...)}
}
