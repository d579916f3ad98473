package functions

import (
	"context"
	"strings"
	"testing"

	"github.com/meridianhq/meridian/pkg/graphite/parser"
)

// FuzzEval evaluates arbitrary targets over the fake data: the evaluator must
// answer with series, an InputError or nothing, never panic.
func FuzzEval(f *testing.F) {
	for _, c := range functionCases {
		f.Add(c.target)
	}
	for _, c := range nestedCases {
		f.Add(c.target)
	}
	f.Fuzz(func(t *testing.T, target string) {
		x, err := parser.Parse(target)
		if err != nil {
			return
		}
		// keep the fuzzer away from huge re-fetch windows and templates
		if strings.Contains(target, "applyByNode") || strings.Contains(target, "timeStack") {
			return
		}
		_, err = Eval(context.Background(), &Request{From: 990, Until: 1040, Fetcher: newFake()}, x)
		if err != nil && strings.Contains(err.Error(), "internal error") {
			t.Fatalf("%q: %v", target, err)
		}
	})
}
