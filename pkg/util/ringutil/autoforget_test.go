package ringutil

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// ingesterKey is the key of the ring these tests forget members of.
const ingesterKey = "ingester"

// forgetRing writes a ring whose members last heartbeated at the given times.
func forgetRing(t testing.TB, store *consul.Client, heartbeats map[string]time.Time, states map[string]ring.InstanceState) {
	t.Helper()
	desc := ring.NewDesc()
	gen := ring.NewRandomTokenGeneratorWithSeed(1)
	for id, hb := range heartbeats {
		state := ring.ACTIVE
		if s, ok := states[id]; ok {
			state = s
		}
		inst := desc.AddIngester(id, id+":9095", "", gen.GenerateTokens(4, desc.GetTokens()), state, hb, false, time.Time{}, nil)
		inst.Timestamp = hb.Unix()
		desc.Ingesters[id] = inst
	}
	require.NoError(t, store.CAS(context.Background(), ingesterKey, func(any) (any, bool, error) { return desc, false, nil }))
}

// ringMembers returns the IDs in the stored ring.
func ringMembers(t testing.TB, store *consul.Client) []string {
	t.Helper()
	v, err := store.Get(context.Background(), ingesterKey)
	require.NoError(t, err)
	if v == nil {
		return nil
	}
	var ids []string
	for id := range v.(*ring.Desc).Ingesters {
		ids = append(ids, id)
	}
	return ids
}

func TestAutoForgetter(t *testing.T) {
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	const forgetAfter = 10 * time.Minute

	for name, tc := range map[string]struct {
		heartbeats  map[string]time.Time
		states      map[string]ring.InstanceState
		forgetAfter time.Duration
		wantRemoved []string
		wantKept    []string
	}{
		"stale removed, fresh kept": {
			heartbeats: map[string]time.Time{
				"dead":   now.Add(-forgetAfter - time.Second),
				"alive":  now.Add(-5 * time.Second),
				"recent": now.Add(-forgetAfter + time.Second), // unhealthy, not yet for long enough
			},
			forgetAfter: forgetAfter,
			wantRemoved: []string{"dead"},
			wantKept:    []string{"alive", "recent"},
		},
		"several stale in one pass, any state": {
			heartbeats: map[string]time.Time{
				"dead-1": now.Add(-time.Hour),
				"dead-2": now.Add(-2 * time.Hour),
				"alive":  now,
			},
			states:      map[string]ring.InstanceState{"dead-2": ring.LEAVING},
			forgetAfter: forgetAfter,
			wantRemoved: []string{"dead-1", "dead-2"},
			wantKept:    []string{"alive"},
		},
		"all stale: none forgotten": {
			heartbeats: map[string]time.Time{
				"a": now.Add(-time.Hour),
				"b": now.Add(-time.Hour),
			},
			forgetAfter: forgetAfter,
			wantKept:    []string{"a", "b"},
		},
		"LEFT tombstones are not members": {
			heartbeats: map[string]time.Time{
				"left":  now.Add(-time.Hour),
				"dead":  now.Add(-time.Hour),
				"alive": now,
			},
			states:      map[string]ring.InstanceState{"left": ring.LEFT},
			forgetAfter: forgetAfter,
			wantRemoved: []string{"dead"},
			wantKept:    []string{"left", "alive"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
			t.Cleanup(func() { _ = closer.Close() })
			forgetRing(t, store, tc.heartbeats, tc.states)

			reg := prometheus.NewPedanticRegistry()
			a := NewAutoForgetter(store, ingesterKey, tc.forgetAfter, time.Minute, log.NewNopLogger(), reg)
			a.now = func() time.Time { return now }

			removed, err := a.forgetStale(context.Background())
			require.NoError(t, err)
			require.Equal(t, tc.wantRemoved, nilIfEmpty(removed))
			require.ElementsMatch(t, tc.wantKept, ringMembers(t, store))
			require.Equal(t, float64(len(tc.wantRemoved)), testutil.ToFloat64(a.forgotten))

			// A second pass finds nothing more to do.
			removed, err = a.forgetStale(context.Background())
			require.NoError(t, err)
			require.Empty(t, removed)
			require.Equal(t, float64(len(tc.wantRemoved)), testutil.ToFloat64(a.forgotten))
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestAutoForgetterNoRing(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	a := NewAutoForgetter(store, ingesterKey, time.Minute, time.Minute, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	removed, err := a.forgetStale(context.Background())
	require.NoError(t, err)
	require.Empty(t, removed)
	require.Empty(t, ringMembers(t, store))
}

// TestAutoForgetterService runs the service on its timer: the stale member
// disappears within a bounded wait, the fresh one stays, and the metric says
// one member was forgotten.
func TestAutoForgetterService(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	now := time.Now()
	forgetRing(t, store, map[string]time.Time{"dead": now.Add(-time.Hour), "alive": now}, nil)

	reg := prometheus.NewPedanticRegistry()
	a := NewAutoForgetter(store, ingesterKey, 10*time.Minute, 10*time.Millisecond, log.NewNopLogger(), reg)
	a.now = func() time.Time { return now }
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), a))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), a)) })

	require.Eventually(t, func() bool {
		return len(ringMembers(t, store)) == 1
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"alive"}, ringMembers(t, store))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP meridian_ring_members_forgotten_total Ring members removed automatically after being unhealthy for longer than the auto-forget period.
# TYPE meridian_ring_members_forgotten_total counter
meridian_ring_members_forgotten_total{ring="ingester"} 1
`), "meridian_ring_members_forgotten_total"))
}

// TestAutoForgetterDisabled: forgetAfter 0 idles and touches nothing.
func TestAutoForgetterDisabled(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	now := time.Now()
	forgetRing(t, store, map[string]time.Time{"dead": now.Add(-24 * time.Hour), "alive": now}, nil)

	reg := prometheus.NewPedanticRegistry()
	a := NewAutoForgetter(store, ingesterKey, 0, time.Millisecond, log.NewNopLogger(), reg)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), a))

	// Give a (wrongly) running timer many chances to fire.
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, services.Running, a.State())
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), a))

	require.ElementsMatch(t, []string{"dead", "alive"}, ringMembers(t, store))
	require.Equal(t, 0.0, testutil.ToFloat64(a.forgotten))
}
