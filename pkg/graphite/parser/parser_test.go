package parser

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// dump renders a tree compactly so table tests can state the expected shape.
func dump(e *Expr) string {
	switch e.Kind {
	case KindPath:
		return "path(" + e.Path + ")"
	case KindString:
		return "str(" + e.Str + ")"
	case KindNumber:
		if math.IsInf(e.Num, 1) {
			return "num(inf)"
		}
		if e.IsInt {
			return "int(" + e.Source + ")"
		}
		return "float(" + e.Source + ")"
	case KindBool:
		if e.Bool {
			return "true"
		}
		return "false"
	case KindNone:
		return "none"
	case KindCall:
		var parts []string
		for _, a := range e.Args {
			parts = append(parts, dump(a))
		}
		for _, kw := range e.KwArgs {
			parts = append(parts, kw.Name+"="+dump(kw.Value))
		}
		return e.Name + "[" + strings.Join(parts, " ") + "]"
	}
	return "?"
}

func TestParseGood(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a.b.c", "path(a.b.c)"},
		{"servers.*.cpu.{user,system}", "path(servers.*.cpu.{user,system})"},
		{"a.b?[0-9].c[a-z]", "path(a.b?[0-9].c[a-z])"},
		{"a_b-c:d#e@f$g%h^i&j~k!l", "path(a_b-c:d#e@f$g%h^i&j~k!l)"},
		{"a.b;tag=value;dc=x", "path(a.b;tag=value;dc=x)"},
		{`a.b\(1\).c`, "path(a.b(1).c)"},
		{"1.2.3", "path(1.2.3)"},
		{"a.{b,c}x{d,e}.f", "path(a.{b,c}x{d,e}.f)"},
		{"sumSeries(a.*.c)", "sumSeries[path(a.*.c)]"},
		{"sumSeries()", "sumSeries[]"},
		{" scale ( a.b , 2 ) ", "scale[path(a.b) int(2)]"},
		{"f(a,1,-2,3.5,-0.25,1e3,2.5E-2,-1e-2)", "f[path(a) int(1) int(-2) float(3.5) float(-0.25) float(1e3) float(2.5E-2) float(-1e-2)]"},
		{"f(a,True,false,FALSE,None,none,inf)", "f[path(a) true false false none none num(inf)]"},
		{`aliasSub(a.b, '(^.*$)', '\1 A')`, `aliasSub[path(a.b) str((^.*$)) str(\1 A)]`},
		{`f("it\"s", 'x''y', "")`, `f[str(it\"s) str(x''y) str()]`},
		{"summarize(a.b, '1h', func='max', alignToFrom=true)", "summarize[path(a.b) str(1h) func=str(max) alignToFrom=true]"},
		{"constantLine(value=100)", "constantLine[value=int(100)]"},
		{"aliasByNode(sumSeries(servers.*.cpu.user), 1)", "aliasByNode[sumSeries[path(servers.*.cpu.user)] int(1)]"},
		{"seriesByTag('name=cpu', 'dc!=~x|y')", "seriesByTag[str(name=cpu) str(dc!=~x|y)]"},
		{"a.b | scale(2) | alias('x')", "alias[scale[path(a.b) int(2)] str(x)]"},
		{"f(1a.b, -a, 2e)", "f[path(1a.b) path(-a) path(2e)]"},
		{"f(true.x)", "f[path(true.x)]"},
		{"f(a)\n", "f[path(a)]"},
	} {
		e, err := Parse(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := dump(e); got != tc.want {
			t.Errorf("%q: got %s want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseSourceAndPos(t *testing.T) {
	in := "aliasByNode( sumSeries(a.*.c) ,1)"
	e, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if e.Source != "aliasByNode( sumSeries(a.*.c) ,1)" || e.Pos != 0 {
		t.Fatalf("outer: %q %d", e.Source, e.Pos)
	}
	inner := e.Args[0]
	if inner.Source != "sumSeries(a.*.c)" || inner.Pos != 13 {
		t.Fatalf("inner: %q %d", inner.Source, inner.Pos)
	}
	if p := inner.Args[0]; p.Source != "a.*.c" || p.Pos != 23 {
		t.Fatalf("path: %q %d", p.Source, p.Pos)
	}
	if n := e.Args[1]; n.Source != "1" || n.Pos != 31 || n.Num != 1 {
		t.Fatalf("num: %+v", n)
	}
	// piped call: the source spans the piped expression.
	e, _ = Parse("a.b|scale(2)")
	if e.Source != "a.b|scale(2)" || e.Args[0].Source != "a.b" {
		t.Fatalf("pipe: %q", e.Source)
	}
}

func TestParseBad(t *testing.T) {
	for _, tc := range []struct {
		in   string
		pos  int
		want string // part of the message
	}{
		{"", 0, "expected a metric path or a function call"},
		{"   ", 3, "expected a metric path"},
		{"sumSeries(a.b", 13, "expected ',' or ')'"},
		{"sumSeries(a.b,", 14, "expected an argument"},
		{"sumSeries(a.b,)", 14, "expected an argument"},
		{"sumSeries(,a)", 10, "expected an argument"},
		{"f(a.b c)", 6, "expected ',' or ')'"},
		{"a.b)", 3, "unexpected \")\""},
		{"a..b", 2, "expected a path node after '.'"},
		{"a.", 2, "expected a path node after '.'"},
		{".a", 0, "expected a metric path"},
		{"f('abc)", 2, "unterminated string"},
		{`f("abc`, 2, "unterminated string"},
		{"a.{b,c", 6, "expected '}'"},
		{"a.{b,}", 5, "expected an alternative"},
		{"a.{b.c}", 4, "expected ',' or '}'"},
		{"f(x=1, a)", 7, "positional arguments must come before"},
		{"f(x=1, x=2)", 7, "given twice"},
		{"f(a) g(b)", 5, "unexpected \"g\""},
		{"'abc'", 0, "expected a metric path"},
		{"a|b", 2, "expected a function call after '|'"},
		{`a\b`, 1, "can be escaped"},
	} {
		_, err := Parse(tc.in)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%q: want *Error, got %v", tc.in, err)
			continue
		}
		if pe.Pos != tc.pos || !strings.Contains(pe.Msg, tc.want) {
			t.Errorf("%q: got pos %d %q, want pos %d containing %q", tc.in, pe.Pos, pe.Msg, tc.pos, tc.want)
		}
		if !strings.Contains(pe.Error(), "position") {
			t.Errorf("%q: error text %q does not name the position", tc.in, pe.Error())
		}
	}
}

func checkSources(t *testing.T, in string, e *Expr) {
	if !strings.Contains(in, e.Source) || e.Pos < 0 || e.Pos+len(e.Source) > len(in) || in[e.Pos:e.Pos+len(e.Source)] != e.Source {
		t.Fatalf("%q: node source %q at %d is not the input's text", in, e.Source, e.Pos)
	}
	for _, a := range e.Args {
		checkSources(t, in, a)
	}
	for _, kw := range e.KwArgs {
		checkSources(t, in, kw.Value)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"a.b.c", "sumSeries(a.*.c)", "f(a, 'x', \"y\", 1, -2.5e3, true, None, inf, k=v)",
		"a.{b,c}[0-9]", `a\(b`, "a.b|scale(2)", "seriesByTag('name=x')", "f(", "'", "{", "f(x=1,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		e, err := Parse(in)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("%q: error of type %T", in, err)
			}
			if pe.Pos < 0 || pe.Pos > len(in) {
				t.Fatalf("%q: error position %d out of range", in, pe.Pos)
			}
			return
		}
		checkSources(t, in, e)
	})
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"sumSeries(a.b) (avg: 1.0)": "sumSeries[path(a.b)]",
		"x, 6.5)":                   "path(x)",
		"movingMedian(,2)":          "path(movingMedian)",
		"a.b":                       "path(a.b)",
	} {
		e, err := ParsePrefix(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got := dump(e); got != want {
			t.Errorf("%q: got %s want %s", in, got, want)
		}
	}
	if _, err := ParsePrefix("(x"); err == nil {
		t.Error("ParsePrefix accepted \"(x\"")
	}
}
