package httpapi

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQueryJSON(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name   string
		path   string
		params url.Values
		want   string
	}{
		{
			name:   "instant vector",
			path:   "/api/v1/query",
			params: vals("query", "sort_desc(up)", "time", "120"),
			want:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[120,"2"]},{"metric":{"__name__":"up","instance":"b","job":"api"},"value":[120,"1"]}]}}`,
		},
		{
			name:   "instant vector at RFC 3339 time",
			path:   "/api/v1/query",
			params: vals("query", `up{instance="b"}`, "time", "1970-01-01T00:02:00Z"),
			want:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"b","job":"api"},"value":[120,"1"]}]}}`,
		},
		{
			name:   "instant query defaults to now",
			path:   "/api/v1/query",
			params: vals("query", `sum(up)`),
			want:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[240,"5"]}]}}`,
		},
		{
			name:   "range matrix",
			path:   "/api/v1/query_range",
			params: vals("query", `up{instance="a"}`, "start", "0", "end", "120", "step", "60"),
			want:   `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"values":[[0,"0"],[60,"1"],[120,"2"]]}]}}`,
		},
		{
			name:   "range with duration step and fractional times",
			path:   "/api/v1/query_range",
			params: vals("query", `sum by (job) (http_requests_total)`, "start", "60.5", "end", "120.5", "step", "1m"),
			want:   `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"api"},"values":[[60.500,"10"],[120.500,"20"]]},{"metric":{"job":"web"},"values":[[60.500,"1"],[120.500,"2"]]}]}}`,
		},
		{
			name:   "scalar",
			path:   "/api/v1/query",
			params: vals("query", "1+1", "time", "100.5"),
			want:   `{"status":"success","data":{"resultType":"scalar","result":[100.5,"2"]}}`,
		},
		{
			name:   "string",
			path:   "/api/v1/query",
			params: vals("query", `"hello"`, "time", "60"),
			want:   `{"status":"success","data":{"resultType":"string","result":[60,"hello"]}}`,
		},
		{
			name:   "empty vector",
			path:   "/api/v1/query",
			params: vals("query", "nothing_here", "time", "60"),
			want:   `{"status":"success","data":{"resultType":"vector","result":[]}}`,
		},
		{
			name:   "native histogram",
			path:   "/api/v1/query",
			params: vals("query", "hist", "time", "60"),
			want:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"hist"},"histogram":[60,{"count":"4","sum":"5","buckets":[[0,"0.5","1","1"],[0,"1","2","2"],[0,"2","4","1"]]}]}]}}`,
		},
		{
			name:   "limit truncates with a warning",
			path:   "/api/v1/query",
			params: vals("query", "sort_desc(up)", "time", "120", "limit", "1"),
			want:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[120,"2"]}]},"warnings":["results truncated due to limit"]}`,
		},
		{
			name:   "info annotation",
			path:   "/api/v1/query",
			params: vals("query", `rate(up{instance="a"}[5m])`, "time", "240"),
			want:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"a","job":"api"},"value":[240,"0.013333333333333334"]}]},"infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"up\" (1:6)"]}`,
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

func TestQueryStats(t *testing.T) {
	env := newTestEnv(t, nil)
	code, body := env.do(t, "tenant-a", http.MethodGet, "/api/v1/query", vals("query", "up", "time", "120", "stats", "all"))
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"stats":{"timings":`)
	require.Contains(t, body, `"totalQueryableSamples":2`)
}

func TestBuildInfo(t *testing.T) {
	env := newTestEnv(t, nil)
	code, body := env.do(t, "tenant-a", http.MethodGet, "/api/v1/status/buildinfo", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, `{"status":"success","data":{"version":"1.2.3","revision":"abc","branch":"main","buildUser":"ci","buildDate":"20260101","goVersion":"go1.26.8"}}`, body)
}

func TestFormatQuery(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		query, want string
	}{
		{query: `sum(rate(foo{job="x"}[5m]))by(job)`, want: `{"status":"success","data":"sum by (job) (rate(foo{job=\"x\"}[5m]))"}`},
		{query: `foo   +   bar`, want: `{"status":"success","data":"foo + bar"}`},
	}
	for _, tc := range tests {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			code, body := env.do(t, "tenant-a", method, "/api/v1/format_query", vals("query", tc.query))
			require.Equal(t, http.StatusOK, code, body)
			require.Equal(t, tc.want, body)
		}
	}
}

func TestQueryExemplars(t *testing.T) {
	env := newTestEnv(t, nil)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		code, body := env.do(t, "tenant-a", method, "/api/v1/query_exemplars", vals("query", `http_requests_total{job="api"}`, "start", "0", "end", "240"))
		require.Equal(t, http.StatusOK, code, body)
		require.Equal(t, `{"status":"success","data":[]}`, body)
	}
}
