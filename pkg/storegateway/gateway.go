package storegateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	sgclient "github.com/meridianhq/meridian/pkg/storegateway/client"
	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// StoreGateway is the store-gateway service and its gRPC server.
type StoreGateway struct {
	services.Service

	cfg     Config
	store   *Store
	cache   Cache
	member  *ringutil.Ring // nil: own every block (tests)
	shards  sgclient.ShardSizes
	watcher *services.FailureWatcher
	logger  log.Logger
	m       *metrics
	now     func() time.Time
}

var _ meridianpb.StoreGatewayServer = (*StoreGateway)(nil)

// New creates a store-gateway over bkt, the whole bucket. It joins the
// ring stored in kvCfg and decides which blocks it owns through sgRing
// (NewRing), which the caller runs: a tenant's blocks are shared among the
// tenant's shuffle shard of the ring, sized by shards. With a nil sgRing
// the store-gateway joins no ring and owns every block.
func New(cfg Config, bkt objstore.Bucket, kvCfg kv.Config, sgRing *ringutil.Ring, shards sgclient.ShardSizes, logger log.Logger, reg prometheus.Registerer) (*StoreGateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		return nil, errors.New("store-gateway data directory is not set")
	}
	logger = log.With(logger, "component", "store-gateway")
	m := newMetrics(reg)
	cache, err := NewCache(cfg.Cache, logger, reg)
	if err != nil {
		return nil, err
	}
	g := &StoreGateway{
		cfg:     cfg,
		store:   NewStore(bkt, cache, cfg.DataDir, int64(cfg.MaxLoadedBytes), logger, m),
		cache:   cache,
		shards:  shards,
		watcher: services.NewFailureWatcher(),
		logger:  logger,
		m:       m,
		now:     time.Now,
	}
	if sgRing != nil {
		g.member, err = newMembership(cfg.Ring, kvCfg, sgRing, logger, prometheus.WrapRegistererWithPrefix("meridian_", reg))
		if err != nil {
			return nil, err
		}
	}
	g.Service = services.NewTimerService(cfg.SyncInterval, g.starting, g.iteration, g.stopping).WithName("store-gateway")
	return g, nil
}

// Store returns the block store, for tests and benchmarks.
func (g *StoreGateway) Store() *Store { return g.store }

func (g *StoreGateway) starting(ctx context.Context) error {
	if g.member != nil {
		if err := services.StartAndAwaitRunning(ctx, g.member); err != nil {
			return err
		}
		g.watcher.WatchService(g.member)
	}
	// Object storage that refuses the listing (wrong credentials, no such
	// bucket) is a configuration error: fail at start, naming it.
	if _, err := g.store.finder.Tenants(ctx); err != nil {
		return fmt.Errorf("initial sync with object storage: %w", err)
	}
	// Otherwise the first sync only cleans local disk: blocks load on
	// demand, so a failure here must not keep the store-gateway from serving.
	if err := g.SyncNow(ctx); err != nil {
		level.Warn(g.logger).Log("msg", "initial sync with object storage incomplete; retrying next interval", "err", err)
	}
	level.Info(g.logger).Log("msg", "store-gateway started")
	return nil
}

func (g *StoreGateway) iteration(ctx context.Context) error {
	select {
	case err := <-g.watcher.Chan():
		return err
	default:
	}
	if err := g.SyncNow(ctx); err != nil {
		level.Warn(g.logger).Log("msg", "sync with object storage incomplete; loaded blocks stay, retrying next interval", "err", err)
	}
	return nil
}

func (g *StoreGateway) stopping(_ error) error {
	g.cache.Stop()
	if g.member != nil {
		return services.StopAndAwaitTerminated(context.Background(), g.member)
	}
	return nil
}

// tenantShard is the part of the ring that serves the tenant's blocks.
func (g *StoreGateway) tenantShard(tenant string) ring.ReadRing {
	return sgclient.TenantShard(g.member.Client(), tenant, g.shards.StoreGatewayTenantShardSize(tenant))
}

// ownsTenant tells whether this store-gateway is in the tenant's shard.
func (g *StoreGateway) ownsTenant(tenant string) bool {
	return g.member == nil || g.member.MemberOf(g.tenantShard(tenant))
}

// owns tells whether this store-gateway is one of the block's owners.
func (g *StoreGateway) owns(k blockKey) bool {
	if g.member == nil {
		return true
	}
	own, err := g.member.OwnsIn(g.tenantShard(k.tenant), sgclient.BlockToken(k.tenant, k.id), sgclient.RingOp)
	if err != nil {
		return true // keep what we have while the ring is unusable
	}
	return own
}

// SyncNow lists the tenants, and the blocks of those whose shard includes
// this store-gateway, and drops, from memory and local disk, blocks that
// are gone, marked for deletion long enough ago, or owned by other
// store-gateways, and every block of the tenants it does not serve. It
// reads no bucket index of a tenant outside its shard.
func (g *StoreGateway) SyncNow(ctx context.Context) error {
	start := time.Now()
	defer func() { g.m.syncDuration.Observe(time.Since(start).Seconds()) }()
	tenants, err := g.store.finder.Tenants(ctx)
	if err != nil {
		g.m.syncFailures.Inc()
		return err
	}
	tenants = slices.DeleteFunc(tenants, func(t string) bool { return !g.ownsTenant(t) })
	g.m.tenantsOwned.Set(float64(len(tenants)))
	keepTenants := map[string]struct{}{}
	keep := map[blockKey]struct{}{}
	var errs []error
	owned := 0
	for _, t := range tenants {
		keepTenants[t] = struct{}{}
		tb, err := g.store.finder.Blocks(ctx, t)
		if err != nil {
			errs = append(errs, err)
			// Keep everything of a tenant we could not list.
			delete(keepTenants, t)
			continue
		}
		for _, b := range tb.Queryable(0, 1<<62, g.now(), g.cfg.IgnoreDeletionMarksDelay) {
			k := blockKey{tenant: t, id: b.ULID}
			if g.owns(k) {
				keep[k] = struct{}{}
				owned++
			}
		}
	}
	failedTenants := map[string]struct{}{}
	for _, t := range tenants {
		if _, ok := keepTenants[t]; !ok {
			failedTenants[t] = struct{}{}
			keepTenants[t] = struct{}{}
		}
	}
	g.store.retain(keepTenants, func(k blockKey) bool {
		if _, ok := failedTenants[k.tenant]; ok {
			return true
		}
		_, ok := keep[k]
		return ok
	})
	g.m.blocksOwned.Set(float64(owned))
	if len(errs) > 0 {
		g.m.syncFailures.Inc()
		return errors.Join(errs...)
	}
	return nil
}

// observe records the RED metrics of one request.
func (g *StoreGateway) observe(method string, start time.Time, err error) {
	st := "success"
	if err != nil {
		st = "error"
	}
	g.m.requests.WithLabelValues(method, st).Inc()
	g.m.requestDuration.WithLabelValues(method).Observe(time.Since(start).Seconds())
	if err != nil {
		level.Warn(g.logger).Log("msg", "store-gateway request failed", "method", method, "err", err)
	}
}

func tenantOf(ctx context.Context) (string, error) {
	t, err := dskittenant.TenantID(ctx)
	if err != nil {
		return "", status.Error(codes.Unauthenticated, "no tenant in the request")
	}
	return t, nil
}

// grpcError keeps gRPC statuses and reports everything else as internal:
// a block that cannot be read is our fault, not the caller's.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// Series implements meridianpb.StoreGatewayServer.
func (g *StoreGateway) Series(req *meridianpb.StoreSeriesRequest, srv meridianpb.StoreGateway_SeriesServer) (err error) {
	start := time.Now()
	defer func() { g.observe("Series", start, err) }()
	t, err := tenantOf(srv.Context())
	if err != nil {
		return err
	}
	return grpcError(g.store.Series(srv.Context(), t, req, srv.Send))
}

// LabelNames implements meridianpb.StoreGatewayServer.
func (g *StoreGateway) LabelNames(ctx context.Context, req *meridianpb.StoreLabelNamesRequest) (resp *meridianpb.StoreLabelNamesResponse, err error) {
	start := time.Now()
	defer func() { g.observe("LabelNames", start, err) }()
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	resp, err = g.store.LabelNames(ctx, t, req)
	return resp, grpcError(err)
}

// LabelValues implements meridianpb.StoreGatewayServer.
func (g *StoreGateway) LabelValues(ctx context.Context, req *meridianpb.StoreLabelValuesRequest) (resp *meridianpb.StoreLabelValuesResponse, err error) {
	start := time.Now()
	defer func() { g.observe("LabelValues", start, err) }()
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	resp, err = g.store.LabelValues(ctx, t, req)
	return resp, grpcError(err)
}
