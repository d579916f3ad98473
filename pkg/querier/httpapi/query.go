package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/stats"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/util/logging"
	"github.com/meridianhq/meridian/pkg/util/promtime"
)

const (
	// defaultMaxPoints is Prometheus' fixed limit of points per series.
	defaultMaxPoints = 11000
	// maxCachedEngines bounds the engines kept, one per distinct
	// max_samples_per_query value. Values beyond it get a fresh engine per
	// query, without metrics.
	maxCachedEngines = 16
	// engineTimeout is the engine's own timeout; the API sets the real
	// deadline on the context from the tenant's query_timeout.
	engineTimeout = 100 * 365 * 24 * time.Hour
)

// engines holds a PromQL engine per max-samples value: the engine's
// MaxSamples is fixed at construction, and tenants may differ.
type engines struct {
	base prometheus.Registerer
	opts promql.EngineOpts

	mu    sync.Mutex
	byMax map[int]*promql.Engine
}

func newEngines(cfg Config, p parser.Parser, logger log.Logger, reg prometheus.Registerer) *engines {
	interval := cfg.DefaultEvaluationInterval.Milliseconds()
	return &engines{
		base: reg,
		opts: promql.EngineOpts{
			Logger:                   logging.Slog(logger),
			Timeout:                  engineTimeout,
			LookbackDelta:            cfg.LookbackDelta,
			NoStepSubqueryIntervalFn: func(int64) int64 { return interval },
			EnableAtModifier:         true,
			EnableNegativeOffset:     true,
			Parser:                   p,
		},
		byMax: map[int]*promql.Engine{},
	}
}

// get returns the engine for maxSamples. Cached engines export the
// prometheus_engine_* metrics labelled with max_samples.
func (e *engines) get(maxSamples int) *promql.Engine {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ng, ok := e.byMax[maxSamples]; ok {
		return ng
	}
	opts := e.opts
	opts.MaxSamples = maxSamples
	if len(e.byMax) >= maxCachedEngines {
		return promql.NewEngine(opts)
	}
	if e.base != nil {
		opts.Reg = prometheus.WrapRegistererWith(prometheus.Labels{"max_samples": strconv.Itoa(maxSamples)}, e.base)
	}
	ng := promql.NewEngine(opts)
	e.byMax[maxSamples] = ng
	return ng
}

// maxSamples is the engine limit for the tenant; 0 means no limit.
func maxSamples(l limits.Limits) int {
	if l.MaxSamplesPerQuery <= 0 {
		return math.MaxInt
	}
	return l.MaxSamplesPerQuery
}

// queryContext applies the shorter of the timeout parameter and the
// tenant's query_timeout to ctx.
func queryContext(r *http.Request, l limits.Limits) (context.Context, context.CancelFunc, *apiError) {
	timeout := time.Duration(l.QueryTimeout)
	if v := r.FormValue("timeout"); v != "" {
		d, err := promtime.ParseDuration(v)
		if err != nil {
			return nil, nil, invalidParam("timeout", err)
		}
		if d <= 0 {
			return nil, nil, invalidParam("timeout", fmt.Errorf("timeout must be positive, got %s", d))
		}
		if timeout <= 0 || d < timeout {
			timeout = d
		}
	}
	if timeout <= 0 {
		ctx, cancel := context.WithCancel(r.Context())
		return ctx, cancel, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	return ctx, cancel, nil
}

func queryOpts(r *http.Request) (promql.QueryOpts, *apiError) {
	var lookback time.Duration
	if v := r.FormValue("lookback_delta"); v != "" {
		d, err := promtime.ParseDuration(v)
		if err != nil {
			return nil, badData(fmt.Errorf("error parsing lookback delta duration: %w", err))
		}
		lookback = d
	}
	return promql.NewPrometheusQueryOpts(false, lookback, nil), nil
}

// acquire waits for a query slot; release it with a.release.
func (a *API) acquire(ctx context.Context) *apiError {
	start := time.Now()
	defer func() { a.slotWait.Observe(time.Since(start).Seconds()) }()
	select {
	case a.slots <- struct{}{}:
		a.inflight.Inc()
		return nil
	case <-ctx.Done():
		err := fmt.Errorf("query waited for a free slot (-querier.max-concurrent=%d) until: %w", cap(a.slots), context.Cause(ctx))
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &apiError{typ: errorTimeout, err: err}
		}
		return &apiError{typ: errorCanceled, err: err}
	}
}

func (a *API) release() {
	a.inflight.Dec()
	<-a.slots
}

// exec runs a built query within the tenant's limits and returns
// Prometheus' QueryData. The query stays open until the answer is encoded:
// its result lives in pooled memory that Close recycles.
func (a *API) exec(ctx context.Context, r *http.Request, maxSamples, limit int, qry promql.Query, err error) result {
	if err != nil {
		return result{err: constructionError(err)}
	}
	if apiErr := a.acquire(ctx); apiErr != nil {
		qry.Close()
		return result{err: apiErr}
	}
	res := qry.Exec(ctx)
	a.release()
	if res.Err != nil {
		qry.Close()
		return result{err: classify(res.Err, maxSamples), warnings: res.Warnings}
	}
	warnings := res.Warnings
	if limit > 0 && truncate(res, limit) {
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	var qs stats.QueryStats
	if r.FormValue("stats") != "" {
		qs = stats.NewQueryStats(qry.Stats())
	}
	return result{
		data:      &v1.QueryData{ResultType: res.Value.Type(), Result: res.Value, Stats: qs},
		warnings:  warnings,
		finalizer: qry.Close,
	}
}

// constructionError maps an error building a query: a parse error is bad
// data about the query parameter.
func constructionError(err error) *apiError {
	if _, ok := errors.AsType[promql.ErrQueryTimeout](err); ok {
		return classify(err, 0)
	}
	if _, ok := errors.AsType[promql.ErrQueryCanceled](err); ok {
		return classify(err, 0)
	}
	return invalidParam("query", err)
}

func truncate(res *promql.Result, limit int) bool {
	switch v := res.Value.(type) {
	case promql.Matrix:
		if len(v) > limit {
			res.Value = v[:limit]
			return true
		}
	case promql.Vector:
		if len(v) > limit {
			res.Value = v[:limit]
			return true
		}
	}
	return false
}

func (a *API) query(r *http.Request, tenantID string) result {
	limit, apiErr := parseLimit(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	ts, apiErr := parseTimeParam(r, "time", a.now())
	if apiErr != nil {
		return result{err: apiErr}
	}
	lim := a.limits.Limits(tenantID)
	ctx, cancel, apiErr := queryContext(r, lim)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer cancel()
	opts, apiErr := queryOpts(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	ms := maxSamples(lim)
	qry, err := a.engines.get(ms).NewInstantQuery(ctx, a.queryable, opts, r.FormValue("query"), ts)
	return a.exec(ctx, r, ms, limit, qry, err)
}

func (a *API) queryRange(r *http.Request, tenantID string) result {
	limit, apiErr := parseLimit(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	start, err := promtime.ParseTime(r.FormValue("start"))
	if err != nil {
		return result{err: invalidParam("start", err)}
	}
	end, err := promtime.ParseTime(r.FormValue("end"))
	if err != nil {
		return result{err: invalidParam("end", err)}
	}
	if end.Before(start) {
		return result{err: invalidParam("end", errors.New("end timestamp must not be before start time"))}
	}
	step, err := promtime.ParseDuration(r.FormValue("step"))
	if err != nil {
		return result{err: invalidParam("step", err)}
	}
	if step <= 0 {
		return result{err: invalidParam("step", errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"))}
	}

	lim := a.limits.Limits(tenantID)
	maxPoints := lim.MaxPointsPerTimeseries
	if maxPoints <= 0 {
		maxPoints = defaultMaxPoints
	}
	if end.Sub(start)/step > time.Duration(maxPoints) {
		return result{err: badData(fmt.Errorf(
			"exceeded maximum resolution of %s points per timeseries. Try decreasing the query resolution (?step=XX)",
			formatThousands(maxPoints)))}
	}
	if maxLen := time.Duration(lim.MaxQueryLength); maxLen > 0 && end.Sub(start) > maxLen {
		return result{err: badData(fmt.Errorf(
			"the query time range exceeds the limit (query length: %s, limit: %s) (%s). Shorten the time range, or raise the per-tenant limit max_query_length (-querier.max-query-length)",
			end.Sub(start), maxLen, ErrIDMaxQueryLength))}
	}

	ctx, cancel, apiErr := queryContext(r, lim)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer cancel()
	opts, apiErr := queryOpts(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	ms := maxSamples(lim)
	qry, err := a.engines.get(ms).NewRangeQuery(ctx, a.queryable, opts, r.FormValue("query"), start, end, step)
	return a.exec(ctx, r, ms, limit, qry, err)
}

func (a *API) formatQuery(r *http.Request, _ string) result {
	expr, err := a.parser.ParseExpr(r.FormValue("query"))
	if err != nil {
		return result{err: invalidParam("query", err)}
	}
	return result{data: expr.Pretty(0)}
}

// queryExemplars validates like Prometheus and answers no exemplars:
// Meridian does not store exemplars yet.
func (a *API) queryExemplars(r *http.Request, _ string) result {
	start, apiErr := parseTimeParam(r, "start", promtime.MinTime)
	if apiErr != nil {
		return result{err: apiErr}
	}
	end, apiErr := parseTimeParam(r, "end", promtime.MaxTime)
	if apiErr != nil {
		return result{err: apiErr}
	}
	if end.Before(start) {
		return result{err: badData(errors.New("end timestamp must not be before start timestamp"))}
	}
	if _, err := a.parser.ParseExpr(r.FormValue("query")); err != nil {
		return result{err: badData(err)}
	}
	return result{data: []struct{}{}}
}
