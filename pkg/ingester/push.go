package ingester

import (
	"context"
	"fmt"

	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/httpgrpc"
	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

type metadataEntry struct {
	Type string
	Help string
	Unit string
}

// Push appends a remote-write request to the tenant's TSDB. Series rejected
// for the client's fault are listed in the response and the others are
// committed; an error means nothing may be assumed stored.
func (i *Ingester) Push(ctx context.Context, req *prompb.WriteRequest) (*meridianpb.PushResponse, error) {
	tenant, err := dskittenant.TenantID(ctx)
	if err != nil {
		return nil, httpgrpc.Errorf(401, "no tenant in the request: %v", err)
	}
	if err := dskittenant.ValidTenantID(tenant); err != nil {
		return nil, httpgrpc.Errorf(401, "invalid tenant ID %q: %v", tenant, err)
	}
	var db *tenantDB
	for attempt := 0; ; attempt++ {
		db, err = i.getOrCreateDB(tenant)
		if err != nil {
			return nil, err
		}
		db.appendMtx.RLock()
		if !db.closed.Load() {
			break
		}
		// Closed as idle between lookup and lock: look it up again.
		db.appendMtx.RUnlock()
		if attempt == 3 {
			return nil, httpgrpc.Errorf(503, "the TSDB of tenant %s is being closed; retry", tenant)
		}
	}
	defer db.appendMtx.RUnlock()

	resp := &meridianpb.PushResponse{}
	lim := i.limits.Limits(tenant)
	localSeriesLimit := i.localSeriesLimit(tenant, lim.MaxGlobalSeriesPerTenant, lim.IngestionTenantShardSize)
	app := db.db.Appender(ctx)
	getRef, _ := app.(storage.GetRef)
	var (
		builder  labels.ScratchBuilder
		appended int
		rejected = map[string]int{}
	)
	for idx := range req.Timeseries {
		ts := &req.Timeseries[idx]
		builder.Reset()
		for _, l := range ts.Labels {
			builder.Add(l.Name, l.Value)
		}
		builder.Sort()
		lset := builder.Labels()

		var ref storage.SeriesRef
		if getRef != nil {
			ref, _ = getRef.GetRef(lset, lset.Hash())
		}
		if ref == 0 && localSeriesLimit > 0 && db.db.Head().NumSeries() >= uint64(localSeriesLimit) {
			resp.Errors = append(resp.Errors, maxSeriesError(idx, lim.MaxGlobalSeriesPerTenant, localSeriesLimit))
			rejected[ErrIDMaxSeriesPerTenant] += len(ts.Samples) + len(ts.Histograms)
			continue
		}

		var firstErr *meridianpb.SeriesError
		record := func(t int64, err error) error {
			se, clientFault := seriesError(idx, t, err)
			if !clientFault {
				return fmt.Errorf("append to TSDB of tenant %s: %w", tenant, err)
			}
			rejected[se.ErrorId]++
			if firstErr == nil {
				firstErr = &se
			}
			return nil
		}
		for _, s := range ts.Samples {
			r, err := app.Append(ref, lset, s.Timestamp, s.Value)
			if err != nil {
				if err := record(s.Timestamp, err); err != nil {
					_ = app.Rollback()
					return nil, err
				}
				continue
			}
			ref = r
			appended++
		}
		for hi := range ts.Histograms {
			h := &ts.Histograms[hi]
			var err error
			var r storage.SeriesRef
			if h.IsFloatHistogram() {
				r, err = app.AppendHistogram(ref, lset, h.Timestamp, nil, h.ToFloatHistogram())
			} else {
				r, err = app.AppendHistogram(ref, lset, h.Timestamp, h.ToIntHistogram(), nil)
			}
			if err != nil {
				if err := record(h.Timestamp, err); err != nil {
					_ = app.Rollback()
					return nil, err
				}
				continue
			}
			ref = r
			appended++
		}
		if i.cfg.MaxExemplars > 0 && ref != 0 {
			for _, e := range ts.Exemplars {
				var eb labels.ScratchBuilder
				for _, l := range e.Labels {
					eb.Add(l.Name, l.Value)
				}
				eb.Sort()
				// Exemplar errors (duplicates, out of order) never fail the series.
				_, _ = app.AppendExemplar(ref, lset, exemplar.Exemplar{Labels: eb.Labels(), Value: e.Value, Ts: e.Timestamp, HasTs: true})
			}
		}
		if firstErr != nil {
			resp.Errors = append(resp.Errors, *firstErr)
		}
	}
	if err := app.Commit(); err != nil {
		return nil, fmt.Errorf("commit to TSDB of tenant %s: %w", tenant, err)
	}
	db.lastAppend.Store(i.now().UnixMilli())
	i.metrics.appendedSamples.WithLabelValues(tenant).Add(float64(appended))
	for reason, n := range rejected {
		i.metrics.rejectedSamples.WithLabelValues(tenant, reason).Add(float64(n))
	}
	if len(req.Metadata) > 0 {
		db.metaMtx.Lock()
		for _, m := range req.Metadata {
			if m.MetricFamilyName == "" {
				continue
			}
			db.metadata[m.MetricFamilyName] = metadataEntry{Type: metricTypeString(m.Type), Help: m.Help, Unit: m.Unit}
		}
		db.metaMtx.Unlock()
	}
	if len(resp.Errors) > 0 {
		level.Debug(i.logger).Log("msg", "push had rejected series", "tenant", tenant, "rejected", len(resp.Errors))
	}
	return resp, nil
}

// localSeriesLimit turns the tenant's cluster-wide series limit into this
// ingester's share (seriesShare).
func (i *Ingester) localSeriesLimit(tenant string, global, shardSize int) int {
	if global <= 0 || i.ring == nil {
		return max(global, 0)
	}
	healthy, _ := i.ring.HealthyMembers() // an empty ring counts as 0
	rf := i.cfg.Lifecycler.RingConfig.ReplicationFactor
	shard := 0
	if size := ringutil.ShuffleShardSize(shardSize, rf); size > 0 {
		// dskit caches the shard; with zones it may hold more than size.
		shard = i.ring.Client().ShuffleShard(tenant, size).InstancesCount()
	}
	return seriesShare(global, rf, healthy, shard)
}

// seriesShare is an ingester's share of a tenant's global series limit:
// each series is on rf of the tenant's ingesters, which are the healthy
// ones, or its shuffle shard (shard > 0) when that is smaller.
func seriesShare(global, rf, healthy, shard int) int {
	n := healthy
	if shard > 0 && shard < n {
		n = shard
	}
	if n <= 0 || rf <= 0 || rf >= n {
		return global
	}
	return max(1, global*rf/n)
}

// metricTypeString maps remote-write metadata types to the strings the
// Prometheus metadata API uses.
func metricTypeString(t prompb.MetricMetadata_MetricType) string {
	switch t {
	case prompb.MetricMetadata_COUNTER:
		return "counter"
	case prompb.MetricMetadata_GAUGE:
		return "gauge"
	case prompb.MetricMetadata_HISTOGRAM:
		return "histogram"
	case prompb.MetricMetadata_GAUGEHISTOGRAM:
		return "gaugehistogram"
	case prompb.MetricMetadata_SUMMARY:
		return "summary"
	case prompb.MetricMetadata_INFO:
		return "info"
	case prompb.MetricMetadata_STATESET:
		return "stateset"
	default:
		return "unknown"
	}
}
