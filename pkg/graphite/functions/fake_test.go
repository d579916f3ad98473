package functions

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/meridianhq/meridian/pkg/graphite/parser"
)

var N = math.NaN()

// stored is one series in the fake store: values at start, start+step, ...
type stored struct {
	start, step int64
	vals        []float64
}

// fakeFetcher answers like whisper: a fetch over (from, until] returns the
// points from from-from%step+step up to until-until%step+step (exclusive).
type fakeFetcher struct {
	data map[string]stored
	mu   sync.Mutex
	log  []string // fetches, "glob from until"
}

func (f *fakeFetcher) slice(name string, st stored, from, until int64) *Series {
	start := from - from%st.step + st.step
	end := until - until%st.step + st.step
	var vals []float64
	for t := start; t < end; t += st.step {
		i := (t - st.start) / st.step
		if t < st.start || i >= int64(len(st.vals)) {
			vals = append(vals, N)
		} else {
			vals = append(vals, st.vals[i])
		}
	}
	return &Series{Name: name, Start: start, End: end, Step: st.step, Values: vals}
}

func globRE(glob string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*':
			b.WriteString(`[^.]*`)
		case '?':
			b.WriteString(`[^.]`)
		case '{':
			b.WriteString("(")
		case '}':
			b.WriteString(")")
		case ',':
			b.WriteString("|")
		case '[', ']', '-':
			b.WriteByte(c)
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return regexp.MustCompile(`^\x00never$`) // an invalid glob matches nothing
	}
	return re
}

func (f *fakeFetcher) names() []string {
	var out []string
	for n := range f.data {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (f *fakeFetcher) FetchPath(ctx context.Context, glob string, from, until int64) ([]*Series, error) {
	f.mu.Lock()
	f.log = append(f.log, glob+" "+itoa(from)+" "+itoa(until))
	f.mu.Unlock()
	// like a tenant's points limit: re-fetch windows can be made huge
	if (until-from)/10 > 100000 {
		return nil, fmt.Errorf("fetch of %d seconds exceeds the points limit", until-from)
	}
	re := globRE(glob)
	var out []*Series
	for _, n := range f.names() {
		if !strings.Contains(n, ";") && re.MatchString(n) {
			out = append(out, f.slice(n, f.data[n], from, until))
		}
	}
	return out, nil
}

func (f *fakeFetcher) FetchTagged(ctx context.Context, exprs []string, from, until int64) ([]*Series, error) {
	if (until-from)/10 > 100000 {
		return nil, fmt.Errorf("fetch of %d seconds exceeds the points limit", until-from)
	}
	var out []*Series
	for _, n := range f.names() {
		if !strings.Contains(n, ";") {
			continue
		}
		tags := tagsFromName(n)
		ok := true
		for _, e := range exprs {
			k, op, v, _ := splitTagExpr(e)
			got := tags[k]
			switch op {
			case "=":
				ok = ok && got == v
			case "!=":
				ok = ok && got != v
			case "=~":
				re, err := regexp.Compile("^(?:" + v + ")")
				ok = ok && err == nil && re.MatchString(got)
			case "!=~":
				re, err := regexp.Compile("^(?:" + v + ")")
				ok = ok && err == nil && !re.MatchString(got)
			}
		}
		if ok {
			s := f.slice(n, f.data[n], from, until)
			s.Tags = tags
			out = append(out, s)
		}
	}
	return out, nil
}

func itoa(i int64) string { return pyD(float64(i)) }

// testData: step 10 series; the request range (990, 1040] gives the points
// at 1000, 1010, 1020, 1030, 1040. s.a.x has data before the range for the
// functions that fetch earlier points.
func newFake() *fakeFetcher {
	return &fakeFetcher{data: map[string]stored{
		"s.a.x":               {960, 10, []float64{10, 20, 30, 40, 1, 2, 3, 4, 5, 6}},
		"s.b.x":               {1000, 10, []float64{2, N, 6, 8, 10}},
		"s.c.y":               {1000, 10, []float64{5, 5, N, N, 1}},
		"t.w":                 {1000, 20, []float64{4, 8, N}},
		"neg.n":               {1000, 10, []float64{-1, 3, -5, 0, 2}},
		"cnt.c":               {1000, 10, []float64{10, 20, 5, 15, 25}},
		"srv.h2":              {1000, 10, []float64{1, 1, 1, 1, 1}},
		"srv.h10":             {1000, 10, []float64{2, 2, 2, 2, 2}},
		"cpu;dc=east;host=h1": {1000, 10, []float64{1, 2, 3, 4, 5}},
		"cpu;dc=west;host=h2": {1000, 10, []float64{10, 20, 30, 40, 50}},
	}}
}

func evalTarget(t *testing.T, f *fakeFetcher, target string, from, until int64) ([]*Series, error) {
	t.Helper()
	x, err := parser.Parse(target)
	if err != nil {
		t.Fatalf("%s: parse: %v", target, err)
	}
	return Eval(context.Background(), &Request{From: from, Until: until, Fetcher: f}, x)
}

type want struct {
	name string
	vals []float64
}

func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.IsNaN(a[i]) != math.IsNaN(b[i]) {
			return false
		}
		if !math.IsNaN(a[i]) && math.Abs(a[i]-b[i]) > 1e-9*math.Max(1, math.Abs(b[i])) {
			return false
		}
	}
	return true
}

func checkSeries(t *testing.T, target string, got []*Series, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		var names []string
		for _, s := range got {
			names = append(names, s.Name)
		}
		t.Errorf("%s: got %d series %q, want %d", target, len(got), names, len(wants))
		return
	}
	for i, w := range wants {
		if got[i].Name != w.name {
			t.Errorf("%s: series %d name %q, want %q", target, i, got[i].Name, w.name)
		}
		if w.vals != nil && !sameFloats(got[i].Values, w.vals) {
			t.Errorf("%s: series %d (%s) values %v, want %v", target, i, got[i].Name, got[i].Values, w.vals)
		}
		if got[i].End != got[i].Start+int64(len(got[i].Values))*got[i].Step {
			t.Errorf("%s: series %d end %d does not match start %d + %d values * step %d", target, i, got[i].End, got[i].Start, len(got[i].Values), got[i].Step)
		}
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
