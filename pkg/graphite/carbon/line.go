package carbon

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/meridianhq/meridian/pkg/graphite/mapping"
)

// Reasons a carbon line is rejected before it reaches storage: the reason
// label of meridian_graphite_carbon_lines_rejected_total. Lines storage
// rejects carry the write path's error ID instead (docs/errors.md).
const (
	ReasonFieldCount   = "field_count"   // not "path value [timestamp]"
	ReasonBadValue     = "bad_value"     // value not a number, or NaN
	ReasonBadTimestamp = "bad_timestamp" // timestamp not a number of seconds
	ReasonBadPath      = "bad_path"      // empty node, glob or control character, not UTF-8
	ReasonBadTag       = "bad_tag"       // tag not k=v, or a reserved or repeated name
	ReasonLineTooLong  = "line_too_long" // longer than the line limit
	ReasonRateLimited  = "rate_limited"  // the tenant's ingestion rate limit
	ReasonStorage      = "storage_error" // storage did not take the batch (5xx)
)

// Line is one parsed carbon line.
type Line struct {
	Labels      labels.Labels
	Value       float64
	TimestampMs int64
}

// LineError is a rejected line and why.
type LineError struct {
	Reason string
	Msg    string
}

func (e *LineError) Error() string { return e.Reason + ": " + e.Msg }

func lineErr(reason, format string, args ...any) *LineError {
	return &LineError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// ParseLine parses one carbon plaintext line: "path value [timestamp]",
// fields separated by whitespace, path optionally tagged
// ("path;tag=value;..."). A missing timestamp or -1 means now. Timestamps
// are seconds; a fraction is dropped, as carbon does.
func ParseLine(line []byte, now time.Time) (Line, *LineError) {
	fields := bytes.Fields(line)
	if len(fields) != 2 && len(fields) != 3 {
		return Line{}, lineErr(ReasonFieldCount, "want \"path value [timestamp]\", got %d fields", len(fields))
	}
	value, err := strconv.ParseFloat(string(fields[1]), 64)
	if err != nil || math.IsNaN(value) {
		return Line{}, lineErr(ReasonBadValue, "value %q is not a number", truncate(string(fields[1]), 64))
	}
	tsMs := now.UnixMilli()
	if len(fields) == 3 {
		ts, err := strconv.ParseFloat(string(fields[2]), 64)
		switch {
		case err != nil || math.IsNaN(ts) || math.IsInf(ts, 0):
			return Line{}, lineErr(ReasonBadTimestamp, "timestamp %q is not a number of seconds since 1970", truncate(string(fields[2]), 64))
		case ts == -1:
		case ts < 0 || ts > 1<<40:
			return Line{}, lineErr(ReasonBadTimestamp, "timestamp %q is out of range; send seconds since 1970 (or -1 for now)", truncate(string(fields[2]), 64))
		default:
			tsMs = int64(ts) * 1000
		}
	}
	ls, lerr := parsePath(string(fields[0]))
	if lerr != nil {
		return Line{}, lerr
	}
	return Line{Labels: ls, Value: value, TimestampMs: tsMs}, nil
}

// parsePath turns a (possibly tagged) path into the labels it is stored as.
func parsePath(s string) (labels.Labels, *LineError) {
	name, tagPart, tagged := strings.Cut(s, ";")
	if err := checkPath(name); err != nil {
		return labels.EmptyLabels(), err
	}
	if !tagged {
		return mapping.PathLabels(name), nil
	}
	tags := map[string]string{}
	for _, kv := range strings.Split(tagPart, ";") {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "" || v == "":
			return labels.EmptyLabels(), lineErr(ReasonBadTag, "tag %q of %q is not name=value", truncate(kv, 64), truncate(s, 128))
		case strings.ContainsAny(k, "!^=~ \t") || !printable(k):
			return labels.EmptyLabels(), lineErr(ReasonBadTag, "tag name %q may not contain ! ^ = ~, spaces or control characters", truncate(k, 64))
		case k == mapping.NameTag || strings.HasPrefix(k, "__"):
			return labels.EmptyLabels(), lineErr(ReasonBadTag, "tag name %q is reserved (name is the path; names starting with __ are internal)", truncate(k, 64))
		case strings.HasPrefix(v, "~") || !printable(v):
			return labels.EmptyLabels(), lineErr(ReasonBadTag, "value of tag %q may not start with ~ or contain control characters", truncate(k, 64))
		}
		if _, dup := tags[k]; dup {
			return labels.EmptyLabels(), lineErr(ReasonBadTag, "tag %q appears twice in %q", truncate(k, 64), truncate(s, 128))
		}
		tags[k] = v
	}
	return mapping.TaggedLabels(name, tags), nil
}

// checkPath accepts a non-empty UTF-8 path of non-empty dot-separated nodes
// without glob or control characters.
func checkPath(p string) *LineError {
	switch {
	case p == "":
		return lineErr(ReasonBadPath, "empty path")
	case !utf8.ValidString(p) || !printable(p):
		return lineErr(ReasonBadPath, "path %q is not printable UTF-8", truncate(p, 128))
	case strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, ".."):
		return lineErr(ReasonBadPath, "path %q has an empty node", truncate(p, 128))
	case mapping.HasGlob(p):
		return lineErr(ReasonBadPath, "path %q has a glob character (* ? [ ] { }), which could never be queried literally", truncate(p, 128))
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
