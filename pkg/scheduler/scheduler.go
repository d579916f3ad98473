// Package scheduler is the query queue between query-frontends and
// queriers, and the optional query-scheduler that serves it on its own.
//
// Queriers pull work: each querier worker opens QuerierLoop streams to a
// query-frontend or to a query-scheduler and answers the HTTP requests it
// receives one at a time. A Queue keeps a FIFO per tenant, served
// round-robin across tenants, so the sender needs no querier addresses and
// queriers can come and go. A query-frontend without a scheduler runs a
// Queue in process (with a downstream URL its own workers pull from it
// with Work and send over HTTP); with -frontend.scheduler-address it
// enqueues to a query-scheduler over gRPC (Enqueue) instead, so several
// frontends share one queue.
//
// When the client of a request goes away, a queued request is dropped and
// a running one is canceled by ending its querier's stream; the querier
// cancels the work and reconnects. When a querier's stream breaks while it
// runs a request (the querier died, e.g. on a query of death), the request
// fails with ErrQuerierGone and the frontend retries it, on whichever
// querier takes it next, at most -frontend.max-retries times.
package scheduler

import (
	"context"
	"errors"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/tenant"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridianhq/meridian/pkg/meridianpb"
)

// Server serves a Queue over gRPC: QuerierLoop for querier workers and
// Enqueue for query-frontends.
type Server struct {
	*Queue
}

var _ meridianpb.QueryQueueServer = Server{}

// Enqueue runs one request for the tenant of the call.
func (s Server) Enqueue(ctx context.Context, req *meridianpb.EnqueueRequest) (*meridianpb.HTTPResponse, error) {
	tenantID, err := tenant.TenantID(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	resp, err := s.Do(ctx, tenantID, req.Request, int(req.MaxOutstanding), int(req.MaxQueriers))
	return resp, toStatus(err)
}

// toStatus carries the queue's errors over gRPC; FromStatus undoes it.
func toStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrTooManyOutstanding):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, ErrQuerierGone):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, ErrStopped):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// Scheduler is the query-scheduler: a Queue served on the process' gRPC
// server, shared by every query-frontend that enqueues to it.
type Scheduler struct {
	services.Service
	queue  *Queue
	logger log.Logger
}

// New returns a query-scheduler; register Server() on the gRPC server.
func New(logger log.Logger, reg prometheus.Registerer) *Scheduler {
	s := &Scheduler{queue: NewQueue(NewQueueMetrics(reg)), logger: logger}
	s.Service = services.NewIdleService(nil, func(error) error {
		s.queue.Close()
		level.Info(logger).Log("msg", "query-scheduler stopped")
		return nil
	})
	return s
}

// Server is the gRPC service of the scheduler's queue.
func (s *Scheduler) Server() Server { return Server{s.queue} }
