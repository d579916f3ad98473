package httpapi

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/meridianhq/meridian/pkg/util/promtime"
)

// parseTimeParam reads an optional time parameter.
func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, *apiError) {
	t, err := promtime.ParseTimeParam(r.FormValue, name, def)
	if err != nil {
		return time.Time{}, invalidParam(name, err)
	}
	return t, nil
}

// parseLimit reads the limit parameter; 0 means no limit.
func parseLimit(r *http.Request) (int, *apiError) {
	v := r.FormValue("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, invalidParam("limit", err)
	}
	if n < 0 {
		return 0, invalidParam("limit", errors.New("limit must be non-negative"))
	}
	return n, nil
}

// hintLimit asks storage for one more result than the limit, so that a
// truncated answer can be told apart and warned about.
func hintLimit(limit int) int {
	if limit > 0 && limit < math.MaxInt {
		return limit + 1
	}
	return limit
}

// parseMatchers parses match[] selectors; each must have a matcher that
// does not match the empty string, so it cannot select every series.
func parseMatchers(p parser.Parser, selectors []string) ([][]*labels.Matcher, error) {
	sets, err := p.ParseMetricSelectors(selectors)
	if err != nil {
		return nil, err
	}
outer:
	for _, set := range sets {
		for _, m := range set {
			if m != nil && !m.Matches("") {
				continue outer
			}
		}
		return nil, errors.New("match[] must contain at least one non-empty matcher")
	}
	return sets, nil
}

// formatThousands writes n with comma thousands separators, as 11,000.
func formatThousands(n int) string {
	s := strconv.Itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
