package httpapi

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "0", want: time.Unix(0, 0).UTC()},
		{in: "1700000000.123", want: time.Unix(1700000000, 123*int64(time.Millisecond)).UTC()},
		{in: "1700000000.1234", want: time.Unix(1700000000, 123*int64(time.Millisecond)).UTC()},
		{in: "2026-01-02T03:04:05Z", want: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{in: "2026-01-02T03:04:05.5+01:00", want: time.Date(2026, 1, 2, 2, 4, 5, 5e8, time.UTC)},
		{in: minTimeFormatted, want: minTime},
		{in: maxTimeFormatted, want: maxTime},
		{in: "", wantErr: true},
		{in: "tomorrow", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseTime(tc.in)
		if tc.wantErr {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.True(t, tc.want.Equal(got), "%s: got %s want %s", tc.in, got, tc.want)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "15", want: 15 * time.Second},
		{in: "0.5", want: 500 * time.Millisecond},
		{in: "5m", want: 5 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "1e30", wantErr: "overflows int64"},
		{in: "NaN", wantErr: "overflows int64"},
		{in: "soon", wantErr: `cannot parse "soon" to a valid duration`},
	}
	for _, tc := range tests {
		got, err := parseDuration(tc.in)
		if tc.wantErr != "" {
			require.ErrorContains(t, err, tc.wantErr, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

func TestFormatThousands(t *testing.T) {
	for in, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 11000: "11,000", 1234567: "1,234,567", -1500: "-1,500"} {
		require.Equal(t, want, formatThousands(in))
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "zero lookback", edit: func(c *Config) { c.LookbackDelta = 0 }, wantErr: "querier.lookback-delta"},
		{name: "zero concurrency", edit: func(c *Config) { c.MaxConcurrent = 0 }, wantErr: "querier.max-concurrent"},
		{name: "zero interval", edit: func(c *Config) { c.DefaultEvaluationInterval = 0 }, wantErr: "querier.default-evaluation-interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig(t)
			require.Equal(t, 5*time.Minute, c.LookbackDelta)
			tc.edit(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestEngineCacheBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEngines(defaultConfig(t), parser.NewParser(parser.Options{}), log.NewNopLogger(), reg)
	for i := 1; i <= maxCachedEngines+4; i++ {
		ng := e.get(i)
		require.NotNil(t, ng)
	}
	require.Len(t, e.byMax, maxCachedEngines)
	require.Same(t, e.get(1), e.get(1))
	n, err := testutil.GatherAndCount(reg, "prometheus_engine_queries_concurrent_max")
	require.NoError(t, err)
	require.Equal(t, maxCachedEngines, n)
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		typ  string
		code int
	}{
		{err: promql.ErrQueryCanceled("x"), typ: "canceled", code: 499},
		{err: promql.ErrQueryTimeout("x"), typ: "timeout", code: 503},
		{err: fmt.Errorf("wrapped: %w", promql.ErrTooManySamples("x")), typ: "execution", code: 422},
		{err: promql.ErrStorage{Err: errors.New("x")}, typ: "internal", code: 500},
		{err: fmt.Errorf("expanding series: %w", unavailableErr{}), typ: "unavailable", code: 503},
		{err: errors.New("anything else"), typ: "execution", code: 422},
	}
	for _, tc := range tests {
		got := classify(tc.err, math.MaxInt)
		require.Equal(t, tc.typ, got.typ, tc.err.Error())
		require.Equal(t, tc.code, got.statusCode(), tc.err.Error())
	}
}
