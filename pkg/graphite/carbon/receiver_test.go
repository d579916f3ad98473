package carbon

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/tenant"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/distributor"
)

// fakeWriter records what it is asked to store, per tenant, and rejects
// series whose value is 666 with an error ID, as storage would.
type fakeWriter struct {
	mtx    sync.Mutex
	stored map[string][]prompb.TimeSeries
}

func (f *fakeWriter) Write(ctx context.Context, req *prompb.WriteRequest, opts distributor.WriteOptions) distributor.WriteResult {
	t, err := tenant.TenantID(ctx)
	if err != nil {
		return distributor.WriteResult{Status: 401, Message: err.Error()}
	}
	if !opts.GraphiteNames {
		return distributor.WriteResult{Status: 500, Message: "graphite names not requested"}
	}
	f.mtx.Lock()
	defer f.mtx.Unlock()
	if f.stored == nil {
		f.stored = map[string][]prompb.TimeSeries{}
	}
	res := distributor.WriteResult{Status: 200}
	for i, ts := range req.Timeseries {
		if ts.Samples[0].Value == 666 {
			if res.Rejected == nil {
				res.Rejected = map[int]string{}
			}
			res.Rejected[i] = "err-meridian-test"
			res.Status = 400
			continue
		}
		f.stored[t] = append(f.stored[t], ts)
	}
	return res
}

func (f *fakeWriter) names(tenant string) []string {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	var out []string
	for _, ts := range f.stored[tenant] {
		for _, l := range ts.Labels {
			if l.Name == "__name__" {
				out = append(out, fmt.Sprintf("%s=%g@%d", l.Value, ts.Samples[0].Value, ts.Samples[0].Timestamp))
			}
		}
	}
	return out
}

func testCarbonConfig() Config {
	var c Config
	fs := newFlagSet()
	c.RegisterFlags(fs)
	c.TCPListenAddress = "127.0.0.1:0"
	c.UDPListenAddress = ""
	c.Tenant = "carbon-tenant"
	return c
}

func TestCarbonTCPKeepsGoodLinesAroundBadOnes(t *testing.T) {
	w := &fakeWriter{}
	reg := prometheus.NewPedanticRegistry()
	in := NewReceiver(testCarbonConfig(), w, log.NewNopLogger(), reg)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), in))
	defer func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), in)) }()

	c, err := net.Dial("tcp", in.TCPAddr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprint(c, "a.one 1 1700000000\n"+
		"a.bad one 1700000000\n"+
		"only-a-path\n"+
		"a.two 2 1700000000\r\n"+
		"a..b 1 1700000000\n"+
		"a.t 3 later\n"+
		"a.rejected 666 1700000000\n"+
		"\n"+
		"a.three 3 1700000000\n")
	require.NoError(t, err)
	want := []string{"a.one=1@1700000000000", "a.two=2@1700000000000", "a.three=3@1700000000000"}
	waitFor(t, func() bool { return len(w.names("carbon-tenant")) == 3 })
	require.Equal(t, want, w.names("carbon-tenant"))

	// The connection is still open and takes more lines.
	_, err = fmt.Fprint(c, "a.four 4 1700000060\n")
	require.NoError(t, err)
	waitFor(t, func() bool { return len(w.names("carbon-tenant")) == 4 })

	require.Equal(t, 1.0, testutil.ToFloat64(in.linesRejected.WithLabelValues(ReasonBadValue)))
	require.Equal(t, 1.0, testutil.ToFloat64(in.linesRejected.WithLabelValues(ReasonFieldCount)))
	require.Equal(t, 1.0, testutil.ToFloat64(in.linesRejected.WithLabelValues(ReasonBadPath)))
	require.Equal(t, 1.0, testutil.ToFloat64(in.linesRejected.WithLabelValues(ReasonBadTimestamp)))
	require.Equal(t, 1.0, testutil.ToFloat64(in.linesRejected.WithLabelValues("err-meridian-test")))
	require.Equal(t, 9.0, testutil.ToFloat64(in.linesReceived.WithLabelValues("tcp")))
	require.Equal(t, 4.0, testutil.ToFloat64(in.linesStored.WithLabelValues("tcp")))
}

func TestCarbonLineTooLong(t *testing.T) {
	w := &fakeWriter{}
	cfg := testCarbonConfig()
	cfg.MaxLineLength = 100
	in := NewReceiver(cfg, w, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), in))
	defer func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), in)) }()
	c, err := net.Dial("tcp", in.TCPAddr().String())
	require.NoError(t, err)
	bw := bufio.NewWriter(c)
	fmt.Fprintf(bw, "a.%s 1 1700000000\n", strings.Repeat("x", 200000))
	fmt.Fprint(bw, "a.after 5 1700000000\n")
	require.NoError(t, bw.Flush())
	require.NoError(t, c.Close())
	waitFor(t, func() bool { return len(w.names("carbon-tenant")) == 1 })
	require.Equal(t, []string{"a.after=5@1700000000000"}, w.names("carbon-tenant"))
	require.Equal(t, 1.0, testutil.ToFloat64(in.linesRejected.WithLabelValues(ReasonLineTooLong)))
}

func TestCarbonUDP(t *testing.T) {
	w := &fakeWriter{}
	cfg := testCarbonConfig()
	cfg.TCPListenAddress = ""
	cfg.UDPListenAddress = "127.0.0.1:0"
	in := NewReceiver(cfg, w, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), in))
	defer func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), in)) }()
	c, err := net.Dial("udp", in.udp.LocalAddr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("u.a 1 1700000000\nu.bad x 1\nu.b 2 1700000000"))
	require.NoError(t, err)
	waitFor(t, func() bool { return len(w.names("carbon-tenant")) == 2 })
	require.Equal(t, 1.0, testutil.ToFloat64(in.linesRejected.WithLabelValues(ReasonBadValue)))
}

func TestHTTPIngest(t *testing.T) {
	w := &fakeWriter{}
	in := NewReceiver(testCarbonConfig(), w, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	body := "h.a 1 1700000000\nh.b x 1700000000\nh.c 3 1700000000\nh.d 666 1700000000\n"
	req := httptest.NewRequest(http.MethodPost, "/graphite/ingest", strings.NewReader(body))
	req = req.WithContext(userCtx("t2"))
	rec := httptest.NewRecorder()
	in.ServeHTTP(rec, req)
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	var res IngestResult
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res))
	require.Equal(t, 2, res.Accepted)
	require.Equal(t, 2, res.Rejected)
	require.Equal(t, map[string]int{ReasonBadValue: 1, "err-meridian-test": 1}, res.Reasons)
	require.Len(t, res.Errors, 2)
	require.True(t, strings.HasPrefix(res.Errors[0], "line 2: bad_value"), res.Errors[0])
	require.True(t, strings.HasPrefix(res.Errors[1], "line 4: err-meridian-test"), res.Errors[1])
	require.Equal(t, []string{"h.a=1@1700000000000", "h.c=3@1700000000000"}, w.names("t2"))

	req = httptest.NewRequest(http.MethodPost, "/graphite/ingest", strings.NewReader("h.ok 1 1700000000\n")).WithContext(userCtx("t2"))
	rec = httptest.NewRecorder()
	in.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	req = httptest.NewRequest(http.MethodPost, "/graphite/ingest", strings.NewReader("h.ok 1 1700000000\n"))
	rec = httptest.NewRecorder()
	in.ServeHTTP(rec, req)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func userCtx(t string) context.Context { return user.InjectOrgID(context.Background(), t) }

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

// TestReadLineLimits: lines just over a small limit, and far over it, are
// cut without panicking and the next line is intact.
func TestReadLineLimits(t *testing.T) {
	for _, n := range []int{64, 65, 66, 67, 200, 70000} {
		data := strings.Repeat("x", n) + "\nnext 1 2\n"
		r := bufio.NewReaderSize(strings.NewReader(data), 64<<10)
		line, tooLong, err := readLine(r, 64)
		require.NoError(t, err)
		require.Equal(t, n > 64, tooLong, n)
		require.LessOrEqual(t, len(line), max(64, 128))
		line, tooLong, err = readLine(r, 64)
		require.NoError(t, err)
		require.False(t, tooLong)
		require.Equal(t, "next 1 2", string(line))
	}
	in := NewReceiver(testCarbonConfig(), &fakeWriter{}, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	in.cfg.MaxLineLength = 64
	b := in.newBatch("http", "")
	b.result = &IngestResult{Reasons: map[string]int{}}
	in.addLines(b, []byte(strings.Repeat("y", 70)+"\n"))
	require.Equal(t, 1, b.result.Reasons[ReasonLineTooLong])
}

// flakyWriter fails the first fails writes as a whole with 500.
type flakyWriter struct {
	fakeWriter
	mtx   sync.Mutex
	fails int
	calls int
}

func (f *flakyWriter) Write(ctx context.Context, req *prompb.WriteRequest, opts distributor.WriteOptions) distributor.WriteResult {
	f.mtx.Lock()
	f.calls++
	fail := f.calls <= f.fails
	f.mtx.Unlock()
	if fail {
		// Storage may have filtered the request in place before failing.
		req.Timeseries = req.Timeseries[:0]
		return distributor.WriteResult{Status: 500, Message: "ingesters unavailable"}
	}
	return f.fakeWriter.Write(ctx, req, opts)
}

// TestCarbonRetriesFailedWrites: carbon senders cannot resend, so a write
// that failed as a whole is retried, with the lines as sent.
func TestCarbonRetriesFailedWrites(t *testing.T) {
	w := &flakyWriter{fails: 2}
	in := NewReceiver(testCarbonConfig(), w, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), in))
	defer func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), in)) }()
	c, err := net.Dial("tcp", in.TCPAddr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprint(c, "r.a 1 1700000000\nr.b 2 1700000000\n")
	require.NoError(t, err)
	waitFor(t, func() bool { return len(w.names("carbon-tenant")) == 2 })
	require.Equal(t, 0.0, testutil.ToFloat64(in.linesRejected.WithLabelValues(ReasonStorage)))
	require.Equal(t, 2.0, testutil.ToFloat64(in.linesStored.WithLabelValues("tcp")))
}
