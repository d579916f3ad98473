package httpapi

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/gorilla/mux"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/limits"
)

// testData is loaded at 0s, 60s, 120s, ... ("_" leaves a step empty).
const testData = `
load 1m
	up{job="api",instance="a"} 0 1 2 3 4
	up{job="api",instance="b"} 1 1 1 1 1
	http_requests_total{job="api",code="200"} 0 10 20 30 40
	http_requests_total{job="web",code="500"} 0 1 2 3 4
	late_metric{job="late",zone="z1"} _ _ _ _ 7
	hist {{schema:0 sum:5 count:4 buckets:[1 2 1]}}x4
`

// fixedNow is the default time of instant queries in tests.
var fixedNow = time.Unix(240, 0)

func defaultLimits(t testing.TB) limits.Limits {
	t.Helper()
	var l limits.Limits
	l.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	return l
}

func defaultConfig(t testing.TB) Config {
	t.Helper()
	var c Config
	c.RegisterFlags(flag.NewFlagSet("querier", flag.PanicOnError))
	require.NoError(t, c.Validate())
	return c
}

// fakeLimits returns per-tenant limits, or def for unknown tenants.
type fakeLimits struct {
	def       limits.Limits
	perTenant map[string]limits.Limits
}

func (f fakeLimits) Limits(tenant string) limits.Limits {
	if l, ok := f.perTenant[tenant]; ok {
		return l
	}
	return f.def
}

type fakeMetadata struct {
	entries []prompb.MetricMetadata
	err     error
	// gotMetric and gotLimit record the last call.
	gotMetric string
	gotLimit  int
}

func (f *fakeMetadata) MetricsMetadata(_ context.Context, metric string, limit int) ([]prompb.MetricMetadata, error) {
	f.gotMetric, f.gotLimit = metric, limit
	if f.err != nil {
		return nil, f.err
	}
	var out []prompb.MetricMetadata
	for _, e := range f.entries {
		if metric == "" || e.MetricFamilyName == metric {
			out = append(out, e)
		}
	}
	return out, nil
}

type testEnv struct {
	api     *API
	handler http.Handler
	reg     *prometheus.Registry
	md      *fakeMetadata
}

type envOption func(*Config, *fakeLimits)

func newTestEnv(t testing.TB, q storage.Queryable, opts ...envOption) *testEnv {
	t.Helper()
	if q == nil {
		q = promqltest.LoadedStorage(t, testData)
	}
	cfg := defaultConfig(t)
	lim := fakeLimits{def: defaultLimits(t), perTenant: map[string]limits.Limits{}}
	for _, o := range opts {
		o(&cfg, &lim)
	}
	md := &fakeMetadata{entries: []prompb.MetricMetadata{
		{MetricFamilyName: "http_requests_total", Type: prompb.MetricMetadata_COUNTER, Help: "Requests served."},
		{MetricFamilyName: "http_requests_total", Type: prompb.MetricMetadata_COUNTER, Help: "Requests served."}, // duplicate from a second ingester
		{MetricFamilyName: "http_requests_total", Type: prompb.MetricMetadata_COUNTER, Help: "All HTTP requests."},
		{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE, Help: "Target is up."},
		{MetricFamilyName: "req_duration_seconds", Type: prompb.MetricMetadata_HISTOGRAM, Help: "Latency.", Unit: "seconds"},
	}}
	reg := prometheus.NewRegistry()
	a := New(cfg, q, md, lim, BuildInfo{
		Version: "1.2.3", Revision: "abc", Branch: "main", BuildUser: "ci", BuildDate: "20260101", GoVersion: "go1.26.8",
	}, log.NewNopLogger(), reg)
	a.now = func() time.Time { return fixedNow }
	r := mux.NewRouter()
	a.Register(r)
	return &testEnv{api: a, handler: r, reg: reg, md: md}
}

func withTenantLimits(tenant string, edit func(*limits.Limits)) envOption {
	return func(_ *Config, f *fakeLimits) {
		l := f.def
		edit(&l)
		f.perTenant[tenant] = l
	}
}

// do sends a request as tenant (none when empty) with params in the URL
// for GET or as a form body for POST; it returns the status and body.
func (e *testEnv) do(t testing.TB, tenant, method, path string, params url.Values) (int, string) {
	t.Helper()
	var req *http.Request
	if method == http.MethodPost {
		req = httptest.NewRequest(method, path, strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		u := path
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
		req = httptest.NewRequest(method, u, nil)
	}
	if tenant != "" {
		req = req.WithContext(user.InjectOrgID(req.Context(), tenant))
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	body, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	if rec.Code != http.StatusNoContent {
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	}
	return rec.Code, string(body)
}

func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// wrapQueryable lets tests make storage slow or failing.
type wrapQueryable struct {
	storage.Queryable
	querierErr error
	selectErr  error
	block      chan struct{} // Select waits for ctx or for this to close
}

func (w *wrapQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	if w.querierErr != nil {
		return nil, w.querierErr
	}
	q, err := w.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &wrapQuerier{Querier: q, w: w}, nil
}

type wrapQuerier struct {
	storage.Querier
	w *wrapQueryable
}

func (q *wrapQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if q.w.block != nil {
		select {
		case <-ctx.Done():
			return storage.ErrSeriesSet(ctx.Err())
		case <-q.w.block:
		}
	}
	if q.w.selectErr != nil {
		return storage.ErrSeriesSet(q.w.selectErr)
	}
	return q.Querier.Select(ctx, sortSeries, hints, ms...)
}
