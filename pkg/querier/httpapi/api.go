// Package httpapi serves the Prometheus HTTP query API (/api/v1/query,
// query_range, series, labels, ...) over a storage.Queryable, per tenant.
// Answers are encoded by Prometheus' own JSON codec so that they match
// Prometheus byte for byte; handlers and limits are Meridian's.
//
// Storage errors that mean "try again later" should implement
// `Unavailable() bool` (returning true) or carry a gRPC status Unavailable:
// they are answered 503 with errorType "unavailable".
package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/gorilla/mux"
	"github.com/grafana/dskit/tenant"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/meridianhq/meridian/pkg/limits"
)

// MetadataSource answers /api/v1/metadata for the tenant in ctx.
type MetadataSource interface {
	// MetricsMetadata returns the metadata of metric, or of all metrics when
	// metric is empty. limit, when positive, is the number of distinct metric
	// names wanted; the API enforces it again, so more is harmless.
	MetricsMetadata(ctx context.Context, metric string, limit int) ([]prompb.MetricMetadata, error)
}

// BuildInfo is what /api/v1/status/buildinfo reports.
type BuildInfo struct {
	Version, Revision, Branch, BuildUser, BuildDate, GoVersion string
	// Features tells clients which APIs the cluster has, as Mimir does:
	// Grafana manages rules through the ruler's API when
	// features.ruler_config_api is "true".
	Features map[string]string
}

// buildInfo is Prometheus' buildinfo answer plus Mimir's features.
type buildInfo struct {
	*v1.PrometheusVersion
	Features map[string]string `json:"features,omitempty"`
}

// API serves the Prometheus HTTP API.
type API struct {
	cfg       Config
	queryable storage.Queryable
	metadata  MetadataSource
	limits    limits.Source
	buildInfo buildInfo
	logger    log.Logger
	parser    parser.Parser
	engines   *engines
	slots     chan struct{}
	now       func() time.Time

	requests *prometheus.CounterVec
	inflight prometheus.Gauge
	slotWait prometheus.Histogram
}

// New returns an API over q. cfg must have passed Validate.
func New(cfg Config, q storage.Queryable, md MetadataSource, lim limits.Source, bi BuildInfo, logger log.Logger, reg prometheus.Registerer) *API {
	p := parser.NewParser(parser.Options{})
	a := &API{
		cfg:       cfg,
		queryable: q,
		metadata:  md,
		limits:    lim,
		buildInfo: buildInfo{PrometheusVersion: &v1.PrometheusVersion{
			Version:   bi.Version,
			Revision:  bi.Revision,
			Branch:    bi.Branch,
			BuildUser: bi.BuildUser,
			BuildDate: bi.BuildDate,
			GoVersion: bi.GoVersion,
		}, Features: bi.Features},
		logger:  logger,
		parser:  p,
		engines: newEngines(cfg, p, logger, reg),
		slots:   make(chan struct{}, max(cfg.MaxConcurrent, 1)),
		now:     time.Now,
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_querier_queries_total",
			Help: "Prometheus API requests answered, by endpoint and status (success or the Prometheus error type).",
		}, []string{"endpoint", "status"}),
		inflight: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "meridian_querier_queries_inflight",
			Help: "PromQL queries being evaluated now.",
		}),
		slotWait: promauto.With(reg).NewHistogram(prometheus.HistogramOpts{
			Name:                            "meridian_querier_query_slot_wait_seconds",
			Help:                            "Time PromQL queries waited for one of the -querier.max-concurrent slots.",
			Buckets:                         prometheus.ExponentialBuckets(0.001, 4, 8),
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}),
	}
	return a
}

// Register adds the endpoints to r, relative to it: the caller mounts r
// under /prometheus.
func (a *API) Register(r *mux.Router) {
	routes := []struct {
		path, endpoint string
		fn             handlerFunc
	}{
		{"/api/v1/query", "query", a.query},
		{"/api/v1/query_range", "query_range", a.queryRange},
		{"/api/v1/series", "series", a.series},
		{"/api/v1/labels", "labels", a.labelNames},
		{"/api/v1/label/{name}/values", "label_values", a.labelValues},
		{"/api/v1/metadata", "metadata", a.metricMetadata},
		{"/api/v1/query_exemplars", "query_exemplars", a.queryExemplars},
		{"/api/v1/status/buildinfo", "buildinfo", a.serveBuildInfo},
		{"/api/v1/format_query", "format_query", a.formatQuery},
	}
	for _, rt := range routes {
		r.Path(rt.path).Methods(http.MethodGet, http.MethodPost).Handler(a.wrap(rt.endpoint, rt.fn))
	}
}

// result is what a handler answers: data or an error, warnings either way.
type result struct {
	data     any
	err      *apiError
	warnings annotations.Annotations
	// finalizer, when set, runs after the answer is written.
	finalizer func()
}

type handlerFunc func(r *http.Request, tenantID string) result

func (a *API) wrap(endpoint string, fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := tenant.TenantID(r.Context())
		if err != nil {
			a.respondError(w, r, endpoint, "", &apiError{
				typ:  errorBadData,
				err:  fmt.Errorf("no valid tenant in the request (%s): %w; send the header \"X-Scope-OrgID: <tenant>\"", ErrIDMissingTenant, err),
				code: http.StatusUnauthorized,
			})
			return
		}
		if err := r.ParseForm(); err != nil {
			a.respondError(w, r, endpoint, tenantID, badData(fmt.Errorf("error parsing form values: %w", err)))
			return
		}
		res := fn(r, tenantID)
		if res.finalizer != nil {
			defer res.finalizer()
		}
		if res.err != nil {
			a.respondError(w, r, endpoint, tenantID, res.err)
			return
		}
		a.respond(w, r, endpoint, res)
	})
}

func (a *API) respond(w http.ResponseWriter, r *http.Request, endpoint string, res result) {
	warnings, infos := res.warnings.AsStrings(r.FormValue("query"), 10, 10)
	b, err := v1.JSONCodec{}.Encode(&v1.Response{
		Status:   "success",
		Data:     res.data,
		Warnings: warnings,
		Infos:    infos,
	})
	if err != nil {
		level.Error(a.logger).Log("msg", "encode response", "endpoint", endpoint, "err", err)
		a.requests.WithLabelValues(endpoint, errorInternal).Inc()
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.requests.WithLabelValues(endpoint, "success").Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (a *API) respondError(w http.ResponseWriter, r *http.Request, endpoint, tenantID string, apiErr *apiError) {
	code := apiErr.statusCode()
	a.requests.WithLabelValues(endpoint, apiErr.typ).Inc()
	if (code >= 500 && code != http.StatusServiceUnavailable) || apiErr.typ == errorUnavailable {
		level.Warn(a.logger).Log("msg", "query API request did not succeed", "endpoint", endpoint, "tenant", tenantID,
			"query", r.FormValue("query"), "status", code, "err", apiErr.err)
	}
	b, err := v1.JSONCodec{}.Encode(&v1.Response{
		Status:    "error",
		ErrorType: apiErr.typ,
		Error:     apiErr.err.Error(),
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func (a *API) serveBuildInfo(*http.Request, string) result {
	return result{data: a.buildInfo}
}
