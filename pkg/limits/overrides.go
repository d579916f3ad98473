package limits

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/runtimeconfig"
	"github.com/grafana/dskit/services"
	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"
)

// RuntimeConfig is the runtime configuration file: per-tenant overrides of
// the default limits. Each tenant's entry holds the complete limits in force
// for it: the defaults with the fields the file sets replaced.
type RuntimeConfig struct {
	Overrides map[string]*Limits `yaml:"overrides"`
}

// OverridesConfig says where the runtime configuration file is and how often
// to re-read it.
type OverridesConfig struct {
	File         string        `yaml:"file"`
	ReloadPeriod time.Duration `yaml:"period"`
}

// RegisterFlags registers the flags of OverridesConfig.
func (c *OverridesConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.File, "runtime-config.file", "", "YAML file with per-tenant limits (overrides: {<tenant>: {<limit>: <value>}}), re-read while running. Empty means every tenant gets the default limits.")
	f.DurationVar(&c.ReloadPeriod, "runtime-config.reload-period", 10*time.Second, "How often to check the runtime config file for changes.")
}

// Validate checks that the config makes sense.
func (c *OverridesConfig) Validate() error {
	if c.File != "" && c.ReloadPeriod <= 0 {
		return fmt.Errorf("-runtime-config.reload-period must be positive, got %s", c.ReloadPeriod)
	}
	return nil
}

// Overrides answers the limits in force for a tenant: the defaults, or the
// tenant's entry in the runtime config file. It is a service: with a file it
// loads it when starting (an invalid file stops startup) and re-reads it every
// reload period; an invalid file then keeps the previous config in force.
// Without a file it does nothing.
type Overrides struct {
	services.Service

	defaults Limits
	logger   log.Logger
	manager  *runtimeconfig.Manager // nil without a file.
	loaded   atomic.Bool            // A config has been loaded at least once.
}

// NewOverrides returns Overrides that give every tenant defaults unless the
// runtime config file says otherwise.
func NewOverrides(defaults Limits, cfg OverridesConfig, logger log.Logger, reg prometheus.Registerer) (*Overrides, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := defaults.Validate(); err != nil {
		return nil, fmt.Errorf("default limits: %w", err)
	}
	o := &Overrides{defaults: defaults, logger: logger}
	if cfg.File == "" {
		o.Service = services.NewIdleService(nil, nil)
		return o, nil
	}
	m, err := runtimeconfig.New(runtimeconfig.Config{
		LoadPath:     flagext.StringSliceCSV{cfg.File},
		ReloadPeriod: cfg.ReloadPeriod,
		Loader:       o.load,
	}, "overrides", prometheus.WrapRegistererWithPrefix("meridian_", reg), logger)
	if err != nil {
		return nil, fmt.Errorf("runtime config manager: %w", err)
	}
	o.manager = m
	o.Service = m
	return o, nil
}

// load decodes a runtime config file. Each tenant's entry is decoded on top of
// a copy of the defaults, so a field the file does not set keeps its default.
// Unknown fields are errors.
func (o *Overrides) load(r io.Reader) (any, error) {
	rc, err := o.decode(r)
	if err != nil {
		if o.loaded.Load() {
			level.Warn(o.logger).Log("msg", "runtime config file rejected; the previously loaded config stays in force", "err", err)
		}
		return nil, err
	}
	o.loaded.Store(true)
	level.Info(o.logger).Log("msg", "runtime config loaded", "tenants", len(rc.Overrides))
	return rc, nil
}

func (o *Overrides) decode(r io.Reader) (*RuntimeConfig, error) {
	var raw struct {
		Overrides map[string]yaml.Node `yaml:"overrides"`
	}
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	rc := &RuntimeConfig{Overrides: make(map[string]*Limits, len(raw.Overrides))}
	for tenant, node := range raw.Overrides {
		if err := dskittenant.ValidTenantID(tenant); err != nil {
			return nil, fmt.Errorf("overrides: %w", err)
		}
		// yaml.Node.Decode cannot reject unknown fields, so decode the
		// entry's text with a strict decoder.
		text, err := yaml.Marshal(&node)
		if err != nil {
			return nil, fmt.Errorf("overrides for tenant %q: %w", tenant, err)
		}
		l := o.defaults
		dec := yaml.NewDecoder(bytes.NewReader(text))
		dec.KnownFields(true)
		if err := dec.Decode(&l); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("overrides for tenant %q: %w", tenant, err)
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("overrides for tenant %q: %w", tenant, err)
		}
		rc.Overrides[tenant] = &l
	}
	return rc, nil
}

// runtimeConfig returns the loaded runtime config, or nil.
func (o *Overrides) runtimeConfig() *RuntimeConfig {
	if o.manager == nil {
		return nil
	}
	rc, _ := o.manager.GetConfig().(*RuntimeConfig)
	return rc
}

// OverridesIdentity identifies the loaded runtime config: it changes
// whenever a changed file is loaded (nil before any). Cheap, for callers
// that act only on a change.
func (o *Overrides) OverridesIdentity() any {
	if rc := o.runtimeConfig(); rc != nil {
		return rc
	}
	return nil
}

// OverriddenTenants returns the tenants the loaded runtime config has an
// entry for.
func (o *Overrides) OverriddenTenants() []string {
	rc := o.runtimeConfig()
	if rc == nil {
		return nil
	}
	tenants := make([]string, 0, len(rc.Overrides))
	for t := range rc.Overrides {
		tenants = append(tenants, t)
	}
	return tenants
}

// Limits returns a copy of the limits in force for tenant.
func (o *Overrides) Limits(tenant string) Limits {
	if rc := o.runtimeConfig(); rc != nil {
		if l, ok := rc.Overrides[tenant]; ok {
			return *l
		}
	}
	return o.defaults
}

// ServeHTTP serves GET /runtime_config: the limits in force as YAML, the
// defaults and each overridden tenant's complete limits. With ?mode=diff it
// shows, per tenant, only the limits that differ from the defaults.
func (o *Overrides) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET to read the runtime config", http.StatusMethodNotAllowed)
		return
	}
	var overrides map[string]*Limits
	if rc := o.runtimeConfig(); rc != nil {
		overrides = rc.Overrides
	}

	var out any
	switch mode := r.URL.Query().Get("mode"); mode {
	case "":
		out = struct {
			Defaults  Limits             `yaml:"defaults"`
			Overrides map[string]*Limits `yaml:"overrides"`
		}{o.defaults, overrides}
	case "diff":
		diff, err := o.diff(overrides)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out = struct {
			Overrides map[string]map[string]any `yaml:"overrides"`
		}{diff}
	default:
		http.Error(w, fmt.Sprintf("unknown mode %q: leave mode out for the limits in force, or use mode=diff for what differs from the defaults", mode), http.StatusBadRequest)
		return
	}

	var body bytes.Buffer
	enc := yaml.NewEncoder(&body)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		http.Error(w, fmt.Sprintf("encode runtime config: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(body.Bytes())
}

// diff returns, per tenant, the YAML fields whose values differ from the
// defaults. A tenant whose override changes nothing maps to an empty map.
func (o *Overrides) diff(overrides map[string]*Limits) (map[string]map[string]any, error) {
	defaults, err := yamlFields(o.defaults)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]any, len(overrides))
	for tenant, l := range overrides {
		fields, err := yamlFields(*l)
		if err != nil {
			return nil, err
		}
		d := map[string]any{}
		for k, v := range fields {
			if !reflect.DeepEqual(v, defaults[k]) {
				d[k] = v
			}
		}
		out[tenant] = d
	}
	return out, nil
}

func yamlFields(l Limits) (map[string]any, error) {
	text, err := yaml.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("encode limits: %w", err)
	}
	fields := map[string]any{}
	if err := yaml.Unmarshal(text, &fields); err != nil {
		return nil, fmt.Errorf("decode limits: %w", err)
	}
	return fields, nil
}

var _ http.Handler = (*Overrides)(nil)

// BlocksRetention is the tenant's compactor_blocks_retention_period.
func (o *Overrides) BlocksRetention(tenant string) time.Duration {
	return time.Duration(o.Limits(tenant).CompactorBlocksRetentionPeriod)
}

// IngestionTenantShardSize is the tenant's ingestion_tenant_shard_size.
func (o *Overrides) IngestionTenantShardSize(tenant string) int {
	return o.Limits(tenant).IngestionTenantShardSize
}

// StoreGatewayTenantShardSize is the tenant's store_gateway_tenant_shard_size.
func (o *Overrides) StoreGatewayTenantShardSize(tenant string) int {
	return o.Limits(tenant).StoreGatewayTenantShardSize
}
