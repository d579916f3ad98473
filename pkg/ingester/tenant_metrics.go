package ingester

import (
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// tenantCollector exports per-tenant figures read from the open TSDBs at
// scrape time: in-memory series against this ingester's share of the
// tenant's series limit (so "near the limit" can be alerted on), and WAL
// corruptions the TSDB repaired when it opened. Of the metrics each TSDB
// registers, only the WAL corruption counter is kept (tsdbRegisterer) and
// re-exported here, labelled by tenant.
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
	return t.reg.sum()
}

// walCorruptionsName is the one metric of a TSDB's own that is re-exported.
const walCorruptionsName = "prometheus_tsdb_wal_corruptions_total"

// tsdbRegisterer is what a tenant's TSDB registers its metrics with: it
// keeps the WAL corruption counter and drops the hundred others. A
// registry per tenant cost 12 KiB of heap per open tenant, and gathering
// every tenant's registry at each scrape cost CPU for one number.
type tsdbRegisterer struct {
	mu   sync.Mutex
	kept []prometheus.Collector
}

func (r *tsdbRegisterer) Register(c prometheus.Collector) error {
	descs := make(chan *prometheus.Desc, 16)
	go func() {
		c.Describe(descs)
		close(descs)
	}()
	keep := false
	for d := range descs {
		if strings.Contains(d.String(), `fqName: "`+walCorruptionsName+`"`) {
			keep = true
		}
	}
	if keep {
		r.mu.Lock()
		r.kept = append(r.kept, c)
		r.mu.Unlock()
	}
	return nil
}

func (r *tsdbRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *tsdbRegisterer) Unregister(c prometheus.Collector) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, kept := range r.kept {
		if kept == c {
			r.kept = append(r.kept[:k], r.kept[k+1:]...)
			return true
		}
	}
	return false
}

// sum adds up the counters of the kept collectors.
func (r *tsdbRegisterer) sum() float64 {
	r.mu.Lock()
	kept := slices.Clone(r.kept)
	r.mu.Unlock()
	ch := make(chan prometheus.Metric, 16)
	go func() {
		for _, c := range kept {
			c.Collect(ch)
		}
		close(ch)
	}()
	var total float64
	for m := range ch {
		if !strings.Contains(m.Desc().String(), `fqName: "`+walCorruptionsName+`"`) {
			continue
		}
		var pb dto.Metric
		if err := m.Write(&pb); err == nil && pb.Counter != nil {
			total += pb.Counter.GetValue()
		}
	}
	return total
}
