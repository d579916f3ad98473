package meridian

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/gorilla/mux"
	"github.com/grafana/dskit/dns"
	"github.com/grafana/dskit/grpcutil"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/codec"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/middleware"
	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/server"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"gopkg.in/yaml.v3"

	"github.com/meridianhq/meridian/pkg/alertmanager"
	"github.com/meridianhq/meridian/pkg/api"
	"github.com/meridianhq/meridian/pkg/compactor"
	"github.com/meridianhq/meridian/pkg/distributor"
	"github.com/meridianhq/meridian/pkg/frontend"
	graphiteapi "github.com/meridianhq/meridian/pkg/graphite/api"
	"github.com/meridianhq/meridian/pkg/graphite/carbon"
	"github.com/meridianhq/meridian/pkg/ingester"
	ingclient "github.com/meridianhq/meridian/pkg/ingester/client"
	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/querier"
	"github.com/meridianhq/meridian/pkg/querier/httpapi"
	"github.com/meridianhq/meridian/pkg/querier/worker"
	"github.com/meridianhq/meridian/pkg/ruler"
	"github.com/meridianhq/meridian/pkg/scheduler"
	"github.com/meridianhq/meridian/pkg/storage"
	"github.com/meridianhq/meridian/pkg/storegateway"
	sgclient "github.com/meridianhq/meridian/pkg/storegateway/client"
	"github.com/meridianhq/meridian/pkg/tenant"
	"github.com/meridianhq/meridian/pkg/util/build"
	"github.com/meridianhq/meridian/pkg/util/grpccodec"
	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// Module names. All, Write and Read are groups for small clusters.
const (
	Server          = "server"
	RuntimeConfig   = "runtime-config"
	MemberlistKV    = "memberlist-kv"
	IngesterRing    = "ingester-ring"
	DistributorRing = "distributor-ring"
	// IngesterClients is the pool of ingester connections that
	// distributors and queriers share.
	IngesterClients      = "ingester-clients"
	Ingester             = "ingester"
	Distributor          = "distributor"
	DistributorWritePath = "distributor-write-path"
	Carbon               = "graphite-carbon"
	Querier              = "querier"
	QueryFrontend        = "query-frontend"
	// QueryScheduler is the optional queue shared by query-frontends.
	QueryScheduler = "query-scheduler"
	// QuerierAPI is the querier's HTTP API; Querier adds the worker that
	// pulls queries from a query-frontend or query-scheduler.
	QuerierAPI       = "querier-api"
	Compactor        = "compactor"
	StoreGatewayRing = "store-gateway-ring"
	StoreGateway     = "store-gateway"
	Ruler            = "ruler"
	Alertmanager     = "alertmanager"
	All              = "all"
	Write            = "write"
	Read             = "read"
	Backend          = "backend"
)

// Meridian is one process: its config, the components it runs and the
// services that run them.
type Meridian struct {
	Cfg      Config
	Registry *prometheus.Registry
	Logger   log.Logger
	SLogger  *slog.Logger

	Server          *server.Server
	Memberlist      *memberlist.KVInitService
	API             *api.API
	Overrides       *limits.Overrides
	IngesterRing    *ring.Ring
	Ingester        *ingester.Ingester
	Distributor     *distributor.Distributor
	PushHandler     *distributor.PushHandler
	Carbon          *carbon.Receiver
	DistributorRing *ringutil.Ring
	Frontend        *frontend.Frontend
	Scheduler       *scheduler.Scheduler
	// QuerierHandler serves the querier's Prometheus API (behind the tenant
	// middleware) to the requests pulled by the querier worker.
	QuerierHandler   http.Handler
	Compactor        *compactor.Compactor
	StoreGatewayRing *ringutil.Ring
	StoreGateway     *storegateway.StoreGateway
	BlocksStore      *querier.BlocksStore
	// Queryable is the querier's read path; the ruler's rules query it.
	Queryable    *querier.Queryable
	Ruler        *ruler.Ruler
	Alertmanager *alertmanager.MultitenantAlertmanager

	auth       middleware.Interface
	bucket     objstore.Bucket
	clientPool *ingclient.Pool
	modules    *modules.Manager
	serviceMap map[string]services.Service
	manager    *services.Manager
}

// New builds the process for cfg.
func New(cfg Config, logger log.Logger, slogger *slog.Logger) (*Meridian, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build.NewCollector(),
	)
	m := &Meridian{Cfg: cfg, Registry: reg, Logger: logger, SLogger: slogger}
	m.setupModules()
	return m, nil
}

func (m *Meridian) setupModules() {
	mm := modules.NewManager(m.Logger)
	mm.RegisterModule(Server, m.initServer, modules.UserInvisibleModule)
	mm.RegisterModule(RuntimeConfig, m.initRuntimeConfig, modules.UserInvisibleModule)
	mm.RegisterModule(MemberlistKV, m.initMemberlistKV, modules.UserInvisibleModule)
	mm.RegisterModule(IngesterRing, m.initIngesterRing, modules.UserInvisibleModule)
	mm.RegisterModule(DistributorRing, m.initDistributorRing, modules.UserInvisibleModule)
	mm.RegisterModule(IngesterClients, m.initIngesterClients, modules.UserInvisibleModule)
	mm.RegisterModule(Ingester, m.initIngester)
	mm.RegisterModule(DistributorWritePath, m.initDistributor, modules.UserInvisibleModule)
	mm.RegisterModule(Carbon, m.initCarbon, modules.UserInvisibleModule)
	mm.RegisterModule(Distributor, nil)
	mm.RegisterModule(QuerierAPI, m.initQuerier, modules.UserInvisibleModule)
	mm.RegisterModule(Querier, m.initQuerierWorker)
	mm.RegisterModule(QueryFrontend, m.initQueryFrontend)
	mm.RegisterModule(QueryScheduler, m.initQueryScheduler)
	mm.RegisterModule(Compactor, m.initCompactor)
	mm.RegisterModule(StoreGatewayRing, m.initStoreGatewayRing, modules.UserInvisibleModule)
	mm.RegisterModule(StoreGateway, m.initStoreGateway)
	mm.RegisterModule(Ruler, m.initRuler)
	mm.RegisterModule(Alertmanager, m.initAlertmanager)
	mm.RegisterModule(Write, nil)
	mm.RegisterModule(Read, nil)
	mm.RegisterModule(Backend, nil)
	mm.RegisterModule(All, nil)

	deps := map[string][]string{
		RuntimeConfig:        {Server},
		MemberlistKV:         {Server},
		IngesterRing:         {Server, MemberlistKV},
		DistributorRing:      {Server, MemberlistKV},
		Ingester:             {Server, RuntimeConfig, MemberlistKV, IngesterRing},
		IngesterClients:      {IngesterRing},
		DistributorWritePath: {Server, RuntimeConfig, IngesterRing, DistributorRing, IngesterClients},
		Carbon:               {DistributorWritePath},
		Distributor:          {DistributorWritePath, Carbon},
		QuerierAPI:           {Server, RuntimeConfig, IngesterRing, StoreGatewayRing, IngesterClients},
		Querier:              {Server, QuerierAPI},
		QueryFrontend:        {Server, RuntimeConfig},
		QueryScheduler:       {Server},
		Compactor:            {Server, RuntimeConfig, MemberlistKV},
		StoreGatewayRing:     {Server, MemberlistKV},
		StoreGateway:         {Server, RuntimeConfig, MemberlistKV, StoreGatewayRing},
		Ruler:                {Server, RuntimeConfig, MemberlistKV, QuerierAPI, DistributorWritePath},
		Alertmanager:         {Server, RuntimeConfig},
		Write:                {Distributor, Ingester},
		Read:                 {Querier},
		Backend:              {StoreGateway, Compactor},
		All:                  {Distributor, Ingester, Querier, Compactor, StoreGateway, Ruler, Alertmanager},
	}
	for mod, ds := range deps {
		if err := mm.AddDependency(mod, ds...); err != nil {
			panic(err) // programming error in the table above
		}
	}
	m.modules = mm
}

// ModuleNames lists the modules a user may target.
func (m *Meridian) ModuleNames() []string { return m.modules.UserVisibleModuleNames() }

func (m *Meridian) initServer() (services.Service, error) {
	cfg := m.Cfg.Server
	cfg.Registerer = m.Registry
	cfg.Gatherer = m.Registry
	cfg.Log = m.Logger
	// Signals are handled by Run, which stops every module in order.
	cfg.SignalHandler = ignoreSignals{}
	// Querier worker streams carry many tenants' requests, each with its
	// tenant inside.
	unary, stream := tenant.GRPCServerInterceptors(scheduler.QuerierLoopMethod)
	cfg.GRPCMiddleware = append(cfg.GRPCMiddleware, unary)
	cfg.GRPCStreamMiddleware = append(cfg.GRPCStreamMiddleware, stream)
	// dskit's server already adds the OpenTelemetry stats handler: adding
	// it here too made two server spans per call.
	cfg.GRPCOptions = append(cfg.GRPCOptions, grpc.ForceServerCodecV2(grpccodec.PooledCodec{}))
	s, err := server.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("start HTTP and gRPC servers: %w", err)
	}
	m.Server = s
	// The client pools of other processes check this one's health.
	grpc_health_v1.RegisterHealthServer(s.GRPC, grpcutil.NewHealthCheckFrom())
	auth, err := tenant.NewHTTPMiddleware(m.Cfg.Auth, m.Logger, m.Registry)
	if err != nil {
		return nil, err
	}
	m.auth = auth
	m.API = api.New(s.HTTP, auth)
	m.API.RegisterAdmin(http.HandlerFunc(m.readyHandler), http.HandlerFunc(m.servicesHandler), http.HandlerFunc(m.configHandler), http.HandlerFunc(m.runtimeConfigHandler))
	return newServerService(s, m.Logger), nil
}

func (m *Meridian) initRuntimeConfig() (services.Service, error) {
	o, err := limits.NewOverrides(m.Cfg.Limits, m.Cfg.RuntimeConfig, m.Logger, m.Registry)
	if err != nil {
		return nil, err
	}
	m.Overrides = o
	return o, nil
}

func (m *Meridian) initMemberlistKV() (services.Service, error) {
	cfg := m.Cfg.MemberlistKV
	cfg.MetricsNamespace = "meridian"
	cfg.Codecs = []codec.Codec{ring.GetCodec()}
	dnsProvider := dns.NewProvider(dns.GolangResolverType, 0, m.Logger, prometheus.WrapRegistererWithPrefix("meridian_memberlist_", m.Registry))
	m.Memberlist = memberlist.NewKVInitService(&cfg, m.Logger, dnsProvider, m.Registry)
	m.API.RegisterMemberlist(m.Memberlist)
	if m.Cfg.Common.Ring.KVStore.Store != "memberlist" {
		// Nothing gossips: keep the page, don't join or listen.
		return services.NewIdleService(nil, nil), nil
	}
	return m.Memberlist, nil
}

// ringKV is the KV store of every ring of the process (common.ring.kvstore).
// Every ring shares the one gossip member.
func (m *Meridian) ringKV() kv.Config {
	cfg := m.Cfg.Common.Ring.KVStore
	if m.Memberlist != nil {
		cfg.MemberlistKV = m.Memberlist.GetMemberlistKV
	}
	return cfg
}

// ingesterConfig is the ingester's config with the process' ring KV store
// and ingester ring client.
func (m *Meridian) ingesterConfig() ingester.Config {
	cfg := m.Cfg.Ingester
	cfg.Lifecycler.RingConfig.KVStore = m.ringKV()
	cfg.RingClient = m.IngesterRing
	return cfg
}

// initDistributorRing lets distributors count each other, so a tenant's
// ingestion rate limit is split across the healthy ones.
func (m *Meridian) initDistributorRing() (services.Service, error) {
	r, err := distributor.NewRing(m.Cfg.Distributor.Ring, m.ringKV(), m.runs(Distributor), m.Logger, prometheus.WrapRegistererWithPrefix("meridian_", m.Registry))
	if err != nil {
		return nil, err
	}
	m.DistributorRing = r
	m.API.RegisterDistributorRing(r)
	return r, nil
}

func (m *Meridian) initIngesterRing() (services.Service, error) {
	r, err := ring.New(m.ingesterConfig().Lifecycler.RingConfig, "ingester", ingester.RingKey, m.Logger, prometheus.WrapRegistererWithPrefix("meridian_", m.Registry))
	if err != nil {
		return nil, fmt.Errorf("create ingester ring client: %w", err)
	}
	m.IngesterRing = r
	m.API.RegisterRing(r)
	return r, nil
}

// objectBucket creates the object storage client once per process.
func (m *Meridian) objectBucket() (objstore.Bucket, error) {
	if m.bucket != nil {
		return m.bucket, nil
	}
	b, err := storage.NewBucket(m.Cfg.BlocksStorage, "meridian", m.Logger, m.Registry)
	if err != nil {
		return nil, fmt.Errorf("open object storage: %w", err)
	}
	m.bucket = b
	return b, nil
}

// initIngesterClients creates the one pool of ingester connections of the
// process; it drops connections to ingesters that left the ring.
func (m *Meridian) initIngesterClients() (services.Service, error) {
	lc := m.Cfg.Ingester.Lifecycler
	localAddr := net.JoinHostPort(lc.InstanceAddr, strconv.Itoa(lc.InstancePort))
	m.clientPool = ingclient.NewPool(m.Cfg.IngesterClient, m.IngesterRing, localAddr, func() meridianpb.IngesterServer {
		if m.Ingester == nil {
			return nil
		}
		return m.Ingester
	}, m.Logger, m.Registry)
	return m.clientPool, nil
}

func (m *Meridian) initIngester() (services.Service, error) {
	bkt, err := m.objectBucket()
	if err != nil {
		return nil, err
	}
	ing, err := ingester.New(m.ingesterConfig(), m.Overrides, bkt, m.Logger, m.SLogger, m.Registry)
	if err != nil {
		return nil, err
	}
	m.Ingester = ing
	meridianpb.RegisterIngesterServer(m.Server.GRPC, ing)
	m.API.RegisterIngester(http.HandlerFunc(ing.FlushHandler), http.HandlerFunc(ing.ShutdownHandler))
	return ing, nil
}

func (m *Meridian) initDistributor() (services.Service, error) {
	d := distributor.New(m.Cfg.Distributor, m.IngesterRing, m.Overrides, m.clientPool, m.Logger, m.Registry)
	m.Distributor = d
	rl := distributor.NewIngestionRateLimiter(m.Overrides, func() int {
		n, _ := m.DistributorRing.HealthyMembers() // below 1 counts as 1
		return n
	})
	m.PushHandler = distributor.NewPushHandler(m.Cfg.Distributor.PushHandler, d, m.Overrides, rl, m.Logger, m.Registry)
	m.API.RegisterDistributor(m.PushHandler)
	return d, nil
}

// initCarbon runs the carbon listeners of the distributor and POST
// /graphite/ingest; lines go through the push handler's write path.
func (m *Meridian) initCarbon() (services.Service, error) {
	in := carbon.NewReceiver(m.Cfg.Graphite.Carbon, m.PushHandler, m.Logger, m.Registry)
	m.Carbon = in
	m.API.RegisterGraphiteIngest(in)
	return in, nil
}

func (m *Meridian) initQuerier() (services.Service, error) {
	bkt, err := m.objectBucket()
	if err != nil {
		return nil, err
	}
	pool := sgclient.NewClientPool(m.Cfg.StoreGatewayClient, m.StoreGatewayRing.Client(), m.Logger, m.Registry)
	m.BlocksStore = querier.NewBlocksStore(m.Cfg.Querier.BucketBlocks, bkt, m.StoreGatewayRing.Client(), m.Overrides, pool, m.Logger, m.Registry)
	q := querier.NewQueryable(m.Cfg.Querier, m.IngesterRing, m.clientPool, m.BlocksStore, m.Overrides, m.Logger)
	m.Queryable = q
	bi := httpapi.BuildInfo{
		Version: build.Version, Revision: build.Revision, Branch: build.Branch,
		BuildUser: build.BuildUser, BuildDate: build.BuildDate, GoVersion: build.GoVersion(),
		// Every Meridian cluster can run the ruler and the Alertmanager
		// (both are part of all).
		Features: map[string]string{"ruler_config_api": "true", "alertmanager_config_api": "true"},
	}
	h := httpapi.New(m.Cfg.API, q, q, m.Overrides, bi, m.Logger, m.Registry)
	if !m.targets(QueryFrontend) {
		// With a query-frontend in this process, the frontend owns the
		// public routes and this querier only answers what it pulls.
		m.API.RegisterQuerier(h)
	}
	gr := graphiteapi.New(q, m.Overrides, m.Logger, m.Registry).Routes()
	local := mux.NewRouter()
	localAPI := api.New(local, m.auth)
	localAPI.RegisterQuerier(h)
	localAPI.RegisterGraphite(gr)
	m.QuerierHandler = local
	public := gr
	if m.targets(QueryFrontend) {
		// The frontend queues /graphite/render (RegisterQueryFrontend).
		public = maps.Clone(gr)
		delete(public, api.GraphiteRenderPath)
	}
	m.API.RegisterGraphite(public)
	return pool, nil
}

// initStoreGatewayRing watches the store-gateway ring: queriers route
// blocks with it, store-gateways decide which blocks they own.
func (m *Meridian) initStoreGatewayRing() (services.Service, error) {
	r, err := storegateway.NewRing(m.Cfg.StoreGateway.Ring, m.ringKV(), m.Logger, prometheus.WrapRegistererWithPrefix("meridian_", m.Registry))
	if err != nil {
		return nil, err
	}
	m.StoreGatewayRing = r
	m.API.RegisterStoreGatewayRing(r)
	return r, nil
}

func (m *Meridian) initStoreGateway() (services.Service, error) {
	bkt, err := m.objectBucket()
	if err != nil {
		return nil, err
	}
	g, err := storegateway.New(m.Cfg.StoreGateway, bkt, m.ringKV(), m.StoreGatewayRing, m.Overrides, m.Logger, m.Registry)
	if err != nil {
		return nil, fmt.Errorf("create store-gateway: %w", err)
	}
	m.StoreGateway = g
	meridianpb.RegisterStoreGatewayServer(m.Server.GRPC, g)
	return g, nil
}

// initRuler evaluates the tenants' rule groups this process owns in the
// ruler ring, querying through the querier's read path and writing through
// the distributor's write path in process, and serves the rules configuration API and the Prometheus
// rules and alerts endpoints.
func (m *Meridian) initRuler() (services.Service, error) {
	bkt, err := m.objectBucket()
	if err != nil {
		return nil, err
	}
	rr, err := ruler.NewRing(m.Cfg.Ruler.Ring, m.ringKV(), m.Logger, prometheus.WrapRegistererWithPrefix("meridian_", m.Registry))
	if err != nil {
		return nil, fmt.Errorf("create ruler ring: %w", err)
	}
	m.API.RegisterRulerRing(rr)
	r := ruler.New(m.rulerConfig(), ruler.NewStore(bkt), rr, m.Queryable, m.PushHandler, m.Overrides, m.Cfg.API.LookbackDelta, m.Logger, m.Registry)
	m.Ruler = r
	m.API.RegisterRuler(r)
	return r, nil
}

// rulerConfig is the ruler's config with, when -ruler.alertmanager-url is
// empty and this process runs the Alertmanager, the built-in one as its
// Alertmanager (over loopback HTTP, so the tenant travels as for any client).
func (m *Meridian) rulerConfig() ruler.Config {
	cfg := m.Cfg.Ruler
	if len(cfg.AlertmanagerURL) == 0 && (m.targets(All) || m.targets(Alertmanager)) {
		cfg.AlertmanagerURL = []string{"http://" + loopbackAddr(m.Server.HTTPListenAddr()) + alertmanager.APIPrefix}
	}
	return cfg
}

// initAlertmanager runs the multi-tenant Alertmanager: the configuration
// API (/api/v1/alerts) and the tenants' v2 APIs under /alertmanager.
func (m *Meridian) initAlertmanager() (services.Service, error) {
	bkt, err := m.objectBucket()
	if err != nil {
		return nil, err
	}
	am, err := alertmanager.New(m.Cfg.Alertmanager, bkt, m.Overrides, m.Logger, m.SLogger, m.Registry)
	if err != nil {
		return nil, fmt.Errorf("create alertmanager: %w", err)
	}
	if m.Cfg.Common.Ring.KVStore.Store != "inmemory" {
		// No ring shards tenants across Alertmanagers yet (docs/alertmanager.md).
		level.Warn(m.Logger).Log("msg", "this process runs the Alertmanager and may be one of several: the Alertmanager has no ring yet, so run it in one process of the cluster only (-target without alertmanager or all elsewhere); two would each notify and overwrite each other's silences in object storage")
	}
	m.Alertmanager = am
	m.API.RegisterAlertmanager(http.HandlerFunc(am.ConfigHandler), alertmanager.APIPrefix, am)
	return am, nil
}

// runs reports whether this process runs module: a target, or a
// dependency of one.
func (m *Meridian) runs(module string) bool {
	for _, t := range m.Cfg.Target {
		if t == module || slices.Contains(m.modules.DependenciesForModule(t), module) {
			return true
		}
	}
	return false
}

// targets reports whether -target names module.
func (m *Meridian) targets(module string) bool {
	return slices.Contains(m.Cfg.Target, module)
}

// initQuerierWorker connects the querier to the queue it pulls queries
// from: -querier.scheduler-address or -querier.frontend-address, or, with a
// query-frontend in this process that queues itself, this process' own gRPC
// server over loopback. With none the querier answers HTTP only.
func (m *Meridian) initQuerierWorker() (services.Service, error) {
	addr := m.Cfg.QuerierWorker.Address()
	if addr == "" && m.targets(QueryFrontend) && m.Cfg.Frontend.DownstreamURL == "" {
		addr = m.Cfg.Frontend.SchedulerAddress
		if addr == "" {
			addr = loopbackAddr(m.Server.GRPCListenAddr())
		}
	}
	if addr == "" {
		return services.NewIdleService(nil, nil), nil
	}
	return worker.New(m.Cfg.QuerierWorker, addr, m.QuerierHandler, m.Logger, m.Registry)
}

// loopbackAddr is a dialable form of a listen address: an unspecified host
// (all interfaces) becomes 127.0.0.1.
func loopbackAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// initQueryScheduler serves a query queue that query-frontends enqueue to
// (-frontend.scheduler-address) and queriers pull from
// (-querier.scheduler-address).
func (m *Meridian) initQueryScheduler() (services.Service, error) {
	if m.targets(QueryFrontend) {
		return nil, errors.New("query-scheduler and query-frontend in one process: run the scheduler in its own process, or drop it and let the queriers pull from the frontend")
	}
	s := scheduler.New(m.Logger, m.Registry)
	m.Scheduler = s
	meridianpb.RegisterQueryQueueServer(m.Server.GRPC, s.Server())
	return s, nil
}

// initQueryFrontend puts the query-frontend in front of the queriers: they
// pull from its queue (or from a query-scheduler's), or it sends to
// -frontend.downstream-url. It is not part of all or read; add it to the
// target (-target=all,query-frontend) to run it in the monolith.
func (m *Meridian) initQueryFrontend() (services.Service, error) {
	lim := frontend.LimitsFunc(func(t string) frontend.TenantLimits {
		l := m.Overrides.Limits(t)
		return frontend.TenantLimits{
			MaxOutstanding:         l.MaxOutstandingPerTenant,
			MaxQueryParallelism:    l.MaxQueryParallelism,
			MaxQueryLength:         time.Duration(l.MaxQueryLength),
			MaxPointsPerTimeseries: l.MaxPointsPerTimeseries,
			MaxQueriers:            l.MaxQueriersPerTenant,
			GraphiteStep:           time.Duration(l.GraphiteStep),

			GraphiteMaxSeriesPerRender: l.GraphiteMaxSeriesPerRender,
			GraphiteMaxPointsPerRender: l.GraphiteMaxPointsPerRender,
		}
	})
	f, err := frontend.New(m.Cfg.Frontend, lim, m.Logger, m.Registry)
	if err != nil {
		return nil, err
	}
	m.Frontend = f
	m.API.RegisterQueryFrontend(f.Handler())
	if qs, ok := f.QueueServer(); ok {
		meridianpb.RegisterQueryQueueServer(m.Server.GRPC, qs)
	}
	return f, nil
}

func (m *Meridian) initCompactor() (services.Service, error) {
	bkt, err := m.objectBucket()
	if err != nil {
		return nil, err
	}
	shards, err := compactor.NewRing(m.Cfg.Compactor.Ring, m.ringKV(), m.Logger, prometheus.WrapRegistererWithPrefix("meridian_", m.Registry))
	if err != nil {
		return nil, fmt.Errorf("create compactor ring: %w", err)
	}
	m.API.RegisterCompactorRing(shards)
	c, err := compactor.New(m.Cfg.Compactor, bkt, m.Overrides, shards, m.Logger, m.SLogger, m.Registry)
	if err != nil {
		return nil, fmt.Errorf("create compactor: %w", err)
	}
	m.Compactor = c
	m.API.RegisterCompactor(c)
	return c, nil
}

// Run starts the targeted modules and blocks until they stop: on SIGINT or
// SIGTERM, on ctx cancellation, or when one fails.
func (m *Meridian) Run(ctx context.Context) error {
	for _, t := range m.Cfg.Target {
		if !m.modules.IsTargetableModule(t) {
			return fmt.Errorf("unknown -target %q; valid targets: %s", t, strings.Join(m.ModuleNames(), ", "))
		}
	}
	svcs, err := m.modules.InitModuleServices(m.Cfg.Target...)
	if err != nil {
		return err
	}
	m.serviceMap = svcs
	list := make([]services.Service, 0, len(svcs))
	for _, s := range svcs {
		list = append(list, s)
	}
	sm, err := services.NewManager(list...)
	if err != nil {
		return err
	}
	m.manager = sm

	failed := make(chan error, 1)
	sm.AddListener(services.NewManagerListener(nil, nil, func(s services.Service) {
		name := m.serviceName(s)
		level.Error(m.Logger).Log("msg", "module failed; stopping the process", "module", name, "err", s.FailureCase())
		select {
		case failed <- fmt.Errorf("module %s failed: %w", name, s.FailureCase()):
		default:
		}
		sm.StopAsync()
	}))
	if err := sm.StartAsync(context.Background()); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		level.Info(m.Logger).Log("msg", "shutting down")
	case err := <-failed:
		_ = sm.AwaitStopped(context.Background())
		return err
	case <-awaitStopped(sm):
	}
	sm.StopAsync()
	if err := sm.AwaitStopped(context.Background()); err != nil {
		return err
	}
	select {
	case err := <-failed:
		return err
	default:
	}
	return nil
}

func awaitStopped(sm *services.Manager) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		_ = sm.AwaitStopped(context.Background())
		close(ch)
	}()
	return ch
}

func (m *Meridian) serviceName(s services.Service) string {
	for name, svc := range m.serviceMap {
		if svc == s {
			return name
		}
	}
	return "unknown"
}

// readyHandler answers 200 only when every module runs and, where this
// process writes or reads, the ingester ring can serve.
func (m *Meridian) readyHandler(w http.ResponseWriter, r *http.Request) {
	if m.manager == nil || !m.manager.IsHealthy() {
		var notRunning []string
		for name, s := range m.serviceMap {
			if st := s.State(); st != services.Running {
				notRunning = append(notRunning, name+"="+st.String())
			}
		}
		sort.Strings(notRunning)
		http.Error(w, "not ready: modules not running: "+strings.Join(notRunning, ", "), http.StatusServiceUnavailable)
		return
	}
	if m.Ingester != nil {
		if err := m.Ingester.CheckReady(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	if m.clientPool != nil { // a distributor or querier: it sends to ingesters
		if rs, err := m.IngesterRing.GetAllHealthy(ring.Write); err != nil || len(rs.Instances) == 0 {
			http.Error(w, "not ready: no healthy ACTIVE ingester in the ring yet", http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (m *Meridian) servicesHandler(w http.ResponseWriter, _ *http.Request) {
	names := make([]string, 0, len(m.serviceMap))
	for name := range m.serviceMap {
		names = append(names, name)
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, name := range names {
		s := m.serviceMap[name]
		line := fmt.Sprintf("%s: %s", name, s.State())
		if err := s.FailureCase(); err != nil {
			line += " (" + err.Error() + ")"
		}
		_, _ = fmt.Fprintln(w, line)
	}
}

func (m *Meridian) configHandler(w http.ResponseWriter, _ *http.Request) {
	out, err := yaml.Marshal(m.Cfg)
	if err != nil {
		http.Error(w, "encode config: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
	_, _ = w.Write(out)
}

func (m *Meridian) runtimeConfigHandler(w http.ResponseWriter, r *http.Request) {
	if m.Overrides == nil {
		http.Error(w, "this process runs no module that reads per-tenant limits", http.StatusNotFound)
		return
	}
	m.Overrides.ServeHTTP(w, r)
}

// ignoreSignals keeps dskit's server from handling signals itself.
type ignoreSignals struct{}

func (ignoreSignals) Loop() { select {} }
func (ignoreSignals) Stop() {}

// newServerService runs the HTTP and gRPC servers. The module manager stops
// it after every module that depends on it, so requests are served until
// the ingester has flushed.
func newServerService(s *server.Server, logger log.Logger) services.Service {
	done := make(chan error, 1)
	running := func(ctx context.Context) error {
		go func() { done <- s.Run() }()
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			if err == nil {
				err = errors.New("server stopped unexpectedly")
			}
			return err
		}
	}
	stopping := func(error) error {
		s.Shutdown()
		level.Info(logger).Log("msg", "HTTP and gRPC servers stopped")
		return nil
	}
	return services.NewBasicService(nil, running, stopping)
}

var _ middleware.Interface = (*tenant.HTTPMiddleware)(nil)
