package distributor

import (
	"context"
	"errors"
	"net/http"

	"github.com/grafana/dskit/tenant"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/prompb"
)

// WriteOptions choose how Write validates a request.
type WriteOptions struct {
	// GraphiteNames accepts metric names and label names as Graphite writes
	// them: any non-empty UTF-8 (paths have dots, tags may have dashes).
	// Every other check (lengths, label count, duplicates, timestamps, the
	// tenant's limits) is the same as for remote write.
	GraphiteNames bool
}

// WriteResult is the outcome of Write.
type WriteResult struct {
	// Status is what remote write would have answered: 200 when everything
	// was stored, 400 when some series were rejected (the others are stored),
	// 429 or 5xx when the write as a whole was not.
	Status int
	// Message explains a Status other than 200, as remote write's body does.
	Message string
	// Rejected maps the index of each rejected series in the request as
	// passed to the error ID of its rejection.
	Rejected map[int]string
}

// Write stores a write that another protocol (Graphite's carbon lines)
// decoded, for the tenant in ctx, with the same validation, limits, rate
// limit, metrics and replication as remote write. req is modified.
func (h *PushHandler) Write(ctx context.Context, req *prompb.WriteRequest, opts WriteOptions) WriteResult {
	tenantID, err := tenant.TenantID(ctx)
	if err != nil {
		id := ErrIDInvalidTenant
		if errors.Is(err, user.ErrNoOrgID) {
			id = ErrIDMissingTenant
		}
		return WriteResult{Status: http.StatusUnauthorized, Message: id + ": no valid tenant in the request: " + err.Error()}
	}
	h.receivedRequests.WithLabelValues(tenantID).Inc()
	status, msg, rej := h.store(ctx, tenantID, req, validateOptions{graphiteNames: opts.GraphiteNames, trackIndexes: true})
	return WriteResult{Status: status, Message: msg, Rejected: rej.byIndex}
}
