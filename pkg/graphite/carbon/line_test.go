package carbon

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/graphite/mapping"
)

func TestParseLine(t *testing.T) {
	now := time.Unix(1700000123, 456e6)
	for _, tc := range []struct {
		line   string
		labels labels.Labels
		value  float64
		tsMs   int64
	}{
		{"servers.web01.cpu 42 1700000000", mapping.PathLabels("servers.web01.cpu"), 42, 1700000000000},
		{"  a.b\t-1.5e3   1700000000.9  \r", mapping.PathLabels("a.b"), -1500, 1700000000000},
		{"a.b 1", mapping.PathLabels("a.b"), 1, now.UnixMilli()},
		{"a.b 1 -1", mapping.PathLabels("a.b"), 1, now.UnixMilli()},
		{"a.b +Inf 1700000000", mapping.PathLabels("a.b"), posInf, 1700000000000},
		{"disk.used;dc=x;host=h 7 1700000000", labels.FromStrings("__name__", "disk.used", "dc", "x", "host", "h"), 7, 1700000000000},
		{"métrique.été 1 1700000000", mapping.PathLabels("métrique.été"), 1, 1700000000000},
	} {
		l, err := ParseLine([]byte(tc.line), now)
		require.Nil(t, err, tc.line)
		require.Equal(t, tc.labels, l.Labels, tc.line)
		require.Equal(t, tc.value, l.Value, tc.line)
		require.Equal(t, tc.tsMs, l.TimestampMs, tc.line)
	}
}

var posInf = func() float64 { var z float64; return 1 / z }()

func TestParseLineRejects(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		line, reason string
	}{
		{"a.b", ReasonFieldCount},
		{"a.b 1 2 3", ReasonFieldCount},
		{"a.b one 1700000000", ReasonBadValue},
		{"a.b nan 1700000000", ReasonBadValue},
		{"a.b 1 yesterday", ReasonBadTimestamp},
		{"a.b 1 -5", ReasonBadTimestamp},
		{"a.b 1 NaN", ReasonBadTimestamp},
		{"a..b 1 1700000000", ReasonBadPath},
		{".a 1 1700000000", ReasonBadPath},
		{"a. 1 1700000000", ReasonBadPath},
		{"a.* 1 1700000000", ReasonBadPath},
		{"a.{b} 1 1700000000", ReasonBadPath},
		{"a\x01b 1 1700000000", ReasonBadPath},
		{"a.b\xff 1 1700000000", ReasonBadPath},
		{"a;dc 1 1700000000", ReasonBadTag},
		{"a;dc= 1 1700000000", ReasonBadTag},
		{"a;=x 1 1700000000", ReasonBadTag},
		{"a;name=x 1 1700000000", ReasonBadTag},
		{"a;__gn__=1 1700000000 1", ReasonBadTag},
		{"a;dc=x;dc=y 1 1700000000", ReasonBadTag},
		{"a;dc=~x 1 1700000000", ReasonBadTag},
		{";dc=x 1 1700000000", ReasonBadPath},
	} {
		_, err := ParseLine([]byte(tc.line), now)
		require.NotNil(t, err, tc.line)
		require.Equal(t, tc.reason, err.Reason, "%q: %v", tc.line, err)
		require.NotEmpty(t, err.Msg)
	}
}
