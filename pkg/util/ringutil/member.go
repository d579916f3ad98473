package ringutil

import (
	"errors"
	"io/fs"
	"math/rand"
	"sort"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"go.uber.org/atomic"
)

// memberDelegate decides this member's state and tokens in the ring: when
// it registers, at each heartbeat (the steps of a join) and when it stops.
// The BasicLifecycler calls it from its own goroutine, except
// OnRingInstanceStopping, which runs beside the heartbeats of stopping.
type memberDelegate struct {
	cfg       LifecycleConfig
	numTokens int
	onLeaving func()
	forget    *forgetter // nil: forgets nobody
	leave     *ring.LeaveOnStoppingDelegate
	logger    log.Logger
	now       func() time.Time

	joinAt       time.Time   // PENDING until the first heartbeat after this
	observeUntil time.Time   // JOINING at least until the first heartbeat after this
	picked       ring.Tokens // the tokens JOINING is observing
	stopping     atomic.Bool // no more join steps once set
}

func newMemberDelegate(cfg LifecycleConfig, numTokens int, onLeaving func(), forget *forgetter, logger log.Logger) *memberDelegate {
	return &memberDelegate{
		cfg:       cfg,
		numTokens: numTokens,
		onLeaving: onLeaving,
		forget:    forget,
		// LeaveOnStoppingDelegate is the one way to turn LEAVING while
		// stopping (the lifecycler no longer takes ChangeState then).
		leave:  ring.NewLeaveOnStoppingDelegate(ring.NewInstanceRegisterDelegate(ring.LEAVING, 0), logger),
		logger: logger,
		now:    time.Now,
	}
}

// OnRingInstanceRegister: an entry this member left in the ring ACTIVE (it
// crashed) or LEAVING (it stopped without unregistering) is taken over
// ACTIVE with its tokens, as is a tokens file with enough tokens when the
// ring has no entry; anything else starts (or restarts) a join, keeping the
// tokens it already has.
func (d *memberDelegate) OnRingInstanceRegister(l *ring.BasicLifecycler, desc ring.Desc, exists bool, _ string, inst ring.InstanceDesc) (ring.InstanceState, ring.Tokens) {
	gen := l.GetTokenGenerator()
	var have ring.Tokens
	if exists {
		have = inst.GetTokens()
		switch {
		case len(have) > 0 && inst.State == ring.ACTIVE:
			level.Info(d.logger).Log("msg", "taking over this instance's ACTIVE ring entry with its tokens", "tokens", len(have))
			d.storeTokens(have)
			return ring.ACTIVE, have
		case len(have) > 0 && inst.State == ring.LEAVING:
			tokens := fitTokens(have, d.numTokens, desc.GetTokens(), gen)
			level.Info(d.logger).Log("msg", "taking over this instance's LEAVING ring entry with its tokens", "tokens_in_ring", len(have), "tokens", len(tokens))
			d.storeTokens(tokens)
			return ring.ACTIVE, tokens
		}
	} else if d.cfg.TokensFilePath != "" {
		fromFile, err := ring.LoadTokensFromFile(d.cfg.TokensFilePath)
		switch {
		case err == nil && len(fromFile) >= d.numTokens:
			level.Info(d.logger).Log("msg", "joining ACTIVE with the tokens of the tokens file", "path", d.cfg.TokensFilePath, "tokens", len(fromFile))
			return ring.ACTIVE, fromFile
		case err == nil:
			have = fromFile
		case !errors.Is(err, fs.ErrNotExist):
			level.Warn(d.logger).Log("msg", "reading the tokens file; joining with new tokens", "path", d.cfg.TokensFilePath, "err", err)
		}
	}
	if d.cfg.JoinAfter > 0 {
		d.joinAt = d.now().Add(d.cfg.JoinAfter)
		level.Info(d.logger).Log("msg", "registered PENDING; picking tokens after join-after", "join_after", d.cfg.JoinAfter)
		return ring.PENDING, have
	}
	return d.pickTokens(have, desc.GetTokens(), gen)
}

// pickTokens completes have to the configured count and goes JOINING (to
// observe them) or ACTIVE.
func (d *memberDelegate) pickTokens(have, taken ring.Tokens, gen ring.TokenGenerator) (ring.InstanceState, ring.Tokens) {
	tokens := fitTokens(have, d.numTokens, taken, gen)
	d.storeTokens(tokens)
	if d.cfg.ObservePeriod > 0 {
		d.picked = tokens
		d.observeUntil = d.now().Add(d.cfg.ObservePeriod)
		level.Info(d.logger).Log("msg", "picked tokens; JOINING while observing them", "tokens", len(tokens), "observe_period", d.cfg.ObservePeriod)
		return ring.JOINING, tokens
	}
	level.Info(d.logger).Log("msg", "picked tokens; ACTIVE", "tokens", len(tokens))
	return ring.ACTIVE, tokens
}

// OnRingInstanceHeartbeat forgets long-dead members and takes the next
// step of a join: PENDING picks tokens after join-after; JOINING goes
// ACTIVE once the observe period is over and the ring still gives it every
// token it picked, else it picks replacements and observes again.
func (d *memberDelegate) OnRingInstanceHeartbeat(l *ring.BasicLifecycler, desc *ring.Desc, inst *ring.InstanceDesc) {
	if d.forget != nil {
		d.forget.forget(desc, d.now())
	}
	if d.stopping.Load() {
		return
	}
	now := d.now()
	switch inst.State {
	case ring.PENDING:
		if now.Before(d.joinAt) {
			return
		}
		inst.State, inst.Tokens = d.pickTokens(inst.Tokens, desc.GetTokens(), l.GetTokenGenerator())
	case ring.JOINING:
		if now.Before(d.observeUntil) {
			return
		}
		if ring.Tokens(inst.Tokens).Equals(d.picked) {
			level.Info(d.logger).Log("msg", "tokens observed and still ours; ACTIVE", "tokens", len(inst.Tokens))
			inst.State = ring.ACTIVE
			return
		}
		level.Info(d.logger).Log("msg", "another member took some of our tokens; picking replacements", "kept", len(inst.Tokens), "picked", len(d.picked))
		inst.State, inst.Tokens = d.pickTokens(inst.Tokens, desc.GetTokens(), l.GetTokenGenerator())
	}
}

// OnRingInstanceStopping turns LEAVING, runs onLeaving (the ingester's
// flush) and the final sleep; the lifecycler heartbeats meanwhile and
// unregisters (or not) afterwards.
func (d *memberDelegate) OnRingInstanceStopping(l *ring.BasicLifecycler) {
	d.stopping.Store(true)
	d.leave.OnRingInstanceStopping(l)
	if d.onLeaving != nil {
		d.onLeaving()
	}
	if d.cfg.FinalSleep > 0 {
		level.Info(d.logger).Log("msg", "final sleep before leaving the ring", "final_sleep", d.cfg.FinalSleep)
		time.Sleep(d.cfg.FinalSleep)
	}
}

func (d *memberDelegate) OnRingInstanceTokens(*ring.BasicLifecycler, ring.Tokens) {}

// storeTokens writes the tokens file, whenever this member's tokens are
// decided, so a restart finds the latest ones.
func (d *memberDelegate) storeTokens(tokens ring.Tokens) {
	if d.cfg.TokensFilePath == "" {
		return
	}
	if err := tokens.StoreToFile(d.cfg.TokensFilePath); err != nil {
		level.Error(d.logger).Log("msg", "writing the tokens file; a restart will pick new tokens", "path", d.cfg.TokensFilePath, "err", err)
	}
}

// fitTokens returns have completed with new tokens not in taken, or a
// random subset of it, so that there are n.
func fitTokens(have ring.Tokens, n int, taken ring.Tokens, gen ring.TokenGenerator) ring.Tokens {
	out := append(ring.Tokens(nil), have...)
	switch {
	case len(out) < n:
		out = append(out, gen.GenerateTokens(n-len(out), taken)...)
	case len(out) > n:
		// A random subset, not the smallest n, keeps the share of the ring.
		rand.Shuffle(len(out), out.Swap)
		out = out[:n]
	}
	sort.Sort(out)
	return out
}
