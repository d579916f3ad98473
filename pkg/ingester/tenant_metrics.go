package ingester

import (
	"github.com/prometheus/client_golang/prometheus"
)

// tenantCollector exports per-tenant figures read from the open TSDBs at
// scrape time: in-memory series against this ingester's share of the
// tenant's series limit (so "near the limit" can be alerted on), and WAL
// corruptions the TSDB repaired when it opened. Each TSDB registers its own
// Prometheus metrics in a registry of its own (see openDB); only the few
// an operator acts on are re-exported here, labelled by tenant.
type tenantCollector struct {
	i *Ingester

	memorySeries  *prometheus.Desc
	seriesLimit   *prometheus.Desc
	walCorruption *prometheus.Desc
}

func newTenantCollector(i *Ingester) *tenantCollector {
	return &tenantCollector{
		i:             i,
		memorySeries:  prometheus.NewDesc("meridian_ingester_tenant_memory_series", "In-memory series of a tenant in this ingester.", []string{"tenant"}, nil),
		seriesLimit:   prometheus.NewDesc("meridian_ingester_tenant_series_limit", "This ingester's share of the tenant's series limit (0: no limit).", []string{"tenant"}, nil),
		walCorruption: prometheus.NewDesc("meridian_ingester_tsdb_wal_corruptions_total", "WAL corruptions found (and repaired) when the tenant's TSDB was opened since it was last opened.", []string{"tenant"}, nil),
	}
}

func (c *tenantCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.memorySeries
	ch <- c.seriesLimit
	ch <- c.walCorruption
}

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	for _, db := range c.i.openDBs() {
		ch <- prometheus.MustNewConstMetric(c.memorySeries, prometheus.GaugeValue, float64(db.db.Head().NumSeries()), db.tenant)
		lim := c.i.limits.Limits(db.tenant)
		limit := c.i.localSeriesLimit(db.tenant, lim.MaxGlobalSeriesPerTenant, lim.IngestionTenantShardSize)
		ch <- prometheus.MustNewConstMetric(c.seriesLimit, prometheus.GaugeValue, float64(limit), db.tenant)
		ch <- prometheus.MustNewConstMetric(c.walCorruption, prometheus.CounterValue, db.walCorruptions(), db.tenant)
	}
}

// walCorruptions reads the TSDB's own corruption counter.
func (t *tenantDB) walCorruptions() float64 {
	if t.reg == nil {
		return 0
	}
	mfs, err := t.reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != "prometheus_tsdb_wal_corruptions_total" {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
		return sum
	}
	return 0
}
