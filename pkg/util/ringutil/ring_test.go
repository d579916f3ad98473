package ringutil

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

const testKey = "test-ring"

// newTestKV returns an in-memory KV store shared by the rings of a test.
func newTestKV(t testing.TB) kv.Client {
	t.Helper()
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	return store
}

func testConfig(id string) Config {
	return Config{
		HeartbeatPeriod:  50 * time.Millisecond,
		HeartbeatTimeout: time.Minute,
		NumTokens:        1,
		InstanceID:       id,
		InstanceAddr:     "127.0.0.1",
		InstancePort:     9095,
	}
}

func startRing(t testing.TB, cfg Config, store kv.Client, opts Options, reg prometheus.Registerer) *Ring {
	t.Helper()
	r, err := NewRing("test", testKey, cfg, kv.Config{Mock: store}, opts, log.NewNopLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	return r
}

func healthy(r *Ring) int {
	n, _ := r.HealthyMembers()
	return n
}

func requireHealthy(t testing.TB, r *Ring, want int) {
	t.Helper()
	require.Eventually(t, func() bool { return healthy(r) == want }, 5*time.Second, 10*time.Millisecond,
		"want %d healthy members, last count %d", want, healthy(r))
}

func TestRingMembersJoinAndLeave(t *testing.T) {
	// Registered first, so it runs after every other cleanup.
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	store := newTestKV(t)

	r1 := startRing(t, testConfig("member-1"), store, Options{Join: true}, prometheus.NewPedanticRegistry())
	require.Equal(t, 1, healthy(r1), "the first view already includes this member")

	r2 := startRing(t, testConfig("member-2"), store, Options{Join: true, WaitActiveTimeout: 5 * time.Second}, prometheus.NewPedanticRegistry())
	requireHealthy(t, r1, 2)
	requireHealthy(t, r2, 2)

	watcher := startRing(t, testConfig("watcher"), store, Options{}, prometheus.NewPedanticRegistry())
	requireHealthy(t, watcher, 2)
	own, err := watcher.Owns(1, ring.Write)
	require.NoError(t, err)
	require.False(t, own, "a process that only watches owns nothing")

	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r2))
	requireHealthy(t, r1, 1)
	desc, err := store.Get(context.Background(), testKey)
	require.NoError(t, err)
	require.NotContains(t, desc.(*ring.Desc).Ingesters, "member-2", "a stopped member leaves the ring")
	require.NotContains(t, desc.(*ring.Desc).Ingesters, "watcher", "a watcher never joins")
}

func TestRingOwnsSplitsTokens(t *testing.T) {
	store := newTestKV(t)
	cfg1, cfg2 := testConfig("member-1"), testConfig("member-2")
	cfg1.NumTokens, cfg2.NumTokens = 64, 64
	cfg2.InstanceAddr = "127.0.0.2"
	r1 := startRing(t, cfg1, store, Options{Join: true}, prometheus.NewPedanticRegistry())
	r2 := startRing(t, cfg2, store, Options{Join: true}, prometheus.NewPedanticRegistry())
	requireHealthy(t, r1, 2)
	requireHealthy(t, r2, 2)
	var owned [2]int
	for tok := uint32(0); tok < 100; tok++ {
		key := Token([]byte("tenant"), []byte{byte(tok)})
		o1, err := r1.Owns(key, ring.Write)
		require.NoError(t, err)
		o2, err := r2.Owns(key, ring.Write)
		require.NoError(t, err)
		require.NotEqual(t, o1, o2, "each key has exactly one owner at replication factor 1")
		if o1 {
			owned[0]++
		} else {
			owned[1]++
		}
	}
	require.Positive(t, owned[0])
	require.Positive(t, owned[1])
}

func TestRingAutoForgetsLongDeadMembers(t *testing.T) {
	store := newTestKV(t)
	// A member that died 11 heartbeat timeouts ago without leaving, and one
	// that died 2 timeouts ago.
	require.NoError(t, store.CAS(context.Background(), testKey, func(any) (any, bool, error) {
		desc := ring.NewDesc()
		for id, age := range map[string]time.Duration{"long-dead": 11 * time.Minute, "recently-dead": 2 * time.Minute} {
			desc.AddIngester(id, "127.0.0.2:9095", "", []uint32{1}, ring.ACTIVE, time.Now().Add(-time.Hour), false, time.Time{}, nil)
			inst := desc.Ingesters[id]
			inst.Timestamp = time.Now().Add(-age).Unix()
			desc.Ingesters[id] = inst
		}
		return desc, true, nil
	}))

	r := startRing(t, testConfig("member-1"), store, Options{Join: true}, prometheus.NewPedanticRegistry())
	require.Eventually(t, func() bool {
		desc, err := store.Get(context.Background(), testKey)
		if err != nil {
			return false
		}
		_, dead := desc.(*ring.Desc).Ingesters["long-dead"]
		return !dead
	}, 5*time.Second, 10*time.Millisecond, "a member unhealthy for more than 10 heartbeat timeouts is forgotten")
	desc, err := store.Get(context.Background(), testKey)
	require.NoError(t, err)
	require.Contains(t, desc.(*ring.Desc).Ingesters, "recently-dead", "a member unhealthy for 2 timeouts stays")
	require.Equal(t, 1, healthy(r), "a member past its heartbeat timeout is not healthy")
}

func TestRingMetricsAndPage(t *testing.T) {
	store := newTestKV(t)
	reg := prometheus.NewPedanticRegistry()
	// Another ring client of the same process registers in the same registry.
	_, err := ring.NewWithStoreClientAndStrategy(ring.Config{HeartbeatTimeout: time.Minute, ReplicationFactor: 1},
		"ingester", "ingester", store, ring.NewDefaultReplicationStrategy(), reg, log.NewNopLogger())
	require.NoError(t, err)
	r := startRing(t, testConfig("member-1"), store, Options{Join: true}, reg)

	require.Eventually(t, func() bool {
		n, err := testutil.GatherAndCount(reg, "ring_members")
		return err == nil && n > 0
	}, 5*time.Second, 10*time.Millisecond)

	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ring", nil))
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), "member-1")
}

func TestConfigValidate(t *testing.T) {
	var defaults Config
	defaults.RegisterFlagsWithPrefix(flag.NewFlagSet("test", flag.PanicOnError), "x.ring.", "x", 128)
	require.NoError(t, defaults.Validate())

	for _, tc := range []struct {
		name    string
		modify  func(*Config)
		wantErr string
	}{
		{name: "no heartbeat", modify: func(c *Config) { c.HeartbeatPeriod = 0 }, wantErr: "heartbeat_period must be positive"},
		{name: "timeout shorter than period", modify: func(c *Config) { c.HeartbeatTimeout = c.HeartbeatPeriod }, wantErr: "must be longer than heartbeat_period"},
		{name: "no tokens", modify: func(c *Config) { c.NumTokens = 0 }, wantErr: "num_tokens must be positive"},
		{name: "no ID", modify: func(c *Config) { c.InstanceID = "" }, wantErr: "instance_id must not be empty"},
		{name: "bad port", modify: func(c *Config) { c.InstancePort = 70000 }, wantErr: "instance_port must be a port number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("m")
			tc.modify(&cfg)
			require.ErrorContains(t, cfg.Validate(), tc.wantErr)
			_, err := NewRing("test", testKey, cfg, kv.Config{Mock: newTestKV(t)}, Options{Join: true}, log.NewNopLogger(), prometheus.NewRegistry())
			require.ErrorContains(t, err, "test ring: ")
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// TestRingMemberWithSharedClient: a member that looks up through another
// Ring's client (one client per ring name and registry) neither starts nor
// stops it.
func TestRingMemberWithSharedClient(t *testing.T) {
	store := newTestKV(t)
	reg := prometheus.NewPedanticRegistry()
	watcher := startRing(t, testConfig("member-1"), store, Options{}, reg)
	member := startRing(t, testConfig("member-1"), store, Options{Join: true, Client: watcher.Client(), WaitActiveTimeout: 5 * time.Second}, prometheus.WrapRegistererWithPrefix("member_", reg))
	require.Same(t, watcher.Client(), member.Client())
	own, err := member.Owns(1, ring.Write)
	require.NoError(t, err)
	require.True(t, own, "the only member owns every key")

	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), member))
	require.Equal(t, services.Running, watcher.Client().State(), "the shared client keeps running")
	requireHealthy(t, watcher, 0)
}

func ringDesc(t testing.TB, store kv.Client) *ring.Desc {
	t.Helper()
	v, err := store.Get(context.Background(), testKey)
	require.NoError(t, err)
	if v == nil {
		return ring.NewDesc()
	}
	return v.(*ring.Desc)
}
