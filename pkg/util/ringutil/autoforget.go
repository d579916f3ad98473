package ringutil

import (
	"sort"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// forgetter removes from a ring the members that have not heartbeated for
// longer than a period, as if an operator pressed "Forget" on the ring
// page. Every member runs it at each of its heartbeats, inside the
// heartbeat's CAS. Without it a member that died without leaving stays in
// the ring, unhealthy, for ever: its tokens keep a replica of every key it
// owned out of reach and count against the quorum.
//
// Safety:
//   - LEFT entries (memberlist tombstones) are not members and are skipped.
//   - If every member is stale, nothing is removed: a clock that runs ahead,
//     or a KV store that stopped delivering updates, would otherwise empty
//     the ring. An operator can still use the ring page.
//   - A forgotten member that is only partitioned, not dead, puts itself
//     back on its next heartbeat (with its tokens, but a new registration
//     time): hence forgetAfter well above the heartbeat timeout.
type forgetter struct {
	forgetAfter time.Duration
	logger      log.Logger
	forgotten   prometheus.Counter
}

// newForgetter forgets members stale for longer than forgetAfter (> 0).
// reg carries the process' metric prefix.
func newForgetter(name string, forgetAfter time.Duration, logger log.Logger, reg prometheus.Registerer) *forgetter {
	return &forgetter{
		forgetAfter: forgetAfter,
		logger:      log.With(logger, "component", "ring-auto-forget", "ring", name),
		forgotten: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name:        "ring_members_forgotten_total",
			Help:        "Ring members removed automatically after being unhealthy for longer than the auto-forget period.",
			ConstLabels: prometheus.Labels{"ring": name},
		}),
	}
}

// forget removes the stale members from desc and returns their IDs.
func (f *forgetter) forget(desc *ring.Desc, now time.Time) []string {
	deadline := now.Add(-f.forgetAfter)
	members := 0
	var stale []string
	for id, inst := range desc.Ingesters {
		if inst.State == ring.LEFT {
			continue
		}
		members++
		if time.Unix(inst.GetTimestamp(), 0).Before(deadline) {
			stale = append(stale, id)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	if len(stale) == members {
		level.Warn(f.logger).Log("msg", "every ring member looks stale; forgetting none, since this is more likely a clock or KV store problem than a dead cluster; use the ring page to forget members by hand", "members", members, "forget_after", f.forgetAfter, "now", now.UTC().Format(time.RFC3339))
		return nil
	}
	sort.Strings(stale)
	for _, id := range stale {
		inst := desc.Ingesters[id]
		level.Warn(f.logger).Log("msg", "forgot ring member unhealthy for longer than the auto-forget period", "instance", id, "addr", inst.Addr, "last_heartbeat", time.Unix(inst.GetTimestamp(), 0).UTC().Format(time.RFC3339), "forget_after", f.forgetAfter)
		desc.RemoveIngester(id)
		f.forgotten.Inc()
	}
	return stale
}
