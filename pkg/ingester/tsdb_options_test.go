package ingester

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/stretchr/testify/require"
)

func TestStripeSizeFollowsTheWAL(t *testing.T) {
	for _, c := range []struct {
		walBytes int64
		want     int
	}{
		{0, minStripeSize},                        // a new tenant
		{1 << 20, minStripeSize},                  // ~1 000 series
		{10 << 20, 1024},                          // ~10 000 series: 640 stripes, rounded up
		{100 << 20, 8192},                         // ~100 000 series: 6 400 stripes, rounded up
		{1 << 30, maxStripeSize},                  // ~1 M series
		{1 << 40, maxStripeSize},                  // never above Prometheus's default
		{65*16*1024 + 1, 2 * minStripeSize},       // just above the minimum
		{int64(maxStripeSize) * 16 * 1024, 16384}, // exactly the maximum
	} {
		require.Equal(t, c.want, stripeSizeFor(c.walBytes), "WAL of %d bytes", c.walBytes)
	}

	dir := t.TempDir()
	require.Zero(t, walBytes(dir), "no WAL")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "wal", "checkpoint.00000001"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "wal", "00000002"), make([]byte, 1000), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "wal", "checkpoint.00000001", "00000000"), make([]byte, 234), 0o644))
	require.EqualValues(t, 1234, walBytes(dir), "segments and checkpoint")
}

func TestSecondIngesterOnTheSameDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	ing := startIngester(t, testConfig(t, dir), defaultLimits(t), nil)
	other, err := New(testConfig(t, dir), fixedLimits{defaultLimits(t)}, nil, log.NewNopLogger(), promslog.NewNopLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	err = services.StartAndAwaitRunning(context.Background(), other)
	require.ErrorContains(t, err, "each needs its own -ingester.tsdb-dir")

	// Released on stop: the directory can be used again.
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
	ing = startIngester(t, testConfig(t, dir), defaultLimits(t), nil)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
}

func TestTSDBRegistererKeepsOnlyWALCorruptions(t *testing.T) {
	var r tsdbRegisterer
	corruptions := prometheus.NewCounter(prometheus.CounterOpts{Name: walCorruptionsName, Help: "h"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "prometheus_tsdb_other_total", Help: "h"})
	r.MustRegister(corruptions, other)
	corruptions.Add(2)
	other.Add(5)
	require.Equal(t, 2.0, r.sum())
	require.True(t, r.Unregister(corruptions))
	require.Zero(t, r.sum())

	// A real TSDB registers its counter through it, and nothing else.
	ing := startIngester(t, testConfig(t, t.TempDir()), defaultLimits(t), nil)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck
	db, err := ing.getOrCreateDB("team-r")
	require.NoError(t, err)
	require.Len(t, db.reg.kept, 1)
	require.Zero(t, db.walCorruptions())
}
