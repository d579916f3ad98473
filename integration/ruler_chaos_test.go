package integration

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// TestRulerChaos: two rulers share six rule groups through the ruler ring;
// one is killed with SIGKILL. Every group keeps being evaluated (the
// survivor takes the dead ruler's groups once its heartbeat times out) and
// no group is evaluated by both rulers: the evaluations counted by the
// rulers match the timestamps recorded.
func TestRulerChaos(t *testing.T) {
	t.Parallel()
	const (
		tenant     = "ruler-chaos"
		namespace  = "chaos"
		groups     = 6
		interval   = time.Second
		hbPeriod   = time.Second
		hbTimeout  = 4 * time.Second
		evalWindow = 6 * time.Second // evaluated by both rulers before the kill
	)
	c := harness.NewCluster(t, harness.ClusterOptions{ReplicationFactor: 1, HeartbeatTimeout: hbTimeout})
	// One ingester (the gossip seed) holds every recorded sample, so the
	// samples the test reads are exactly those the rulers wrote.
	c.StartIngester("chaos-ing-1", "zone-1")
	q := c.StartQuerier()
	rulerArgs := []string{
		"-ruler.evaluation-interval=" + interval.String(),
		"-ruler.poll-interval=2s",
		"-ruler.ring.heartbeat-period=" + hbPeriod.String(),
		"-ruler.ring.heartbeat-timeout=" + hbTimeout.String(),
	}
	startRuler := func(id string) *harness.Process {
		return c.Start(harness.Options{Target: "ruler", Name: id, Args: append([]string{"-ruler.ring.instance-id=" + id}, rulerArgs...)})
	}
	rulers := []*harness.Process{startRuler("ruler-1"), startRuler("ruler-2")}
	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, "both rulers ACTIVE in each one's ruler ring", func() error {
		for _, r := range rulers {
			ring, err := r.RingAt("/ruler/ring")
			if err != nil {
				return err
			}
			for _, id := range []string{"ruler-1", "ruler-2"} {
				if ring[id].State != "ACTIVE" {
					return fmt.Errorf("%s sees %s", r.Name(), harness.DescribeRing(ring))
				}
			}
		}
		return nil
	})

	recorded := func(i int) string { return fmt.Sprintf("chaos:group%d", i) }
	groupLabel := func(i int) string { return fmt.Sprintf("%s;g%d", namespace, i) }
	var body strings.Builder
	body.WriteString("groups:\n")
	for i := 0; i < groups; i++ {
		fmt.Fprintf(&body, "- name: g%d\n  interval: %s\n  rules:\n  - record: %s\n    expr: vector(%d)\n", i, interval, recorded(i), i)
	}
	uploaded := time.Now()
	code, resp := rulesCall(t, rulers[0], tenant, http.MethodPost, rulesPath+"/"+namespace, body.String())
	require.Equal(t, http.StatusAccepted, code, resp)

	// The groups are split: each ruler owns some, together all, once.
	owned := func(r *harness.Process) int {
		v, _ := r.Metric("meridian_ruler_owned_rule_groups", nil)
		return int(v)
	}
	harness.Eventually(t, 15*time.Second, 200*time.Millisecond, "groups split between the rulers", func() error {
		a, b := owned(rulers[0]), owned(rulers[1])
		if a+b != groups || a == 0 || b == 0 {
			return fmt.Errorf("ruler-1 owns %d, ruler-2 owns %d; want %d together, some each", a, b, groups)
		}
		return nil
	})
	time.Sleep(evalWindow)

	// Kill the ruler that owns groups, right after reading its counters:
	// at most one more evaluation per group happens in between.
	victim, survivor := rulers[0], rulers[1]
	victimEvals := make([]float64, groups)
	for i := range groups {
		victimEvals[i], _ = victim.Metric("prometheus_rule_evaluations_total", map[string]string{"tenant": tenant, "rule_group": groupLabel(i)})
	}
	victimOwned := owned(victim)
	killed := time.Now()
	victim.Kill()
	t.Logf("killed ruler-1 (owning %d groups) %s after the upload", victimOwned, killed.Sub(uploaded).Round(time.Millisecond))

	harness.Eventually(t, hbTimeout+10*time.Second, 200*time.Millisecond, "the survivor owns every group", func() error {
		if n := owned(survivor); n != groups {
			return fmt.Errorf("ruler-2 owns %d of %d groups", n, groups)
		}
		return nil
	})
	// Let the survivor evaluate the moved groups for a while.
	time.Sleep(4 * interval)

	survivorEvals := make([]float64, groups)
	for i := range groups {
		survivorEvals[i], _ = survivor.Metric("prometheus_rule_evaluations_total", map[string]string{"tenant": tenant, "rule_group": groupLabel(i)})
		f, _ := survivor.Metric("prometheus_rule_evaluation_failures_total", map[string]string{"tenant": tenant, "rule_group": groupLabel(i)})
		require.Zero(t, f, "group %d: failed evaluations on the survivor", i)
	}
	counted := time.Now()
	// Every sample evaluated before `counted` has reached the ingester
	// well within two intervals.
	time.Sleep(2 * interval)

	// The largest gap between two recorded samples of a group: the dead
	// ruler's last sample is up to one interval before the kill; its last
	// heartbeat, at most the kill itself, times out hbTimeout later; the
	// survivor notices at its next ring check (every hbPeriod/2), syncs,
	// and the group's first evaluation is at the next interval boundary. Hence hbTimeout +
	// interval, plus one interval for the age of the last sample, half a
	// heartbeat period for the ring check, and a second for the sync and
	// scheduling on a loaded machine.
	maxGap := hbTimeout + interval + interval + hbPeriod/2 + time.Second
	window := time.Since(uploaded).Round(time.Second) + 5*time.Second
	moved := 0
	for i := range groups {
		m := q.Query(tenant, fmt.Sprintf("%s[%ds]", recorded(i), int(window.Seconds())), time.Now()).Matrix(t)
		require.Len(t, m, 1, "group %d: series %s", i, recorded(i))
		var ts []model.Time
		for _, s := range m[0].Values {
			require.EqualValues(t, i, s.Value, "group %d: recorded value at %s", i, s.Timestamp)
			ts = append(ts, s.Timestamp)
		}
		require.True(t, sort.SliceIsSorted(ts, func(a, b int) bool { return ts[a] < ts[b] }))
		var largest time.Duration
		before := 0 // samples up to `counted`
		for j, tm := range ts {
			if j > 0 {
				require.NotEqual(t, ts[j-1], tm, "group %d: two samples at %s", i, tm)
				largest = max(largest, tm.Sub(ts[j-1]))
			}
			if !tm.Time().After(counted) {
				before++
			}
		}
		require.LessOrEqual(t, largest, maxGap, "group %d: a gap of %s between evaluations (bound %s)", i, largest, maxGap)
		if victimEvals[i] == 0 {
			// The survivor's own groups are not disturbed when it takes
			// the others (one missed iteration on a loaded machine at most).
			require.LessOrEqual(t, largest, 2*interval, "group %d, the survivor's all along: a gap of %s", i, largest)
		}
		// The last sample is recent: the group is still evaluated.
		require.WithinDuration(t, counted, ts[len(ts)-1].Time(), 3*interval, "group %d: last sample", i)

		// Each evaluation writes one sample at its own timestamp; two
		// rulers evaluating a group would write at the same (aligned)
		// timestamps, which the ingester takes once, so the evaluations
		// would outnumber the samples. The dead ruler may have evaluated
		// once more after its counters were read, and each counter read
		// may see an evaluation whose sample is just after `counted`.
		evals := int(victimEvals[i] + survivorEvals[i])
		if victimEvals[i] > 0 {
			moved++
		}
		t.Logf("group %d: %d samples up to the count, %d evaluations (dead ruler %d, survivor %d), largest gap %s",
			i, before, evals, int(victimEvals[i]), int(survivorEvals[i]), largest)
		require.GreaterOrEqual(t, before, evals-2, "group %d: more evaluations than recorded timestamps: evaluated twice", i)
		require.LessOrEqual(t, before, evals+1, "group %d: more recorded timestamps than evaluations", i)
	}
	require.Equal(t, victimOwned, moved, "groups the dead ruler had evaluated")
}
