package compactor

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// TestCompactorRingShardsTenants: two compactors sharing a ring split the
// tenants between them: each tenant is processed by exactly one of them,
// and both get some.
func TestCompactorRingShardsTenants(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	kvCfg := kv.Config{Mock: store}
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	const tenants = 40
	for i := 0; i < tenants; i++ {
		require.NoError(t, bkt.Upload(context.Background(), fmt.Sprintf("tenant-%02d/placeholder", i), bytes.NewReader([]byte("x"))))
	}

	var cs []*Compactor
	for i := 1; i <= 2; i++ {
		cfg := defaultConfig(t)
		cfg.Ring.InstanceID = fmt.Sprintf("compactor-%d", i)
		cfg.Ring.InstanceAddr = fmt.Sprintf("127.0.0.%d", i)
		cfg.Ring.InstancePort = 9095
		cfg.Ring.HeartbeatPeriod = 100 * time.Millisecond
		cfg.Ring.HeartbeatTimeout = time.Minute
		cfg.CompactionInterval = time.Hour
		reg := prometheus.NewRegistry()
		r, err := NewRing(cfg.Ring, kvCfg, log.NewNopLogger(), reg)
		require.NoError(t, err)
		c, err := New(cfg, bkt, nil, r, log.NewNopLogger(), slog.New(slog.DiscardHandler), reg)
		require.NoError(t, err)
		require.NoError(t, services.StartAndAwaitRunning(context.Background(), c))
		t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), c)) })
		cs = append(cs, c)
	}
	// Both see both in the ring.
	for _, c := range cs {
		require.Eventually(t, func() bool {
			n, err := c.shards.Client().GetAllHealthy(ringOp)
			return err == nil && len(n.Instances) == 2
		}, 10*time.Second, 50*time.Millisecond)
	}

	owners := map[string]int{}
	for i := 0; i < tenants; i++ {
		tenant := fmt.Sprintf("tenant-%02d", i)
		for _, c := range cs {
			own, err := c.shards.Owns(ringutil.Token([]byte(tenant)), ringOp)
			require.NoError(t, err)
			if own {
				owners[tenant]++
			}
		}
		require.Equal(t, 1, owners[tenant], "tenant %s has exactly one compactor", tenant)
	}

	// A run of each processes exactly the tenants it owns.
	processed := 0.0
	for i, c := range cs {
		// Wait for the run each compactor starts with.
		require.Eventually(t, func() bool { return testutil.ToFloat64(c.runs.WithLabelValues("success")) >= 1 }, 10*time.Second, 20*time.Millisecond)
		c.runMu.Lock()
		before := testutil.ToFloat64(c.tenantsProcessed.WithLabelValues("success"))
		skippedBefore := testutil.ToFloat64(c.tenantsSkipped)
		c.runMu.Unlock()
		require.NoError(t, c.RunOnce(context.Background()))
		n := testutil.ToFloat64(c.tenantsProcessed.WithLabelValues("success")) - before
		require.Positive(t, n, "compactor %d got tenants", i+1)
		require.Equal(t, float64(tenants)-n, testutil.ToFloat64(c.tenantsSkipped)-skippedBefore, "compactor %d skipped the others", i+1)
		processed += n
	}
	require.Equal(t, float64(tenants), processed, "every tenant processed once across the two")
}
