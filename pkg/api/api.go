// Package api registers every HTTP route of Meridian in one place, so the
// whole HTTP surface can be read at a glance.
package api

import (
	"net/http"

	"github.com/gorilla/mux"
	"github.com/grafana/dskit/middleware"
)

// API owns the router and the tenant edge middleware.
type API struct {
	router *mux.Router
	auth   middleware.Interface
	// first holds routes that win over every other route whatever the
	// order of registration: the ruler's /prometheus/api/v1/rules and
	// alerts, below the query-frontend's /prometheus/api/v1/ prefix.
	first *mux.Router
}

// New creates the API on the server's router. auth reads and checks the
// tenant of every tenant-scoped route.
func New(router *mux.Router, auth middleware.Interface) *API {
	// A subrouter without a NotFoundHandler that matches none of its
	// routes lets the router try the next route.
	return &API{router: router, auth: auth, first: router.NewRoute().Subrouter()}
}

// route registers h at path; tenant-scoped routes go through auth.
func (a *API) route(path string, h http.Handler, tenantScoped bool, methods ...string) {
	if tenantScoped {
		h = a.auth.Wrap(h)
	}
	r := a.router.Path(path).Handler(h)
	if len(methods) > 0 {
		r.Methods(methods...)
	}
}

// RegisterAdmin registers the process endpoints (no tenant).
func (a *API) RegisterAdmin(ready, services, config, runtimeConfig http.Handler) {
	a.route("/ready", ready, false, http.MethodGet, http.MethodHead)
	a.route("/services", services, false, http.MethodGet)
	a.route("/config", config, false, http.MethodGet)
	a.route("/runtime_config", runtimeConfig, false, http.MethodGet)
}

// RegisterDistributor registers the write path.
func (a *API) RegisterDistributor(push http.Handler) {
	a.route("/api/v1/push", push, true, http.MethodPost)
}

// RegisterIngester registers the ingester's operational endpoints.
func (a *API) RegisterIngester(flush, shutdown http.Handler) {
	a.route("/ingester/flush", flush, false, http.MethodGet, http.MethodPost)
	a.route("/ingester/shutdown", shutdown, false, http.MethodGet, http.MethodPost)
}

// RegisterRing registers the ingester ring status page.
func (a *API) RegisterRing(ring http.Handler) {
	a.route("/ring", ring, false, http.MethodGet, http.MethodPost)
	a.route("/ingester/ring", ring, false, http.MethodGet, http.MethodPost)
}

// RegisterDistributorRing registers the distributor ring status page.
func (a *API) RegisterDistributorRing(ring http.Handler) {
	a.route("/distributor/ring", ring, false, http.MethodGet, http.MethodPost)
}

// RegisterStoreGatewayRing registers the store-gateway ring status page.
func (a *API) RegisterStoreGatewayRing(ring http.Handler) {
	a.route("/store-gateway/ring", ring, false, http.MethodGet, http.MethodPost)
}

// RegisterCompactorRing registers the compactor ring status page.
func (a *API) RegisterCompactorRing(ring http.Handler) {
	a.route("/compactor/ring", ring, false, http.MethodGet, http.MethodPost)
}

// RegisterMemberlist registers the gossip membership page.
func (a *API) RegisterMemberlist(page http.Handler) {
	a.route("/memberlist", page, false, http.MethodGet)
}

// PrometheusAPI is the querier's Prometheus HTTP API.
type PrometheusAPI interface {
	Register(r *mux.Router)
}

// Compactor serves tenant deletion.
type Compactor interface {
	DeleteTenantHandler(w http.ResponseWriter, r *http.Request)
	DeleteTenantStatusHandler(w http.ResponseWriter, r *http.Request)
}

// RegisterCompactor registers tenant deletion, behind the tenant middleware.
func (a *API) RegisterCompactor(c Compactor) {
	a.route("/compactor/delete_tenant", http.HandlerFunc(c.DeleteTenantHandler), true, http.MethodPost)
	a.route("/compactor/delete_tenant_status", http.HandlerFunc(c.DeleteTenantStatusHandler), true, http.MethodGet)
}

// RegisterQueryFrontend mounts the query-frontend in front of the
// Prometheus HTTP API, behind the tenant middleware.
func (a *API) RegisterQueryFrontend(h http.Handler) {
	a.router.PathPrefix("/prometheus/api/v1/").Methods(http.MethodGet, http.MethodPost).Handler(a.auth.Wrap(h))
	// Graphite renders go through the same per-tenant queue, limits and
	// retries; those whose functions are all point-wise are also split and
	// cached (pkg/frontend/graphite.go says which and why).
	a.router.Path("/graphite"+GraphiteRenderPath).Methods(http.MethodGet, http.MethodPost).Handler(a.auth.Wrap(h))
}

// GraphiteRenderPath is the render route below /graphite.
const GraphiteRenderPath = "/render"

// RegisterQuerier mounts the Prometheus HTTP API under /prometheus, behind
// the tenant middleware.
func (a *API) RegisterQuerier(p PrometheusAPI) {
	sub := a.router.PathPrefix("/prometheus").Subrouter()
	sub.Use(a.auth.Wrap)
	p.Register(sub)
}

// RegisterGraphite mounts the Graphite read API (render, find, tags, ...)
// under /graphite, behind the tenant middleware. routes maps each path below
// /graphite to its handler; GET and POST (form) are both accepted.
func (a *API) RegisterGraphite(routes map[string]http.HandlerFunc) {
	for path, h := range routes {
		a.route("/graphite"+path, h, true, http.MethodGet, http.MethodPost)
	}
}

// RegisterGraphiteIngest registers POST /graphite/ingest (carbon plaintext
// lines over HTTP), behind the tenant middleware.
func (a *API) RegisterGraphiteIngest(h http.Handler) {
	a.route("/graphite/ingest", h, true, http.MethodPost)
}

// Ruler serves the rules configuration API and the Prometheus rules and
// alerts endpoints.
type Ruler interface {
	ListRules(w http.ResponseWriter, r *http.Request)
	GetNamespace(w http.ResponseWriter, r *http.Request)
	PostNamespace(w http.ResponseWriter, r *http.Request)
	DeleteNamespace(w http.ResponseWriter, r *http.Request)
	GetGroup(w http.ResponseWriter, r *http.Request)
	DeleteGroup(w http.ResponseWriter, r *http.Request)
	PrometheusRules(w http.ResponseWriter, r *http.Request)
	PrometheusAlerts(w http.ResponseWriter, r *http.Request)
}

// RegisterRuler registers the Cortex/Mimir rules configuration API and
// the Prometheus rules and alerts endpoints (served here, not by the
// querier or the query-frontend), behind the tenant middleware.
func (a *API) RegisterRuler(r Ruler) {
	const cfg = "/prometheus/config/v1/rules"
	a.route(cfg, http.HandlerFunc(r.ListRules), true, http.MethodGet)
	a.route(cfg+"/{namespace}", http.HandlerFunc(r.GetNamespace), true, http.MethodGet)
	a.route(cfg+"/{namespace}", http.HandlerFunc(r.PostNamespace), true, http.MethodPost)
	a.route(cfg+"/{namespace}", http.HandlerFunc(r.DeleteNamespace), true, http.MethodDelete)
	a.route(cfg+"/{namespace}/{group}", http.HandlerFunc(r.GetGroup), true, http.MethodGet)
	a.route(cfg+"/{namespace}/{group}", http.HandlerFunc(r.DeleteGroup), true, http.MethodDelete)
	a.first.Path("/prometheus/api/v1/rules").Methods(http.MethodGet, http.MethodPost).Handler(a.auth.Wrap(http.HandlerFunc(r.PrometheusRules)))
	a.first.Path("/prometheus/api/v1/alerts").Methods(http.MethodGet, http.MethodPost).Handler(a.auth.Wrap(http.HandlerFunc(r.PrometheusAlerts)))
}

// RegisterRulerRing registers the ruler ring status page.
func (a *API) RegisterRulerRing(ring http.Handler) {
	a.route("/ruler/ring", ring, false, http.MethodGet, http.MethodPost)
}

// RegisterAlertmanager registers the multi-tenant Alertmanager, behind the
// tenant middleware: the Cortex configuration API (/api/v1/alerts) and
// each tenant's Alertmanager v2 API under prefix (/alertmanager/api/v2/...).
func (a *API) RegisterAlertmanager(config http.Handler, prefix string, am http.Handler) {
	a.route("/api/v1/alerts", config, true, http.MethodGet, http.MethodPost, http.MethodDelete)
	a.router.PathPrefix(prefix + "/api/v2/").Handler(a.auth.Wrap(am))
}
