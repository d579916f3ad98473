package ringutil

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// staleRing returns a ring whose members last heartbeated at the given times.
func staleRing(heartbeats map[string]time.Time, states map[string]ring.InstanceState) *ring.Desc {
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
	return desc
}

func members(desc *ring.Desc) []string {
	var ids []string
	for id := range desc.Ingesters {
		ids = append(ids, id)
	}
	return ids
}

func TestForgetter(t *testing.T) {
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	const forgetAfter = 10 * time.Minute

	for name, tc := range map[string]struct {
		heartbeats  map[string]time.Time
		states      map[string]ring.InstanceState
		wantRemoved []string
		wantKept    []string
	}{
		"stale removed, fresh kept": {
			heartbeats: map[string]time.Time{
				"dead":   now.Add(-forgetAfter - time.Second),
				"alive":  now.Add(-5 * time.Second),
				"recent": now.Add(-forgetAfter + time.Second), // unhealthy, not yet for long enough
			},
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
			wantRemoved: []string{"dead-1", "dead-2"},
			wantKept:    []string{"alive"},
		},
		"all stale: none forgotten": {
			heartbeats: map[string]time.Time{
				"a": now.Add(-time.Hour),
				"b": now.Add(-time.Hour),
			},
			wantKept: []string{"a", "b"},
		},
		"LEFT tombstones are not members": {
			heartbeats: map[string]time.Time{
				"left":  now.Add(-time.Hour),
				"dead":  now.Add(-time.Hour),
				"alive": now,
			},
			states:      map[string]ring.InstanceState{"left": ring.LEFT},
			wantRemoved: []string{"dead"},
			wantKept:    []string{"left", "alive"},
		},
		"empty ring": {},
	} {
		t.Run(name, func(t *testing.T) {
			desc := staleRing(tc.heartbeats, tc.states)
			reg := prometheus.NewPedanticRegistry()
			f := newForgetter("ingester", forgetAfter, log.NewNopLogger(), reg)

			require.Equal(t, tc.wantRemoved, f.forget(desc, now))
			require.ElementsMatch(t, tc.wantKept, members(desc))
			require.Equal(t, float64(len(tc.wantRemoved)), testutil.ToFloat64(f.forgotten))

			// A second pass finds nothing more to do.
			require.Empty(t, f.forget(desc, now))
			require.Equal(t, float64(len(tc.wantRemoved)), testutil.ToFloat64(f.forgotten))
		})
	}
}

// TestRingForgetsWithPeriodAndMetric: a member with an explicit ForgetAfter
// removes, at its heartbeats, the member stale for longer, keeps the fresher
// one, and counts it in meridian_ring_members_forgotten_total.
func TestRingForgetsWithPeriodAndMetric(t *testing.T) {
	store := newTestKV(t)
	now := time.Now()
	require.NoError(t, store.CAS(context.Background(), testKey, func(any) (any, bool, error) {
		return staleRing(map[string]time.Time{"dead": now.Add(-time.Hour), "slow": now.Add(-5 * time.Minute)}, nil), true, nil
	}))
	reg := prometheus.NewPedanticRegistry()
	startRing(t, testConfig("member-1"), store, Options{Join: true, ForgetAfter: 10 * time.Minute}, prometheus.WrapRegistererWithPrefix("meridian_", reg))

	require.Eventually(t, func() bool {
		_, dead := ringDesc(t, store).Ingesters["dead"]
		return !dead
	}, 5*time.Second, 10*time.Millisecond)
	require.Contains(t, ringDesc(t, store).Ingesters, "slow", "a member stale for less than the period stays")
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP meridian_ring_members_forgotten_total Ring members removed automatically after being unhealthy for longer than the auto-forget period.
# TYPE meridian_ring_members_forgotten_total counter
meridian_ring_members_forgotten_total{ring="test"} 1
`), "meridian_ring_members_forgotten_total"))
}

// TestRingForgetDisabled: a negative ForgetAfter forgets nobody.
func TestRingForgetDisabled(t *testing.T) {
	store := newTestKV(t)
	require.NoError(t, store.CAS(context.Background(), testKey, func(any) (any, bool, error) {
		return staleRing(map[string]time.Time{"dead": time.Now().Add(-24 * time.Hour)}, nil), true, nil
	}))
	r := startRing(t, testConfig("member-1"), store, Options{Join: true, ForgetAfter: -1}, prometheus.NewPedanticRegistry())
	// Give (wrongly) forgetting heartbeats many chances to run.
	require.Equal(t, ring.ACTIVE, r.MemberState())
	time.Sleep(10 * testConfig("").HeartbeatPeriod)
	require.Contains(t, ringDesc(t, store).Ingesters, "dead")
}
