package distributor

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// TestDistributorRingCountsHealthyDistributors: the distributors count
// each other through the ring under RingKey, and a stopped one stops
// counting at once.
func TestDistributorRingCountsHealthyDistributors(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	var rings []*ringutil.Ring
	count := func(i int) int {
		n, _ := rings[i].HealthyMembers()
		return n
	}
	for _, id := range []string{"distributor-1", "distributor-2"} {
		var cfg Config
		cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
		cfg.Ring.InstanceID = id
		cfg.Ring.InstanceAddr = "127.0.0.1"
		cfg.Ring.HeartbeatPeriod = 50 * time.Millisecond
		require.NoError(t, cfg.Validate())
		require.Equal(t, 1, cfg.Ring.NumTokens)
		r, err := NewRing(cfg.Ring, kv.Config{Mock: store}, true, log.NewNopLogger(), prometheus.NewPedanticRegistry())
		require.NoError(t, err)
		require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
		t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
		rings = append(rings, r)
	}
	require.Eventually(t, func() bool { return count(0) == 2 && count(1) == 2 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), rings[1]))
	require.Eventually(t, func() bool { return count(0) == 1 }, 5*time.Second, 10*time.Millisecond)
	desc, err := store.Get(context.Background(), RingKey)
	require.NoError(t, err)
	require.NotContains(t, desc.(*ring.Desc).Ingesters, "distributor-2", "a stopped distributor leaves the ring")
}
