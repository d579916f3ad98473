package frontend

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"

	"github.com/grafana/dskit/flagext"
)

// Config configures the query-frontend. Per-tenant limits (outstanding
// requests, query parallelism) come through Limits.
type Config struct {
	// DownstreamURL is the querier (or monolith) the frontend sends to;
	// empty: queriers pull work from the frontend's queue (or the
	// scheduler's).
	DownstreamURL string `yaml:"downstream_url"`
	// SchedulerAddress is a query-scheduler to enqueue to instead.
	SchedulerAddress string `yaml:"scheduler_address"`
	// SplitInterval splits range queries at multiples of it; 0 disables.
	SplitInterval time.Duration `yaml:"split_queries_by_interval"`
	// MaxConcurrent is how many downstream requests run at once.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxRetries is how often a 5xx or transport error is retried.
	MaxRetries int `yaml:"max_retries"`
	// CacheResults enables the results cache of range queries.
	CacheResults bool `yaml:"cache_results"`
	// CacheMaxSizeBytes bounds the in-memory results cache.
	CacheMaxSizeBytes flagext.Bytes `yaml:"results_cache_max_size_bytes"`
	// ResultsCache picks where cached results live.
	ResultsCache RemoteCacheConfig `yaml:"results_cache"`
	// MaxCacheFreshness: points newer than now minus this are not cached.
	MaxCacheFreshness time.Duration `yaml:"max_cache_freshness"`
	// LogQueriesLongerThan logs slower queries at warn; 0 disables.
	LogQueriesLongerThan time.Duration `yaml:"log_queries_longer_than"`
	// DownstreamTimeout bounds one downstream request, retries excluded.
	DownstreamTimeout time.Duration `yaml:"downstream_timeout" category:"advanced"`
}

// RegisterFlags registers the flags under the "frontend." prefix.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.DownstreamURL, "frontend.downstream-url", "", "URL of a querier (or monolith) the query-frontend sends queries to over HTTP, e.g. http://querier:8080. Empty (the default): queriers pull queries from the frontend over gRPC (-querier.frontend-address), or from the query-scheduler at -frontend.scheduler-address.")
	f.StringVar(&c.SchedulerAddress, "frontend.scheduler-address", "", "gRPC address (host:port) of a query-scheduler: the query-frontend enqueues queries there, and queriers pull them from it (-querier.scheduler-address). Empty: the frontend queues them itself.")
	f.DurationVar(&c.SplitInterval, "frontend.split-queries-by-interval", 24*time.Hour, "Split range queries at multiples of this interval and run the parts in parallel. 0 disables splitting.")
	f.IntVar(&c.MaxConcurrent, "frontend.max-concurrent", 16, "Most downstream requests the query-frontend has in flight at once with -frontend.downstream-url; further requests wait in the per-tenant fair queue. When queriers pull, their -querier.worker-parallelism bounds this instead.")
	f.IntVar(&c.MaxRetries, "frontend.max-retries", 5, "How many times a downstream request answered 5xx (or not answered, e.g. because the querier running it died) is retried. 4xx answers are never retried. Bounds how many queriers a query of death can crash.")
	f.BoolVar(&c.CacheResults, "frontend.cache-results", true, "Cache range query results per tenant and reuse them for overlapping queries.")
	c.CacheMaxSizeBytes = 256 << 20
	f.Var(&c.CacheMaxSizeBytes, "frontend.results-cache.max-size-bytes", "Most bytes the in-memory results cache holds; the least recently used entries are evicted beyond it.")
	c.ResultsCache.RegisterFlags(f)
	f.DurationVar(&c.MaxCacheFreshness, "frontend.max-cache-freshness", 10*time.Minute, "Points newer than now minus this are never cached, because recent data may still arrive.")
	f.DurationVar(&c.LogQueriesLongerThan, "frontend.log-queries-longer-than", 0, "Log queries that take longer than this at warn level. 0 disables the slow-query log.")
	f.DurationVar(&c.DownstreamTimeout, "frontend.downstream-timeout", 5*time.Minute, "Longest one downstream request may take before it is canceled (and retried).")
}

// Validate checks that the configuration makes sense.
func (c *Config) Validate() error {
	if err := c.ResultsCache.Validate(); err != nil {
		return err
	}
	if c.DownstreamURL != "" {
		u, err := url.Parse(c.DownstreamURL)
		if err != nil {
			return fmt.Errorf("-frontend.downstream-url: %w", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("-frontend.downstream-url must be an http:// or https:// URL with a host, got %q", c.DownstreamURL)
		}
	}
	if c.DownstreamURL != "" && c.SchedulerAddress != "" {
		return errors.New("-frontend.downstream-url and -frontend.scheduler-address exclude each other: set one (or neither, to let queriers pull from the frontend)")
	}
	if c.SplitInterval < 0 {
		return errors.New("-frontend.split-queries-by-interval must not be negative")
	}
	if c.SplitInterval > 0 && c.SplitInterval%time.Millisecond != 0 {
		return errors.New("-frontend.split-queries-by-interval must be a whole number of milliseconds")
	}
	if c.MaxConcurrent <= 0 {
		return errors.New("-frontend.max-concurrent must be positive")
	}
	if c.MaxRetries < 0 {
		return errors.New("-frontend.max-retries must not be negative")
	}
	if c.MaxCacheFreshness < 0 {
		return errors.New("-frontend.max-cache-freshness must not be negative")
	}
	if c.LogQueriesLongerThan < 0 {
		return errors.New("-frontend.log-queries-longer-than must not be negative")
	}
	if c.DownstreamTimeout <= 0 {
		return errors.New("-frontend.downstream-timeout must be positive")
	}
	return nil
}

// TenantLimits are the limits the frontend applies to one tenant.
type TenantLimits struct {
	// MaxOutstanding is how many requests may wait in the tenant's queue;
	// 0 means no limit.
	MaxOutstanding int
	// MaxQueryParallelism is how many sub-queries of one query run at once.
	MaxQueryParallelism int
	// MaxQueryLength rejects longer range queries before splitting; 0 means
	// no limit. The queriers check it too, but only see the parts.
	MaxQueryLength time.Duration
	// MaxPointsPerTimeseries rejects range queries with more points per
	// series before splitting; 0 means Prometheus' 11,000.
	MaxPointsPerTimeseries int
	// MaxQueriers is the tenant's shuffle-shard size among the queriers
	// pulling work; 0 means all. Unused with a downstream URL.
	MaxQueriers int
	// GraphiteStep is the tenant's graphite_step (0 means 1m): Graphite
	// renders are split at multiples of it.
	GraphiteStep time.Duration
	// GraphiteMaxSeriesPerRender and GraphiteMaxPointsPerRender are the
	// tenant's render budget (0: no limit), checked on the merged answer of
	// a split render as the querier checks it on an unsplit one.
	GraphiteMaxSeriesPerRender, GraphiteMaxPointsPerRender int
}

// Limits gives the frontend limits in force for a tenant.
type Limits interface {
	FrontendLimits(tenant string) TenantLimits
}

// LimitsFunc adapts a function to Limits.
type LimitsFunc func(tenant string) TenantLimits

// FrontendLimits calls f.
func (f LimitsFunc) FrontendLimits(tenant string) TenantLimits { return f(tenant) }

// StaticLimits gives every tenant the same limits.
type StaticLimits TenantLimits

// FrontendLimits returns l.
func (l StaticLimits) FrontendLimits(string) TenantLimits { return TenantLimits(l) }
