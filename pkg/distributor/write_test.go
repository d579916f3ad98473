package distributor

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/meridianpb"
)

func graphiteSeries(name string, extra ...string) prompb.TimeSeries {
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(extra); i += 2 {
		ls = append(ls, prompb.Label{Name: extra[i], Value: extra[i+1]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: 1, Timestamp: validationNow.UnixMilli()}}}
}

// TestWriteGraphiteNames: dotted names and UTF-8 tag names are accepted only
// when the caller asks for Graphite's rules; rejections are reported by the
// index the caller passed, whether validation or storage rejected them.
func TestWriteGraphiteNames(t *testing.T) {
	pusher := &recordingPusher{}
	h := newPushHandler(defaultPushHandlerConfig(), pusher, pushTestLimits{validationLimits()}, log.NewNopLogger(), prometheus.NewPedanticRegistry(), func() time.Time { return validationNow })
	ctx := user.InjectOrgID(context.Background(), "t")

	mk := func() *prompb.WriteRequest {
		return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			graphiteSeries("a.b.c", "__g0__", "a", "__g1__", "b", "__g2__", "c", "__gn__", "3"),
			graphiteSeries("x", "bad label", "v"),
			graphiteSeries("disk.used", "data-center", "x"),
			graphiteSeries("ok", "l", string(make([]byte, 5000))),
		}}
	}
	res := h.Write(ctx, mk(), WriteOptions{GraphiteNames: true})
	require.Equal(t, http.StatusBadRequest, res.Status, res.Message)
	require.Equal(t, map[int]string{3: ErrIDLabelValueTooLong}, res.Rejected)
	require.Len(t, pusher.pushed(), 3)

	res = h.Write(ctx, mk(), WriteOptions{})
	require.Equal(t, http.StatusBadRequest, res.Status)
	require.Equal(t, map[int]string{0: ErrIDInvalidMetricName, 1: ErrIDInvalidLabelName, 2: ErrIDInvalidMetricName, 3: ErrIDLabelValueTooLong}, res.Rejected)

	// Storage rejections index the filtered request; Write maps them back.
	pusher.seriesErrs = []meridianpb.SeriesError{{Index: 1, ErrorId: "err-meridian-sample-out-of-order", HttpStatus: 400}}
	res = h.Write(ctx, mk(), WriteOptions{GraphiteNames: true})
	require.Equal(t, map[int]string{1: "err-meridian-sample-out-of-order", 3: ErrIDLabelValueTooLong}, res.Rejected)

	res = h.Write(context.Background(), mk(), WriteOptions{})
	require.Equal(t, http.StatusUnauthorized, res.Status)
}
