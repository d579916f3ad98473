package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/tenant"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/scheduler"
	"github.com/meridianhq/meridian/pkg/util/promtime"
)

// ErrIDMaxOutstanding is the stable ID of the 429 a tenant gets when its
// queue is full; docs/ has a section for it.
const ErrIDMaxOutstanding = "err-meridian-max-outstanding-requests-per-tenant"

// ErrIDQueryOfDeath is the stable ID of the 502 a query gets when the
// queriers running it kept dying until the retries ran out.
const ErrIDQueryOfDeath = "err-meridian-query-of-death"

// defaultMaxPoints is Prometheus' fixed limit of points per series.
const defaultMaxPoints = 11000

// Frontend splits, caches and queues Prometheus API requests in front of
// the queriers.
type Frontend struct {
	services.Service

	cfg    Config
	limits Limits
	logger log.Logger
	exec   executor
	// queueServer serves the frontend's queue to pulling queriers; nil
	// unless they pull from this frontend.
	queueServer meridianpb.QueryQueueServer
	parser      parser.Parser
	cache       extentCache  // nil when caching is off
	remoteCache *remoteCache // the shared backend, stopped with the frontend
	now         func() time.Time

	requests           *prometheus.CounterVec
	duration           *prometheus.HistogramVec
	downstreamDuration *prometheus.HistogramVec
	retries            prometheus.Counter
	rejected           *prometheus.CounterVec
	splitQueries       prometheus.Counter
	cacheHits          prometheus.Counter
	cacheMisses        prometheus.Counter
	canceled           *prometheus.CounterVec
	queriersGone       prometheus.Counter
	graphiteUnsplit    *prometheus.CounterVec
	graphiteRefetched  prometheus.Counter
}

// New returns a frontend. With cfg.DownstreamURL it sends to that URL over
// HTTP; with cfg.SchedulerAddress it enqueues to that query-scheduler;
// with neither it queues requests itself for the queriers that connect to
// QueueServer. cfg must have passed Validate. Its workers run while the
// service runs.
func New(cfg Config, lim Limits, logger log.Logger, reg prometheus.Registerer) (*Frontend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Frontend{
		cfg:    cfg,
		limits: lim,
		logger: logger,
		parser: parser.NewParser(parser.Options{}),
		now:    time.Now,
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_frontend_requests_total",
			Help: "Prometheus API requests answered by the query-frontend, by endpoint and HTTP status code.",
		}, []string{"endpoint", "status_code"}),
		duration: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "meridian_frontend_request_duration_seconds",
			Help:                            "Time the query-frontend took to answer, queueing included, by endpoint.",
			Buckets:                         prometheus.ExponentialBuckets(0.005, 4, 9),
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"endpoint"}),
		downstreamDuration: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "meridian_frontend_downstream_request_duration_seconds",
			Help:                            "Time of each request from the query-frontend to a querier, by HTTP status code (\"error\" when no answer came).",
			Buckets:                         prometheus.ExponentialBuckets(0.005, 4, 9),
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"status_code"}),
		retries: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "meridian_frontend_retries_total",
			Help: "Downstream requests retried after a 5xx answer or a transport error.",
		}),
		rejected: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_frontend_rejected_requests_total",
			Help: "Requests the query-frontend rejected before sending them downstream, by reason.",
		}, []string{"reason"}),
		splitQueries: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "meridian_frontend_split_queries_total",
			Help: "Sub-queries sent downstream for range queries and split Graphite renders, after splitting and cache lookup.",
		}),
		cacheHits: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "meridian_frontend_cache_hits_total",
			Help: "Parts of range queries and split Graphite renders answered from the results cache.",
		}),
		cacheMisses: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "meridian_frontend_cache_misses_total",
			Help: "Parts of range queries and split Graphite renders the results cache did not hold, fetched downstream.",
		}),
	}
	f.rejected.WithLabelValues("too_many_outstanding")
	f.canceled = promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "meridian_frontend_canceled_requests_total",
		Help: "Downstream requests abandoned because the client went away, by stage: \"queued\" (dropped from the queue before running) or \"in_flight\" (the request to the querier was canceled).",
	}, []string{"stage"})
	f.queriersGone = promauto.With(reg).NewCounter(prometheus.CounterOpts{
		Name: "meridian_frontend_querier_gone_total",
		Help: "Downstream requests whose pulling querier died or disconnected before answering; each is retried while -frontend.max-retries allows.",
	})
	for _, st := range []string{"queued", "in_flight"} {
		f.canceled.WithLabelValues(st)
	}
	f.graphiteUnsplit = promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "meridian_frontend_graphite_unsplit_renders_total",
		Help: "Graphite renders the query-frontend answered unsplit and uncached, by reason: \"not_pointwise\" (a target uses a function that is not point-wise in time, or parameters the split cannot honour), \"part_refused\" (the querier refused a part with a 4xx) or \"series_differ\" (the parts fetched different series).",
	}, []string{"reason"})
	f.graphiteRefetched = promauto.With(reg).NewCounter(prometheus.CounterOpts{
		Name: "meridian_frontend_graphite_refetched_targets_total",
		Help: "Targets of split Graphite renders whose cached parts held other series than the render's range (series came or went) and were fetched again whole.",
	})
	for _, r := range []string{"not_pointwise", "part_refused", "series_differ"} {
		f.graphiteUnsplit.WithLabelValues(r)
	}
	switch {
	case cfg.DownstreamURL != "":
		d, err := newHTTPDownstream(cfg, f.downstreamDuration, reg)
		if err != nil {
			return nil, err
		}
		f.exec = d
	case cfg.SchedulerAddress != "":
		c, err := scheduler.NewClient(cfg.SchedulerAddress)
		if err != nil {
			return nil, err
		}
		f.exec = &pulled{queue: c, close: c.Close, timeout: cfg.DownstreamTimeout, duration: f.downstreamDuration}
	default:
		q := scheduler.NewQueue(scheduler.NewQueueMetrics(reg))
		f.queueServer = scheduler.Server{Queue: q}
		f.exec = &pulled{queue: q, close: q.Close, timeout: cfg.DownstreamTimeout, duration: f.downstreamDuration}
	}
	if cfg.CacheResults {
		if cfg.ResultsCache.Backend == CacheBackendInMemory {
			f.cache = newResultsCache(int(min(uint64(cfg.CacheMaxSizeBytes), math.MaxInt)), reg)
		} else {
			rc, err := newRemoteCache(cfg.ResultsCache, logger, reg)
			if err != nil {
				return nil, err
			}
			f.cache, f.remoteCache = rc, rc
		}
	}
	f.Service = services.NewBasicService(f.starting, f.running, f.stopping)
	return f, nil
}

// QueueServer is the gRPC service queriers pull work from; false when the
// frontend sends to a downstream URL or to a query-scheduler.
func (f *Frontend) QueueServer() (meridianpb.QueryQueueServer, bool) {
	return f.queueServer, f.queueServer != nil
}

func (f *Frontend) starting(context.Context) error {
	f.exec.start()
	return nil
}

func (f *Frontend) running(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func (f *Frontend) stopping(error) error {
	start := time.Now()
	if f.remoteCache != nil {
		defer f.remoteCache.stop()
	}
	f.exec.stop()
	level.Info(f.logger).Log("msg", "query-frontend stopped", "duration", time.Since(start))
	return nil
}

// Handler serves /prometheus/api/v1/* (any prefix ending in /api/v1/<endpoint>
// is passed on unchanged). The tenant must be in the request context.
func (f *Frontend) Handler() http.Handler { return http.HandlerFunc(f.serveHTTP) }

func (f *Frontend) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	endpoint := endpointOf(r.URL.Path)
	var ans *answer
	ql := queryLog{endpoint: endpoint}
	tenantID, err := tenant.TenantID(r.Context())
	switch {
	case err != nil:
		ans = errorAnswer(http.StatusUnauthorized, "bad_data", fmt.Sprintf("no valid tenant in the request: %v; send the header \"X-Scope-OrgID: <tenant>\"", err))
	case f.State() != services.Running:
		ans = errorAnswer(http.StatusServiceUnavailable, "unavailable", "the query-frontend is not running (state "+f.State().String()+")")
	default:
		if err := r.ParseForm(); err != nil {
			ans = errorAnswer(http.StatusBadRequest, "bad_data", "error parsing form values: "+err.Error())
			break
		}
		ql.tenant = tenantID
		lim := f.limits.FrontendLimits(tenantID)
		ds := downstreamRequest{tenant: tenantID, method: r.Method, path: r.URL.Path, form: r.Form, auth: r.Header.Get("Authorization"),
			maxOutstanding: lim.MaxOutstanding, maxQueriers: lim.MaxQueriers}
		if ds.method != http.MethodGet {
			ds.method = http.MethodPost
		}
		switch endpoint {
		case "query_range":
			ans = f.queryRange(r, ds, lim, &ql)
		case "graphite_render":
			ans = f.graphiteRender(r, ds, lim, &ql)
		default:
			ans = f.proxy(r.Context(), ds)
			ql.downstream = 1
		}
	}
	if endpoint == "graphite_render" && ans.msg != "" {
		// The Graphite API answers errors in plain text.
		ans = plainErrorAnswer(ans.status, ans.msg)
	}
	for k, v := range ans.header {
		w.Header()[k] = v
	}
	w.WriteHeader(ans.status)
	_, _ = w.Write(ans.body)

	took := time.Since(start)
	f.requests.WithLabelValues(endpoint, strconv.Itoa(ans.status)).Inc()
	f.duration.WithLabelValues(endpoint).Observe(took.Seconds())
	if endpoint == "query" || endpoint == "query_range" || endpoint == "graphite_render" {
		f.logQuery(r, ql, ans.status, took)
	}
}

// endpointOf names the API endpoint of path, for metrics and logs.
func endpointOf(path string) string {
	if strings.HasSuffix(path, "/graphite/render") {
		return "graphite_render"
	}
	i := strings.Index(path, "/api/v1/")
	if i < 0 {
		return "other"
	}
	ep := path[i+len("/api/v1/"):]
	if strings.HasPrefix(ep, "label/") && strings.HasSuffix(ep, "/values") {
		return "label_values"
	}
	switch ep {
	case "query", "query_range", "series", "labels", "metadata", "query_exemplars", "status/buildinfo", "format_query":
		return ep
	}
	return "other"
}

// proxy forwards the request as it is.
func (f *Frontend) proxy(ctx context.Context, ds downstreamRequest) *answer {
	return f.roundTrip(ctx, ds)
}

func tooManyOutstanding(tenantID string, limit int) *answer {
	return errorAnswer(http.StatusTooManyRequests, "too_many_requests", fmt.Sprintf(
		"too many outstanding requests for tenant %s in the query-frontend queue (limit: %d) (%s). Send fewer queries at once, or raise the per-tenant limit max_outstanding_requests_per_tenant (-frontend.max-outstanding-requests-per-tenant)",
		tenantID, limit, ErrIDMaxOutstanding))
}

// errSiblingFailed cancels the other sub-queries of a range query when one
// fails; unlike a client disconnect it is not counted as a cancellation.
var errSiblingFailed = errors.New("another sub-query of the range query failed")

// clientGone reports whether ctx was canceled because the client went away
// (rather than by a timeout or by a failed sibling sub-query).
func clientGone(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled)
}

// splittableParams are the range query parameters the split and the cache
// honour; a request with any other is proxied as it is.
var splittableParams = map[string]bool{"query": true, "start": true, "end": true, "step": true, "timeout": true, "lookback_delta": true}

// rangeQuery is a parsed range query, times in Unix milliseconds.
type rangeQuery struct {
	query             string
	start, end, step  int64
	lookback, timeout string
}

// parseRangeQuery reads a range query the frontend may split; false means
// proxy it unchanged (the querier then answers any error in its own words).
// It reads and checks start, end and step as the querier does (package
// promtime), so it splits exactly the queries the querier would run. The
// split works on the engine's millisecond grid: times and steps finer than
// a millisecond, and times whose milliseconds the engine does not compute
// exactly (such as promtime.MinTime and MaxTime), are left to the querier.
func (f *Frontend) parseRangeQuery(form url.Values, lim TenantLimits) (rangeQuery, bool) {
	for k := range form {
		if !splittableParams[k] {
			return rangeQuery{}, false
		}
	}
	startT, err1 := promtime.ParseTime(form.Get("start"))
	endT, err2 := promtime.ParseTime(form.Get("end"))
	stepD, err3 := promtime.ParseDuration(form.Get("step"))
	if err1 != nil || err2 != nil || err3 != nil || endT.Before(startT) || stepD <= 0 {
		return rangeQuery{}, false
	}
	maxPoints := lim.MaxPointsPerTimeseries
	if maxPoints <= 0 {
		maxPoints = defaultMaxPoints
	}
	if endT.Sub(startT)/stepD > time.Duration(maxPoints) {
		return rangeQuery{}, false
	}
	if lim.MaxQueryLength > 0 && endT.Sub(startT) > lim.MaxQueryLength {
		return rangeQuery{}, false
	}
	start, ok1 := promtime.Millis(startT)
	end, ok2 := promtime.Millis(endT)
	step, ok3 := promtime.DurationMillis(stepD)
	if !ok1 || !ok2 || !ok3 {
		return rangeQuery{}, false
	}
	expr, err := f.parser.ParseExpr(form.Get("query"))
	if err != nil {
		return rangeQuery{}, false
	}
	q := form.Get("query")
	if rewriteStartEnd(expr, start, end) {
		q = expr.String()
	}
	return rangeQuery{
		query: q, start: start, end: lastPoint(start, end, step), step: step,
		lookback: form.Get("lookback_delta"), timeout: form.Get("timeout"),
	}, true
}

// cacheKey names the extents of q for tenantID. The points of every
// request with this key lie on one grid.
func (q rangeQuery) cacheKey(tenantID string) string {
	return strings.Join([]string{tenantID, strconv.FormatInt(q.step, 10), strconv.FormatInt(floorMod(q.start, q.step), 10), q.lookback, q.query}, "\x00")
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// queryRange answers a range query from the cache and split sub-queries.
func (f *Frontend) queryRange(r *http.Request, ds downstreamRequest, lim TenantLimits, ql *queryLog) *answer {
	ctx := r.Context()
	q, ok := f.parseRangeQuery(r.Form, lim)
	if !ok {
		ql.downstream = 1
		return f.proxy(ctx, ds)
	}
	ql.points = (q.end-q.start)/q.step + 1
	useCache := f.cache != nil && !noStore(r.Header)
	key := q.cacheKey(ds.tenant)

	var parts []part
	gaps := []timeRange{{q.start, q.end}}
	var cached []extent
	if useCache {
		cached = f.cache.get(ctx, key)
		parts, gaps = lookup(timeRange{q.start, q.end}, cached, q.step)
		f.cacheHits.Add(float64(len(parts)))
		f.cacheMisses.Add(float64(len(gaps)))
		for _, p := range parts {
			ql.cachedPoints += (p.r.end-p.r.start)/q.step + 1
		}
	}
	var jobs []timeRange
	for _, g := range gaps {
		jobs = append(jobs, splitByInterval(g.start, g.end, q.step, f.cfg.SplitInterval.Milliseconds())...)
	}
	ql.downstream = len(jobs)
	f.splitQueries.Add(float64(len(jobs)))

	fetched, fail := f.runParallel(ctx, ds, q, lim, jobs)
	if fail != nil {
		return fail
	}
	parts = append(parts, fetched...)
	sortParts(parts)
	ms := make([]model.Matrix, len(parts))
	var warnings, infos []string
	for i, p := range parts {
		ms[i] = p.m
		warnings = union(warnings, p.warnings)
		infos = union(infos, p.infos)
	}
	merged := concat(ms...)

	if useCache && len(jobs) > 0 {
		if e, ok := newExtent(q, merged, fetched, f.now().Add(-f.cfg.MaxCacheFreshness).UnixMilli()); ok {
			f.cache.add(ctx, key, cached, e, q.step)
		}
	}
	b, err := json.Marshal(apiResponse{
		Status:   "success",
		Data:     &matrixData{ResultType: "matrix", Result: merged},
		Warnings: warnings,
		Infos:    infos,
	})
	if err != nil {
		return errorAnswer(http.StatusInternalServerError, "internal", "encode the merged answer: "+err.Error())
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return &answer{status: http.StatusOK, header: h, body: b}
}

// newExtent is what the cache keeps of an answer to q: its points up to
// cutoff, with the annotations of the fetched sub-queries. A sub-query with
// annotations that reaches past cutoff ends the extent before it, since its
// annotations may come from points that are not cached.
func newExtent(q rangeQuery, merged model.Matrix, fetched []part, cutoff int64) (extent, bool) {
	end := min(q.end, cutoff)
	var ann []annSpan
	for _, p := range fetched {
		if len(p.warnings) == 0 && len(p.infos) == 0 {
			continue
		}
		if p.r.end > cutoff {
			end = min(end, p.r.start-q.step)
			continue
		}
		ann = append(ann, annSpan{timeRange: p.r, warnings: p.warnings, infos: p.infos})
	}
	if end < q.start {
		return extent{}, false
	}
	rng := timeRange{q.start, lastPoint(q.start, end, q.step)}
	var kept []annSpan
	for _, a := range ann {
		if a.end <= rng.end {
			kept = append(kept, a)
		}
	}
	return extent{timeRange: rng, m: extract(merged, rng), ann: kept}, true
}

// noStore reports whether the client asked not to use caches.
func noStore(h http.Header) bool {
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-store") {
				return true
			}
		}
	}
	return false
}

func sortParts(ps []part) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].r.start < ps[j-1].r.start; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// runParallel runs the sub-queries, at most the tenant's max query
// parallelism at a time. The first failure cancels the rest and is returned.
func (f *Frontend) runParallel(ctx context.Context, ds downstreamRequest, q rangeQuery, lim TenantLimits, jobs []timeRange) ([]part, *answer) {
	parts := make([]part, len(jobs))
	fail := runJobs(ctx, lim.MaxQueryParallelism, len(jobs), func(ctx context.Context, i int) *answer {
		resp, a := f.fetchRange(ctx, ds, q, jobs[i])
		if a != nil {
			return a
		}
		parts[i] = part{r: jobs[i], m: resp.Data.Result, warnings: resp.Warnings, infos: resp.Infos}
		return nil
	})
	return parts, fail
}

// runJobs runs fn(ctx, i) for every i < n, at most par (at least 1) at a
// time. The first job that answers non-nil cancels the others (with
// errSiblingFailed) and its answer is returned; a canceled ctx gives the
// canceled answer.
func runJobs(ctx context.Context, par, n int, fn func(ctx context.Context, i int) *answer) *answer {
	ctx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(errSiblingFailed) }
	defer cancel()
	sem := make(chan struct{}, max(par, 1))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		fail *answer
	)
	setFail := func(a *answer) {
		mu.Lock()
		defer mu.Unlock()
		if fail == nil {
			fail = a
			cancel()
		}
	}
loop:
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if a := fn(ctx, i); a != nil {
				setFail(a)
			}
		})
	}
	wg.Wait()
	if fail == nil && ctx.Err() != nil {
		fail = canceledAnswer(ctx)
	}
	return fail
}

// fetchRange runs q for the points of r downstream.
func (f *Frontend) fetchRange(ctx context.Context, ds downstreamRequest, q rangeQuery, r timeRange) (*apiResponse, *answer) {
	form := url.Values{}
	form.Set("query", q.query)
	form.Set("start", promtime.FormatMillis(r.start))
	form.Set("end", promtime.FormatMillis(r.end))
	form.Set("step", promtime.FormatDurationMillis(q.step))
	if q.lookback != "" {
		form.Set("lookback_delta", q.lookback)
	}
	if q.timeout != "" {
		form.Set("timeout", q.timeout)
	}
	ds.method, ds.form = http.MethodPost, form
	ans := f.roundTrip(ctx, ds)
	if ans.status != http.StatusOK {
		return nil, ans
	}
	var resp apiResponse
	if err := json.Unmarshal(ans.body, &resp); err != nil || resp.Status != "success" || resp.Data == nil || resp.Data.ResultType != "matrix" {
		msg := "the querier's answer to a range query is not a matrix"
		if err != nil {
			msg = "decode the querier's answer: " + err.Error()
		}
		return nil, errorAnswer(http.StatusBadGateway, "internal", msg)
	}
	return &resp, nil
}

// queryLog is what the query log line reports.
type queryLog struct {
	tenant, endpoint string
	downstream       int
	points           int64
	cachedPoints     int64
}

func (f *Frontend) logQuery(r *http.Request, ql queryLog, status int, took time.Duration) {
	kv := []any{"msg", "query", "tenant", ql.tenant, "endpoint", ql.endpoint}
	switch ql.endpoint {
	case "graphite_render":
		kv = append(kv, "query", strings.Join(r.Form["target"], "; "), "from", r.FormValue("from"), "until", r.FormValue("until"))
	case "query_range":
		kv = append(kv, "query", r.FormValue("query"))
		kv = append(kv, "start", r.FormValue("start"), "end", r.FormValue("end"), "step", r.FormValue("step"))
	default:
		kv = append(kv, "query", r.FormValue("query"), "time", r.FormValue("time"))
	}
	share := 0.0
	if ql.points > 0 {
		share = float64(ql.cachedPoints) / float64(ql.points)
	}
	kv = append(kv, "duration", took, "status", status, "split_queries", ql.downstream, "cache_hit_share", strconv.FormatFloat(share, 'f', 3, 64))
	level.Info(f.logger).Log(kv...)
	if f.cfg.LogQueriesLongerThan > 0 && took > f.cfg.LogQueriesLongerThan {
		kv[1] = "slow query"
		kv = append(kv, "threshold", f.cfg.LogQueriesLongerThan)
		level.Warn(f.logger).Log(kv...)
	}
}
