package ingester

import (
	"flag"
	"testing"

	"github.com/go-kit/log"
)

func flagSetFor(t testing.TB, cfg *Config) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs, log.NewNopLogger())
	return fs
}
