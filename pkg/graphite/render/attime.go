package render

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseTime parses a Graphite from/until value as graphite-web's
// parseATTime does: "now", relative offsets ("-1h", "-5min", "-1d", "-2w",
// "-1mon", "-1y", "+30s", several units as in "-1d2h"), unix seconds,
// "HH:MM_YYYYMMDD", "YYYYMMDD", "MM/DD/YY[YY]", "midnight", "noon",
// "teatime", "today", "yesterday", "tomorrow", an optional "am"/"pm", and a
// reference followed by an offset ("midnight-1d", "noon yesterday").
func ParseTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	orig := s
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.ReplaceAll(s, ",", "")
	s = strings.ReplaceAll(s, " ", "")
	if s == "" {
		return time.Time{}, fmt.Errorf("empty time")
	}
	if isDigits(s) {
		if len(s) == 8 {
			if t, ok := parseYYYYMMDD(s, loc); ok {
				return t, nil
			}
		}
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: %w", orig, err)
		}
		return time.Unix(secs, 0), nil
	}
	ref, offset := s, ""
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		ref, offset = s[:i], s[i:]
	}
	t, err := parseReference(ref, now.In(loc), loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", orig, err)
	}
	d, err := ParseOffset(offset)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", orig, err)
	}
	return t.Add(d), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func parseYYYYMMDD(s string, loc *time.Location) (time.Time, bool) {
	y, _ := strconv.Atoi(s[:4])
	m, _ := strconv.Atoi(s[4:6])
	d, _ := strconv.Atoi(s[6:])
	if y < 1900 || m < 1 || m > 12 || d < 1 || d > 31 {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, loc), true
}

// parseReference parses the absolute part of a time (before any offset).
func parseReference(ref string, now time.Time, loc *time.Location) (time.Time, error) {
	if ref == "" || ref == "now" {
		return now, nil
	}
	// Time of day first: HH:MM, noon, midnight, teatime, with am/pm.
	hour, minute, haveTime := 0, 0, false
	if i := strings.IndexByte(ref, ':'); i > 0 && i+3 <= len(ref) && isDigits(ref[:i]) && isDigits(ref[i+1:i+3]) {
		hour, _ = strconv.Atoi(ref[:i])
		minute, _ = strconv.Atoi(ref[i+1 : i+3])
		ref = ref[i+3:]
		haveTime = true
		switch {
		case strings.HasPrefix(ref, "am"):
			if hour == 12 {
				hour = 0
			}
			ref = ref[2:]
		case strings.HasPrefix(ref, "pm"):
			if hour < 12 {
				hour += 12
			}
			ref = ref[2:]
		}
	} else {
		for _, w := range []struct {
			word string
			hour int
		}{{"midnight", 0}, {"noon", 12}, {"teatime", 16}} {
			if strings.HasPrefix(ref, w.word) {
				hour, haveTime = w.hour, true
				ref = ref[len(w.word):]
				break
			}
		}
	}
	if hour > 23 || minute > 59 {
		return time.Time{}, fmt.Errorf("time of day %02d:%02d is out of range", hour, minute)
	}
	ref = strings.TrimPrefix(ref, "_")

	// Then the day.
	y, mo, d := now.Date()
	day := time.Date(y, mo, d, 0, 0, 0, 0, loc)
	switch {
	case ref == "" || ref == "today":
	case ref == "yesterday":
		day = day.AddDate(0, 0, -1)
	case ref == "tomorrow":
		day = day.AddDate(0, 0, 1)
	case len(ref) == 8 && isDigits(ref):
		t, ok := parseYYYYMMDD(ref, loc)
		if !ok {
			return time.Time{}, fmt.Errorf("date %q is not YYYYMMDD", ref)
		}
		day = t
	case strings.Count(ref, "/") == 2:
		parts := strings.Split(ref, "/")
		m, err1 := strconv.Atoi(parts[0])
		dd, err2 := strconv.Atoi(parts[1])
		yy, err3 := strconv.Atoi(parts[2])
		if err1 != nil || err2 != nil || err3 != nil || m < 1 || m > 12 || dd < 1 || dd > 31 {
			return time.Time{}, fmt.Errorf("date %q is not MM/DD/YY or MM/DD/YYYY", ref)
		}
		if yy < 100 {
			if yy < 70 {
				yy += 2000
			} else {
				yy += 1900
			}
		}
		day = time.Date(yy, time.Month(m), dd, 0, 0, 0, 0, loc)
	default:
		return time.Time{}, fmt.Errorf("unknown time reference %q; use now, unix seconds, HH:MM_YYYYMMDD, YYYYMMDD, midnight, noon, today, yesterday or an offset like -1h", ref)
	}
	if !haveTime && (ref == "" || ref == "today") {
		// "today" alone is midnight today; nothing at all was handled above.
		return day, nil
	}
	return day.Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute), nil
}

// ParseOffset parses a signed Graphite offset such as "-1h", "+5min",
// "-1d12h" or "-2w". An empty offset is zero.
func ParseOffset(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	sign := time.Duration(1)
	switch s[0] {
	case '-':
		sign = -1
		s = s[1:]
	case '+':
		s = s[1:]
	}
	if s == "" {
		return 0, fmt.Errorf("offset has no amount")
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("offset %q: expected a number", s)
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("offset %q: %w", s, err)
		}
		s = s[i:]
		j := 0
		for j < len(s) && (s[j] < '0' || s[j] > '9') {
			j++
		}
		unit, err := offsetUnit(s[:j])
		if err != nil {
			return 0, err
		}
		s = s[j:]
		total += time.Duration(n) * unit
	}
	return sign * total, nil
}

// offsetUnit maps a unit as graphite-web's getUnitString does (by prefix).
func offsetUnit(u string) (time.Duration, error) {
	switch {
	case u == "":
		return 0, fmt.Errorf("offset needs a unit (s, min, h, d, w, mon, y)")
	case strings.HasPrefix(u, "s"):
		return time.Second, nil
	case strings.HasPrefix(u, "min"), u == "m":
		return time.Minute, nil
	case strings.HasPrefix(u, "h"):
		return time.Hour, nil
	case strings.HasPrefix(u, "d"):
		return 24 * time.Hour, nil
	case strings.HasPrefix(u, "w"):
		return 7 * 24 * time.Hour, nil
	case strings.HasPrefix(u, "mon"):
		return 30 * 24 * time.Hour, nil
	case strings.HasPrefix(u, "y"):
		return 365 * 24 * time.Hour, nil
	}
	return 0, fmt.Errorf("unknown offset unit %q; use s, min, h, d, w, mon or y", u)
}
