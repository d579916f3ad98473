package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/gorilla/mux"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/querier/httpapi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// call is one request the downstream received.
type call struct {
	tenant string
	path   string
	form   url.Values
}

// downstream is an httptest querier that records its calls.
type downstream struct {
	srv *httptest.Server

	mu    sync.Mutex
	calls []call
}

func (d *downstream) record(r *http.Request) {
	_ = r.ParseForm()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, call{tenant: r.Header.Get(user.OrgIDHeaderName), path: r.URL.Path, form: r.Form})
}

// takeCalls returns the calls so far and forgets them.
func (d *downstream) takeCalls() []call {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.calls
	d.calls = nil
	return c
}

type fakeLimits struct{ def limits.Limits }

func (f fakeLimits) Limits(string) limits.Limits { return f.def }

// newPromQLDownstream serves the Prometheus API of Meridian's querier over
// a PromQL test storage loaded with data.
func newPromQLDownstream(t testing.TB, data string) *downstream {
	t.Helper()
	st := promqltest.LoadedStorage(t, data)
	t.Cleanup(func() { _ = st.Close() })
	var cfg httpapi.Config
	cfg.RegisterFlags(flag.NewFlagSet("querier", flag.PanicOnError))
	var lim limits.Limits
	lim.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	api := httpapi.New(cfg, st, nil, fakeLimits{lim}, httpapi.BuildInfo{}, log.NewNopLogger(), prometheus.NewRegistry())
	r := mux.NewRouter()
	api.Register(r.PathPrefix("/prometheus").Subrouter())
	d := &downstream{}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		d.record(req)
		_, ctx, err := user.ExtractOrgIDFromHTTPRequest(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		r.ServeHTTP(w, req.WithContext(ctx))
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// newFakeDownstream serves fn, recording calls.
func newFakeDownstream(t testing.TB, fn http.HandlerFunc) *downstream {
	t.Helper()
	d := &downstream{}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		d.record(req)
		fn(w, req)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func testConfig(t testing.TB, downstreamURL string) Config {
	t.Helper()
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("frontend", flag.PanicOnError))
	cfg.DownstreamURL = downstreamURL
	require.NoError(t, cfg.Validate())
	return cfg
}

var testLimits = StaticLimits{MaxOutstanding: 100, MaxQueryParallelism: 4}

// startFrontend runs a frontend until the test ends. now, when set,
// replaces the clock.
func startFrontend(t testing.TB, cfg Config, lim Limits, logger log.Logger, now func() time.Time) (*Frontend, *prometheus.Registry) {
	t.Helper()
	if logger == nil {
		logger = log.NewNopLogger()
	}
	reg := prometheus.NewRegistry()
	f, err := New(cfg, lim, logger, reg)
	require.NoError(t, err)
	if now != nil {
		f.now = now
	}
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), f))
	t.Cleanup(func() {
		// Stopping waits for running requests. A test that failed while a
		// downstream held one (a gate opened by a later cleanup) must fail,
		// not hang: stop waiting, and let the cleanups registered before
		// this one (which run after it) release the request.
		f.StopAsync()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := f.AwaitTerminated(ctx); err != nil {
			t.Errorf("query-frontend did not stop within 20s (a request still runs): %v", err)
		}
	})
	return f, reg
}

// do sends a request to h as the tenant; hdr may be nil.
func do(ctx context.Context, h http.Handler, tenant, path string, params url.Values, hdr http.Header) (int, []byte) {
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, path+"?"+params.Encode(), nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	if tenant != "" {
		req = req.WithContext(user.InjectOrgID(req.Context(), tenant))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// direct asks the downstream itself.
func direct(t testing.TB, d *downstream, tenant, path string, params url.Values) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.srv.URL+path, strings.NewReader(params.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(user.OrgIDHeaderName, tenant)
	resp, err := d.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, buf.Bytes()
}

// decodedAnswer is an answer with its matrix decoded for comparison.
type decodedAnswer struct {
	Status    string
	ErrorType string
	Error     string
	Warnings  []string
	Infos     []string
	Matrix    model.Matrix
}

func decode(t testing.TB, body []byte) decodedAnswer {
	t.Helper()
	var resp apiResponse
	require.NoError(t, json.Unmarshal(body, &resp), string(body))
	a := decodedAnswer{Status: resp.Status, ErrorType: resp.ErrorType, Error: resp.Error, Warnings: resp.Warnings, Infos: resp.Infos}
	if resp.Data != nil {
		a.Matrix = resp.Data.Result
	}
	return a
}

func rangeParams(query string, start, end, step string) url.Values {
	return url.Values{"query": {query}, "start": {start}, "end": {end}, "step": {step}}
}

// gate blocks downstream requests until opened.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate() *gate  { return &gate{ch: make(chan struct{})} }
func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }
func (g *gate) wait() { <-g.ch }
func (g *gate) isOpen() bool {
	select {
	case <-g.ch:
		return true
	default:
		return false
	}
}

// eventually polls cond every 5ms for up to 5s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// queueLen is the length of tenant's queue in the frontend's own queue
// with a downstream URL.
func queueLen(f *Frontend, tenant string) int {
	return f.exec.(*httpDownstream).queue.Len(tenant)
}

func (d *downstream) numCalls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.calls)
}
