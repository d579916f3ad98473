// Package distributor is the write path: it validates remote-write
// requests, applies per-tenant limits and replicates each series to the
// ingesters that own it on the ring.
package distributor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"

	ingclient "github.com/meridianhq/meridian/pkg/ingester/client"
	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// Config configures the distributor.
type Config struct {
	PushHandler      PushHandlerConfig `yaml:"push"`
	Ring             ringutil.Config   `yaml:"ring"`
	ReplicaWaitGrace time.Duration     `yaml:"replica_wait_grace"`
}

// RegisterFlags registers the distributor flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.PushHandler.RegisterFlags(f)
	registerRingFlags(&c.Ring, f)
	f.DurationVar(&c.ReplicaWaitGrace, "distributor.replica-wait-grace", 200*time.Millisecond, "After a quorum of ingesters stored a write, how long to wait for the remaining replicas before answering. The next request of the same sender could otherwise reach a slower replica first, which would then reject the earlier samples as out of order.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if err := c.PushHandler.Validate(); err != nil {
		return fmt.Errorf("distributor: %w", err)
	}
	if err := c.Ring.Validate(); err != nil {
		return fmt.Errorf("distributor: distributor ring: %w", err)
	}
	return nil
}

// ClientPool returns the client of an ingester by address.
type ClientPool interface {
	Get(addr string) (ingclient.Client, error)
	RemoteTimeout() time.Duration
}

// ShardSizes gives a tenant's ingester shard size (shuffle sharding; 0
// means all ingesters), read on each push so runtime overrides apply at once.
type ShardSizes interface {
	IngestionTenantShardSize(tenant string) int
}

// Distributor replicates validated series to the ingesters.
type Distributor struct {
	services.Service

	cfg     Config
	ring    ring.ReadRing
	shards  ShardSizes
	clients ClientPool
	logger  log.Logger

	ingesterAppends *prometheus.CounterVec
}

var _ Pusher = (*Distributor)(nil)

// New creates a distributor over the ingester ring. Each tenant's series go
// to the tenant's shuffle shard of the ring, sized by shards.
func New(cfg Config, ingesterRing ring.ReadRing, shards ShardSizes, clients ClientPool, logger log.Logger, reg prometheus.Registerer) *Distributor {
	d := &Distributor{
		cfg:     cfg,
		ring:    ingesterRing,
		shards:  shards,
		clients: clients,
		logger:  logger,
		ingesterAppends: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_distributor_ingester_appends_total",
			Help: "Push requests sent to ingesters, by ingester and outcome.",
		}, []string{"ingester", "status"}),
	}
	d.Service = services.NewIdleService(nil, nil)
	return d
}

// shardKey hashes the tenant and the series' labels (as sent, sorted by
// validation) onto the ring: a series always lands on the same ingesters.
func shardKey(tenant string, ls []prompb.Label) uint32 {
	// 32-bit FNV-1a, inlined so hashing allocates nothing.
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint32(s[i])
			h *= prime32
		}
		h ^= 0xff // separator that cannot occur in UTF-8
		h *= prime32
	}
	add(tenant)
	for _, l := range ls {
		add(l.Name)
		add(l.Value)
	}
	return h
}

// Push sends each series to its replication-factor ingesters and succeeds
// when a quorum of each series' replicas stored it.
func (d *Distributor) Push(ctx context.Context, req *prompb.WriteRequest) ([]meridianpb.SeriesError, error) {
	tenant, err := dskittenant.TenantID(ctx)
	if err != nil {
		return nil, httpgrpc.Errorf(http.StatusUnauthorized, "no tenant in the request: %v", err)
	}
	nSeries := len(req.Timeseries)
	keys := make([]uint32, 0, nSeries+len(req.Metadata))
	for i := range req.Timeseries {
		keys = append(keys, shardKey(tenant, req.Timeseries[i].Labels))
	}
	for i := range req.Metadata {
		keys = append(keys, shardKey(tenant, []prompb.Label{{Name: "__name__", Value: req.Metadata[i].MetricFamilyName}}))
	}
	if len(keys) == 0 {
		return nil, nil
	}

	var (
		mtx      sync.Mutex
		rejected = map[int32]meridianpb.SeriesError{}
		pending  sync.WaitGroup
	)
	err = ring.DoBatchWithOptions(ctx, ring.Write, d.tenantRing(tenant), keys, func(inst ring.InstanceDesc, indexes []int) error {
		pending.Add(1)
		defer pending.Done()
		sub := &prompb.WriteRequest{}
		back := make([]int32, 0, len(indexes))
		for _, idx := range indexes {
			if idx < nSeries {
				sub.Timeseries = append(sub.Timeseries, req.Timeseries[idx])
				back = append(back, int32(idx))
			} else {
				sub.Metadata = append(sub.Metadata, req.Metadata[idx-nSeries])
			}
		}
		c, err := d.clients.Get(inst.Addr)
		if err != nil {
			d.ingesterAppends.WithLabelValues(inst.Addr, "error").Inc()
			return err
		}
		// DoBatch returns once a quorum answered; the remaining replicas must
		// still get their copy after the client has gone, so the call does not
		// inherit the request's cancellation (only its values and a timeout).
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.clients.RemoteTimeout())
		defer cancel()
		resp, err := c.Push(callCtx, sub)
		if err != nil {
			d.ingesterAppends.WithLabelValues(inst.Addr, "error").Inc()
			return fmt.Errorf("push to ingester %s: %w", inst.Addr, err)
		}
		d.ingesterAppends.WithLabelValues(inst.Addr, "success").Inc()
		if len(resp.Errors) > 0 {
			mtx.Lock()
			for _, se := range resp.Errors {
				if int(se.Index) >= len(back) {
					continue
				}
				se.Index = back[se.Index]
				rejected[se.Index] = se
			}
			mtx.Unlock()
		}
		return nil
	}, ring.DoBatchOptions{})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		if resp, ok := httpgrpc.HTTPResponseFromError(err); ok && resp.Code/100 == 4 {
			return nil, err
		}
		return nil, httpgrpc.Errorf(http.StatusInternalServerError, "storing the write on a quorum of ingesters did not succeed; nothing can be assumed stored, retry: %v", err)
	}
	d.awaitReplicas(&pending)
	mtx.Lock()
	defer mtx.Unlock()
	out := make([]meridianpb.SeriesError, 0, len(rejected))
	for _, se := range rejected {
		out = append(out, se)
	}
	return out, nil
}

// tenantRing is the part of the ingester ring that stores the tenant's
// series: its shuffle shard (dskit's ShuffleShard: the same instances for
// the same tenant, size and ring; zone-balanced with zone awareness), or the
// whole ring when the tenant's shard size is 0. Queriers read the same shard
// (see pkg/querier).
func (d *Distributor) tenantRing(tenant string) ring.ReadRing {
	size := ringutil.ShuffleShardSize(d.shards.IngestionTenantShardSize(tenant), d.ring.ReplicationFactor())
	if size == 0 {
		return d.ring
	}
	return d.ring.ShuffleShard(tenant, size)
}

// awaitReplicas waits, up to the grace period, for the pushes still running
// after the quorum answered, so that one sender's consecutive writes reach
// every healthy replica in order.
func (d *Distributor) awaitReplicas(pending *sync.WaitGroup) {
	if d.cfg.ReplicaWaitGrace <= 0 {
		return
	}
	done := make(chan struct{})
	go func() {
		pending.Wait()
		close(done)
	}()
	t := time.NewTimer(d.cfg.ReplicaWaitGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
