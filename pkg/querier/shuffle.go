package querier

import (
	"math"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"

	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// ingesterShards chooses the ingesters a query of a tenant reads: with
// shuffle sharding (ingestion_tenant_shard_size), the tenant's shard plus
// every ingester that may still hold data the tenant wrote within the
// lookback period.
//
// dskit's ShuffleShardWithLookback covers ring changes: it adds the
// ingesters that joined within the lookback (a series moved to them) on top
// of the shard. It cannot cover a shard size that shrank: the ingesters that
// left the tenant's shard still hold its recent samples, and no ring state
// records that they were in it. A shard of size n is a prefix of the shard of
// size n+1 (same tenant, same ring), so reading the largest shard in force
// within the lookback reads every ingester that may hold the tenant's data.
// That largest size is remembered per tenant:
//
//   - A query that sees a smaller size than the previous query of the tenant
//     read assumes the larger one was in force until now (the change may have
//     happened just now), and reads it until the lookback has passed.
//   - A shard can shrink while no query reads the tenant. Only the runtime
//     overrides change a size while the process runs (the defaults are
//     flags), so whenever a changed overrides file has been loaded, the next
//     query first records the sizes of every overridden tenant and every
//     tenant it knows: a shrink is noticed no later than that query.
//   - Before it starts, this querier does not know which sizes were in
//     force, so until it has run for the lookback period it reads every
//     ingester for every tenant: exact, at the cost of the read-path
//     isolation during that time.
//
// Entries are never dropped: a forgotten tenant would lose the size it had,
// and an entry is a few dozen bytes.
type ingesterShards struct {
	ring      ring.ReadRing
	overrides overriddenTenants // nil: no runtime overrides to watch.
	lookback  time.Duration     // 0: every query reads every ingester.
	started   time.Time
	now       func() time.Time
	logger    log.Logger

	mu      sync.Mutex
	tenants map[string]*shardHistory
	seen    any // the overrides' identity at the last sweep
}

// overriddenTenants is what ingesterShards reads of the runtime overrides
// (limits.Overrides) to notice a shrink before the tenant's next query.
type overriddenTenants interface {
	// OverridesIdentity changes whenever a changed file is loaded; it is
	// read on every query, the tenant list only after a change.
	OverridesIdentity() any
	OverriddenTenants() []string
}

// shardHistory is what a querier knows of a tenant's shard sizes, as
// ShuffleShardSize returns them (0 means every ingester).
type shardHistory struct {
	size int // at the last query
	// wider is the largest size that may have been in force until
	// widerUntil, when it is larger than size.
	wider      int
	widerUntil time.Time
}

func newIngesterShards(r ring.ReadRing, overrides overriddenTenants, lookback time.Duration, logger log.Logger, now func() time.Time) *ingesterShards {
	return &ingesterShards{ring: r, overrides: overrides, lookback: lookback, started: now(), now: now, logger: logger, tenants: map[string]*shardHistory{}}
}

// sweep records the current size of every overridden and every known tenant
// once per loaded overrides file. sizeOf gives a tenant's configured size.
func (s *ingesterShards) sweep(sizeOf func(tenant string) int) {
	if s.overrides == nil {
		return
	}
	identity := s.overrides.OverridesIdentity()
	s.mu.Lock()
	if identity == s.seen {
		s.mu.Unlock()
		return
	}
	s.seen = identity
	tenants := make(map[string]struct{}, len(s.tenants))
	for t := range s.tenants {
		tenants[t] = struct{}{}
	}
	s.mu.Unlock()
	// A reload between the two reads makes the next query sweep again:
	// recording a size twice is harmless.
	for _, t := range s.overrides.OverriddenTenants() {
		tenants[t] = struct{}{}
	}
	for t := range tenants {
		s.readSize(t, sizeOf(t))
	}
}

// width orders shard sizes: 0, every ingester, is the widest.
func width(size int) int {
	if size <= 0 {
		return math.MaxInt
	}
	return size
}

// readSize returns the shard size a query of tenant reads now, given the
// tenant's configured size, and records it.
func (s *ingesterShards) readSize(tenant string, configured int) int {
	size := ringutil.ShuffleShardSize(configured, s.ring.ReplicationFactor())
	now := s.now()
	since := now.Add(-s.lookback)

	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.tenants[tenant]
	if !ok {
		// Any size, every ingester included, may have been in force
		// before this querier started.
		h = &shardHistory{size: size, wider: 0, widerUntil: s.started}
		s.tenants[tenant] = h
	}
	if width(size) < width(h.size) {
		wider := h.size
		if !h.widerUntil.Before(since) && width(h.wider) > width(wider) {
			wider = h.wider
		}
		level.Info(s.logger).Log("msg", "tenant's ingester shard shrank; queries read the previous, larger shard until the lookback period has passed", "tenant", tenant, "size", size, "previous_size", wider, "lookback", s.lookback)
		h.wider, h.widerUntil = wider, now
	}
	h.size = size
	if !h.widerUntil.Before(since) && width(h.wider) > width(size) {
		return h.wider
	}
	return size
}

// forTenant returns the ingesters a query of tenant reads now.
// sizeOf gives a tenant's configured ingestion_tenant_shard_size.
func (s *ingesterShards) forTenant(tenant string, sizeOf func(tenant string) int) ring.ReadRing {
	if s.lookback <= 0 {
		return s.ring
	}
	s.sweep(sizeOf)
	size := s.readSize(tenant, sizeOf(tenant))
	if size == 0 {
		return s.ring
	}
	return s.ring.ShuffleShardWithLookback(tenant, size, s.lookback, s.now())
}
