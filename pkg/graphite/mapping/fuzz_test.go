package mapping

import (
	"regexp"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// FuzzGlobMatchers: a glob either translates into matchers whose regexps
// compile, or is an error; it never panics.
func FuzzGlobMatchers(f *testing.F) {
	for _, s := range []string{"a.*.c", "a.{b,c}.d", "a.b[0-9].c", "{a.b,c}.d", "a.[!x]", "a.{b{c,d},e}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, glob string) {
		for _, g := range ExpandDottedBraces(glob) {
			ms, err := GlobMatchers(g)
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
