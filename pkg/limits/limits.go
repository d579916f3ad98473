// Package limits holds per-tenant limits: one Limits struct is both the
// defaults and the shape of a per-tenant override.
package limits

import (
	"flag"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/common/model"
)

// Limits are the per-tenant limits. Flags set the defaults; the runtime
// overrides file replaces any field per tenant.
type Limits struct {
	// Write path.
	MaxLabelNameLength       int            `yaml:"max_label_name_length"`
	MaxLabelValueLength      int            `yaml:"max_label_value_length"`
	MaxLabelNamesPerSeries   int            `yaml:"max_label_names_per_series"`
	CreationGracePeriod      model.Duration `yaml:"creation_grace_period"`
	MaxGlobalSeriesPerTenant int            `yaml:"max_global_series_per_tenant"`
	OutOfOrderTimeWindow     model.Duration `yaml:"out_of_order_time_window"`
	// IngestionRate is in samples per second for the whole cluster; each
	// distributor enforces its share. 0 means no limit.
	IngestionRate      float64 `yaml:"ingestion_rate"`
	IngestionBurstSize int     `yaml:"ingestion_burst_size"`
	// IngestionTenantShardSize is how many ingesters hold the tenant's
	// series (shuffle sharding); 0 means all of them.
	IngestionTenantShardSize int `yaml:"ingestion_tenant_shard_size"`

	// Read path.
	MaxQueryLength          model.Duration `yaml:"max_query_length"`
	MaxSamplesPerQuery      int            `yaml:"max_samples_per_query"`
	MaxSeriesPerQuery       int            `yaml:"max_fetched_series_per_query"`
	QueryTimeout            model.Duration `yaml:"query_timeout"`
	MaxOutstandingPerTenant int            `yaml:"max_outstanding_requests_per_tenant"`
	MaxQueryParallelism     int            `yaml:"max_query_parallelism"`
	MaxPointsPerTimeseries  int            `yaml:"max_points_per_timeseries"`
	MaxQueriersPerTenant    int            `yaml:"max_queriers_per_tenant"`
	// StoreGatewayTenantShardSize is how many store-gateways serve the
	// tenant's blocks (shuffle sharding); 0 means all of them.
	StoreGatewayTenantShardSize int `yaml:"store_gateway_tenant_shard_size"`

	// Compactor.
	CompactorBlocksRetentionPeriod model.Duration `yaml:"compactor_blocks_retention_period"`

	// Ruler.
	RulerMaxRuleGroupsPerTenant int            `yaml:"ruler_max_rule_groups_per_tenant"`
	RulerMaxRulesPerRuleGroup   int            `yaml:"ruler_max_rules_per_rule_group"`
	RulerMinEvaluationInterval  model.Duration `yaml:"ruler_min_evaluation_interval"`
	// RulerQueryTimeout bounds each rule's query; 0 means QueryTimeout.
	RulerQueryTimeout model.Duration `yaml:"ruler_query_timeout"`

	// Graphite.
	GraphiteStep               model.Duration `yaml:"graphite_step"`
	GraphiteMaxSeriesPerRender int            `yaml:"graphite_max_series_per_render"`
	GraphiteMaxPointsPerRender int            `yaml:"graphite_max_points_per_render"`

	// Alertmanager. 0 means no limit.
	AlertmanagerMaxConfigSizeBytes int `yaml:"alertmanager_max_config_size_bytes"`
	AlertmanagerMaxTemplatesCount  int `yaml:"alertmanager_max_templates_count"`
	AlertmanagerMaxSilencesCount   int `yaml:"alertmanager_max_silences_count"`
	AlertmanagerMaxAlertsCount     int `yaml:"alertmanager_max_alerts_count"`
}

// RegisterFlags registers the default limits.
func (l *Limits) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&l.MaxLabelNameLength, "validation.max-length-label-name", 1024, "Longest label name accepted, in bytes.")
	f.IntVar(&l.MaxLabelValueLength, "validation.max-length-label-value", 2048, "Longest label value accepted, in bytes.")
	f.IntVar(&l.MaxLabelNamesPerSeries, "validation.max-label-names-per-series", 30, "Most labels (including __name__) a series may have.")
	l.CreationGracePeriod = model.Duration(10 * time.Minute)
	f.Var(&l.CreationGracePeriod, "validation.create-grace-period", "How far in the future a sample timestamp may be.")
	f.IntVar(&l.MaxGlobalSeriesPerTenant, "ingester.max-series-per-tenant", 1500000, "Most in-memory series a tenant may have across the cluster (each ingester enforces its share: limit × replication factor ÷ healthy ingesters). 0 means no limit.")
	f.Var(&l.OutOfOrderTimeWindow, "ingester.out-of-order-time-window", "How far behind the newest sample of a series an out-of-order sample may be and still be accepted. 0 rejects out-of-order samples.")
	f.Float64Var(&l.IngestionRate, "distributor.ingestion-rate-limit", 1000000, "Samples (and native histogram samples) per second a tenant may push, across the whole cluster: each healthy distributor allows its share. 0 means no limit.")
	f.IntVar(&l.IngestionTenantShardSize, "distributor.ingestion-tenant-shard-size", 0, "Shuffle sharding: how many ingesters hold a tenant's series, chosen by a hash of the tenant (zone-balanced with zone awareness: rounded up to a multiple of the zones; never fewer than the replication factor). Queriers read only these ingesters, plus those that may still hold the tenant's data (-querier.shuffle-sharding-ingesters-lookback-period). 0 means all ingesters.")
	f.IntVar(&l.IngestionBurstSize, "distributor.ingestion-burst-size", 2000000, "Samples a tenant may push at once above its ingestion rate, per distributor (not divided among them). A request with more samples than this is always rejected.")

	l.MaxQueryLength = model.Duration(32 * 24 * time.Hour)
	f.Var(&l.MaxQueryLength, "querier.max-query-length", "Longest time range a query may span. 0 means no limit.")
	f.IntVar(&l.MaxSamplesPerQuery, "querier.max-samples", 50000000, "Most samples a single query may load into memory.")
	f.IntVar(&l.MaxSeriesPerQuery, "querier.max-fetched-series-per-query", 100000, "Most series a single query may fetch. 0 means no limit.")
	l.QueryTimeout = model.Duration(2 * time.Minute)
	f.Var(&l.QueryTimeout, "querier.timeout", "Longest time a query may run.")
	f.IntVar(&l.MaxOutstandingPerTenant, "frontend.max-outstanding-requests-per-tenant", 1000, "Most requests of one tenant that may wait in the query-frontend queue; further requests get 429. 0 means no limit.")
	f.IntVar(&l.MaxQueryParallelism, "frontend.max-query-parallelism", 14, "Most split sub-queries of one query the query-frontend runs at once.")
	f.IntVar(&l.MaxQueriersPerTenant, "frontend.max-queriers-per-tenant", 0, "Shuffle sharding: most queriers pulling from the query-frontend or query-scheduler that run one tenant's queries, chosen by a hash of the tenant. 0 means all.")
	f.IntVar(&l.StoreGatewayTenantShardSize, "store-gateway.tenant-shard-size", 0, "Shuffle sharding: how many store-gateways serve a tenant's blocks, chosen by a hash of the tenant (zone-balanced like the ingesters'). Store-gateways sync only the tenants whose shard includes them, and queriers ask only those. 0 means all store-gateways.")
	f.IntVar(&l.MaxPointsPerTimeseries, "querier.max-points-per-timeseries", 11000, "Most points a range query may return per series ((end-start)/step).")
	f.Var(&l.CompactorBlocksRetentionPeriod, "compactor.blocks-retention-period", "How long the compactor keeps a tenant's blocks in object storage, measured from the end of each block. 0 keeps them forever.")

	f.IntVar(&l.RulerMaxRuleGroupsPerTenant, "ruler.max-rule-groups-per-tenant", 70, "Most rule groups a tenant may have; uploads beyond it are refused with 400. 0 means no limit.")
	f.IntVar(&l.RulerMaxRulesPerRuleGroup, "ruler.max-rules-per-rule-group", 20, "Most rules one rule group may have; uploads beyond it are refused with 400. 0 means no limit.")
	f.Var(&l.RulerMinEvaluationInterval, "ruler.min-evaluation-interval", "Shortest evaluation interval a tenant's rule group may have; uploads with a shorter one are refused with 400. 0 means no minimum.")
	f.Var(&l.RulerQueryTimeout, "ruler.query-timeout", "Longest time one rule's query may run. 0 means the tenant's query timeout (-querier.timeout).")

	l.GraphiteStep = model.Duration(time.Minute)
	f.Var(&l.GraphiteStep, "graphite.step", "Interval Graphite queries align samples to (whisper's retention step): the last sample in each interval is its value. Set it to the interval the tenant's carbon senders use.")
	f.IntVar(&l.GraphiteMaxSeriesPerRender, "graphite.max-series-per-render", 10000, "Most series one Graphite render, find or expand may fetch from storage. 0 means no limit.")
	f.IntVar(&l.GraphiteMaxPointsPerRender, "graphite.max-points-per-render", 10000000, "Most points (series × intervals) one Graphite render may fetch from storage. 0 means no limit.")

	f.IntVar(&l.AlertmanagerMaxConfigSizeBytes, "alertmanager.max-config-size-bytes", 0, "Largest Alertmanager configuration (the whole body of POST /api/v1/alerts, templates included) a tenant may upload, in bytes. 0 means no limit (bodies over 16 MiB are always refused).")
	f.IntVar(&l.AlertmanagerMaxTemplatesCount, "alertmanager.max-templates-count", 0, "Most template files a tenant's Alertmanager configuration may hold. 0 means no limit.")
	f.IntVar(&l.AlertmanagerMaxSilencesCount, "alertmanager.max-silences-count", 0, "Most silences, expired ones included until they are garbage collected, a tenant's Alertmanager may hold. 0 means no limit.")
	f.IntVar(&l.AlertmanagerMaxAlertsCount, "alertmanager.max-alerts-count", 0, "Most alerts a tenant's Alertmanager may hold in memory at once; POST /alertmanager/api/v2/alerts with new alerts beyond it is refused. 0 means no limit.")
}

// Validate checks that the limits make sense.
func (l *Limits) Validate() error {
	if l.MaxLabelNameLength <= 0 || l.MaxLabelValueLength <= 0 || l.MaxLabelNamesPerSeries <= 0 {
		return fmt.Errorf("label length and count limits must be positive")
	}
	if l.MaxPointsPerTimeseries <= 0 {
		return fmt.Errorf("max_points_per_timeseries must be positive")
	}
	if l.GraphiteStep < model.Duration(time.Second) || time.Duration(l.GraphiteStep)%time.Second != 0 {
		return fmt.Errorf("graphite_step must be a whole number of seconds, at least 1s, got %s", l.GraphiteStep)
	}
	if l.GraphiteMaxSeriesPerRender < 0 || l.GraphiteMaxPointsPerRender < 0 {
		return fmt.Errorf("graphite_max_series_per_render and graphite_max_points_per_render must not be negative (0 means no limit)")
	}
	if l.IngestionRate < 0 || math.IsNaN(l.IngestionRate) || math.IsInf(l.IngestionRate, 0) {
		return fmt.Errorf("ingestion_rate must be a non-negative number (0 means no limit), got %v", l.IngestionRate)
	}
	if l.IngestionTenantShardSize < 0 || l.StoreGatewayTenantShardSize < 0 {
		return fmt.Errorf("ingestion_tenant_shard_size and store_gateway_tenant_shard_size must not be negative (0 means all instances), got %d and %d", l.IngestionTenantShardSize, l.StoreGatewayTenantShardSize)
	}
	if l.RulerMaxRuleGroupsPerTenant < 0 || l.RulerMaxRulesPerRuleGroup < 0 || l.RulerMinEvaluationInterval < 0 || l.RulerQueryTimeout < 0 {
		return fmt.Errorf("ruler_max_rule_groups_per_tenant, ruler_max_rules_per_rule_group, ruler_min_evaluation_interval and ruler_query_timeout must not be negative (0 means no limit)")
	}
	if l.AlertmanagerMaxConfigSizeBytes < 0 || l.AlertmanagerMaxTemplatesCount < 0 || l.AlertmanagerMaxSilencesCount < 0 || l.AlertmanagerMaxAlertsCount < 0 {
		return fmt.Errorf("the alertmanager_max_* limits must not be negative (0 means no limit)")
	}
	if l.IngestionRate > 0 && l.IngestionBurstSize <= 0 {
		return fmt.Errorf("ingestion_burst_size must be positive when ingestion_rate is set, got %d", l.IngestionBurstSize)
	}
	return nil
}

// Source gives the limits in force for a tenant: Overrides in a running
// process, fixed limits in tests. Every component that reads per-tenant
// limits takes one, read on each request so runtime overrides apply at once.
type Source interface {
	Limits(tenant string) Limits
}
