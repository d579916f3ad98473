package ingester

import (
	"context"
	"fmt"
	"sort"

	"github.com/grafana/dskit/httpgrpc"
	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/matchers"
)

// Series per streamed message: large enough to amortise framing, small
// enough to keep messages well under gRPC's size limit.
const queryStreamBatchSeries = 128

// queryDB returns the tenant's TSDB (nil if it has none) read-locked against
// a flush or close, which would otherwise truncate the head under a running
// query; the caller must call the returned release.
func (i *Ingester) queryDB(ctx context.Context) (*tenantDB, func(), error) {
	tenant, err := dskittenant.TenantID(ctx)
	if err != nil {
		return nil, nil, httpgrpc.Errorf(401, "no tenant in the request: %v", err)
	}
	for attempt := 0; attempt < 3; attempt++ {
		db, err := i.getDB(tenant)
		if err != nil || db == nil {
			return nil, nil, err
		}
		db.appendMtx.RLock()
		if !db.closed.Load() {
			return db, db.appendMtx.RUnlock, nil
		}
		// Closed as idle meanwhile: look it up (and reopen it) again.
		db.appendMtx.RUnlock()
	}
	return nil, nil, httpgrpc.Errorf(503, "the TSDB of tenant %s is being closed; retry", tenant)
}

// QueryStream streams the series matching the request as the TSDB's own
// compressed chunks; they are decoded only by the querier's PromQL engine.
func (i *Ingester) QueryStream(req *meridianpb.QueryRequest, stream meridianpb.Ingester_QueryStreamServer) error {
	ctx := stream.Context()
	db, release, err := i.queryDB(ctx)
	if err != nil || db == nil {
		return err
	}
	defer release()
	ms, err := matchers.FromProto(req.Matchers)
	if err != nil {
		return httpgrpc.Errorf(400, "%v", err)
	}
	batch := make([]prompb.ChunkedSeries, 0, queryStreamBatchSeries)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := stream.Send(&meridianpb.QueryStreamResponse{Series: batch})
		batch = batch[:0]
		return err
	}
	n := 0
	if req.SkipChunks {
		q, err := db.db.Querier(req.StartMs, req.EndMs)
		if err != nil {
			return fmt.Errorf("open querier: %w", err)
		}
		defer q.Close()
		ss := q.Select(ctx, true, &storage.SelectHints{Start: req.StartMs, End: req.EndMs, Func: "series"}, ms...)
		// The labels of a whole batch share one buffer, reused once the
		// batch is sent (Send marshals it): a find over 100 000 paths
		// otherwise allocates a slice per series.
		var lbuf []prompb.Label
		for ss.Next() {
			if len(batch) == 0 {
				lbuf = lbuf[:0]
			}
			var lset []prompb.Label
			lbuf, lset = appendWireLabels(lbuf, ss.At().Labels())
			batch = append(batch, prompb.ChunkedSeries{Labels: lset})
			n++
			if len(batch) == queryStreamBatchSeries {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := ss.Err(); err != nil {
			return err
		}
		i.metrics.queriedSeries.Observe(float64(n))
		return flush()
	}

	q, err := db.db.ChunkQuerier(req.StartMs, req.EndMs)
	if err != nil {
		return fmt.Errorf("open chunk querier: %w", err)
	}
	defer q.Close()
	// Whole chunks, untrimmed, as the store-gateways send them: the
	// querier keeps chunks that both hold once only when they are the
	// same bytes, and its readers drop samples outside the range.
	ss := q.Select(ctx, true, &storage.SelectHints{Start: req.StartMs, End: req.EndMs, DisableTrimming: true}, ms...)
	var (
		it   chunks.Iterator
		lbuf []prompb.Label
		cbuf []prompb.Chunk
	)
	for ss.Next() {
		// As for labels only above, a batch's labels and chunks share
		// buffers reused once it is sent.
		if len(batch) == 0 {
			lbuf, cbuf = lbuf[:0], cbuf[:0]
		}
		s := ss.At()
		cfrom := len(cbuf)
		ci := s.Iterator(it)
		it = ci
		for ci.Next() {
			meta := ci.At()
			pc, err := wireChunk(meta.MinTime, meta.MaxTime, meta.Chunk)
			if err != nil {
				return err
			}
			cbuf = append(cbuf, pc)
		}
		if err := ci.Err(); err != nil {
			return err
		}
		if len(cbuf) == cfrom {
			continue
		}
		var lset []prompb.Label
		lbuf, lset = appendWireLabels(lbuf, s.Labels())
		batch = append(batch, prompb.ChunkedSeries{Labels: lset, Chunks: cbuf[cfrom:len(cbuf):len(cbuf)]})
		n++
		if len(batch) == queryStreamBatchSeries {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := ss.Err(); err != nil {
		return err
	}
	i.metrics.queriedSeries.Observe(float64(n))
	return flush()
}

// appendWireLabels appends ls to buf in wire form and returns buf and the
// part of it that holds ls.
func appendWireLabels(buf []prompb.Label, ls labels.Labels) (all, lset []prompb.Label) {
	from := len(buf)
	ls.Range(func(l labels.Label) {
		buf = append(buf, prompb.Label{Name: l.Name, Value: l.Value})
	})
	return buf, buf[from:len(buf):len(buf)]
}

// wireChunk copies a chunk into its wire form. The chunk querier hands out a
// private copy of a series' open head chunk (tsdb copies it under the
// series lock), and closed chunks are immutable, so the compressed bytes are
// sent as they are: decoding and re-encoding every sample here cost a third
// of a large Graphite render.
func wireChunk(mint, maxt int64, c chunkenc.Chunk) (prompb.Chunk, error) {
	// No copy: every batch is marshalled (Send) before the chunk querier
	// closes, and until then mmapped chunks stay mapped.
	return meridianpb.WireChunk(mint, maxt, c.Encoding(), c.Bytes())
}

// LabelNames answers the label names of the tenant's series in range.
func (i *Ingester) LabelNames(ctx context.Context, req *meridianpb.LabelNamesRequest) (*meridianpb.LabelNamesResponse, error) {
	names, err := i.labelQuery(ctx, req.StartMs, req.EndMs, req.Matchers, func(q storage.Querier, ms []*labels.Matcher) ([]string, error) {
		names, _, err := q.LabelNames(ctx, &storage.LabelHints{Limit: int(req.Limit)}, ms...)
		return names, err
	})
	return &meridianpb.LabelNamesResponse{Names: names}, err
}

// LabelValues answers the values of one label of the tenant's series in range.
func (i *Ingester) LabelValues(ctx context.Context, req *meridianpb.LabelValuesRequest) (*meridianpb.LabelValuesResponse, error) {
	values, err := i.labelQuery(ctx, req.StartMs, req.EndMs, req.Matchers, func(q storage.Querier, ms []*labels.Matcher) ([]string, error) {
		values, _, err := q.LabelValues(ctx, req.Name, &storage.LabelHints{Limit: int(req.Limit)}, ms...)
		return values, err
	})
	return &meridianpb.LabelValuesResponse{Values: values}, err
}

// labelQuery runs fn on a querier over the tenant's TSDB in [mint, maxt];
// a tenant without a TSDB has no labels.
func (i *Ingester) labelQuery(ctx context.Context, mint, maxt int64, pms []prompb.LabelMatcher, fn func(storage.Querier, []*labels.Matcher) ([]string, error)) ([]string, error) {
	db, release, err := i.queryDB(ctx)
	if err != nil || db == nil {
		return nil, err
	}
	defer release()
	ms, err := matchers.FromProto(pms)
	if err != nil {
		return nil, httpgrpc.Errorf(400, "%v", err)
	}
	q, err := db.db.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	return fn(q, ms)
}

// MetricsMetadata answers the metadata remote-written for the tenant.
func (i *Ingester) MetricsMetadata(ctx context.Context, req *meridianpb.MetadataRequest) (*meridianpb.MetadataResponse, error) {
	db, release, err := i.queryDB(ctx)
	if err != nil || db == nil {
		return &meridianpb.MetadataResponse{}, err
	}
	defer release()
	db.metaMtx.RLock()
	names := make([]string, 0, len(db.metadata))
	for name := range db.metadata {
		if req.Metric == "" || req.Metric == name {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if req.Limit > 0 && len(names) > int(req.Limit) {
		names = names[:req.Limit]
	}
	resp := &meridianpb.MetadataResponse{Metadata: make([]prompb.MetricMetadata, 0, len(names))}
	for _, name := range names {
		m := db.metadata[name]
		resp.Metadata = append(resp.Metadata, prompb.MetricMetadata{MetricFamilyName: name, Type: metricTypeFromString(m.Type), Help: m.Help, Unit: m.Unit})
	}
	db.metaMtx.RUnlock()
	return resp, nil
}

func metricTypeFromString(s string) prompb.MetricMetadata_MetricType {
	for t := range prompb.MetricMetadata_MetricType_name {
		if metricTypeString(prompb.MetricMetadata_MetricType(t)) == s {
			return prompb.MetricMetadata_MetricType(t)
		}
	}
	return prompb.MetricMetadata_UNKNOWN
}
