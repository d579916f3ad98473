package distributor

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/golang/snappy"
	"github.com/grafana/dskit/grpcutil"
	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/tenant"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"

	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/meridianpb"
)

// Pusher stores a validated request. It returns the series it rejected for the
// client's fault (SeriesError.Index indexes req.Timeseries as passed) and an error
// only when the write as a whole failed.
type Pusher interface {
	Push(ctx context.Context, req *prompb.WriteRequest) ([]meridianpb.SeriesError, error)
}

// PushHandlerConfig bounds the size of remote-write requests.
type PushHandlerConfig struct {
	MaxRecvMsgSize      int `yaml:"max_recv_msg_size" category:"advanced"`
	MaxDecompressedSize int `yaml:"max_decompressed_size" category:"advanced"`
}

// RegisterFlags registers the push handler flags.
func (c *PushHandlerConfig) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.MaxRecvMsgSize, "distributor.max-recv-msg-size", 10<<20, "Largest remote-write request body accepted, in bytes, as sent (snappy-compressed).")
	f.IntVar(&c.MaxDecompressedSize, "distributor.max-decompressed-size", 100<<20, "Largest remote-write request accepted, in bytes, after snappy decompression.")
}

// Validate checks the config.
func (c *PushHandlerConfig) Validate() error {
	if c.MaxRecvMsgSize <= 0 {
		return fmt.Errorf("max_recv_msg_size must be positive, got %d", c.MaxRecvMsgSize)
	}
	if c.MaxDecompressedSize <= 0 {
		return fmt.Errorf("max_decompressed_size must be positive, got %d", c.MaxDecompressedSize)
	}
	return nil
}

const (
	contentTypeProtobuf = "application/x-protobuf"
	protoMsgRW1         = "prometheus.WriteRequest"
	protoMsgRW2         = "io.prometheus.write.v2.Request"

	// statusClientClosedRequest is nginx's code for a client that went away
	// before the answer; it keeps such requests out of the 5xx error rate.
	statusClientClosedRequest = 499
)

// PushHandler serves remote write and stores already-decoded writes for
// other protocols (Write).
type PushHandler struct {
	cfg    PushHandlerConfig
	pusher Pusher
	limits limits.Source
	rate   IngestionLimiter // nil: no rate limit
	logger log.Logger
	now    func() time.Time

	// bufs holds *[]byte for request bodies, compressed and decompressed.
	bufs sync.Pool

	receivedRequests *prometheus.CounterVec
	receivedSamples  *prometheus.CounterVec
	receivedBytes    *prometheus.CounterVec
	discardedSamples *prometheus.CounterVec
}

// NewPushHandler returns the handler of POST /api/v1/push: Prometheus remote
// write 1.0 (snappy-compressed prompb.WriteRequest, metadata included).
//
// Invalid series are removed and the rest are handed to pusher. The answer is
// 200 when everything was stored; 400 listing the rejected series (the first
// few, with one line each, and a count per error ID) when some were not, the
// others being stored regardless; and the whole-request status otherwise.
// Rejections reported by pusher are merged into the same list, with the
// series they name appended to their message.
//
// An error from pusher keeps its status when it is an httpgrpc error with a
// 4xx code. A gRPC status maps InvalidArgument, FailedPrecondition and
// OutOfRange to 400, Unauthenticated to 401, PermissionDenied to 403 and
// Canceled to 499. Everything else is 500, so the client retries:
// ResourceExhausted included, because gRPC also uses it for its own message
// size limits, which are ours to fix; a tenant limit must be sent as an
// httpgrpc 429 or as SeriesErrors.
//
// rate, when not nil, caps each tenant's ingestion rate (429 past it).
func NewPushHandler(cfg PushHandlerConfig, pusher Pusher, lim limits.Source, rate IngestionLimiter, logger log.Logger, reg prometheus.Registerer) *PushHandler {
	h := newPushHandler(cfg, pusher, lim, logger, reg, time.Now)
	h.rate = rate
	return h
}

// IngestionLimiter decides whether a tenant may ingest n more samples now.
type IngestionLimiter interface {
	AllowN(now time.Time, tenant string, n int) bool
	RejectionMessage(tenant string, samples int) string
}

func newPushHandler(cfg PushHandlerConfig, pusher Pusher, lim limits.Source, logger log.Logger, reg prometheus.Registerer, now func() time.Time) *PushHandler {
	f := promauto.With(reg)
	return &PushHandler{
		cfg:    cfg,
		pusher: pusher,
		limits: lim,
		logger: logger,
		now:    now,
		bufs:   sync.Pool{New: func() any { return new([]byte) }},
		receivedRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_distributor_received_requests_total",
			Help: "Remote-write requests received, per tenant, whatever their outcome.",
		}, []string{"tenant"}),
		receivedSamples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_distributor_received_samples_total",
			Help: "Samples and native histogram samples received in decoded remote-write requests, before validation (see meridian_discarded_samples_total).",
		}, []string{"tenant"}),
		receivedBytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_distributor_received_bytes_total",
			Help: "Remote-write request body bytes received, as sent (compressed).",
		}, []string{"tenant"}),
		discardedSamples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_discarded_samples_total",
			Help: "Samples and native histogram samples rejected, per tenant and error ID.",
		}, []string{"tenant", "reason"}),
	}
}

func (h *PushHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeRequestError(w, newRequestError(http.StatusMethodNotAllowed, ErrIDMethodNotAllowed,
			"remote write takes POST, not %s", r.Method))
		return
	}
	tenantID, err := tenant.TenantID(r.Context())
	if err != nil {
		if errors.Is(err, user.ErrNoOrgID) {
			writeRequestError(w, newRequestError(http.StatusUnauthorized, ErrIDMissingTenant,
				"no tenant ID in the request; set the X-Scope-OrgID header (headers: in the remote_write config)"))
			return
		}
		writeRequestError(w, newRequestError(http.StatusBadRequest, ErrIDInvalidTenant,
			"tenant ID is not valid: %v; send a single tenant ID in the X-Scope-OrgID header", err))
		return
	}
	h.receivedRequests.WithLabelValues(tenantID).Inc()

	req, rerr := h.decode(r, tenantID)
	if rerr != nil {
		level.Debug(h.logger).Log("msg", "remote-write request rejected", "tenant", tenantID, "status", rerr.status, "err", rerr)
		writeRequestError(w, rerr)
		return
	}

	status, msg, _ := h.store(r.Context(), tenantID, req, validateOptions{})
	if status == http.StatusOK {
		w.WriteHeader(http.StatusOK)
		return
	}
	http.Error(w, msg, status)
}

// store validates req, applies the rate limit and hands the valid series to
// the pusher. It returns the HTTP status of the outcome, the response body
// for a status other than 200 and the rejections.
func (h *PushHandler) store(ctx context.Context, tenantID string, req *prompb.WriteRequest, opts validateOptions) (int, string, *rejections) {
	samples := 0
	for i := range req.Timeseries {
		samples += len(req.Timeseries[i].Samples) + len(req.Timeseries[i].Histograms)
	}
	h.receivedSamples.WithLabelValues(tenantID).Add(float64(samples))

	totalSeries := len(req.Timeseries)
	lim := h.limits.Limits(tenantID)
	rej := &rejections{track: opts.trackIndexes}
	kept := validateRequest(req, &lim, h.now(), rej, opts)

	if h.rate != nil {
		valid := 0
		for i := range req.Timeseries {
			valid += len(req.Timeseries[i].Samples) + len(req.Timeseries[i].Histograms)
		}
		if valid > 0 && !h.rate.AllowN(h.now(), tenantID, valid) {
			for id, n := range rej.samplesByID {
				h.discardedSamples.WithLabelValues(tenantID, id).Add(float64(n))
			}
			h.discardedSamples.WithLabelValues(tenantID, ErrIDIngestionRateLimited).Add(float64(valid))
			rerr := newRequestError(http.StatusTooManyRequests, ErrIDIngestionRateLimited, "%s", h.rate.RejectionMessage(tenantID, valid))
			if rej.track {
				for _, orig := range kept {
					rej.byIndex[orig] = ErrIDIngestionRateLimited
				}
			}
			return http.StatusTooManyRequests, rerr.Error() + "\n", rej
		}
	}

	status := http.StatusOK
	var pushErrMsg string
	if len(req.Timeseries) > 0 || len(req.Metadata) > 0 {
		seriesErrs, err := h.pusher.Push(ctx, req)
		if err != nil {
			status, pushErrMsg = pushErrorStatus(ctx, err)
			if status >= 500 {
				level.Error(h.logger).Log("msg", "write not stored", "tenant", tenantID, "status", status, "err", err)
			} else {
				level.Debug(h.logger).Log("msg", "write rejected by storage", "tenant", tenantID, "status", status, "err", err)
			}
		}
		status = max(status, h.addSeriesErrors(rej, req, seriesErrs, kept))
	}

	for id, n := range rej.samplesByID {
		h.discardedSamples.WithLabelValues(tenantID, id).Add(float64(n))
	}
	if rej.series > 0 {
		level.Debug(h.logger).Log("msg", "series rejected", "tenant", tenantID, "rejected", rej.series, "series", totalSeries, "first", rej.shown[0])
		if status < 400 {
			status = http.StatusBadRequest
		}
	}

	if status == http.StatusOK {
		return status, "", rej
	}
	var body strings.Builder
	if pushErrMsg != "" {
		body.WriteString(pushErrMsg)
		body.WriteByte('\n')
	}
	if rej.series > 0 {
		body.WriteString(rej.report(totalSeries, pushErrMsg == ""))
	}
	return status, body.String(), rej
}

// addSeriesErrors records the pusher's rejections and returns the status they
// call for: 400, or the highest 429/5xx among them (a 5xx makes the client
// retry; samples stored twice are deduplicated by the TSDB).
func (h *PushHandler) addSeriesErrors(rej *rejections, req *prompb.WriteRequest, errs []meridianpb.SeriesError, kept []int) int {
	status := http.StatusOK
	for i := range errs {
		se := &errs[i]
		id := se.ErrorId
		if id == "" {
			id = errIDUnknownSeriesRejected
		}
		var ts *prompb.TimeSeries
		if se.Index >= 0 && int(se.Index) < len(req.Timeseries) {
			ts = &req.Timeseries[se.Index]
		}
		samples := 0
		if ts != nil {
			samples = len(ts.Samples) + len(ts.Histograms)
		}
		orig := -1
		if se.Index >= 0 && int(se.Index) < len(kept) {
			orig = kept[se.Index]
		}
		rej.addAt(orig, id, samples, func() string {
			if ts == nil {
				return se.Message
			}
			return se.Message + " series " + formatSeries(ts.Labels)
		})
		switch code := int(se.HttpStatus); {
		case code >= 500 || code == http.StatusTooManyRequests:
			status = max(status, code)
		default:
			status = max(status, http.StatusBadRequest)
		}
	}
	return status
}

// pushErrorStatus maps an error of the pusher to a status and message.
func pushErrorStatus(ctx context.Context, err error) (int, string) {
	if errors.Is(err, context.Canceled) || grpcutil.IsCanceled(err) || errors.Is(ctx.Err(), context.Canceled) {
		return statusClientClosedRequest, "request canceled before the write completed: " + err.Error()
	}
	if resp, ok := httpgrpc.HTTPResponseFromError(err); ok {
		if resp.Code >= 400 && resp.Code < 500 {
			return int(resp.Code), string(resp.Body)
		}
		return http.StatusInternalServerError, "store the write: " + string(resp.Body) + "; retry"
	}
	if s, ok := grpcutil.ErrorToStatus(err); ok {
		switch s.Code() {
		case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
			return http.StatusBadRequest, s.Message()
		case codes.Unauthenticated:
			return http.StatusUnauthorized, s.Message()
		case codes.PermissionDenied:
			return http.StatusForbidden, s.Message()
		}
	}
	return http.StatusInternalServerError, "store the write: " + err.Error() + "; retry"
}

// decode reads, decompresses and unmarshals the body, enforcing the size
// limits. Buffers come from the pool and go back before it returns: the
// decoded request copies every string it keeps.
func (h *PushHandler) decode(r *http.Request, tenantID string) (*prompb.WriteRequest, *requestError) {
	if rerr := checkContentHeaders(r.Header); rerr != nil {
		return nil, rerr
	}
	if r.ContentLength > int64(h.cfg.MaxRecvMsgSize) {
		return nil, tooLarge(r.ContentLength, h.cfg.MaxRecvMsgSize)
	}

	compressed := h.bufs.Get().(*[]byte)
	defer h.bufs.Put(compressed)
	buf := bytes.NewBuffer((*compressed)[:0])
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, int64(h.cfg.MaxRecvMsgSize)+1))
	*compressed = buf.Bytes()[:0]
	h.receivedBytes.WithLabelValues(tenantID).Add(float64(n))
	if err != nil {
		if errors.Is(r.Context().Err(), context.Canceled) {
			return nil, newRequestError(statusClientClosedRequest, ErrIDReadBody, "client went away while sending the body: %v", err)
		}
		return nil, newRequestError(http.StatusBadRequest, ErrIDReadBody, "reading the request body: %v; resend the request", err)
	}
	if n > int64(h.cfg.MaxRecvMsgSize) {
		return nil, tooLarge(-1, h.cfg.MaxRecvMsgSize)
	}
	if n == 0 {
		return nil, newRequestError(http.StatusBadRequest, ErrIDEmptyRequest,
			"the request body is empty; send a snappy-compressed prometheus.WriteRequest")
	}
	body := buf.Bytes()

	dLen, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, newRequestError(http.StatusBadRequest, ErrIDMalformedSnappy,
			"the body is not snappy block-compressed data (%v); compress the protobuf with snappy's block format and set Content-Encoding: snappy", err)
	}
	if dLen > h.cfg.MaxDecompressedSize {
		return nil, newRequestError(http.StatusRequestEntityTooLarge, ErrIDDecompressedTooLarge,
			"the body decompresses to %d bytes, over the limit of %d; send fewer samples per request (remote_write queue_config max_samples_per_send) or raise %s",
			dLen, h.cfg.MaxDecompressedSize, flagMaxDecompressedSize)
	}
	decompressed := h.bufs.Get().(*[]byte)
	defer h.bufs.Put(decompressed)
	data, err := snappy.Decode((*decompressed)[:cap(*decompressed)], body)
	if cap(data) > cap(*decompressed) {
		*decompressed = data[:0]
	}
	if err != nil {
		return nil, newRequestError(http.StatusBadRequest, ErrIDMalformedSnappy,
			"the body is not valid snappy block-compressed data (%v); compress the protobuf with snappy's block format", err)
	}

	req := &prompb.WriteRequest{}
	if err := req.Unmarshal(data); err != nil {
		return nil, newRequestError(http.StatusBadRequest, ErrIDMalformedProtobuf,
			"the decompressed body is not a prometheus.WriteRequest protobuf (%v); send remote write 1.0", err)
	}
	return req, nil
}

func tooLarge(contentLength int64, limit int) *requestError {
	size := "more than " + fmt.Sprint(limit)
	if contentLength >= 0 {
		size = fmt.Sprint(contentLength)
	}
	return newRequestError(http.StatusRequestEntityTooLarge, ErrIDRequestTooLarge,
		"the request body is %s bytes, over the limit of %d; send fewer samples per request (remote_write queue_config max_samples_per_send) or raise %s",
		size, limit, flagMaxRecvMsgSize)
}

// checkContentHeaders accepts remote write 1.0: Content-Type absent or
// application/x-protobuf (proto=prometheus.WriteRequest if given) and
// Content-Encoding absent or snappy.
func checkContentHeaders(hdr http.Header) *requestError {
	if ct := hdr.Get("Content-Type"); ct != "" {
		mediaType, params, err := mime.ParseMediaType(ct)
		if err != nil || mediaType != contentTypeProtobuf {
			return newRequestError(http.StatusUnsupportedMediaType, ErrIDUnsupportedContentType,
				"Content-Type %q is not supported; send %s (remote write 1.0, a snappy-compressed prometheus.WriteRequest)", ct, contentTypeProtobuf)
		}
		switch proto, ok := params["proto"]; {
		case !ok || proto == protoMsgRW1:
		case proto == protoMsgRW2:
			return newRequestError(http.StatusUnsupportedMediaType, ErrIDRemoteWrite2Unsupported,
				"remote write 2.0 (%s) is not supported, only 1.0 is; set protobuf_message: %s in the remote_write config", protoMsgRW2, protoMsgRW1)
		default:
			return newRequestError(http.StatusUnsupportedMediaType, ErrIDUnsupportedContentType,
				"protobuf message %q is not supported; send %s;proto=%s (remote write 1.0)", proto, contentTypeProtobuf, protoMsgRW1)
		}
	}
	if ce := hdr.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "snappy") {
		return newRequestError(http.StatusUnsupportedMediaType, ErrIDUnsupportedContentEncoding,
			"Content-Encoding %q is not supported; compress the body with snappy and set Content-Encoding: snappy", ce)
	}
	return nil
}

func writeRequestError(w http.ResponseWriter, e *requestError) {
	http.Error(w, e.Error(), e.status)
}
