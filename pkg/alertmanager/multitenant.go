package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/concurrency"
	"github.com/grafana/dskit/services"
	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// APIPrefix is where the tenants' Alertmanager v2 APIs are served:
// <APIPrefix>/api/v2/alerts and so on. Clients (the ruler, Prometheus,
// amtool, Grafana) are given http://<host>:<port><APIPrefix> as the
// Alertmanager URL.
const APIPrefix = "/alertmanager"

// stopConcurrency is how many tenants' state is written at once at
// shutdown; syncConcurrency how many tenants start at once.
const (
	stopConcurrency = 16
	syncConcurrency = 16
)

// MultitenantAlertmanager runs one Alertmanager per tenant and serves the
// configuration API and the tenants' v2 APIs.
type MultitenantAlertmanager struct {
	services.Service

	cfg         Config
	bkt         objstore.Bucket
	limits      limits.Source
	logger      log.Logger
	slogger     *slog.Logger
	externalURL *url.URL
	fallback    *builtConfig

	mu        sync.Mutex // guards instances, pending and applied
	instances map[string]*instance
	pending   map[string]chan struct{} // tenants starting; closed when the tenant's start ends
	// applied is when each stored configuration that sync read was written,
	// to skip unchanged ones.
	applied map[string]time.Time

	tenantMetrics  *tenantMetrics
	tenants        prometheus.GaugeFunc
	persistFailed  prometheus.Counter
	configsRefused *prometheus.CounterVec
	syncFailed     prometheus.Counter
}

// New creates the Alertmanager. bkt is the whole bucket.
func New(cfg Config, bkt objstore.Bucket, lim limits.Source, logger log.Logger, slogger *slog.Logger, reg prometheus.Registerer) (*MultitenantAlertmanager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	extURL, err := url.Parse(cfg.ExternalURL)
	if err != nil {
		return nil, fmt.Errorf("parse -alertmanager.web.external-url: %w", err)
	}
	am := &MultitenantAlertmanager{
		cfg:           cfg,
		bkt:           bkt,
		limits:        lim,
		logger:        log.With(logger, "component", "alertmanager"),
		slogger:       slogger.With("component", "alertmanager"),
		externalURL:   extURL,
		instances:     map[string]*instance{},
		pending:       map[string]chan struct{}{},
		applied:       map[string]time.Time{},
		tenantMetrics: newTenantMetrics(logger),
	}
	fallback := defaultFallbackConfig
	if cfg.FallbackConfigFile != "" {
		b, err := os.ReadFile(cfg.FallbackConfigFile)
		if err != nil {
			return nil, fmt.Errorf("read -alertmanager.configs.fallback: %w", err)
		}
		fallback = string(b)
	}
	am.fallback, err = buildConfig(UserConfig{AlertmanagerConfig: fallback}, []byte(fallback), extURL, am.slogger)
	if err != nil {
		return nil, fmt.Errorf("the fallback configuration (-alertmanager.configs.fallback): %w", err)
	}

	reg.MustRegister(am.tenantMetrics)
	am.tenants = promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meridian_alertmanager_tenants",
		Help: "Tenants whose Alertmanager runs in this process.",
	}, func() float64 {
		am.mu.Lock()
		defer am.mu.Unlock()
		return float64(len(am.instances))
	})
	am.persistFailed = promauto.With(reg).NewCounter(prometheus.CounterOpts{
		Name: "meridian_alertmanager_state_persist_failures_total",
		Help: "Writes of a tenant's silences and notification log to object storage that failed when the process stopped or a tenant's configuration was deleted (periodic failures are logged and retried).",
	})
	am.configsRefused = promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "meridian_alertmanager_config_uploads_refused_total",
		Help: "Configuration uploads refused, per reason (error ID).",
	}, []string{"reason"})
	am.syncFailed = promauto.With(reg).NewCounter(prometheus.CounterOpts{
		Name: "meridian_alertmanager_config_sync_failures_total",
		Help: "Reads of the tenants' configurations from object storage that failed.",
	})
	am.Service = services.NewTimerService(cfg.PollInterval, am.starting, am.iteration, am.stopping)
	return am, nil
}

func (am *MultitenantAlertmanager) starting(ctx context.Context) error {
	start := time.Now()
	if err := am.sync(ctx); err != nil {
		return fmt.Errorf("load the tenants' Alertmanager configurations: %w", err)
	}
	level.Info(am.logger).Log("msg", "Alertmanager started", "tenants", am.tenantCount(), "duration", time.Since(start))
	return nil
}

func (am *MultitenantAlertmanager) iteration(ctx context.Context) error {
	if err := am.sync(ctx); err != nil {
		am.syncFailed.Inc()
		level.Warn(am.logger).Log("msg", "reading the tenants' configurations failed; the running ones stay in force, retrying at the next poll", "err", err)
	}
	return nil
}

func (am *MultitenantAlertmanager) stopping(error) error {
	start := time.Now()
	am.mu.Lock()
	instances := am.instances
	am.instances = map[string]*instance{}
	am.mu.Unlock()
	tenants := make([]string, 0, len(instances))
	for tenant := range instances {
		tenants = append(tenants, tenant)
	}
	// Tenants are written in parallel so that many of them fit in a
	// shutdown grace period.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = concurrency.ForEachUser(ctx, tenants, stopConcurrency, func(ctx context.Context, tenant string) error {
		if err := instances[tenant].stop(ctx); err != nil {
			am.persistFailed.Inc()
			level.Error(am.logger).Log("msg", "writing the tenant's silences and notification log failed; changes since the last periodic write are lost", "tenant", tenant, "err", err)
		}
		return nil
	})
	level.Info(am.logger).Log("msg", "Alertmanager stopped; state written", "tenants", len(instances), "duration", time.Since(start))
	return nil
}

func (am *MultitenantAlertmanager) tenantCount() int {
	am.mu.Lock()
	defer am.mu.Unlock()
	return len(am.instances)
}

// sync runs every stored configuration that changed since the last sync
// (or whose tenant does not run), and stops the tenants whose configuration
// is gone (deleted through another process). Unchanged configurations cost
// nothing but their line in the listing.
func (am *MultitenantAlertmanager) sync(ctx context.Context) error {
	configs, err := bucket.ListAlertmanagerConfigs(ctx, am.bkt)
	if err != nil {
		return err
	}
	am.mu.Lock()
	var changed []string
	for tenant, modified := range configs {
		if _, running := am.instances[tenant]; running && !modified.IsZero() && modified.Equal(am.applied[tenant]) {
			continue
		}
		changed = append(changed, tenant)
	}
	am.mu.Unlock()
	// Tenants start side by side: each reads three objects.
	_ = concurrency.ForEachUser(ctx, changed, syncConcurrency, func(ctx context.Context, tenant string) error {
		bc, err := am.storedConfig(ctx, tenant)
		if err != nil {
			level.Warn(am.logger).Log("msg", "the tenant's stored configuration cannot run; the one in force stays", "tenant", tenant, "err", err)
			if errors.Is(err, ErrInvalidConfig) {
				am.markApplied(tenant, configs[tenant]) // not worth reading again until it changes
			}
			return nil
		}
		if bc == nil {
			return nil // deleted since the listing
		}
		in, err := am.instance(ctx, tenant)
		if err != nil {
			level.Warn(am.logger).Log("msg", "starting the tenant's Alertmanager failed; retrying at the next poll", "tenant", tenant, "err", err)
			return nil
		}
		if err := in.apply(bc, true); err != nil {
			level.Warn(am.logger).Log("msg", "applying the tenant's configuration failed; the one in force stays", "tenant", tenant, "err", err)
			return nil
		}
		am.markApplied(tenant, configs[tenant])
		return nil
	})
	am.mu.Lock()
	var gone []string
	for tenant, in := range am.instances {
		if _, ok := configs[tenant]; !ok && in.isUploaded() {
			gone = append(gone, tenant)
		}
	}
	for tenant := range am.applied {
		if _, ok := configs[tenant]; !ok {
			delete(am.applied, tenant)
		}
	}
	am.mu.Unlock()
	for _, tenant := range gone {
		am.stopTenant(ctx, tenant)
	}
	return nil
}

// markApplied remembers when the configuration sync applied was written. A
// configuration written in the last minute is read again at every poll: a
// bucket's clock may give two writes in one second the same time.
func (am *MultitenantAlertmanager) markApplied(tenant string, modified time.Time) {
	if time.Since(modified) < time.Minute {
		return
	}
	am.mu.Lock()
	defer am.mu.Unlock()
	am.applied[tenant] = modified
}

// storedConfig reads and builds the tenant's stored configuration; nil
// when it has none.
func (am *MultitenantAlertmanager) storedConfig(ctx context.Context, tenant string) (*builtConfig, error) {
	raw, err := am.readConfig(ctx, tenant)
	if err != nil || raw == nil {
		return nil, err
	}
	uc, err := decodeUserConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", bucket.AlertmanagerConfigName(tenant), err)
	}
	return buildConfig(uc, raw, am.externalURL, am.slogger.With("tenant", tenant))
}

func (am *MultitenantAlertmanager) readConfig(ctx context.Context, tenant string) ([]byte, error) {
	name := bucket.AlertmanagerConfigName(tenant)
	r, err := am.bkt.Get(ctx, name)
	if am.bkt.IsObjNotFoundErr(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// instance returns the tenant's Alertmanager, starting it with its stored
// configuration, or the fallback one, if it does not run yet. Tenants start
// side by side; a second caller for the same tenant waits for the first.
func (am *MultitenantAlertmanager) instance(ctx context.Context, tenant string) (*instance, error) {
	for {
		am.mu.Lock()
		if in, ok := am.instances[tenant]; ok {
			am.mu.Unlock()
			return in, nil
		}
		if wait, ok := am.pending[tenant]; ok {
			am.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		am.pending[tenant] = done
		am.mu.Unlock()

		in, err := am.startInstance(ctx, tenant)
		am.mu.Lock()
		delete(am.pending, tenant)
		if err == nil {
			am.instances[tenant] = in
			am.tenantMetrics.regs.AddTenantRegistry(tenant, in.reg)
		}
		am.mu.Unlock()
		close(done)
		return in, err
	}
}

func (am *MultitenantAlertmanager) startInstance(ctx context.Context, tenant string) (*instance, error) {
	bc, err := am.storedConfig(ctx, tenant)
	if err != nil {
		level.Warn(am.logger).Log("msg", "the tenant's stored configuration cannot run; starting it with the fallback configuration", "tenant", tenant, "err", err)
	}
	uploaded := bc != nil
	if bc == nil {
		bc = am.fallback
	}
	in, err := newInstance(ctx, tenant, am.bkt, am.cfg.Retention, am.cfg.PersistInterval,
		func() int { return am.limits.Limits(tenant).AlertmanagerMaxSilencesCount },
		func() int { return am.limits.Limits(tenant).AlertmanagerMaxAlertsCount },
		am.slogger.With("tenant", tenant))
	if err != nil {
		return nil, err
	}
	if err := in.apply(bc, uploaded); err != nil {
		_ = in.stop(ctx)
		return nil, fmt.Errorf("start the Alertmanager of tenant %s: %w", tenant, err)
	}
	level.Info(am.logger).Log("msg", "tenant's Alertmanager started", "tenant", tenant, "uploaded_config", uploaded)
	return in, nil
}

// stopTenant stops the tenant's Alertmanager, writing its state first.
func (am *MultitenantAlertmanager) stopTenant(ctx context.Context, tenant string) {
	am.mu.Lock()
	in, ok := am.instances[tenant]
	delete(am.instances, tenant)
	am.mu.Unlock()
	if !ok {
		return
	}
	am.tenantMetrics.regs.RemoveTenantRegistry(tenant, false)
	if err := in.stop(ctx); err != nil {
		am.persistFailed.Inc()
		level.Error(am.logger).Log("msg", "writing the tenant's silences and notification log failed", "tenant", tenant, "err", err)
	}
	level.Info(am.logger).Log("msg", "tenant's Alertmanager stopped: its configuration was deleted", "tenant", tenant)
}

// ConfigHandler serves the Cortex configuration API, GET, POST and DELETE
// /api/v1/alerts, for the request's tenant.
func (am *MultitenantAlertmanager) ConfigHandler(w http.ResponseWriter, r *http.Request) {
	tenant, err := dskittenant.TenantID(r.Context())
	if err != nil {
		http.Error(w, fmt.Sprintf("no tenant in the request: send the tenant ID in the X-Scope-OrgID header (%v)", err), http.StatusUnauthorized)
		return
	}
	switch r.Method {
	case http.MethodGet:
		am.getConfig(w, r, tenant)
	case http.MethodPost:
		am.postConfig(w, r, tenant)
	case http.MethodDelete:
		am.deleteConfig(w, r, tenant)
	default:
		http.Error(w, "method not allowed: use GET, POST or DELETE", http.StatusMethodNotAllowed)
	}
}

func (am *MultitenantAlertmanager) getConfig(w http.ResponseWriter, r *http.Request, tenant string) {
	raw, err := am.readConfig(r.Context(), tenant)
	if err != nil {
		http.Error(w, "read the Alertmanager configuration: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if raw == nil {
		// Grafana and Cortex's tools match Cortex's text.
		http.Error(w, "alertmanager storage object not found: this tenant uploaded no Alertmanager configuration (the fallback one is in force); upload one with POST /api/v1/alerts", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(raw)
}

func (am *MultitenantAlertmanager) postConfig(w http.ResponseWriter, r *http.Request, tenant string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxUploadSize+1))
	if err != nil {
		http.Error(w, "read the request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxUploadSize {
		am.configsRefused.WithLabelValues(errIDConfigTooLarge).Inc()
		http.Error(w, fmt.Sprintf("%s: the configuration is more than %d bytes, the most any tenant may upload; make it smaller", errIDConfigTooLarge, maxUploadSize), http.StatusRequestEntityTooLarge)
		return
	}
	bc, err := parseUpload(body, am.limits.Limits(tenant), am.externalURL, am.slogger.With("tenant", tenant))
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrInvalidConfig) {
			status = http.StatusBadRequest
			am.configsRefused.WithLabelValues(errorID(err)).Inc()
		}
		http.Error(w, err.Error(), status)
		return
	}
	if err := am.bkt.Upload(r.Context(), bucket.AlertmanagerConfigName(tenant), bytes.NewReader(bc.raw)); err != nil {
		http.Error(w, "store the Alertmanager configuration: "+err.Error(), http.StatusInternalServerError)
		return
	}
	in, err := am.instance(r.Context(), tenant)
	if err == nil {
		err = in.apply(bc, true)
	}
	if err != nil {
		// Stored: the next poll applies it.
		http.Error(w, "the configuration is stored but applying it failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	level.Info(am.logger).Log("msg", "tenant's Alertmanager configuration uploaded", "tenant", tenant, "bytes", len(bc.raw))
	w.WriteHeader(http.StatusCreated)
}

func (am *MultitenantAlertmanager) deleteConfig(w http.ResponseWriter, r *http.Request, tenant string) {
	err := am.bkt.Delete(r.Context(), bucket.AlertmanagerConfigName(tenant))
	if err != nil && !am.bkt.IsObjNotFoundErr(err) {
		http.Error(w, "delete the Alertmanager configuration: "+err.Error(), http.StatusInternalServerError)
		return
	}
	am.stopTenant(r.Context(), tenant)
	w.WriteHeader(http.StatusOK)
}

// ServeHTTP serves the tenant's Alertmanager v2 API under APIPrefix,
// starting the tenant's Alertmanager if it does not run yet.
func (am *MultitenantAlertmanager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tenant, err := dskittenant.TenantID(r.Context())
	if err != nil {
		http.Error(w, fmt.Sprintf("no tenant in the request: send the tenant ID in the X-Scope-OrgID header (%v)", err), http.StatusUnauthorized)
		return
	}
	in, err := am.instance(r.Context(), tenant)
	if err != nil {
		http.Error(w, "start the tenant's Alertmanager: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodPost {
		var refused string
		switch r.URL.Path {
		case APIPrefix + "/api/v2/alerts":
			refused, err = am.checkAlerts(r, in, tenant)
		case APIPrefix + "/api/v2/silences":
			refused, err = am.checkSilences(r, in, tenant)
		}
		if err != nil {
			http.Error(w, "read the request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if refused != "" {
			http.Error(w, refused, http.StatusBadRequest)
			return
		}
	}
	http.StripPrefix(APIPrefix, in.handler()).ServeHTTP(w, r)
}

// checkAlerts refuses a POST of alerts that would take the tenant over
// alertmanager_max_alerts_count. It leaves the body for the API to read.
func (am *MultitenantAlertmanager) checkAlerts(r *http.Request, in *instance, tenant string) (string, error) {
	max := am.limits.Limits(tenant).AlertmanagerMaxAlertsCount
	if max <= 0 {
		return "", nil
	}
	body, err := rereadBody(r)
	if err != nil {
		return "", err
	}
	var posted []struct {
		Labels model.LabelSet `json:"labels"`
	}
	if json.Unmarshal(body, &posted) != nil {
		return "", nil // the API says what is wrong
	}
	added := map[model.Fingerprint]struct{}{}
	for _, a := range posted {
		fp := a.Labels.Fingerprint()
		if _, err := in.alerts.Get(fp); err != nil {
			added[fp] = struct{}{}
		}
	}
	if held := int(in.alertCount.Load()); len(added) > 0 && held+len(added) > max {
		return fmt.Sprintf("%s: the tenant holds %d alerts and this request adds %d, more than the limit of %d; resolve or drop alerts, or raise the per-tenant limit alertmanager_max_alerts_count (-alertmanager.max-alerts-count)", errIDTooManyAlerts, held, len(added), max), nil
	}
	return "", nil
}

// checkSilences refuses a new silence beyond
// alertmanager_max_silences_count with a message that names the limit.
func (am *MultitenantAlertmanager) checkSilences(r *http.Request, in *instance, tenant string) (string, error) {
	max := am.limits.Limits(tenant).AlertmanagerMaxSilencesCount
	if max <= 0 {
		return "", nil
	}
	body, err := rereadBody(r)
	if err != nil {
		return "", err
	}
	var posted struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &posted) != nil || posted.ID != "" {
		return "", nil // an update, or the API says what is wrong
	}
	n, err := in.silences.CountState(r.Context(), silence.SilenceStateActive, silence.SilenceStatePending, silence.SilenceStateExpired)
	if err != nil {
		return "", nil
	}
	if n >= max {
		return fmt.Sprintf("%s: the tenant has %d silences (expired ones count until they are garbage collected), the limit is %d; expire and wait for old ones to go, or raise the per-tenant limit alertmanager_max_silences_count (-alertmanager.max-silences-count)", errIDTooManySilences, n, max), nil
	}
	return "", nil
}

// rereadBody reads the request body and puts it back for the next reader.
func rereadBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxUploadSize))
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}
