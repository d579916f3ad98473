// Package frontend is the query-frontend: it sits in front of the queriers
// and splits, caches and fairly queues Prometheus API queries.
//
// It serves /prometheus/api/v1/* and /graphite/render.
//
//   - query_range is aligned to its step grid, split at multiples of
//     -frontend.split-queries-by-interval (default 24h), looked up in the
//     results cache, and only the missing parts are sent downstream. The
//     parts run in parallel, at most the tenant's max query parallelism at a
//     time, each through the per-tenant fair queue, and are merged exactly.
//   - /graphite/render is split and cached the same way when every target
//     is point-wise in time (functions.Pointwise, which the Graphite
//     function registry declares per function; see docs/graphite.md), and
//     proxied as it is otherwise.
//   - Every other endpoint (query, series, labels, ...) goes through the fair
//     queue and is proxied as it is.
//
// Downstream is an executor that New picks once from the configuration: by
// default the queriers that pull work over gRPC from the frontend's own
// queue; with -frontend.scheduler-address, those that pull from a
// query-scheduler's; with -frontend.downstream-url, -frontend.max-concurrent
// in-process workers that pull from the frontend's own queue and send over
// HTTP to that querier or monolith. The queue is scheduler.Queue in every
// case. Either way the tenant of the request context is sent as
// X-Scope-OrgID.
//
// # Splitting
//
// The frontend reads start, end and step with package promtime, the
// parser the querier uses, so both see the same points; it splits on the
// engine's millisecond grid (promtime.Millis) and proxies unsplit what it
// cannot place on it exactly: times or steps finer than a millisecond, and
// times outside the years 1678-2262, such as Prometheus' sentinel MinTime
// and MaxTime. It also applies the querier's checks (end before start,
// points per series, max_query_length) to the same values, so it never
// splits a query the querier would refuse.
//
// A range query has points at start + k*step, k >= 0, up to end. A split
// never moves a point: each sub-query covers the points of one interval
// [n*interval, (n+1)*interval), starts at its first point and ends at its
// last, so the sub-queries partition the original points with no overlap and
// no gap. PromQL evaluates each point independently, so offset, absolute @
// and subqueries give the same answer whichever sub-query evaluates a
// point. `@ start()` and `@ end()` are the exception: they are rewritten to
// the original start and end before splitting. Queries that do not parse,
// that carry parameters the merge cannot honour (limit, stats, ...), or that
// exceed the tenant's max_query_length or max_points_per_timeseries are
// proxied unsplit and uncached, so the querier answers them (or rejects
// them) in its own words. At most the tenant's max query parallelism
// sub-queries of one query are queued or running at a time.
//
// # Merging
//
// Matrix series are concatenated per label set in time order and sorted by
// labels as Prometheus sorts them; warnings and infos are unioned. The first
// sub-query error wins: its status and body are returned as they came.
//
// # Results cache
//
// The key is tenant, query, step, the offset of the step grid (start mod
// step) and lookback_delta. Per key the cache keeps extents: ranges of grid
// points with their series. A request fetches only what no extent covers.
// Points newer than now - -frontend.max-cache-freshness are never stored.
// Warnings and infos are stored per sub-query range ("annotated span") and
// a span is reused only whole, so cached answers carry the annotations an
// uncached one would. A request with
// `Cache-Control: no-store` neither reads nor writes the cache. The default
// store is an in-memory LRU bounded in bytes.
//
// # Queue
//
// Downstream requests (each attempt, retries included) wait in per-tenant
// FIFO queues served round-robin by the pulling queriers' streams (or, with
// a downstream URL, -frontend.max-concurrent workers), so a tenant with many
// queued requests delays another tenant's request by at most a few slots.
// A tenant with max_outstanding_requests_per_tenant requests queued gets
// 429. When the client goes away its queued requests are dropped and its
// in-flight downstream requests canceled;
// meridian_frontend_canceled_requests_total counts them by stage ("queued",
// "in_flight"; with a query-scheduler a request canceled while queued there
// counts as in flight, since the frontend cannot tell). Sub-queries canceled
// because a sibling failed, and timeouts, are not counted.
//
// # Retries and logs
//
// 5xx answers, transport errors and requests whose pulling querier died are
// retried up to -frontend.max-retries times with a short backoff; 4xx
// answers never. A query whose queriers die every time is answered 502
// (ErrIDQueryOfDeath). One log line per query
// (query and query_range) records tenant, query, range, step, duration,
// status, the number of downstream requests and the share of points served
// from cache; queries slower than -frontend.log-queries-longer-than are
// also logged at warn.
package frontend
