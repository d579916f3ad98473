package distributor

import (
	"flag"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// RingKey is the key of the distributor ring in the KV store. The ring only
// counts the distributors that share the per-tenant ingestion rate limits.
const RingKey = "distributor"

const ringName = "distributor"

// registerRingFlags registers the distributor ring under -distributor.ring.
// One token is enough: the ring only counts its members.
func registerRingFlags(c *ringutil.Config, f *flag.FlagSet) {
	c.RegisterFlagsWithPrefix(f, "distributor.ring.", ringName, 1)
	f.Lookup("distributor.ring.num-tokens").Usage = "Tokens this distributor owns in the distributor ring. The ring only counts its members, so 1 is enough."
	f.Lookup("distributor.ring.heartbeat-timeout").Usage = "How long after its last heartbeat a distributor stops counting as healthy, so the others take over its share of the ingestion rate limits. Distributors unhealthy for 10 timeouts are removed from the ring."
}

// NewRing makes this distributor a member of the distributor ring, so the
// healthy distributors can count each other (Ring.HealthyMembers) and
// split each tenant's ingestion rate limit. When stopping it leaves the
// ring, so the others take over its share at once.
// join is false in a process that writes through the distributor's write
// path without serving remote write (a ruler): members share the tenants'
// global ingestion rate, so such a process must not count as one.
func NewRing(cfg ringutil.Config, kvCfg kv.Config, join bool, logger log.Logger, reg prometheus.Registerer) (*ringutil.Ring, error) {
	return ringutil.NewRing(ringName, RingKey, cfg, kvCfg, ringutil.Options{
		Join:     join,
		Strategy: ring.NewDefaultReplicationStrategy(),
	}, logger, reg)
}
