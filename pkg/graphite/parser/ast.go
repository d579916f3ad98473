// Package parser turns a Graphite render target into an expression tree.
package parser

import "fmt"

// Kind says what an Expr is.
type Kind int

const (
	// KindPath is a metric path or glob, e.g. servers.*.cpu.{user,system}.
	KindPath Kind = iota
	// KindCall is a function call with positional and keyword arguments.
	KindCall
	// KindString is a quoted string ('x' or "x").
	KindString
	// KindNumber is an integer or float literal.
	KindNumber
	// KindBool is true or false (any letter case, as graphite-web accepts).
	KindBool
	// KindNone is the literal None.
	KindNone
)

// Expr is one node of a parsed target.
type Expr struct {
	Kind   Kind
	Pos    int    // byte offset of the node in the target, for error messages
	Source string // the exact target text of this node; Graphite names series after it

	Path   string  // KindPath
	Name   string  // KindCall: the function name
	Args   []*Expr // KindCall: positional arguments in order
	KwArgs []KwArg // KindCall: keyword arguments in source order
	Str    string  // KindString: the unquoted value
	Num    float64 // KindNumber
	IsInt  bool    // KindNumber: written without a fraction or exponent
	Bool   bool    // KindBool
}

// KwArg is one name=value argument of a call.
type KwArg struct {
	Name  string
	Value *Expr
}

// Error is a syntax error at a byte position of the target.
type Error struct {
	Target string
	Pos    int
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid target %q at position %d: %s", e.Target, e.Pos, e.Msg)
}
