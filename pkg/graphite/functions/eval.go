package functions

import (
	"context"
	"errors"

	"github.com/meridianhq/meridian/pkg/graphite/parser"
)

// errNotBuilt marks the placeholder below; the evaluator replaces this file.
var errNotBuilt = errors.New("graphite function library not built yet")

// InputError is a problem with the target the user wrote (unknown function,
// wrong argument); the HTTP layer answers it with 400.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Eval evaluates one parsed target over req's time range.
func Eval(ctx context.Context, req *Request, target *parser.Expr) ([]*Series, error) {
	return nil, errNotBuilt
}

// Consolidate reduces s to at most maxDataPoints points with its
// ConsolidationFunc and XFilesFactor, as graphite-web's render does.
func Consolidate(s *Series, maxDataPoints int) *Series { return s }

// Catalog is the JSON document /graphite/functions serves (graphite-web's
// format: function name → {name, function, description, module, group, params}).
func Catalog() map[string]any { return map[string]any{} }
