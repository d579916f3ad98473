package distributor

import (
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
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
	"go.uber.org/goleak"
)

// newTestKV returns an in-memory KV store shared by the rings of a test.
func newTestKV(t testing.TB) kv.Client {
	t.Helper()
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	return store
}

func testRingConfig(id string) RingConfig {
	return RingConfig{
		HeartbeatPeriod:  50 * time.Millisecond,
		HeartbeatTimeout: time.Minute,
		InstanceID:       id,
		InstanceAddr:     "127.0.0.1",
		InstancePort:     9095,
	}
}

func startDistributorRing(t testing.TB, cfg RingConfig, store kv.Client, reg prometheus.Registerer) *DistributorRing {
	t.Helper()
	r, err := NewDistributorRing(cfg, kv.Config{Mock: store}, log.NewNopLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	return r
}

func requireHealthy(t testing.TB, r *DistributorRing, want int) {
	t.Helper()
	require.Eventually(t, func() bool { return r.HealthyInstances() == want }, 5*time.Second, 10*time.Millisecond,
		"want %d healthy distributors, last count %d", want, r.HealthyInstances())
}

func TestDistributorRingCountsHealthyDistributors(t *testing.T) {
	// Registered first, so it runs after every other cleanup.
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	store := newTestKV(t)

	d1 := startDistributorRing(t, testRingConfig("distributor-1"), store, prometheus.NewPedanticRegistry())
	require.Equal(t, 1, d1.HealthyInstances(), "the first count includes this distributor")

	d2 := startDistributorRing(t, testRingConfig("distributor-2"), store, prometheus.NewPedanticRegistry())
	requireHealthy(t, d1, 2)
	requireHealthy(t, d2, 2)

	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), d2))
	requireHealthy(t, d1, 1)
	desc, err := store.Get(context.Background(), RingKey)
	require.NoError(t, err)
	require.NotContains(t, desc.(*ring.Desc).Ingesters, "distributor-2", "a stopped distributor leaves the ring")
}

func TestDistributorRingIgnoresStaleHeartbeats(t *testing.T) {
	store := newTestKV(t)
	// A distributor that died 2 minutes ago without leaving.
	require.NoError(t, store.CAS(context.Background(), RingKey, func(any) (any, bool, error) {
		desc := ring.NewDesc()
		desc.AddIngester("dead", "127.0.0.2:9095", "", []uint32{1}, ring.ACTIVE, time.Now().Add(-time.Hour), false, time.Time{}, nil)
		inst := desc.Ingesters["dead"]
		inst.Timestamp = time.Now().Add(-2 * time.Minute).Unix()
		desc.Ingesters["dead"] = inst
		return desc, true, nil
	}))

	d1 := startDistributorRing(t, testRingConfig("distributor-1"), store, prometheus.NewPedanticRegistry())
	require.Eventually(t, func() bool {
		desc, err := store.Get(context.Background(), RingKey)
		return err == nil && len(desc.(*ring.Desc).Ingesters) == 2
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 1, d1.HealthyInstances(), "a distributor past its heartbeat timeout does not share the limits")
}

func TestDistributorRingMetricsAndPage(t *testing.T) {
	store := newTestKV(t)
	reg := prometheus.NewPedanticRegistry()
	// The ingester ring client of the same process registers in the same registry.
	_, err := ring.NewWithStoreClientAndStrategy(ring.Config{HeartbeatTimeout: time.Minute, ReplicationFactor: 1},
		"ingester", "ingester", store, ring.NewDefaultReplicationStrategy(), reg, log.NewNopLogger())
	require.NoError(t, err)
	d := startDistributorRing(t, testRingConfig("distributor-1"), store, reg)

	require.Eventually(t, func() bool {
		n, err := testutil.GatherAndCount(reg, "ring_members")
		return err == nil && n > 0
	}, 5*time.Second, 10*time.Millisecond)

	w := httptest.NewRecorder()
	d.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/distributor/ring", nil))
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), "distributor-1")
}

func TestRingConfigValidate(t *testing.T) {
	var defaults RingConfig
	defaults.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	require.NoError(t, defaults.Validate())

	for _, tc := range []struct {
		name    string
		modify  func(*RingConfig)
		wantErr string
	}{
		{name: "no heartbeat", modify: func(c *RingConfig) { c.HeartbeatPeriod = 0 }, wantErr: "heartbeat_period must be positive"},
		{name: "timeout shorter than period", modify: func(c *RingConfig) { c.HeartbeatTimeout = c.HeartbeatPeriod }, wantErr: "must be longer than heartbeat_period"},
		{name: "no ID", modify: func(c *RingConfig) { c.InstanceID = "" }, wantErr: "instance_id must not be empty"},
		{name: "bad port", modify: func(c *RingConfig) { c.InstancePort = 70000 }, wantErr: "instance_port must be a port number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testRingConfig("d")
			tc.modify(&cfg)
			require.ErrorContains(t, cfg.Validate(), tc.wantErr)
			_, err := NewDistributorRing(cfg, kv.Config{Mock: newTestKV(t)}, log.NewNopLogger(), prometheus.NewRegistry())
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
