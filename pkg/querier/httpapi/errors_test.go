package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridianhq/meridian/pkg/limits"
)

type errorBody struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

func decodeError(t *testing.T, body string) errorBody {
	t.Helper()
	var e errorBody
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	require.Equal(t, "error", e.Status)
	return e
}

type unavailableErr struct{}

func (unavailableErr) Error() string     { return "no healthy ingester for the series" }
func (unavailableErr) Unavailable() bool { return true }

func TestErrors(t *testing.T) {
	small := func(l *limits.Limits) {
		l.MaxQueryLength = model.Duration(time.Hour)
		l.MaxSamplesPerQuery = 1
		l.MaxPointsPerTimeseries = 100
	}
	tests := []struct {
		name     string
		tenant   string
		storage  func(t *testing.T) *wrapQueryable
		path     string
		params   url.Values
		code     int
		errType  string
		contains []string
	}{
		{name: "no tenant", path: "/api/v1/query", params: vals("query", "up"), code: http.StatusUnauthorized, errType: "bad_data", contains: []string{"no valid tenant", "X-Scope-OrgID"}},
		{name: "syntax error", path: "/api/v1/query", params: vals("query", "sum(up"), code: 400, errType: "bad_data", contains: []string{`invalid parameter "query"`, "1:7: parse error"}},
		{name: "range syntax error", path: "/api/v1/query_range", params: vals("query", "up{", "start", "0", "end", "60", "step", "15"), code: 400, errType: "bad_data", contains: []string{`invalid parameter "query"`, "1:4: parse error"}},
		{name: "bad time", path: "/api/v1/query", params: vals("query", "up", "time", "yesterday"), code: 400, errType: "bad_data", contains: []string{`invalid parameter "time": invalid time value for 'time': cannot parse "yesterday" to a valid timestamp`}},
		{name: "bad limit", path: "/api/v1/query", params: vals("query", "up", "limit", "-1"), code: 400, errType: "bad_data", contains: []string{`invalid parameter "limit": limit must be non-negative`}},
		{name: "bad timeout", path: "/api/v1/query", params: vals("query", "up", "timeout", "soon"), code: 400, errType: "bad_data", contains: []string{`invalid parameter "timeout"`}},
		{name: "negative timeout", path: "/api/v1/query", params: vals("query", "up", "timeout", "-1"), code: 400, errType: "bad_data", contains: []string{"timeout must be positive"}},
		{name: "missing start", path: "/api/v1/query_range", params: vals("query", "up", "end", "60", "step", "15"), code: 400, errType: "bad_data", contains: []string{`invalid parameter "start": cannot parse "" to a valid timestamp`}},
		{name: "start after end", path: "/api/v1/query_range", params: vals("query", "up", "start", "120", "end", "60", "step", "15"), code: 400, errType: "bad_data", contains: []string{`invalid parameter "end": end timestamp must not be before start time`}},
		{name: "zero step", path: "/api/v1/query_range", params: vals("query", "up", "start", "0", "end", "60", "step", "0"), code: 400, errType: "bad_data", contains: []string{"zero or negative query resolution step widths are not accepted. Try a positive integer"}},
		{name: "negative step", path: "/api/v1/query_range", params: vals("query", "up", "start", "0", "end", "60", "step", "-15"), code: 400, errType: "bad_data", contains: []string{"zero or negative query resolution step widths"}},
		{name: "bad step", path: "/api/v1/query_range", params: vals("query", "up", "start", "0", "end", "60", "step", "often"), code: 400, errType: "bad_data", contains: []string{`invalid parameter "step": cannot parse "often" to a valid duration`}},
		{name: "too many points", path: "/api/v1/query_range", params: vals("query", "up", "start", "0", "end", "11001", "step", "1"), code: 400, errType: "bad_data", contains: []string{"exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}},
		{name: "too many points, tenant limit", tenant: "small", path: "/api/v1/query_range", params: vals("query", "up", "start", "0", "end", "101", "step", "1"), code: 400, errType: "bad_data", contains: []string{"exceeded maximum resolution of 100 points per timeseries"}},
		{name: "max query length", tenant: "small", path: "/api/v1/query_range", params: vals("query", "up", "start", "0", "end", "7201", "step", "100"), code: 400, errType: "bad_data", contains: []string{"max_query_length", "-querier.max-query-length", "limit: 1h0m0s", ErrIDMaxQueryLength}},
		{name: "max samples", tenant: "small", path: "/api/v1/query", params: vals("query", "up", "time", "120"), code: 422, errType: "execution", contains: []string{"too many samples", "max_samples_per_query", "-querier.max-samples", "limit: 1 samples"}},
		{name: "execution error", path: "/api/v1/query", params: vals("query", `label_replace(up, "x", "$1", "job", "(")`, "time", "120"), code: 422, errType: "execution", contains: []string{"invalid regular expression"}},
		{
			name: "storage unavailable", path: "/api/v1/query", params: vals("query", "up", "time", "120"), code: 503, errType: "unavailable", contains: []string{"no healthy ingester"},
			storage: func(t *testing.T) *wrapQueryable {
				return &wrapQueryable{Queryable: promqltest.LoadedStorage(t, testData), selectErr: unavailableErr{}}
			},
		},
		{
			name: "storage unavailable over gRPC", path: "/api/v1/query_range", params: vals("query", "up", "start", "0", "end", "60", "step", "15"), code: 503, errType: "unavailable", contains: []string{"ingester down"},
			storage: func(t *testing.T) *wrapQueryable {
				return &wrapQueryable{Queryable: promqltest.LoadedStorage(t, testData), selectErr: status.Error(codes.Unavailable, "ingester down")}
			},
		},
		{
			name: "storage internal error", path: "/api/v1/query", params: vals("query", "up", "time", "120"), code: 500, errType: "internal", contains: []string{"block corrupt"},
			storage: func(t *testing.T) *wrapQueryable {
				return &wrapQueryable{Queryable: promqltest.LoadedStorage(t, testData), selectErr: promql.ErrStorage{Err: errors.New("block corrupt")}}
			},
		},
		{
			name: "series storage unavailable", path: "/api/v1/series", params: vals("match[]", "up"), code: 503, errType: "unavailable", contains: []string{"no healthy ingester"},
			storage: func(t *testing.T) *wrapQueryable {
				return &wrapQueryable{Queryable: promqltest.LoadedStorage(t, testData), querierErr: unavailableErr{}}
			},
		},
		{
			name: "query timeout from the tenant limit", tenant: "slow", path: "/api/v1/query", params: vals("query", "up", "time", "120"), code: 503, errType: "timeout", contains: []string{"query timed out"},
			storage: func(t *testing.T) *wrapQueryable {
				return &wrapQueryable{Queryable: promqltest.LoadedStorage(t, testData), block: make(chan struct{})}
			},
		},
		{
			name: "query timeout from the parameter", path: "/api/v1/query_range", params: vals("query", "up", "start", "0", "end", "60", "step", "15", "timeout", "50ms"), code: 503, errType: "timeout", contains: []string{"query timed out"},
			storage: func(t *testing.T) *wrapQueryable {
				return &wrapQueryable{Queryable: promqltest.LoadedStorage(t, testData), block: make(chan struct{})}
			},
		},
		{name: "series without match", path: "/api/v1/series", params: vals("start", "0"), code: 400, errType: "bad_data", contains: []string{"no match[] parameter provided"}},
		{name: "series with bad match", path: "/api/v1/series", params: vals("match[]", "up{"), code: 400, errType: "bad_data", contains: []string{`invalid parameter "match[]"`}},
		{name: "series with empty matcher", path: "/api/v1/series", params: vals("match[]", `{job=~".*"}`), code: 400, errType: "bad_data", contains: []string{`invalid parameter "match[]": match[] must contain at least one non-empty matcher`}},
		{name: "labels with empty matcher", path: "/api/v1/labels", params: vals("match[]", `{job=~".*"}`), code: 400, errType: "bad_data", contains: []string{"match[] must contain at least one non-empty matcher"}},
		{name: "labels with bad match", path: "/api/v1/labels", params: vals("match[]", "up{"), code: 400, errType: "bad_data", contains: []string{"parse error"}},
		{name: "labels with bad start", path: "/api/v1/labels", params: vals("start", "x"), code: 400, errType: "bad_data", contains: []string{`invalid parameter "start"`}},
		{name: "invalid label name", path: "/api/v1/label/foo-bar/values", code: 400, errType: "bad_data", contains: []string{`invalid label name: "foo-bar"`}},
		{name: "invalid escaped label name", path: "/api/v1/label/U__foo_2e_bar/values", code: 400, errType: "bad_data", contains: []string{`invalid label name: "foo.bar"`}},
		{name: "metadata bad limit", path: "/api/v1/metadata", params: vals("limit", "x"), code: 400, errType: "bad_data", contains: []string{"limit must be a number"}},
		{name: "metadata bad limit_per_metric", path: "/api/v1/metadata", params: vals("limit_per_metric", "x"), code: 400, errType: "bad_data", contains: []string{"limit_per_metric must be a number"}},
		{name: "exemplars bad query", path: "/api/v1/query_exemplars", params: vals("query", "up{"), code: 400, errType: "bad_data", contains: []string{"parse error"}},
		{name: "exemplars end before start", path: "/api/v1/query_exemplars", params: vals("query", "up", "start", "100", "end", "10"), code: 400, errType: "bad_data", contains: []string{"end timestamp must not be before start timestamp"}},
		{name: "format bad query", path: "/api/v1/format_query", params: vals("query", "sum("), code: 400, errType: "bad_data", contains: []string{`invalid parameter "query"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var env *testEnv
			opts := []envOption{
				withTenantLimits("small", small),
				withTenantLimits("slow", func(l *limits.Limits) { l.QueryTimeout = model.Duration(50 * time.Millisecond) }),
			}
			if tc.storage != nil {
				env = newTestEnv(t, tc.storage(t), opts...)
			} else {
				env = newTestEnv(t, nil, opts...)
			}
			tenant := tc.tenant
			if tenant == "" && tc.name != "no tenant" {
				tenant = "tenant-a"
			}
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				code, body := env.do(t, tenant, method, tc.path, tc.params)
				require.Equal(t, tc.code, code, "%s: %s", method, body)
				e := decodeError(t, body)
				require.Equal(t, tc.errType, e.ErrorType, body)
				for _, s := range tc.contains {
					require.Contains(t, e.Error, s)
				}
			}
		})
	}
}

func TestTenantLimitsDiffer(t *testing.T) {
	env := newTestEnv(t, nil,
		withTenantLimits("small", func(l *limits.Limits) { l.MaxSamplesPerQuery = 1 }),
		withTenantLimits("medium", func(l *limits.Limits) { l.MaxSamplesPerQuery = 2 }),
	)
	params := vals("query", "up", "time", "120")
	tests := []struct {
		tenant string
		code   int
	}{
		{tenant: "small", code: 422},
		{tenant: "medium", code: 200},
		{tenant: "big", code: 200},
		{tenant: "small", code: 422}, // the cached engine keeps its limit
	}
	for _, tc := range tests {
		code, body := env.do(t, tc.tenant, http.MethodGet, "/api/v1/query", params)
		require.Equal(t, tc.code, code, "tenant %s: %s", tc.tenant, body)
	}
	// One engine per distinct limit: 1, 2 and the default.
	require.Len(t, env.api.engines.byMax, 3)
}

func TestQuerySlots(t *testing.T) {
	block := make(chan struct{})
	q := &wrapQueryable{Queryable: promqltest.LoadedStorage(t, testData), block: block}
	env := newTestEnv(t, q, func(c *Config, _ *fakeLimits) { c.MaxConcurrent = 1 })

	done := make(chan int)
	go func() {
		code, _ := env.do(t, "tenant-a", http.MethodGet, "/api/v1/query", vals("query", "up", "time", "120"))
		done <- code
	}()
	require.Eventually(t, func() bool { return testutil.ToFloat64(env.api.inflight) == 1 }, 5*time.Second, 5*time.Millisecond)

	code, body := env.do(t, "tenant-b", http.MethodGet, "/api/v1/query", vals("query", "up", "time", "120", "timeout", "50ms"))
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	e := decodeError(t, body)
	require.Equal(t, "timeout", e.ErrorType)
	require.Contains(t, e.Error, "-querier.max-concurrent=1")

	close(block)
	require.Equal(t, http.StatusOK, <-done)
	require.Equal(t, 0.0, testutil.ToFloat64(env.api.inflight))
}

func TestRequestMetrics(t *testing.T) {
	env := newTestEnv(t, nil)
	env.do(t, "tenant-a", http.MethodGet, "/api/v1/query", vals("query", "up"))
	env.do(t, "tenant-a", http.MethodGet, "/api/v1/query", vals("query", "up("))
	env.do(t, "tenant-a", http.MethodGet, "/api/v1/labels", nil)
	require.Equal(t, 1.0, testutil.ToFloat64(env.api.requests.WithLabelValues("query", "success")))
	require.Equal(t, 1.0, testutil.ToFloat64(env.api.requests.WithLabelValues("query", "bad_data")))
	require.Equal(t, 1.0, testutil.ToFloat64(env.api.requests.WithLabelValues("labels", "success")))
}
