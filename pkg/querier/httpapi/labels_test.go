package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

func TestSeriesAndLabels(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name   string
		path   string
		params url.Values
		want   string
	}{
		{
			name:   "series by one selector",
			path:   "/api/v1/series",
			params: vals("match[]", "up"),
			want:   `{"status":"success","data":[{"__name__":"up","instance":"a","job":"api"},{"__name__":"up","instance":"b","job":"api"}]}`,
		},
		{
			name:   "series union of selectors without duplicates",
			path:   "/api/v1/series",
			params: vals("match[]", `up{instance="b"}`, "match[]", `{job="web"}`, "match[]", `up`),
			want:   `{"status":"success","data":[{"__name__":"http_requests_total","code":"500","job":"web"},{"__name__":"up","instance":"a","job":"api"},{"__name__":"up","instance":"b","job":"api"}]}`,
		},
		{
			name:   "series in a time range",
			path:   "/api/v1/series",
			params: vals("match[]", `{job=~"late|web"}`, "start", "0", "end", "60"),
			want:   `{"status":"success","data":[{"__name__":"http_requests_total","code":"500","job":"web"}]}`,
		},
		{
			name:   "series matching nothing",
			path:   "/api/v1/series",
			params: vals("match[]", "nothing"),
			want:   `{"status":"success","data":[]}`,
		},
		{
			name: "label names",
			path: "/api/v1/labels",
			want: `{"status":"success","data":["__name__","code","instance","job","zone"]}`,
		},
		{
			name:   "label names of matching series",
			path:   "/api/v1/labels",
			params: vals("match[]", "up"),
			want:   `{"status":"success","data":["__name__","instance","job"]}`,
		},
		{
			name:   "label names union across selectors",
			path:   "/api/v1/labels",
			params: vals("match[]", "late_metric", "match[]", `http_requests_total{code="200"}`),
			want:   `{"status":"success","data":["__name__","code","job","zone"]}`,
		},
		{
			name:   "label names matching nothing",
			path:   "/api/v1/labels",
			params: vals("match[]", "nothing"),
			want:   `{"status":"success","data":[]}`,
		},
		{
			name: "label values",
			path: "/api/v1/label/job/values",
			want: `{"status":"success","data":["api","late","web"]}`,
		},
		{
			name: "metric names",
			path: "/api/v1/label/__name__/values",
			want: `{"status":"success","data":["hist","http_requests_total","late_metric","up"]}`,
		},
		{
			name:   "label values of matching series",
			path:   "/api/v1/label/job/values",
			params: vals("match[]", "http_requests_total"),
			want:   `{"status":"success","data":["api","web"]}`,
		},
		{
			name:   "label values union across selectors",
			path:   "/api/v1/label/job/values",
			params: vals("match[]", "late_metric", "match[]", `up{instance="a"}`),
			want:   `{"status":"success","data":["api","late"]}`,
		},
		{
			name: "label values of an unknown label",
			path: "/api/v1/label/nope/values",
			want: `{"status":"success","data":[]}`,
		},
		{
			name: "label values with an escaped name",
			path: "/api/v1/label/U__zone/values",
			want: `{"status":"success","data":["z1"]}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				code, body := env.do(t, "tenant-a", method, tc.path, tc.params)
				require.Equal(t, http.StatusOK, code, "%s: %s", method, body)
				require.Equal(t, tc.want, body, method)
			}
		})
	}
}

// With a limit, storage may return any subset (as in Prometheus): check the
// size, membership and warning, not which entries were kept.
func TestLookupLimits(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		path   string
		params url.Values
		limit  int
		all    []string
	}{
		{path: "/api/v1/series", params: vals("match[]", "up", "limit", "1"), limit: 1, all: []string{`{"__name__":"up","instance":"a","job":"api"}`, `{"__name__":"up","instance":"b","job":"api"}`}},
		{path: "/api/v1/labels", params: vals("limit", "2"), limit: 2, all: []string{`"__name__"`, `"code"`, `"instance"`, `"job"`, `"zone"`}},
		{path: "/api/v1/label/job/values", params: vals("limit", "1"), limit: 1, all: []string{`"api"`, `"late"`, `"web"`}},
		{path: "/api/v1/label/job/values", params: vals("limit", "3"), limit: 3, all: []string{`"api"`, `"late"`, `"web"`}},
	}
	for _, tc := range tests {
		t.Run(tc.path+"?"+tc.params.Encode(), func(t *testing.T) {
			code, body := env.do(t, "tenant-a", http.MethodGet, tc.path, tc.params)
			require.Equal(t, http.StatusOK, code, body)
			var resp struct {
				Data     []json.RawMessage `json:"data"`
				Warnings []string          `json:"warnings"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &resp))
			require.Len(t, resp.Data, tc.limit)
			for _, d := range resp.Data {
				require.Contains(t, tc.all, string(d))
			}
			if tc.limit < len(tc.all) {
				require.Equal(t, []string{"results truncated due to limit"}, resp.Warnings)
			} else {
				require.Empty(t, resp.Warnings)
			}
		})
	}
}

func TestMetadata(t *testing.T) {
	tests := []struct {
		name       string
		params     url.Values
		want       string
		wantMetric string
		wantLimit  int
	}{
		{
			name:      "all metrics, duplicates removed",
			want:      `{"status":"success","data":{"http_requests_total":[{"type":"counter","unit":"","help":"Requests served."},{"type":"counter","unit":"","help":"All HTTP requests."}],"req_duration_seconds":[{"type":"histogram","unit":"seconds","help":"Latency."}],"up":[{"type":"gauge","unit":"","help":"Target is up."}]}}`,
			wantLimit: -1,
		},
		{
			name:       "one metric",
			params:     vals("metric", "up"),
			want:       `{"status":"success","data":{"up":[{"type":"gauge","unit":"","help":"Target is up."}]}}`,
			wantMetric: "up",
			wantLimit:  -1,
		},
		{
			name:      "limit metric names",
			params:    vals("limit", "1"),
			want:      `{"status":"success","data":{"http_requests_total":[{"type":"counter","unit":"","help":"Requests served."},{"type":"counter","unit":"","help":"All HTTP requests."}]}}`,
			wantLimit: 1,
		},
		{
			name:       "limit per metric",
			params:     vals("limit_per_metric", "1", "metric", "http_requests_total"),
			want:       `{"status":"success","data":{"http_requests_total":[{"type":"counter","unit":"","help":"Requests served."}]}}`,
			wantMetric: "http_requests_total",
			wantLimit:  -1,
		},
		{
			name:       "unknown metric",
			params:     vals("metric", "nope"),
			want:       `{"status":"success","data":{}}`,
			wantMetric: "nope",
			wantLimit:  -1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, nil)
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				code, body := env.do(t, "tenant-a", method, "/api/v1/metadata", tc.params)
				require.Equal(t, http.StatusOK, code, body)
				require.Equal(t, tc.want, body)
				require.Equal(t, tc.wantMetric, env.md.gotMetric)
				require.Equal(t, tc.wantLimit, env.md.gotLimit)
			}
		})
	}
}

func TestMetadataTypes(t *testing.T) {
	env := newTestEnv(t, nil)
	env.md.entries = []prompb.MetricMetadata{
		{MetricFamilyName: "a", Type: prompb.MetricMetadata_GAUGEHISTOGRAM},
		{MetricFamilyName: "b", Type: prompb.MetricMetadata_STATESET},
		{MetricFamilyName: "c", Type: prompb.MetricMetadata_UNKNOWN},
		{MetricFamilyName: "d", Type: prompb.MetricMetadata_SUMMARY},
		{MetricFamilyName: "e", Type: prompb.MetricMetadata_INFO},
	}
	code, body := env.do(t, "tenant-a", http.MethodGet, "/api/v1/metadata", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, `{"status":"success","data":{"a":[{"type":"gaugehistogram","unit":"","help":""}],"b":[{"type":"stateset","unit":"","help":""}],"c":[{"type":"unknown","unit":"","help":""}],"d":[{"type":"summary","unit":"","help":""}],"e":[{"type":"info","unit":"","help":""}]}}`, body)
}
