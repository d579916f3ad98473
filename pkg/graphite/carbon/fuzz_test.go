package carbon

import (
	"testing"
	"time"
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
