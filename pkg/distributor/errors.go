package distributor

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/prompb"
)

// Error IDs of the write path. Each is an API: it appears in responses, in the
// reason label of meridian_discarded_samples_total, and has a section in the
// docs. Never rename one; add a new ID instead.
const (
	// Per-series rejections (HTTP 400, the rest of the request is stored).
	ErrIDMissingMetricName     = "err-meridian-missing-metric-name"
	ErrIDInvalidMetricName     = "err-meridian-invalid-metric-name"
	ErrIDInvalidLabelName      = "err-meridian-invalid-label-name"
	ErrIDLabelNameTooLong      = "err-meridian-label-name-too-long"
	ErrIDLabelValueTooLong     = "err-meridian-label-value-too-long"
	ErrIDTooManyLabels         = "err-meridian-too-many-labels"
	ErrIDDuplicateLabelNames   = "err-meridian-duplicate-label-names"
	ErrIDInvalidUTF8           = "err-meridian-label-invalid-utf8"
	ErrIDSampleTooFarInFuture  = "err-meridian-sample-too-far-in-future"
	errIDUnknownSeriesRejected = "err-meridian-series-rejected" // a pusher rejection that came without an ID

	// Whole-request rejections.
	ErrIDMissingTenant              = "err-meridian-missing-tenant"
	ErrIDInvalidTenant              = "err-meridian-invalid-tenant"
	ErrIDMethodNotAllowed           = "err-meridian-method-not-allowed"
	ErrIDUnsupportedContentType     = "err-meridian-unsupported-content-type"
	ErrIDRemoteWrite2Unsupported    = "err-meridian-remote-write-2-unsupported"
	ErrIDUnsupportedContentEncoding = "err-meridian-unsupported-content-encoding"
	ErrIDRequestTooLarge            = "err-meridian-request-too-large"
	ErrIDDecompressedTooLarge       = "err-meridian-decompressed-request-too-large"
	ErrIDEmptyRequest               = "err-meridian-empty-request"
	ErrIDReadBody                   = "err-meridian-request-read"
	ErrIDMalformedSnappy            = "err-meridian-malformed-snappy"
	ErrIDMalformedProtobuf          = "err-meridian-malformed-protobuf"
)

// maxSeriesChars bounds how much of a series a message shows.
const maxSeriesChars = 200

// validationError describes why one series was rejected. It holds no strings
// of its own so that returning it costs nothing; message renders it against
// the series it came from.
type validationError struct {
	id       string
	labelIdx int   // offending label in the series' Labels, or -1
	actual   int64 // size, count or timestamp (ms), depending on id
	limit    int64
}

// message renders the rejection for the client: what was wrong, actual vs
// limit, what to change, and the series (truncated).
func (e validationError) message(ts *prompb.TimeSeries, nowMs int64) string {
	var name, series string
	if e.labelIdx >= 0 && e.labelIdx < len(ts.Labels) {
		name = strconv.Quote(truncateString(ts.Labels[e.labelIdx].Name, 64))
	}
	series = formatSeries(ts.Labels)

	var what string
	switch e.id {
	case ErrIDMissingMetricName:
		what = "series has no metric name (no __name__ label, or an empty one); give every series a metric name"
	case ErrIDInvalidMetricName:
		what = fmt.Sprintf("metric name %s does not match [a-zA-Z_:][a-zA-Z0-9_:]*; rename the metric, e.g. with metric_relabel_configs",
			strconv.Quote(truncateString(ts.Labels[e.labelIdx].Value, 64)))
	case ErrIDInvalidLabelName:
		what = fmt.Sprintf("label name %s does not match [a-zA-Z_][a-zA-Z0-9_]*; rename or drop the label, e.g. with metric_relabel_configs", name)
	case ErrIDLabelNameTooLong:
		what = fmt.Sprintf("label name %s is %d bytes long, over the limit of %d; shorten it or raise -validation.max-length-label-name (per-tenant max_label_name_length)",
			name, e.actual, e.limit)
	case ErrIDLabelValueTooLong:
		what = fmt.Sprintf("value of label %s is %d bytes long, over the limit of %d; shorten it or raise -validation.max-length-label-value (per-tenant max_label_value_length)",
			name, e.actual, e.limit)
	case ErrIDTooManyLabels:
		what = fmt.Sprintf("series has %d labels, over the limit of %d; drop labels or raise -validation.max-label-names-per-series (per-tenant max_label_names_per_series)",
			e.actual, e.limit)
	case ErrIDDuplicateLabelNames:
		what = fmt.Sprintf("label name %s appears more than once; send each label name once per series", name)
	case ErrIDInvalidUTF8:
		what = fmt.Sprintf("label %s has a name or value that is not valid UTF-8; send UTF-8 text", name)
	case ErrIDSampleTooFarInFuture:
		what = fmt.Sprintf("sample timestamp %s is %s ahead of the server clock, over the limit of %s; fix the sender's clock or raise -validation.create-grace-period (per-tenant creation_grace_period)",
			formatMillis(e.actual), formatAhead(e.actual-nowMs), formatAhead(e.limit))
	default:
		what = "series rejected"
	}
	return what + " series " + series
}

// formatSeries renders labels as {name="value", ...}, escaping what is not
// printable, and cuts the result to about maxSeriesChars bytes.
func formatSeries(ls []prompb.Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		if validLabelName(ls[i].Name) {
			b.WriteString(ls[i].Name)
		} else {
			b.WriteString(strconv.Quote(truncateString(ls[i].Name, maxSeriesChars)))
		}
		b.WriteByte('=')
		b.WriteString(strconv.Quote(truncateString(ls[i].Value, maxSeriesChars)))
		if b.Len() > maxSeriesChars {
			break
		}
	}
	s := b.String()
	if len(s) <= maxSeriesChars {
		return s + "}"
	}
	return truncateString(s, maxSeriesChars) + "...}"
}

// truncateString cuts s to at most n bytes without splitting a valid rune.
func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && cut > n-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func formatMillis(ms int64) string {
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// formatAhead renders a span of milliseconds; spans too long for a
// time.Duration (over ~292 years) are shown in days.
func formatAhead(ms int64) string {
	const dayMs = int64(24 * time.Hour / time.Millisecond)
	if ms > 2*dayMs {
		return strconv.FormatInt(ms/dayMs, 10) + " days"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

// requestError is a whole-request rejection: an HTTP status and a message
// that starts with the error ID.
type requestError struct {
	status int
	id     string
	msg    string
}

func (e *requestError) Error() string { return e.id + ": " + e.msg }

func newRequestError(status int, id, format string, args ...any) *requestError {
	return &requestError{status: status, id: id, msg: fmt.Sprintf(format, args...)}
}

// Flags named in messages about the request size limits.
const (
	flagMaxRecvMsgSize      = "-distributor.max-recv-msg-size"
	flagMaxDecompressedSize = "-distributor.max-decompressed-size"
)
