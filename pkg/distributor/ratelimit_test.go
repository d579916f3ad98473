package distributor

import (
	"flag"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/limits"
)

// fakeLimits gives each tenant its own limits, or the defaults.
type fakeLimits struct {
	defaults limits.Limits
	tenants  map[string]limits.Limits
}

func (f *fakeLimits) Limits(tenant string) limits.Limits {
	if l, ok := f.tenants[tenant]; ok {
		return l
	}
	return f.defaults
}

func rateLimits(rate float64, burst int) limits.Limits {
	return limits.Limits{IngestionRate: rate, IngestionBurstSize: burst}
}

func fixedHealthy(n int) func() int { return func() int { return n } }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestIngestionRateLimiterSplitsTheLimitAcrossDistributors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		healthy   func() int
		wantShare int
	}{
		{name: "one distributor", healthy: fixedHealthy(1), wantShare: 300},
		{name: "three distributors", healthy: fixedHealthy(3), wantShare: 100},
		{name: "no healthy distributor counts as one", healthy: fixedHealthy(0), wantShare: 300},
		{name: "no ring", healthy: nil, wantShare: 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewIngestionRateLimiter(&fakeLimits{defaults: rateLimits(300, 1000)}, tc.healthy)
			require.InDelta(t, float64(tc.wantShare), l.limiter.Limit(t0, "team-a"), 1e-9)
			require.Equal(t, 1000, l.limiter.Burst(t0, "team-a"), "the burst is not divided")

			// The burst is available at once, then the share refills each second.
			require.True(t, l.AllowN(t0, "team-a", 1000))
			require.False(t, l.AllowN(t0, "team-a", 1))
			t1 := t0.Add(time.Second)
			require.True(t, l.AllowN(t1, "team-a", tc.wantShare))
			require.False(t, l.AllowN(t1, "team-a", 1))
		})
	}
}

func TestIngestionRateLimiterBurst(t *testing.T) {
	l := NewIngestionRateLimiter(&fakeLimits{defaults: rateLimits(10, 500)}, fixedHealthy(3))
	require.False(t, l.AllowN(t0, "team-a", 501), "a request over the burst never passes")
	require.False(t, l.AllowN(t0.Add(time.Hour), "team-a", 501))
	require.True(t, l.AllowN(t0.Add(time.Hour), "team-a", 500))
	require.True(t, strings.HasPrefix(l.RejectionMessage("team-a", 501), "the request has 501 samples, more than the tenant's ingestion burst size of 500"))
	require.True(t, strings.HasPrefix(l.RejectionMessage("team-a", 20), "the tenant's ingestion rate limit of 10 samples/s (split across 3 distributors)"))
}

func TestIngestionRateLimiterPerTenantOverrides(t *testing.T) {
	lim := &fakeLimits{
		defaults: rateLimits(100, 100),
		tenants: map[string]limits.Limits{
			"big":       rateLimits(1000, 5000),
			"unlimited": rateLimits(0, 0),
		},
	}
	l := NewIngestionRateLimiter(lim, fixedHealthy(2))
	require.InDelta(t, 50.0, l.limiter.Limit(t0, "small"), 1e-9)
	require.InDelta(t, 500.0, l.limiter.Limit(t0, "big"), 1e-9)
	require.Equal(t, 5000, l.limiter.Burst(t0, "big"))

	require.False(t, l.AllowN(t0, "small", 101))
	require.True(t, l.AllowN(t0, "big", 5000))
	for i := 0; i < 3; i++ {
		require.True(t, l.AllowN(t0, "unlimited", 1_000_000_000), "0 means no limit")
	}
	// Tenants have their own budgets.
	require.True(t, l.AllowN(t0, "small", 100))
	require.False(t, l.AllowN(t0, "small", 1))
	require.True(t, l.AllowN(t0, "other", 100))
}

func TestIngestionRateLimiterFollowsChanges(t *testing.T) {
	lim := &fakeLimits{defaults: rateLimits(600, 1000)}
	var healthy atomic.Int64
	healthy.Store(1)
	l := NewIngestionRateLimiter(lim, func() int { return int(healthy.Load()) })
	require.InDelta(t, 600.0, l.limiter.Limit(t0, "team-a"), 1e-9)

	healthy.Store(3)
	require.InDelta(t, 600.0, l.limiter.Limit(t0.Add(time.Second), "team-a"), 1e-9, "rechecked only every period")
	require.InDelta(t, 200.0, l.limiter.Limit(t0.Add(rateLimitRecheckPeriod), "team-a"), 1e-9, "two more distributors share the limit")

	lim.defaults = rateLimits(0, 0)
	t2 := t0.Add(2 * rateLimitRecheckPeriod)
	require.True(t, l.AllowN(t2, "team-a", 1_000_000_000), "a limit lifted at runtime")
}

func TestRateLimitedErrorMessage(t *testing.T) {
	require.Equal(t,
		"the tenant's ingestion rate limit of 200000 samples/s (split across 3 distributors) was reached while pushing 5000 samples; reduce the rate or raise -distributor.ingestion-rate-limit (per-tenant ingestion_rate)",
		RateLimitedError(200000, 3, 5000))
	require.Contains(t, RateLimitedError(1.5, 1, 2), "limit of 1.5 samples/s")
	require.Equal(t,
		"the request has 3000 samples, more than the tenant's ingestion burst size of 2000, so it can never be accepted; send fewer samples per request (remote_write queue_config max_samples_per_send) or raise -distributor.ingestion-burst-size (per-tenant ingestion_burst_size)",
		BurstExceededError(2000, 3000))
}

// The limiter relies on the limits' invariants: a set rate comes with a burst.
func TestIngestionLimitsDefaultsAndValidation(t *testing.T) {
	var l limits.Limits
	l.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	require.Equal(t, 1000000.0, l.IngestionRate)
	require.Equal(t, 2000000, l.IngestionBurstSize)
	require.NoError(t, l.Validate())

	for _, tc := range []struct {
		name    string
		rate    float64
		burst   int
		wantErr string
	}{
		{name: "unlimited", rate: 0, burst: 0},
		{name: "negative rate", rate: -1, burst: 10, wantErr: "ingestion_rate must be a non-negative number"},
		{name: "infinite rate", rate: math.Inf(1), burst: 10, wantErr: "ingestion_rate must be a non-negative number"},
		{name: "NaN rate", rate: math.NaN(), burst: 10, wantErr: "ingestion_rate must be a non-negative number"},
		{name: "rate without burst", rate: 10, burst: 0, wantErr: "ingestion_burst_size must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := l
			c.IngestionRate, c.IngestionBurstSize = tc.rate, tc.burst
			if tc.wantErr == "" {
				require.NoError(t, c.Validate())
				return
			}
			require.ErrorContains(t, c.Validate(), tc.wantErr)
		})
	}
}
