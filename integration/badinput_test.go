package integration

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// TestBadInput sends malformed and hostile requests to a real process: each
// gets a clear 4xx, and afterwards the process still serves and the data
// stored before is intact.
func TestBadInput(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{})
	const tenant = "bad"
	c := p.Client(tenant)

	step := 15 * time.Second
	last := time.Now().Truncate(step)
	start := last.Add(-20 * step)
	vals := make([]float64, 21)
	for i := range vals {
		vals[i] = float64(i * i)
	}
	mustPush(t, c, seriesAt([]string{"__name__", "baseline", "job", "keep"}, start, step, vals))

	intact := func(t *testing.T) {
		t.Helper()
		require.True(t, p.Running(), "meridian is no longer running")
		code, body := p.Get("/ready")
		require.Equal(t, http.StatusOK, code, "/ready after the bad input: %s", body)
		m := c.QueryRange(`baseline`, start, last, step).Matrix(t)
		require.Len(t, m, 1, "baseline series")
		require.Len(t, m[0].Values, len(vals))
		for i, sp := range m[0].Values {
			require.Equal(t, vals[i], float64(sp.Value), "baseline point %d", i)
		}
	}
	require4xx := func(t *testing.T, code int, body string) {
		t.Helper()
		require.Truef(t, code >= 400 && code < 500, "expected a 4xx, got HTTP %d: %.1000s", code, body)
		require.NotEmpty(t, strings.TrimSpace(body), "a 4xx should say what is wrong")
	}
	encode := func(t *testing.T, wr *prompb.WriteRequest) []byte {
		t.Helper()
		raw, err := wr.Marshal()
		require.NoError(t, err)
		return snappy.Encode(nil, raw)
	}
	now := time.Now()
	one := func(labels ...string) *prompb.WriteRequest {
		return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{harness.Series(labels, harness.Sample(now, 1))}}
	}

	pushCases := []struct {
		name   string
		body   func(t *testing.T) []byte
		header http.Header // nil: remote-write 1.0 headers
	}{
		{name: "malformed snappy", body: func(*testing.T) []byte { return []byte("this is not snappy at all") }},
		{name: "malformed protobuf", body: func(*testing.T) []byte {
			return snappy.Encode(nil, []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02})
		}},
		{name: "empty body", body: func(*testing.T) []byte { return []byte{} }},
		{name: "wrong content type", body: func(t *testing.T) []byte {
			return []byte(`{"timeseries":[{"labels":[{"name":"__name__","value":"x"}],"samples":[{"value":1}]}]}`)
		}, header: http.Header{"Content-Type": {"application/json"}}},
		{name: "10 MB of labels", body: func(t *testing.T) []byte {
			labels := []string{"__name__", "huge"}
			for i := 0; i < 100; i++ {
				labels = append(labels, "l"+strconv.Itoa(i), strings.Repeat("v", 100_000))
			}
			return encode(t, one(labels...))
		}},
		{name: "invalid UTF-8 label value", body: func(t *testing.T) []byte {
			return encode(t, one("__name__", "utf8_bad", "job", "a\xff\xfeb"))
		}},
		{name: "invalid metric name", body: func(t *testing.T) []byte {
			return encode(t, one("__name__", "", "job", "x"))
		}},
		{name: "timestamp in year 3000", body: func(t *testing.T) []byte {
			y3000 := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
			return encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				harness.Series([]string{"__name__", "future", "job", "x"}, harness.Sample(y3000, 1)),
			}})
		}},
	}
	for _, tc := range pushCases {
		t.Run("push/"+tc.name, func(t *testing.T) {
			code, body := c.PushRaw(tc.body(t), tc.header)
			require4xx(t, code, body)
			intact(t)
		})
	}

	t.Run("push/many series", func(t *testing.T) {
		// 200k series in one request may be refused by a limit (4xx) or
		// accepted; it must never be a 5xx or take the process down.
		const count = 200_000
		wr := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, count)}
		for i := range wr.Timeseries {
			wr.Timeseries[i] = harness.Series([]string{"__name__", "many_series", "idx", strconv.Itoa(i)}, harness.Sample(now, float64(i)))
		}
		code, body := p.Client("bulk").PushRequest(wr)
		require.Truef(t, code/100 == 2 || (code >= 400 && code < 500), "200k series: HTTP %d: %.1000s", code, body)
		t.Logf("200k series in one request: HTTP %d", code)
		intact(t)
	})

	t.Run("push/tenant ../x", func(t *testing.T) {
		code, body := p.Client("../x").Push(harness.Series([]string{"__name__", "x"}, harness.Sample(now, 1)))
		require.Equal(t, http.StatusUnauthorized, code, "%s", body)
		intact(t)
	})

	queryCases := []struct {
		name    string
		path    string
		params  url.Values
		message string // the error message must contain this
	}{
		{name: "syntax error", path: "/query", params: url.Values{"query": {"1 + * 2"}}, message: "1:5"},
		{name: "syntax error in range query", path: "/query_range", params: url.Values{
			"query": {"sum(rate(baseline[5m])"}, "start": {harness.FormatTime(start)}, "end": {harness.FormatTime(last)}, "step": {"15"},
		}, message: "1:"},
		{name: "start after end", path: "/query_range", params: url.Values{
			"query": {"baseline"}, "start": {harness.FormatTime(last)}, "end": {harness.FormatTime(start)}, "step": {"15"},
		}, message: "end"},
		{name: "step 0", path: "/query_range", params: url.Values{
			"query": {"baseline"}, "start": {harness.FormatTime(start)}, "end": {harness.FormatTime(last)}, "step": {"0"},
		}, message: "step"},
		{name: "1 000 000 points", path: "/query_range", params: url.Values{
			"query": {"baseline"}, "start": {harness.FormatTime(last.Add(-1_000_000 * time.Second))}, "end": {harness.FormatTime(last)}, "step": {"1"},
		}, message: "resolution"},
		{name: "unparsable time", path: "/query", params: url.Values{"query": {"baseline"}, "time": {"yesterday"}}, message: "time"},
		{name: "series without match[]", path: "/series", params: url.Values{}, message: "match[]"},
	}
	for _, tc := range queryCases {
		t.Run("query/"+tc.name, func(t *testing.T) {
			for _, cl := range []*harness.Client{c, c.WithPOST()} {
				r := cl.API(harness.APIPrefix+tc.path, tc.params)
				require4xx(t, r.StatusCode, string(r.Body))
				require.Equal(t, "error", r.Status, "%s", r)
				require.Equal(t, "bad_data", r.ErrorType, "%s", r)
				require.Contains(t, r.Error, tc.message, "%s", r)
			}
			intact(t)
		})
	}
}
