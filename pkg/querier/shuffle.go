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
//   - Before its first query of a tenant, this querier does not know which
//     sizes were in force, so until it has run for the lookback period it
//     reads every ingester for every tenant: exact, at the cost of the
//     read-path isolation during that time.
//
// Entries are never dropped: a forgotten tenant would lose the size it had,
// and an entry is a few dozen bytes.
type ingesterShards struct {
	ring     ring.ReadRing
	lookback time.Duration // 0: every query reads every ingester.
	started  time.Time
	now      func() time.Time
	logger   log.Logger

	mu      sync.Mutex
	tenants map[string]*shardHistory
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

func newIngesterShards(r ring.ReadRing, lookback time.Duration, logger log.Logger, now func() time.Time) *ingesterShards {
	return &ingesterShards{ring: r, lookback: lookback, started: now(), now: now, logger: logger, tenants: map[string]*shardHistory{}}
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
func (s *ingesterShards) forTenant(tenant string, configured int) ring.ReadRing {
	if s.lookback <= 0 {
		return s.ring
	}
	size := s.readSize(tenant, configured)
	if size == 0 {
		return s.ring
	}
	return s.ring.ShuffleShardWithLookback(tenant, size, s.lookback, s.now())
}
