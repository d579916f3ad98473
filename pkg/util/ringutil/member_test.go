package ringutil

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func lifecycleConfig(id string) Config {
	cfg := testConfig(id)
	cfg.NumTokens = 16
	return cfg
}

// TestMemberJoinsInSteps: PENDING without tokens for join-after, then
// JOINING with its tokens for the observe period, then ACTIVE; /ready
// follows, after the min ready duration.
func TestMemberJoinsInSteps(t *testing.T) {
	store := newTestKV(t)
	lc := &LifecycleConfig{JoinAfter: 300 * time.Millisecond, ObservePeriod: 300 * time.Millisecond, MinReadyDuration: 200 * time.Millisecond, UnregisterOnShutdown: true}
	r := startRing(t, lifecycleConfig("ing-1"), store, Options{Join: true, Lifecycle: lc}, prometheus.NewPedanticRegistry())

	desc := ringDesc(t, store).Ingesters["ing-1"]
	require.Equal(t, ring.PENDING, desc.State, "registered PENDING during join-after")
	require.Empty(t, desc.Tokens)
	require.ErrorContains(t, r.CheckReady(), "this test is PENDING in the ring, not ACTIVE")
	registered := desc.RegisteredTimestamp
	require.WithinDuration(t, time.Now(), time.Unix(registered, 0), 5*time.Second, "a new member is registered now")

	require.Eventually(t, func() bool { return ringDesc(t, store).Ingesters["ing-1"].State == ring.JOINING }, 5*time.Second, 5*time.Millisecond)
	require.Len(t, ringDesc(t, store).Ingesters["ing-1"].Tokens, 16, "JOINING with its tokens picked")
	require.Error(t, r.CheckReady())

	require.Eventually(t, func() bool { return r.MemberState() == ring.ACTIVE }, 5*time.Second, 5*time.Millisecond)
	desc = ringDesc(t, store).Ingesters["ing-1"]
	require.Equal(t, ring.ACTIVE, desc.State)
	require.Len(t, desc.Tokens, 16)
	require.Equal(t, registered, desc.RegisteredTimestamp, "joining keeps the registration time")
	require.ErrorContains(t, r.CheckReady(), "reports ready in", "not ready before the min ready duration")
	require.Eventually(t, func() bool { return r.CheckReady() == nil }, 5*time.Second, 10*time.Millisecond)
}

// TestMemberReplacesTakenTokens: a token another member took while this
// one observed its own is replaced, and observed again, before ACTIVE.
func TestMemberReplacesTakenTokens(t *testing.T) {
	store := newTestKV(t)
	lc := &LifecycleConfig{ObservePeriod: 200 * time.Millisecond, UnregisterOnShutdown: true}
	r := startRing(t, lifecycleConfig("ing-1"), store, Options{Join: true, Lifecycle: lc}, prometheus.NewPedanticRegistry())
	picked := ringDesc(t, store).Ingesters["ing-1"].Tokens
	require.Len(t, picked, 16)
	require.Equal(t, ring.JOINING, r.MemberState())

	// What a gossip conflict resolution does: one token goes to the other.
	require.NoError(t, store.CAS(context.Background(), testKey, func(in any) (any, bool, error) {
		desc := in.(*ring.Desc)
		inst := desc.Ingesters["ing-1"]
		inst.Tokens = append([]uint32(nil), inst.Tokens[1:]...)
		desc.Ingesters["ing-1"] = inst
		desc.AddIngester("ing-2", "127.0.0.2:9095", "", []uint32{picked[0]}, ring.JOINING, time.Now(), false, time.Time{}, nil)
		return desc, true, nil
	}))

	require.Eventually(t, func() bool { return r.MemberState() == ring.ACTIVE }, 5*time.Second, 5*time.Millisecond)
	tokens := ring.Tokens(ringDesc(t, store).Ingesters["ing-1"].Tokens)
	require.Len(t, tokens, 16)
	require.NotContains(t, tokens, picked[0], "the taken token was replaced")
	require.Subset(t, tokens, picked[1:], "the others were kept")
}

// TestMemberLeavesAfterOnLeaving: stopping turns LEAVING, runs OnLeaving
// while still in the ring, then removes the entry.
func TestMemberLeavesAfterOnLeaving(t *testing.T) {
	store := newTestKV(t)
	var during ring.InstanceDesc
	var present bool
	opts := Options{Join: true, Lifecycle: &LifecycleConfig{UnregisterOnShutdown: true}}
	opts.OnLeaving = func() {
		during, present = ringDesc(t, store).Ingesters["ing-1"]
	}
	r := startRing(t, lifecycleConfig("ing-1"), store, opts, prometheus.NewPedanticRegistry())
	require.Equal(t, ring.ACTIVE, r.MemberState(), "no join-after nor observe period: ACTIVE at once")
	require.NoError(t, r.CheckReady(), "no min ready duration")

	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r))
	require.True(t, present, "still in the ring while OnLeaving runs")
	require.Equal(t, ring.LEAVING, during.State, "LEAVING while OnLeaving runs")
	require.Len(t, during.Tokens, 16, "with its tokens")
	require.NotContains(t, ringDesc(t, store).Ingesters, "ing-1", "removed after OnLeaving")
}

// TestMemberRestartKeepsTokens: without unregistering, the entry stays
// LEAVING with its tokens and the restarted member takes it over ACTIVE,
// with the same tokens and registration time; with a tokens file, a member
// whose entry is gone rejoins ACTIVE with the tokens of the file.
func TestMemberRestartKeepsTokens(t *testing.T) {
	store := newTestKV(t)
	tokensFile := filepath.Join(t.TempDir(), "tokens")
	lc := &LifecycleConfig{TokensFilePath: tokensFile, JoinAfter: time.Hour, UnregisterOnShutdown: false}
	cfg := lifecycleConfig("ing-1")

	// First start: no entry, no file: PENDING for join-after (an hour),
	// so join now without it to get tokens.
	first := *lc
	first.JoinAfter = 0
	r := startRing(t, cfg, store, Options{Join: true, Lifecycle: &first}, prometheus.NewPedanticRegistry())
	tokens := ringDesc(t, store).Ingesters["ing-1"].Tokens
	registered := ringDesc(t, store).Ingesters["ing-1"].RegisteredTimestamp
	stored, err := ring.LoadTokensFromFile(tokensFile)
	require.NoError(t, err)
	require.Equal(t, ring.Tokens(tokens), stored, "the tokens file holds the picked tokens")

	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r))
	kept := ringDesc(t, store).Ingesters["ing-1"]
	require.Equal(t, ring.LEAVING, kept.State, "unregister off: the entry stays, LEAVING")
	require.Equal(t, tokens, kept.Tokens)

	// Restart with its entry in the ring: ACTIVE at once, same tokens, same
	// registration time, despite the hour of join-after.
	r = startRing(t, cfg, store, Options{Join: true, Lifecycle: lc}, prometheus.NewPedanticRegistry())
	back := ringDesc(t, store).Ingesters["ing-1"]
	require.Equal(t, ring.ACTIVE, back.State)
	require.Equal(t, tokens, back.Tokens)
	require.Equal(t, registered, back.RegisteredTimestamp)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r))

	// The entry is forgotten (say the KV store was reset): the tokens file
	// brings the same tokens back, ACTIVE at once.
	require.NoError(t, store.CAS(context.Background(), testKey, func(in any) (any, bool, error) {
		desc := in.(*ring.Desc)
		desc.RemoveIngester("ing-1")
		return desc, true, nil
	}))
	r = startRing(t, cfg, store, Options{Join: true, Lifecycle: lc}, prometheus.NewPedanticRegistry())
	back = ringDesc(t, store).Ingesters["ing-1"]
	require.Equal(t, ring.ACTIVE, back.State)
	require.Equal(t, tokens, back.Tokens, "tokens reused from the file")

	// Told to unregister after all (POST /ingester/shutdown), it leaves.
	r.SetUnregisterOnShutdown(true)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r))
	require.NotContains(t, ringDesc(t, store).Ingesters, "ing-1")
}

// TestMemberZoneAndAddress: the entry carries the zone and the address.
func TestMemberZoneAndAddress(t *testing.T) {
	store := newTestKV(t)
	startRing(t, lifecycleConfig("ing-1"), store, Options{Join: true, Lifecycle: &LifecycleConfig{Zone: "zone-a", UnregisterOnShutdown: true}}, prometheus.NewPedanticRegistry())
	inst := ringDesc(t, store).Ingesters["ing-1"]
	require.Equal(t, "zone-a", inst.Zone)
	require.Equal(t, "127.0.0.1:9095", inst.Addr)
	require.Equal(t, "ing-1", inst.Id)
}
