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
