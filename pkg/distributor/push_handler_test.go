package distributor

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/gogo/status"
	"github.com/golang/snappy"
	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/meridianpb"
)

type pushTestLimits struct{ l limits.Limits }

func (f pushTestLimits) Limits(string) limits.Limits { return f.l }

// recordingPusher records what it was asked to store and answers as configured.
type recordingPusher struct {
	mu         sync.Mutex
	reqs       []*prompb.WriteRequest
	tenants    []string
	seriesErrs []meridianpb.SeriesError
	err        error
}

func (p *recordingPusher) Push(ctx context.Context, req *prompb.WriteRequest) ([]meridianpb.SeriesError, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tenantID, _ := user.ExtractOrgID(ctx)
	p.tenants = append(p.tenants, tenantID)
	p.reqs = append(p.reqs, req)
	return p.seriesErrs, p.err
}

// pushed returns the series of every pushed request as name=value lists.
func (p *recordingPusher) pushed() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, req := range p.reqs {
		for _, ts := range req.Timeseries {
			out = append(out, pushedSeriesKey(ts.Labels))
		}
	}
	return out
}

func pushedSeriesKey(ls []prompb.Label) string {
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, l.Name+"="+truncateString(l.Value, 20))
	}
	return strings.Join(parts, ",")
}

func encodeWriteRequest(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

func bodyWithGoodSeries(ts ...prompb.TimeSeries) func(testing.TB) []byte {
	return func(t testing.TB) []byte {
		all := append([]prompb.TimeSeries{oneSampleSeries(labelPairs("__name__", "good", "job", "a"))}, ts...)
		return encodeWriteRequest(t, &prompb.WriteRequest{Timeseries: all})
	}
}

func rawPushBody(b []byte) func(testing.TB) []byte {
	return func(testing.TB) []byte { return b }
}

const goodSeriesKey = "__name__=good,job=a"

func defaultPushHandlerConfig() PushHandlerConfig {
	var cfg PushHandlerConfig
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	return cfg
}

func doPushRequest(t testing.TB, h http.Handler, tenantID string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	for k, v := range header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	if tenantID != "" {
		r = r.WithContext(user.InjectOrgID(r.Context(), tenantID))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestPushHandler(t *testing.T) {
	tenMB := strings.Repeat("x", 10<<20)
	randomMB := make([]byte, 10<<20+100)
	_, _ = rand.Read(randomMB)

	tests := []struct {
		name       string
		body       func(testing.TB) []byte
		header     map[string]string
		method     string
		noTenant   bool
		seriesErrs []meridianpb.SeriesError
		pushErr    error
		wantStatus int
		wantBody   []string // substrings; an empty list with 200 means an empty body
		wantPushed []string // nil: the pusher must not be called
	}{
		{
			name:       "all valid",
			body:       bodyWithGoodSeries(oneSampleSeries(labelPairs("__name__", "good2"))),
			wantStatus: http.StatusOK,
			wantPushed: []string{goodSeriesKey, "__name__=good2"},
		},
		{
			name:       "no content type or encoding headers",
			body:       bodyWithGoodSeries(),
			header:     map[string]string{"Content-Type": "", "Content-Encoding": ""},
			wantStatus: http.StatusOK,
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "content type naming the 1.0 message",
			body:       bodyWithGoodSeries(),
			header:     map[string]string{"Content-Type": "application/x-protobuf;proto=prometheus.WriteRequest"},
			wantStatus: http.StatusOK,
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "malformed snappy",
			body:       rawPushBody([]byte("this is not snappy at all")),
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{ErrIDMalformedSnappy, "snappy"},
		},
		{
			name:       "malformed protobuf",
			body:       rawPushBody(snappy.Encode(nil, []byte{0x0a, 0xff, 0xff, 0xff, 0x7f, 0x01})),
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{ErrIDMalformedProtobuf, "prometheus.WriteRequest"},
		},
		{
			name:       "empty body",
			body:       rawPushBody(nil),
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{ErrIDEmptyRequest, "body is empty"},
		},
		{
			name:       "wrong content type",
			body:       bodyWithGoodSeries(),
			header:     map[string]string{"Content-Type": "application/json"},
			wantStatus: http.StatusUnsupportedMediaType,
			wantBody:   []string{ErrIDUnsupportedContentType, `"application/json"`, "send application/x-protobuf"},
		},
		{
			name:       "unknown protobuf message",
			body:       bodyWithGoodSeries(),
			header:     map[string]string{"Content-Type": "application/x-protobuf;proto=foo.Bar"},
			wantStatus: http.StatusUnsupportedMediaType,
			wantBody:   []string{ErrIDUnsupportedContentType, "proto=prometheus.WriteRequest"},
		},
		{
			name:       "remote write 2.0",
			body:       bodyWithGoodSeries(),
			header:     map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
			wantStatus: http.StatusUnsupportedMediaType,
			wantBody:   []string{ErrIDRemoteWrite2Unsupported, "only 1.0", "protobuf_message: prometheus.WriteRequest"},
		},
		{
			name:       "gzip encoding",
			body:       bodyWithGoodSeries(),
			header:     map[string]string{"Content-Encoding": "gzip"},
			wantStatus: http.StatusUnsupportedMediaType,
			wantBody:   []string{ErrIDUnsupportedContentEncoding, "snappy"},
		},
		{
			name:       "GET",
			body:       rawPushBody(nil),
			method:     http.MethodGet,
			wantStatus: http.StatusMethodNotAllowed,
			wantBody:   []string{ErrIDMethodNotAllowed},
		},
		{
			name:       "no tenant",
			body:       bodyWithGoodSeries(),
			noTenant:   true,
			wantStatus: http.StatusUnauthorized,
			wantBody:   []string{ErrIDMissingTenant, "X-Scope-OrgID"},
		},
		{
			name:       "10 MB label value compresses under the limit and is rejected as too long",
			body:       bodyWithGoodSeries(oneSampleSeries(labelPairs("__name__", "huge", "big", tenMB))),
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{"1 of 2 series rejected", ErrIDLabelValueTooLong, "is 10485760 bytes long, over the limit of 128", `big="xxxx`},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "10 MB of incompressible labels is over the body limit",
			body:       bodyWithGoodSeries(oneSampleSeries(labelPairs("__name__", "huge", "big", string(randomMB)))),
			wantStatus: http.StatusRequestEntityTooLarge,
			wantBody:   []string{ErrIDRequestTooLarge, "over the limit of 10485760", "-distributor.max-recv-msg-size"},
		},
		{
			name:       "snappy header claims 1 GiB",
			body:       rawPushBody(append(protowire.AppendVarint(nil, 1<<30), 0x00, 0x01, 0x02)),
			wantStatus: http.StatusRequestEntityTooLarge,
			wantBody:   []string{ErrIDDecompressedTooLarge, "1073741824 bytes", "-distributor.max-decompressed-size"},
		},
		{
			name:       "invalid UTF-8 in a label value",
			body:       bodyWithGoodSeries(oneSampleSeries(labelPairs("__name__", "bad", "job", "a\xc3\x28"))),
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{ErrIDInvalidUTF8, `job="a\xc3("`},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name: "timestamp in the year 3000",
			body: bodyWithGoodSeries(prompb.TimeSeries{
				Labels:  labelPairs("__name__", "future"),
				Samples: []prompb.Sample{{Value: 1, Timestamp: 32503680000000}},
			}),
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{ErrIDSampleTooFarInFuture, "3000-01-01T00:00:00Z", "-validation.create-grace-period"},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "unsorted labels are accepted and sorted",
			body:       bodyWithGoodSeries(oneSampleSeries(labelPairs("zone", "z", "job", "b", "__name__", "unsorted"))),
			wantStatus: http.StatusOK,
			wantPushed: []string{goodSeriesKey, "__name__=unsorted,job=b,zone=z"},
		},
		{
			name:       "empty label values are dropped",
			body:       bodyWithGoodSeries(oneSampleSeries(labelPairs("__name__", "sparse", "empty", "", "job", "c"))),
			wantStatus: http.StatusOK,
			wantPushed: []string{goodSeriesKey, "__name__=sparse,job=c"},
		},
		{
			name:       "duplicate label names",
			body:       bodyWithGoodSeries(oneSampleSeries(labelPairs("__name__", "dup", "job", "a", "job", "b"))),
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{ErrIDDuplicateLabelNames, `"job"`},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "too many labels",
			body:       bodyWithGoodSeries(oneSampleSeries(labelPairs("__name__", "many", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5"))),
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{ErrIDTooManyLabels, "6 labels, over the limit of 5", "-validation.max-label-names-per-series"},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "label name too long",
			body:       bodyWithGoodSeries(oneSampleSeries(labelPairs("__name__", "long", strings.Repeat("n", 100), "v"))),
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{ErrIDLabelNameTooLong, "100 bytes long, over the limit of 64", "-validation.max-length-label-name"},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "label value too long",
			body:       bodyWithGoodSeries(oneSampleSeries(labelPairs("__name__", "long", "v", strings.Repeat("v", 200)))),
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{ErrIDLabelValueTooLong, "200 bytes long, over the limit of 128", "-validation.max-length-label-value"},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "missing and invalid metric names",
			body:       bodyWithGoodSeries(oneSampleSeries(labelPairs("job", "x")), oneSampleSeries(labelPairs("__name__", "0bad"))),
			wantStatus: http.StatusBadRequest,
			wantBody: []string{"2 of 3 series rejected, the other series were stored", ErrIDMissingMetricName, ErrIDInvalidMetricName,
				"rejected series per error ID: " + ErrIDInvalidMetricName + "=1, " + ErrIDMissingMetricName + "=1"},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "series without samples are ignored",
			body:       bodyWithGoodSeries(prompb.TimeSeries{Labels: labelPairs("__name__", "empty")}),
			wantStatus: http.StatusOK,
			wantPushed: []string{goodSeriesKey},
		},
		{
			name: "a request with only sample-less series stores nothing",
			body: func(t testing.TB) []byte {
				return encodeWriteRequest(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: labelPairs("__name__", "empty")}}})
			},
			wantStatus: http.StatusOK,
		},
		{
			name: "pusher per-series errors are merged with validation errors",
			body: bodyWithGoodSeries(oneSampleSeries(labelPairs("job", "nameless")), oneSampleSeries(labelPairs("__name__", "over_limit"))),
			seriesErrs: []meridianpb.SeriesError{{
				Index: 1, HttpStatus: 400, ErrorId: "err-meridian-max-series-per-tenant",
				Message: "tenant has 10 series, the limit is 10",
			}},
			wantStatus: http.StatusBadRequest,
			wantBody: []string{
				"2 of 3 series rejected, the other series were stored",
				ErrIDMissingMetricName + ": series has no metric name",
				`err-meridian-max-series-per-tenant: tenant has 10 series, the limit is 10 series {__name__="over_limit"}`,
				"err-meridian-max-series-per-tenant=1",
			},
			wantPushed: []string{goodSeriesKey, "__name__=over_limit"},
		},
		{
			name:       "pusher per-series 429",
			body:       bodyWithGoodSeries(),
			seriesErrs: []meridianpb.SeriesError{{Index: 0, HttpStatus: 429, ErrorId: "err-meridian-rate", Message: "slow down"}},
			wantStatus: http.StatusTooManyRequests,
			wantBody:   []string{"1 of 1 series rejected", "err-meridian-rate: slow down"},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "pusher per-series error with a bad index",
			body:       bodyWithGoodSeries(),
			seriesErrs: []meridianpb.SeriesError{{Index: 7, HttpStatus: 400, Message: "odd"}},
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{errIDUnknownSeriesRejected + ": odd"},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "pusher 5xx error",
			body:       bodyWithGoodSeries(),
			pushErr:    httpgrpc.Errorf(http.StatusServiceUnavailable, "too few ingesters"),
			wantStatus: http.StatusInternalServerError,
			wantBody:   []string{"too few ingesters", "retry"},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "pusher 5xx error with rejected series",
			body:       bodyWithGoodSeries(oneSampleSeries(labelPairs("job", "nameless"))),
			pushErr:    errors.New("quorum not reached"),
			wantStatus: http.StatusInternalServerError,
			wantBody:   []string{"store the write: quorum not reached; retry", "1 of 2 series rejected:\n", ErrIDMissingMetricName},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "pusher 4xx error is propagated",
			body:       bodyWithGoodSeries(),
			pushErr:    httpgrpc.Errorf(http.StatusTooManyRequests, "ingestion rate limit exceeded"),
			wantStatus: http.StatusTooManyRequests,
			wantBody:   []string{"ingestion rate limit exceeded"},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "pusher gRPC InvalidArgument",
			body:       bodyWithGoodSeries(),
			pushErr:    status.Error(codes.InvalidArgument, "bad series"),
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{"bad series"},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "pusher gRPC ResourceExhausted is ours to fix",
			body:       bodyWithGoodSeries(),
			pushErr:    status.Error(codes.ResourceExhausted, "grpc: received message larger than max"),
			wantStatus: http.StatusInternalServerError,
			wantBody:   []string{"retry"},
			wantPushed: []string{goodSeriesKey},
		},
		{
			name:       "pusher canceled",
			body:       bodyWithGoodSeries(),
			pushErr:    context.Canceled,
			wantStatus: statusClientClosedRequest,
			wantPushed: []string{goodSeriesKey},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pusher := &recordingPusher{seriesErrs: tt.seriesErrs, err: tt.pushErr}
			h := newPushHandler(defaultPushHandlerConfig(), pusher, pushTestLimits{validationLimits()}, log.NewNopLogger(), prometheus.NewPedanticRegistry(), func() time.Time { return validationNow })
			tenantID := "tenant-a"
			if tt.noTenant {
				tenantID = ""
			}
			body := tt.body(t)
			var w *httptest.ResponseRecorder
			if tt.method != "" {
				r := httptest.NewRequest(tt.method, "/api/v1/push", bytes.NewReader(body))
				r = r.WithContext(user.InjectOrgID(r.Context(), tenantID))
				w = httptest.NewRecorder()
				h.ServeHTTP(w, r)
			} else {
				w = doPushRequest(t, h, tenantID, body, tt.header)
			}

			require.Equal(t, tt.wantStatus, w.Code, "body: %s", truncateString(w.Body.String(), 2000))
			if tt.wantStatus == http.StatusOK {
				require.Empty(t, w.Body.String())
			}
			for _, want := range tt.wantBody {
				require.Contains(t, w.Body.String(), want)
			}
			require.Less(t, w.Body.Len(), 4096, "response bodies stay short whatever the input")
			require.Equal(t, tt.wantPushed, pusher.pushed())
			if tt.wantPushed != nil {
				require.Equal(t, []string{tenantID}, pusher.tenants)
			}
		})
	}
}

func TestPushHandlerShowsFirstFiveRejections(t *testing.T) {
	var bad []prompb.TimeSeries
	for i := 0; i < 7; i++ {
		bad = append(bad, oneSampleSeries(labelPairs("job", strconv.Itoa(i))))
	}
	pusher := &recordingPusher{}
	h := newPushHandler(defaultPushHandlerConfig(), pusher, pushTestLimits{validationLimits()}, log.NewNopLogger(), prometheus.NewPedanticRegistry(), func() time.Time { return validationNow })
	w := doPushRequest(t, h, "t", bodyWithGoodSeries(bad...)(t), nil)

	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "7 of 8 series rejected (first 5 shown)")
	require.Equal(t, 5, strings.Count(w.Body.String(), " "+ErrIDMissingMetricName+": "))
	require.Contains(t, w.Body.String(), ErrIDMissingMetricName+"=7")
	require.Equal(t, []string{goodSeriesKey}, pusher.pushed())
}

func TestPushHandlerMetadata(t *testing.T) {
	md := []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests."}}
	tests := []struct {
		name       string
		series     []prompb.TimeSeries
		wantSeries int
	}{
		{name: "metadata only", wantSeries: 0},
		{name: "metadata with series", series: []prompb.TimeSeries{oneSampleSeries(labelPairs("__name__", "http_requests_total"))}, wantSeries: 1},
		{name: "metadata with only invalid series", series: []prompb.TimeSeries{oneSampleSeries(labelPairs("job", "x"))}, wantSeries: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pusher := &recordingPusher{}
			h := newPushHandler(defaultPushHandlerConfig(), pusher, pushTestLimits{validationLimits()}, log.NewNopLogger(), prometheus.NewPedanticRegistry(), func() time.Time { return validationNow })
			doPushRequest(t, h, "t", encodeWriteRequest(t, &prompb.WriteRequest{Timeseries: tt.series, Metadata: md}), nil)
			require.Len(t, pusher.reqs, 1)
			require.Equal(t, md, pusher.reqs[0].Metadata)
			require.Len(t, pusher.reqs[0].Timeseries, tt.wantSeries)
		})
	}
}

func TestPushHandlerMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	pusher := &recordingPusher{seriesErrs: []meridianpb.SeriesError{{Index: 0, HttpStatus: 400, ErrorId: "err-meridian-sample-out-of-order", Message: "out of order"}}}
	h := newPushHandler(defaultPushHandlerConfig(), pusher, pushTestLimits{validationLimits()}, log.NewNopLogger(), reg, func() time.Time { return validationNow })

	body := bodyWithGoodSeries(
		oneSampleSeries(labelPairs("job", "nameless")),
		prompb.TimeSeries{Labels: labelPairs("__name__", "h"), Histograms: []prompb.Histogram{{Timestamp: validationNow.UnixMilli()}}},
	)(t)
	w := doPushRequest(t, h, "tenant-a", body, nil)
	require.Equal(t, http.StatusBadRequest, w.Code)
	doPushRequest(t, h, "tenant-a", nil, nil) // empty: counted as a request, nothing else

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP meridian_discarded_samples_total Samples and native histogram samples rejected, per tenant and error ID.
# TYPE meridian_discarded_samples_total counter
meridian_discarded_samples_total{reason="err-meridian-missing-metric-name",tenant="tenant-a"} 1
meridian_discarded_samples_total{reason="err-meridian-sample-out-of-order",tenant="tenant-a"} 1
# HELP meridian_distributor_received_requests_total Remote-write requests received, per tenant, whatever their outcome.
# TYPE meridian_distributor_received_requests_total counter
meridian_distributor_received_requests_total{tenant="tenant-a"} 2
# HELP meridian_distributor_received_samples_total Samples and native histogram samples received in decoded remote-write requests, before validation (see meridian_discarded_samples_total).
# TYPE meridian_distributor_received_samples_total counter
meridian_distributor_received_samples_total{tenant="tenant-a"} 3
`), "meridian_discarded_samples_total", "meridian_distributor_received_requests_total", "meridian_distributor_received_samples_total"))
	require.Equal(t, float64(len(body)), testutil.ToFloat64(h.receivedBytes.WithLabelValues("tenant-a")))
}

// millionSeriesBody encodes n series {__name__="m", i="<i>"} with one sample
// each, every badEvery-th one with an invalid metric name, straight into
// protobuf bytes without building the request in memory.
func millionSeriesBody(t testing.TB, n, badEvery int) []byte {
	t.Helper()
	raw := make([]byte, 0, n*40)
	ts := prompb.TimeSeries{
		Labels:  labelPairs("__name__", "m", "i", ""),
		Samples: []prompb.Sample{{Value: 1, Timestamp: validationNow.UnixMilli()}},
	}
	var scratch []byte
	for i := 0; i < n; i++ {
		ts.Labels[0].Value = "m"
		if i%badEvery == 0 {
			ts.Labels[0].Value = "0bad"
		}
		ts.Labels[1].Value = strconv.Itoa(i)
		size := ts.Size()
		if cap(scratch) < size {
			scratch = make([]byte, size*2)
		}
		_, err := ts.MarshalToSizedBuffer(scratch[:size])
		require.NoError(t, err)
		raw = protowire.AppendTag(raw, 1, protowire.BytesType)
		raw = protowire.AppendVarint(raw, uint64(size))
		raw = append(raw, scratch[:size]...)
	}
	return snappy.Encode(nil, raw)
}

func TestPushHandlerMillionSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes a million series")
	}
	const n, badEvery = 1_000_000, 100_000
	body := millionSeriesBody(t, n, badEvery)

	tests := []struct {
		name       string
		maxRecv    int
		wantStatus int
		wantBody   string
		wantPushed int
	}{
		{name: "valid series pushed", maxRecv: 10 << 20, wantStatus: http.StatusBadRequest, wantBody: "10 of 1000000 series rejected (first 5 shown)", wantPushed: n - n/badEvery},
		{name: "over the body limit", maxRecv: len(body) - 1, wantStatus: http.StatusRequestEntityTooLarge, wantBody: ErrIDRequestTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultPushHandlerConfig()
			cfg.MaxRecvMsgSize = tt.maxRecv
			pusher := &recordingPusher{}
			h := newPushHandler(cfg, pusher, pushTestLimits{validationLimits()}, log.NewNopLogger(), prometheus.NewPedanticRegistry(), func() time.Time { return validationNow })
			w := doPushRequest(t, h, "t", body, nil)
			require.Equal(t, tt.wantStatus, w.Code)
			require.Contains(t, w.Body.String(), tt.wantBody)
			if tt.wantPushed == 0 {
				require.Empty(t, pusher.reqs)
				return
			}
			require.Len(t, pusher.reqs, 1)
			got := pusher.reqs[0].Timeseries
			require.Len(t, got, tt.wantPushed)
			require.Equal(t, "__name__=m,i=1", pushedSeriesKey(got[0].Labels))
			require.Equal(t, "__name__=m,i=999999", pushedSeriesKey(got[len(got)-1].Labels))
		})
	}
}

// TestPushHandlerReusesBuffers checks that pooled buffers from a big request
// do not leak into the next one.
func TestPushHandlerReusesBuffers(t *testing.T) {
	pusher := &recordingPusher{}
	h := newPushHandler(defaultPushHandlerConfig(), pusher, pushTestLimits{validationLimits()}, log.NewNopLogger(), prometheus.NewPedanticRegistry(), func() time.Time { return validationNow })
	big := bodyWithGoodSeries(oneSampleSeries(labelPairs("__name__", "big", "v", strings.Repeat("y", 100))), oneSampleSeries(labelPairs("__name__", "other")))(t)
	small := encodeWriteRequest(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{oneSampleSeries(labelPairs("__name__", "small"))}})
	for i := 0; i < 3; i++ {
		require.Equal(t, http.StatusOK, doPushRequest(t, h, "t", big, nil).Code)
		require.Equal(t, http.StatusOK, doPushRequest(t, h, "t", small, nil).Code)
	}
	got := pusher.pushed()
	require.Len(t, got, 12)
	require.Equal(t, "__name__=small", got[11])
	require.Equal(t, "__name__=big,v="+strings.Repeat("y", 20), got[9])
}

func TestPushHandlerConfig(t *testing.T) {
	cfg := defaultPushHandlerConfig()
	require.Equal(t, PushHandlerConfig{MaxRecvMsgSize: 10 << 20, MaxDecompressedSize: 100 << 20}, cfg)

	tests := []struct {
		name    string
		cfg     PushHandlerConfig
		wantErr string
	}{
		{name: "defaults", cfg: cfg},
		{name: "zero body limit", cfg: PushHandlerConfig{MaxRecvMsgSize: 0, MaxDecompressedSize: 1}, wantErr: "max_recv_msg_size must be positive"},
		{name: "negative decompressed limit", cfg: PushHandlerConfig{MaxRecvMsgSize: 1, MaxDecompressedSize: -1}, wantErr: "max_decompressed_size must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func FuzzPushHandler(f *testing.F) {
	f.Add(encodeWriteRequest(f, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{oneSampleSeries(labelPairs("__name__", "up", "job", "a"))}}))
	f.Add(encodeWriteRequest(f, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{oneSampleSeries(labelPairs("job", "a", "job", "b\xff")), {Labels: labelPairs("__name__", "h"), Histograms: []prompb.Histogram{{}}}},
		Metadata:   []prompb.MetricMetadata{{MetricFamilyName: "up"}},
	}))
	f.Add([]byte{})
	f.Add([]byte("not snappy"))
	f.Add(snappy.Encode(nil, []byte{0x0a, 0x80}))
	f.Add(protowire.AppendVarint(nil, 1<<40))

	cfg := PushHandlerConfig{MaxRecvMsgSize: 1 << 20, MaxDecompressedSize: 4 << 20}
	h := newPushHandler(cfg, &discardPusher{}, pushTestLimits{validationLimits()}, log.NewNopLogger(), prometheus.NewRegistry(), func() time.Time { return validationNow })
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, b := range [][]byte{body, snappy.Encode(nil, body)} {
			w := doPushRequest(t, h, "fuzz", b, nil)
			if w.Code >= 500 {
				t.Fatalf("status %d for a client's body: %s", w.Code, w.Body.String())
			}
			if w.Code != http.StatusOK && w.Body.Len() == 0 {
				t.Fatalf("status %d without a message", w.Code)
			}
		}
	})
}

// discardPusher stores nothing and keeps nothing, so the fuzzer's memory
// stays flat.
type discardPusher struct{}

func (discardPusher) Push(_ context.Context, req *prompb.WriteRequest) ([]meridianpb.SeriesError, error) {
	for _, ts := range req.Timeseries {
		if !labelsSorted(ts.Labels) {
			return nil, errors.New("unsorted labels reached the pusher")
		}
	}
	return nil, nil
}

type denyAfter struct{ budget int }

func (d *denyAfter) AllowN(_ time.Time, _ string, n int) bool {
	if n > d.budget {
		return false
	}
	d.budget -= n
	return true
}

func (d *denyAfter) RejectionMessage(string, int) string { return "rate limited for the test" }

func TestPushHandlerIngestionRateLimit(t *testing.T) {
	pusher := &recordingPusher{}
	h := newPushHandler(defaultPushHandlerConfig(), pusher, pushTestLimits{validationLimits()}, log.NewNopLogger(), prometheus.NewPedanticRegistry(), func() time.Time { return validationNow })
	h.rate = &denyAfter{budget: 1}
	body := bodyWithGoodSeries()(t)

	rec := doPushRequest(t, h, "team-a", body, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = doPushRequest(t, h, "team-a", body, nil)
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Contains(t, rec.Body.String(), ErrIDIngestionRateLimited)
	require.Contains(t, rec.Body.String(), "rate limited for the test")
	pusher.mu.Lock()
	defer pusher.mu.Unlock()
	require.Len(t, pusher.reqs, 1, "the rate-limited request reached no ingester")
}
