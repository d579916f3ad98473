package ruler

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/meridianhq/meridian/pkg/distributor"
)

// Writer stores a write request for the tenant in ctx through the
// distributor's write path: validated, limited and replicated like a
// remote write (distributor.PushHandler).
type Writer interface {
	Write(ctx context.Context, req *prompb.WriteRequest, opts distributor.WriteOptions) distributor.WriteResult
}

// appendable turns the samples of one group evaluation (recording rules,
// ALERTS, ALERTS_FOR_STATE, staleness markers) into one write request.
type appendable struct {
	writer Writer
}

var _ storage.AppendableV2 = (*appendable)(nil)

func (a *appendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &appender{ctx: ctx, writer: a.writer}
}

type appender struct {
	ctx    context.Context
	writer Writer
	req    prompb.WriteRequest
}

func (a *appender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	ts := prompb.TimeSeries{Labels: prompb.FromLabels(ls, nil)}
	switch {
	case fh != nil:
		ts.Histograms = []prompb.Histogram{prompb.FromFloatHistogram(t, fh)}
	case h != nil:
		ts.Histograms = []prompb.Histogram{prompb.FromIntHistogram(t, h)}
	default:
		ts.Samples = []prompb.Sample{{Timestamp: t, Value: v}}
	}
	a.req.Timeseries = append(a.req.Timeseries, ts)
	// The rules engine wants a non-zero reference for a stored series; the
	// write path has none, and the engine does not reuse it.
	return storage.SeriesRef(len(a.req.Timeseries)), nil
}

// Commit writes the evaluation's samples. Series the write path rejects
// (a limit, a duplicate sample) fail the commit with the reason, which the
// rules engine logs and counts; the others are stored.
func (a *appender) Commit() error {
	if len(a.req.Timeseries) == 0 {
		return nil
	}
	res := a.writer.Write(a.ctx, &a.req, distributor.WriteOptions{})
	a.req.Timeseries = nil
	if res.Status == http.StatusOK {
		return nil
	}
	return fmt.Errorf("write rule results (status %d): %s", res.Status, res.Message)
}

func (a *appender) Rollback() error {
	a.req.Timeseries = nil
	return nil
}
