package distributor

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/grafana/dskit/limiter"

	"github.com/meridianhq/meridian/pkg/limits"
)

// ErrIDIngestionRateLimited rejects a whole request (HTTP 429) because the
// tenant pushes more samples per second than its ingestion rate limit allows.
// It is also the reason label of meridian_discarded_samples_total for the
// samples of such requests.
const ErrIDIngestionRateLimited = "err-meridian-ingestion-rate-limited"

// Flags named in the rate limit messages.
const (
	flagIngestionRateLimit = "-distributor.ingestion-rate-limit"
	flagIngestionBurstSize = "-distributor.ingestion-burst-size"
)

// rateLimitRecheckPeriod is how often a tenant's limiter picks up changes of
// its limits (runtime config) and of the number of healthy distributors.
const rateLimitRecheckPeriod = 10 * time.Second

// RateLimiter enforces each tenant's ingestion rate in this distributor. The
// tenant's limit is for the whole cluster: each healthy distributor allows
// its share, limit/N, which assumes the load balancer spreads a tenant's
// requests evenly. The burst is not divided, so a single request may carry up
// to the burst size whatever the number of distributors.
type RateLimiter struct {
	limiter *limiter.RateLimiter
	limits  limits.Source
	healthy func() int
}

// NewIngestionRateLimiter returns the limiter of tenants' ingestion rates.
// healthy returns the number of healthy distributors sharing the limits
// (the distributor ring's healthy members); a result below 1 counts as 1.
func NewIngestionRateLimiter(lim limits.Source, healthy func() int) *RateLimiter {
	return &RateLimiter{
		limiter: limiter.NewRateLimiter(ingestionRateStrategy{limits: lim, healthy: healthy}, rateLimitRecheckPeriod),
		limits:  lim,
		healthy: healthy,
	}
}

// AllowN reports whether tenant may push n samples at now, and if so takes
// them from the tenant's budget. Changes of the tenant's limits or of the
// number of distributors apply within rateLimitRecheckPeriod.
func (l *RateLimiter) AllowN(now time.Time, tenant string, n int) bool {
	return l.limiter.AllowN(now, tenant, n)
}

// RejectionMessage explains why AllowN refused samples samples of tenant,
// naming the limit to change. It reads the limits in force now.
func (l *RateLimiter) RejectionMessage(tenant string, samples int) string {
	lim := l.limits.Limits(tenant)
	if lim.IngestionRate > 0 && samples > lim.IngestionBurstSize {
		return BurstExceededError(lim.IngestionBurstSize, samples)
	}
	return RateLimitedError(lim.IngestionRate, healthyCount(l.healthy), samples)
}

// RateLimitedError is the message of a request refused because the tenant
// used up its ingestion rate: limit is the tenant's cluster-wide limit in
// samples/s, distributors how many share it.
func RateLimitedError(limit float64, distributors, samples int) string {
	return fmt.Sprintf("the tenant's ingestion rate limit of %s samples/s (split across %d distributors) was reached while pushing %d samples; reduce the rate or raise %s (per-tenant ingestion_rate)",
		strconv.FormatFloat(limit, 'f', -1, 64), distributors, samples, flagIngestionRateLimit)
}

// BurstExceededError is the message of a request with more samples than the
// tenant's burst size: it can never be accepted, however long it waits.
func BurstExceededError(burst, samples int) string {
	return fmt.Sprintf("the request has %d samples, more than the tenant's ingestion burst size of %d, so it can never be accepted; send fewer samples per request (remote_write queue_config max_samples_per_send) or raise %s (per-tenant ingestion_burst_size)",
		samples, burst, flagIngestionBurstSize)
}

// ingestionRateStrategy gives each tenant's limit and burst in this
// distributor.
type ingestionRateStrategy struct {
	limits  limits.Source
	healthy func() int
}

var _ limiter.RateLimiterStrategy = ingestionRateStrategy{}

// Limit is the tenant's share of its cluster-wide rate; +Inf (rate.Inf) when
// it has no limit.
func (s ingestionRateStrategy) Limit(tenant string) float64 {
	rate := s.limits.Limits(tenant).IngestionRate
	if rate <= 0 {
		return math.MaxFloat64 // rate.Inf: every request is allowed, burst ignored.
	}
	return rate / float64(healthyCount(s.healthy))
}

// Burst is the tenant's burst size, not divided among distributors.
func (s ingestionRateStrategy) Burst(tenant string) int {
	return s.limits.Limits(tenant).IngestionBurstSize
}

func healthyCount(healthy func() int) int {
	if healthy == nil {
		return 1
	}
	return max(1, healthy())
}
