package ingester

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/storage"

	"github.com/meridianhq/meridian/pkg/meridianpb"
)

// Stable IDs of the rejections an ingester reports per series. docs/errors.md
// has a section for each.
const (
	ErrIDSampleOutOfOrder    = "err-meridian-sample-out-of-order"
	ErrIDSampleOutOfBounds   = "err-meridian-sample-out-of-bounds"
	ErrIDSampleTooOld        = "err-meridian-sample-too-old"
	ErrIDDuplicateTimestamp  = "err-meridian-sample-duplicate-timestamp"
	ErrIDMaxSeriesPerTenant  = "err-meridian-max-series-per-tenant"
	ErrIDInvalidHistogram    = "err-meridian-invalid-native-histogram"
	ErrIDSeriesAppendFailure = "err-meridian-series-append"
)

// seriesError turns an append error into a per-series rejection (the
// distributor adds the series' labels when it reports it), or returns
// ok=false when the error is ours (not the client's) and must fail the push.
func seriesError(index int, ts int64, err error) (meridianpb.SeriesError, bool) {
	se := meridianpb.SeriesError{Index: int32(index), HttpStatus: http.StatusBadRequest}
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		se.ErrorId = ErrIDSampleOutOfOrder
		se.Message = fmt.Sprintf("sample at %d is older than the newest sample of the series and out-of-order ingestion is off for this tenant; send samples in time order or raise -ingester.out-of-order-time-window (out_of_order_time_window)", ts)
	case errors.Is(err, storage.ErrTooOldSample):
		se.ErrorId = ErrIDSampleTooOld
		se.Message = fmt.Sprintf("sample at %d is older than the out-of-order time window allows; raise -ingester.out-of-order-time-window (out_of_order_time_window) if late data is expected", ts)
	case errors.Is(err, storage.ErrOutOfBounds):
		se.ErrorId = ErrIDSampleOutOfBounds
		se.Message = fmt.Sprintf("sample at %d is older than the oldest time the ingester still accepts (its head block already moved past it); such old data cannot be ingested", ts)
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		se.ErrorId = ErrIDDuplicateTimestamp
		se.Message = fmt.Sprintf("a different value was already stored for timestamp %d; each series takes one value per timestamp", ts)
	case errors.Is(err, storage.ErrNativeHistogramsDisabled):
		se.ErrorId = ErrIDInvalidHistogram
		se.Message = fmt.Sprintf("native histogram rejected: %v", err)
	default:
		// Histogram validation errors are the client's fault too.
		if isHistogramValidationError(err) {
			se.ErrorId = ErrIDInvalidHistogram
			se.Message = fmt.Sprintf("invalid native histogram at %d: %v", ts, err)
			return se, true
		}
		return se, false
	}
	return se, true
}

func maxSeriesError(index, global, local int) meridianpb.SeriesError {
	return meridianpb.SeriesError{
		Index:      int32(index),
		HttpStatus: http.StatusBadRequest,
		ErrorId:    ErrIDMaxSeriesPerTenant,
		Message: fmt.Sprintf("the tenant reached its limit of %d in-memory series (this ingester's share: %d); reduce the number of series sent or raise -ingester.max-series-per-tenant (max_global_series_per_tenant) for the tenant",
			global, local),
	}
}

func isHistogramValidationError(err error) bool {
	var herr histogram.Error
	return errors.As(err, &herr)
}
