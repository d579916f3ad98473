package httpapi

import (
	"errors"
	"flag"
	"time"
)

// Config configures the Prometheus HTTP API and its PromQL engine. Per-tenant
// limits (query length, samples, timeout, points) live in pkg/limits.
type Config struct {
	// LookbackDelta is how far back an instant selector looks for a sample.
	LookbackDelta time.Duration `yaml:"lookback_delta"`
	// MaxConcurrent is how many PromQL queries one process evaluates at once;
	// further queries wait for a slot within their timeout.
	MaxConcurrent int `yaml:"max_concurrent"`
	// DefaultEvaluationInterval is the step of subqueries written without one.
	DefaultEvaluationInterval time.Duration `yaml:"default_evaluation_interval" category:"advanced"`
}

// RegisterFlags registers the flags under the "querier." prefix.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.LookbackDelta, "querier.lookback-delta", 5*time.Minute, "How far back an instant vector selector looks for the latest sample of a series.")
	f.IntVar(&c.MaxConcurrent, "querier.max-concurrent", 20, "Most PromQL queries evaluated at the same time by one querier; further queries wait for a free slot.")
	f.DurationVar(&c.DefaultEvaluationInterval, "querier.default-evaluation-interval", time.Minute, "Step of subqueries that do not give one, as Prometheus' global evaluation_interval.")
}

// Validate checks that the configuration makes sense.
func (c *Config) Validate() error {
	if c.LookbackDelta <= 0 {
		return errors.New("querier.lookback-delta must be positive")
	}
	if c.MaxConcurrent <= 0 {
		return errors.New("querier.max-concurrent must be positive")
	}
	if c.DefaultEvaluationInterval <= 0 {
		return errors.New("querier.default-evaluation-interval must be positive")
	}
	return nil
}
