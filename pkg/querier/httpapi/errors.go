package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/promql"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error types, the errorType field of an error response. They are
// Prometheus' own, so clients that branch on them keep working.
const (
	errorTimeout     = "timeout"
	errorCanceled    = "canceled"
	errorExec        = "execution"
	errorBadData     = "bad_data"
	errorInternal    = "internal"
	errorUnavailable = "unavailable"
	errorNotFound    = "not_found"
)

// statusClientClosedRequest is nginx's non-standard code for a client that
// went away; Prometheus uses it for canceled queries.
const statusClientClosedRequest = 499

// Stable IDs of the rejections a user sees; docs/ has a section per ID.
const (
	ErrIDMaxQueryLength = "err-meridian-max-query-length"
	ErrIDMaxSamples     = "err-meridian-max-samples-per-query"
	ErrIDMaxPoints      = "err-meridian-max-points-per-timeseries"
	ErrIDMissingTenant  = "err-meridian-missing-tenant"
)

// apiError is an error answer: its Prometheus error type and, when the type's
// usual HTTP status does not fit, the status to send instead.
type apiError struct {
	typ  string
	err  error
	code int
}

func (e *apiError) Error() string { return e.typ + ": " + e.err.Error() }

func (e *apiError) statusCode() int {
	if e.code != 0 {
		return e.code
	}
	switch e.typ {
	case errorBadData:
		return http.StatusBadRequest
	case errorExec:
		return http.StatusUnprocessableEntity
	case errorCanceled:
		return statusClientClosedRequest
	case errorTimeout, errorUnavailable:
		return http.StatusServiceUnavailable
	case errorNotFound:
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

func badData(err error) *apiError { return &apiError{typ: errorBadData, err: err} }

func invalidParam(param string, err error) *apiError {
	return badData(fmt.Errorf("invalid parameter %q: %w", param, err))
}

// unavailableError is implemented by storage errors that mean the data is
// out of reach for now (no healthy ingester or store-gateway): the query may
// succeed when retried.
type unavailableError interface {
	error
	Unavailable() bool
}

// isUnavailable reports whether err says that storage could not be reached,
// either through unavailableError or a gRPC status Unavailable.
func isUnavailable(err error) bool {
	if u, ok := errors.AsType[unavailableError](err); ok && u.Unavailable() {
		return true
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable {
		return true
	}
	return false
}

// classify maps an error from the engine or storage to an API error, as
// Prometheus does, with two differences: storage that is unavailable is 503
// unavailable, and too many samples names the per-tenant limit to change.
func classify(err error, maxSamples int) *apiError {
	if err == nil {
		return nil
	}
	if ae, ok := errors.AsType[*apiError](err); ok {
		return ae
	}
	if _, ok := errors.AsType[promql.ErrTooManySamples](err); ok {
		return &apiError{typ: errorExec, err: fmt.Errorf(
			"%w; limit: %d samples (%s). Select fewer series or a shorter range, or raise the per-tenant limit max_samples_per_query (-querier.max-samples)",
			err, maxSamples, ErrIDMaxSamples)}
	}
	if _, ok := errors.AsType[promql.ErrQueryCanceled](err); ok {
		return &apiError{typ: errorCanceled, err: err}
	}
	if _, ok := errors.AsType[promql.ErrQueryTimeout](err); ok {
		return &apiError{typ: errorTimeout, err: err}
	}
	if isUnavailable(err) {
		return &apiError{typ: errorUnavailable, err: err}
	}
	if _, ok := errors.AsType[promql.ErrStorage](err); ok {
		return &apiError{typ: errorInternal, err: err}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &apiError{typ: errorCanceled, err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{typ: errorTimeout, err: err}
	}
	return &apiError{typ: errorExec, err: err}
}
