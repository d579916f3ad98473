package ringutil

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// DefaultAutoForgetCheckInterval is how often the AutoForgetter looks at the
// ring when it is given no positive check interval.
const DefaultAutoForgetCheckInterval = time.Minute

// AutoForgetter removes from a ring the instances that have not heartbeated
// for longer than a period, as if an operator pressed "Forget" on the ring
// page. It is for rings whose members run dskit's classic ring.Lifecycler
// (the ingester ring), which only manages its own entry: without it an
// ingester that died without leaving stays in the ring, unhealthy, for
// ever: its tokens keep a replica of every series it owned out of reach and
// count against the write quorum. Members run by Ring forget dead peers
// through dskit's AutoForgetDelegate instead.
//
// Safety:
//   - LEFT entries (memberlist tombstones) are not members and are skipped.
//   - If every member is stale, nothing is removed: a clock that runs ahead,
//     or a KV store that stopped delivering updates, would otherwise empty
//     the ring. An operator can still use the ring page.
//   - Removal goes through the KV store's CAS. With memberlist the removed
//     entry becomes a LEFT tombstone that gossips to every member, so several
//     processes running an AutoForgetter on the same ring agree.
//   - A forgotten ingester that is only partitioned, not dead, puts itself
//     back on its next heartbeat, with new random tokens (the lifecycler
//     re-adds a missing entry): hence forgetAfter well above the heartbeat
//     timeout.
type AutoForgetter struct {
	services.Service

	kv            kv.Client
	ringKey       string
	forgetAfter   time.Duration
	checkInterval time.Duration
	logger        log.Logger
	now           func() time.Time

	forgotten prometheus.Counter
}

// NewAutoForgetter returns a service that, every checkInterval, removes from
// the ring stored under ringKey the instances whose last heartbeat is older
// than forgetAfter. forgetAfter <= 0 disables it: the service then idles. A
// checkInterval <= 0 means DefaultAutoForgetCheckInterval.
//
// forgetAfter should be well above the ring's heartbeat timeout (10x is a
// good start): an instance is unhealthy after the heartbeat timeout, and
// forgetting it is only for instances that are not coming back.
func NewAutoForgetter(kvClient kv.Client, ringKey string, forgetAfter time.Duration, checkInterval time.Duration, logger log.Logger, reg prometheus.Registerer) *AutoForgetter {
	if checkInterval <= 0 {
		checkInterval = DefaultAutoForgetCheckInterval
	}
	a := &AutoForgetter{
		kv:            kvClient,
		ringKey:       ringKey,
		forgetAfter:   forgetAfter,
		checkInterval: checkInterval,
		logger:        log.With(logger, "component", "ring-auto-forget", "ring", ringKey),
		now:           time.Now,
		forgotten: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name:        "meridian_ring_members_forgotten_total",
			Help:        "Ring members removed automatically after being unhealthy for longer than the auto-forget period.",
			ConstLabels: prometheus.Labels{"ring": ringKey},
		}),
	}
	if forgetAfter <= 0 {
		a.Service = services.NewIdleService(nil, nil)
		return a
	}
	a.Service = services.NewTimerService(checkInterval, a.starting, a.iteration, nil)
	return a
}

func (a *AutoForgetter) starting(context.Context) error {
	level.Info(a.logger).Log("msg", "auto-forget of unhealthy ring members enabled", "forget_after", a.forgetAfter, "check_interval", a.checkInterval)
	return nil
}

// iteration never fails the service: a KV error is logged and the next
// check tries again.
func (a *AutoForgetter) iteration(ctx context.Context) error {
	if _, err := a.forgetStale(ctx); err != nil {
		level.Warn(a.logger).Log("msg", "auto-forget check failed; retrying at the next check", "err", err)
	}
	return nil
}

// forgottenMember is one removed instance, for the log.
type forgottenMember struct {
	id            string
	addr          string
	lastHeartbeat time.Time
}

// forgetStale removes the stale instances in one CAS and returns their IDs.
func (a *AutoForgetter) forgetStale(ctx context.Context) ([]string, error) {
	var removed []forgottenMember
	err := a.kv.CAS(ctx, a.ringKey, func(in any) (any, bool, error) {
		removed = removed[:0] // CAS may call us again after a conflict
		if in == nil {
			return nil, false, nil // no ring yet
		}
		desc, ok := in.(*ring.Desc)
		if !ok {
			return nil, false, fmt.Errorf("ring key %s holds %T, not a ring", a.ringKey, in)
		}
		now := a.now()
		deadline := now.Add(-a.forgetAfter)
		members := 0
		var stale []forgottenMember
		for id, inst := range desc.Ingesters {
			if inst.State == ring.LEFT {
				continue
			}
			members++
			if last := time.Unix(inst.GetTimestamp(), 0); last.Before(deadline) {
				stale = append(stale, forgottenMember{id: id, addr: inst.Addr, lastHeartbeat: last})
			}
		}
		if len(stale) == 0 {
			return nil, false, nil // nothing to write
		}
		if len(stale) == members {
			level.Warn(a.logger).Log("msg", "every ring member looks stale; forgetting none, since this is more likely a clock or KV store problem than a dead cluster; use the ring page to forget members by hand", "members", members, "forget_after", a.forgetAfter, "now", now.UTC().Format(time.RFC3339))
			return nil, false, nil
		}
		for _, m := range stale {
			desc.RemoveIngester(m.id)
		}
		removed = stale
		return desc, true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("remove stale members from ring %s: %w", a.ringKey, err)
	}
	sort.Slice(removed, func(i, j int) bool { return removed[i].id < removed[j].id })
	ids := make([]string, 0, len(removed))
	for _, m := range removed {
		level.Warn(a.logger).Log("msg", "forgot ring member unhealthy for longer than the auto-forget period", "instance", m.id, "addr", m.addr, "last_heartbeat", m.lastHeartbeat.UTC().Format(time.RFC3339), "forget_after", a.forgetAfter)
		a.forgotten.Inc()
		ids = append(ids, m.id)
	}
	return ids, nil
}
