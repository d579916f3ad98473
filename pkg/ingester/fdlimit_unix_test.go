//go:build unix

package ingester

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// When the process runs out of file descriptors, a write to a tenant that
// is not open yet says so and what to do, instead of a bare "too many open
// files".
func TestOutOfFilesErrorSaysWhatToDo(t *testing.T) {
	ing := startIngester(t, testConfig(t, t.TempDir()), defaultLimits(t), nil)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck

	var was syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &was))
	low := was
	low.Cur = uint64(openFDs()) // nothing more can be opened
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low))
	_, err := ing.Push(user.InjectOrgID(context.Background(), "team-fd"), &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{series("x", prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1})},
	})
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &was))
	require.Error(t, err)
	require.ErrorContains(t, err, "too many open files")
	require.ErrorContains(t, err, "raise the process' open files limit")
}
