package meridian

import (
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/common/promslog"
	"github.com/stretchr/testify/require"
)

// TestOnlyRemoteWriteServersJoinTheDistributorRing: the distributor ring's
// members share each tenant's global ingestion rate, so a process that
// writes through the distributor's write path without serving remote write
// (a ruler) must not be counted as one.
func TestOnlyRemoteWriteServersJoinTheDistributorRing(t *testing.T) {
	for targets, joins := range map[string]bool{
		"all":         true,
		"write":       true,
		"distributor": true,
		"ruler":       false,
		"querier":     false,
		"ingester":    false,
	} {
		var cfg Config
		require.NoError(t, ParseArgs(newFlagSet(&cfg), []string{"-target=" + targets}, &cfg))
		m, err := New(cfg, log.NewNopLogger(), promslog.NewNopLogger())
		require.NoError(t, err)
		require.Equal(t, joins, m.runs(Distributor), "-target=%s", targets)
	}
}
