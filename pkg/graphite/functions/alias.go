package functions

import (
	"fmt"
	"math"
	"strings"
)

func fnAlias(e *env, a *args) ([]*Series, error) {
	name := a.str(1, "")
	for _, s := range a.series(0) {
		s.Name = name
	}
	return a.series(0), nil
}

func fnAliasByNode(e *env, a *args) ([]*Series, error) {
	nodes := a.multiVals(1)
	for _, s := range a.series(0) {
		s.Name = aggKey(s, nodes)
	}
	return a.series(0), nil
}

func fnAliasSub(e *env, a *args) ([]*Series, error) {
	re, err := compilePattern(a, a.str(1, ""))
	if err != nil {
		return nil, err
	}
	repl := a.str(2, "")
	for _, s := range a.series(0) {
		n, err := pySub(re, repl, s.Name)
		if err != nil {
			return nil, a.errorf("invalid replacement %q: %v", repl, err)
		}
		s.Name = n
	}
	return a.series(0), nil
}

// substr is graphite-web's substr: the nodes start:stop of the innermost
// name inside the parentheses.
func substr(list []*Series, start, stop int) {
	for _, s := range list {
		left := strings.LastIndex(s.Name, "(") + 1
		right := strings.Index(s.Name, ")")
		if right < 0 {
			right = len(s.Name) + 1
		}
		clean := ""
		if right > len(s.Name) {
			right = len(s.Name)
		}
		if left < right {
			clean = s.Name[left:right]
		}
		parts := strings.Split(clean, ".")
		lo, hi := pySlice(len(parts), start, stop, stop != 0)
		name := strings.Join(parts[lo:hi], ".")
		if i := strings.Index(name, ","); i >= 0 {
			name = name[:i]
		}
		s.Name = name
	}
}

// pySlice resolves Python slice bounds [start:stop] (stop optional).
func pySlice(n, start, stop int, hasStop bool) (int, int) {
	norm := func(i int) int {
		if i < 0 {
			i += n
			if i < 0 {
				i = 0
			}
		}
		if i > n {
			i = n
		}
		return i
	}
	lo := norm(start)
	hi := n
	if hasStop {
		hi = norm(stop)
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

func fnAliasByMetric(e *env, a *args) ([]*Series, error) {
	substr(a.series(0), -1, 0)
	return a.series(0), nil
}

func fnSubstr(e *env, a *args) ([]*Series, error) {
	substr(a.series(0), a.int(1, 0), a.int(2, 0))
	return a.series(0), nil
}

// formatUnits is graphite-web's format_units for the si and binary systems.
func formatUnits(v float64, system string) (float64, string) {
	type unit struct {
		prefix string
		size   float64
	}
	var units []unit
	if system == "binary" {
		units = []unit{{"Pi", math.Pow(1024, 5)}, {"Ti", math.Pow(1024, 4)}, {"Gi", math.Pow(1024, 3)}, {"Mi", 1024 * 1024}, {"Ki", 1024}}
	} else {
		units = []unit{{"P", 1e15}, {"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"k", 1e3}}
	}
	for _, u := range units {
		if math.Abs(v) >= u.size {
			v2 := v / u.size
			if v2-math.Floor(v2) < 0.00000000001 && v > 1 {
				v2 = math.Floor(v2)
			}
			return v2, u.prefix
		}
	}
	if v-math.Floor(v) < 0.00000000001 && v > 1 {
		v = math.Floor(v)
	}
	return v, ""
}

func fnLegendValue(e *env, a *args) ([]*Series, error) {
	var types []string
	for _, v := range a.multiVals(1) {
		types = append(types, v.str)
	}
	system := ""
	if n := len(types); n > 0 && (types[n-1] == "si" || types[n-1] == "binary") {
		system = types[n-1]
		types = types[:n-1]
	}
	for _, t := range types {
		f, _, ok := lookupAgg(t)
		for _, s := range a.series(0) {
			formatted := "(?)"
			var val float64
			if ok {
				val = f(s.Values)
			}
			if system == "" {
				if ok {
					formatted = pyOptFloat(val)
				}
				s.Name += " (" + t + ": " + formatted + ")"
				continue
			}
			if ok {
				if isNull(val) {
					formatted = "None"
				} else {
					v, prefix := formatUnits(val, system)
					formatted = fmt.Sprintf("%.2f%s", v, prefix)
				}
			}
			s.Name = fmt.Sprintf("%-20s%-5s%-10s", s.Name, t, formatted)
		}
	}
	return a.series(0), nil
}

func pyOptFloat(v float64) string {
	if isNull(v) {
		return "None"
	}
	return pyFloat(v)
}

func fnCactiStyle(e *env, a *args) ([]*Series, error) {
	list := a.series(0)
	if len(list) == 0 {
		return list, nil
	}
	system, units := a.str(1, ""), a.str(2, "")
	fmtv := func(x float64) string {
		switch {
		case system != "" && units != "":
			v, p := formatUnits(x, system)
			return fmt.Sprintf("%.2f %s%s", v, p, units)
		case system != "":
			v, p := formatUnits(x, system)
			return fmt.Sprintf("%.2f%s", v, p)
		case units != "":
			return fmt.Sprintf("%.2f %s", x, units)
		}
		return fmt.Sprintf("%.2f", x)
	}
	orThree := func(v float64) float64 {
		if isNull(v) || math.Trunc(v) == 0 {
			return 3
		}
		return math.Trunc(v)
	}
	nameLen, lastLen, maxLen, minLen := 0, 0, 0, 0
	for _, s := range list {
		nameLen = max(nameLen, len(s.Name))
		lastLen = max(lastLen, len(fmtv(orThree(safeLast(s.Values))))+3)
		maxLen = max(maxLen, len(fmtv(orThree(safeMax(s.Values))))+3)
		minLen = max(minLen, len(fmtv(orThree(safeMin(s.Values))))+3)
	}
	show := func(v float64) string {
		if isNull(v) {
			return "nan"
		}
		return fmtv(v)
	}
	for _, s := range list {
		s.Name = fmt.Sprintf("%-*s Current:%-*s Max:%-*s Min:%-*s ", nameLen, s.Name, lastLen, show(safeLast(s.Values)), maxLen, show(safeMax(s.Values)), minLen, show(safeMin(s.Values)))
	}
	return list, nil
}
