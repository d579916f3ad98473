package compactor

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestConfig_Defaults(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-compactor.block-ranges=1h,4h"}))
	require.Equal(t, time.Hour, cfg.CompactionInterval)
	require.Equal(t, DurationList{time.Hour, 4 * time.Hour}, cfg.BlockRanges)
	require.Equal(t, 12*time.Hour, cfg.DeletionDelay)
	require.Equal(t, "2h0m0s,12h0m0s,24h0m0s", fs.Lookup("compactor.block-ranges").DefValue)
	require.NoError(t, cfg.Validate())
}

func TestConfig_YAML(t *testing.T) {
	var cfg Config
	require.NoError(t, yaml.Unmarshal([]byte("block_ranges: [2h, 6h]\ndeletion_delay: 1h\n"), &cfg))
	require.Equal(t, DurationList{2 * time.Hour, 6 * time.Hour}, cfg.BlockRanges)
	require.Equal(t, time.Hour, cfg.DeletionDelay)
}

func TestConfig_Validate(t *testing.T) {
	base := func() Config {
		return Config{
			CompactionInterval: time.Hour,
			BlockRanges:        DurationList{2 * time.Hour, 12 * time.Hour, 24 * time.Hour},
			DeletionDelay:      12 * time.Hour,
		}
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		err    string
	}{
		{name: "defaults", mutate: func(*Config) {}},
		{name: "zero interval", mutate: func(c *Config) { c.CompactionInterval = 0 }, err: "interval"},
		{name: "no ranges", mutate: func(c *Config) { c.BlockRanges = nil }, err: "empty"},
		{name: "not ascending", mutate: func(c *Config) { c.BlockRanges = DurationList{12 * time.Hour, 2 * time.Hour} }, err: "multiple"},
		{name: "not a multiple", mutate: func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour, 5 * time.Hour} }, err: "multiple"},
		{name: "sub-millisecond", mutate: func(c *Config) { c.BlockRanges = DurationList{time.Microsecond} }, err: "milliseconds"},
		{name: "negative deletion delay", mutate: func(c *Config) { c.DeletionDelay = -time.Second }, err: "deletion delay"},
		{name: "negative tenant concurrency", mutate: func(c *Config) { c.TenantConcurrency = -1 }, err: "tenant concurrency"},
		{name: "negative cleanup delay", mutate: func(c *Config) { c.TenantCleanupDelay = -time.Second }, err: "cleanup delay"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}
