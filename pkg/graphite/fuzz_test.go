package graphite

import (
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// FuzzParseLine: any input either parses into a series with a metric name
// or is rejected with a known reason; it never panics.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"a.b 1 1700000000", "a;b=c 1", "a..b x y", "", "a.b 1e309 -1", "a;name=x 1 1"} {
		f.Add(s)
	}
	reasons := map[string]bool{ReasonFieldCount: true, ReasonBadValue: true, ReasonBadTimestamp: true, ReasonBadPath: true, ReasonBadTag: true}
	f.Fuzz(func(t *testing.T, line string) {
		l, err := ParseLine([]byte(line), time.Unix(1700000000, 0))
		if err != nil {
			if !reasons[err.Reason] {
				t.Fatalf("unknown reason %q", err.Reason)
			}
			return
		}
		if l.Labels.Get("__name__") == "" {
			t.Fatalf("%q parsed without a name", line)
		}
	})
}

// FuzzGlobMatchers: a glob either translates into matchers whose regexps
// compile, or is an error; it never panics.
func FuzzGlobMatchers(f *testing.F) {
	for _, s := range []string{"a.*.c", "a.{b,c}.d", "a.b[0-9].c", "{a.b,c}.d", "a.[!x]", "a.{b{c,d},e}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, glob string) {
		for _, g := range expandDottedBraces(glob) {
			ms, err := globMatchers(g)
			if err != nil {
				continue
			}
			for _, m := range ms {
				if _, err := regexp.Compile(m.Value); m.Type == labels.MatchRegexp && err != nil {
					t.Fatalf("bad regexp %q from %q", m.Value, glob)
				}
			}
		}
	})
}
