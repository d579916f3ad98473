package scheduler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridianhq/meridian/pkg/meridianpb"
)

var (
	// ErrTooManyOutstanding: the tenant's queue is full.
	ErrTooManyOutstanding = errors.New("too many outstanding requests")
	// ErrQuerierGone: the querier running the request disconnected or died
	// before answering. The request may be retried on another querier.
	ErrQuerierGone = errors.New("the querier running the request disconnected before answering (it may have crashed on this query)")
	// ErrStopped: the queue is shutting down.
	ErrStopped = errors.New("the query queue is stopping")
	// ErrCanceledQueued: the request's context ended while it waited in
	// the queue, so no querier ran it. It wraps the context's error.
	ErrCanceledQueued = errors.New("canceled while queued")
)

// QuerierLoopMethod is the full gRPC method name of the querier stream,
// which carries no tenant of its own.
const QuerierLoopMethod = "/meridian.QueryQueue/QuerierLoop"

// job is one request waiting for, or running on, a querier.
type job struct {
	ctx         context.Context
	tenant      string
	req         *meridianpb.HTTPRequest
	maxQueriers int
	done        chan result // buffered; receives exactly one result
}

type result struct {
	resp *meridianpb.HTTPResponse
	err  error
}

func (j *job) finish(resp *meridianpb.HTTPResponse, err error) { j.done <- result{resp, err} }

// Queue holds a FIFO of requests per tenant and hands them to the
// queriers that pull from it (QuerierLoop streams, or Work loops),
// round-robin across tenants, so a tenant with many queued requests delays
// another tenant's by at most a few. With a tenant's max_queriers set, only
// that many of the connected queriers (chosen by a hash of the tenant) take
// its requests: shuffle sharding, so one tenant's queries of death reach
// only its share of queriers.
//
// It is the one fair queue of Meridian: the query-scheduler's, and the
// query-frontend's own in every mode but -frontend.scheduler-address.
type Queue struct {
	mu       sync.Mutex
	queues   map[string][]*job
	tenants  []string // tenants with queued jobs, round-robin order
	next     int
	queriers map[string]int // querier ID -> connected streams
	changed  chan struct{}  // closed and replaced on every change
	closed   bool

	length    *prometheus.GaugeVec
	connected prometheus.Gauge
	outcomes  *prometheus.CounterVec
}

// QueueMetrics are the metrics a Queue keeps up to date.
type QueueMetrics struct {
	// Length is the number of queued requests, by tenant.
	Length *prometheus.GaugeVec
	// Connected is the number of distinct queriers pulling.
	Connected prometheus.Gauge
	// Outcomes counts the requests that left the queue, by outcome.
	Outcomes *prometheus.CounterVec
}

// NewQueueMetrics makes the query queue's metrics, meridian_query_queue_*,
// registered on reg.
func NewQueueMetrics(reg prometheus.Registerer) QueueMetrics {
	return QueueMetrics{
		Length: promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_query_queue_length",
			Help: "Requests waiting for a querier in the query queue (frontend or scheduler), per tenant.",
		}, []string{"tenant"}),
		Connected: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "meridian_query_queue_connected_queriers",
			Help: "Distinct queriers with at least one worker stream connected to the query queue.",
		}),
		Outcomes: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_query_queue_requests_total",
			Help: "Requests that left the query queue, by outcome: answered, canceled, querier_gone, rejected, stopped.",
		}, []string{"outcome"}),
	}
}

// NewQueue returns an empty queue that keeps m.
func NewQueue(m QueueMetrics) *Queue {
	q := &Queue{
		queues:    map[string][]*job{},
		queriers:  map[string]int{},
		changed:   make(chan struct{}),
		length:    m.Length,
		connected: m.Connected,
		outcomes:  m.Outcomes,
	}
	for _, o := range []string{"answered", "canceled", "querier_gone", "rejected", "stopped"} {
		q.outcomes.WithLabelValues(o)
	}
	return q
}

// notify wakes every waiting querier stream. Callers hold mu.
func (q *Queue) notify() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// Do queues req for tenant and waits for a querier's answer. maxOutstanding
// (0: no limit) bounds the tenant's queued requests; maxQueriers (0: all) is
// the tenant's shuffle-shard size. When ctx is done first, a queued request
// is dropped (the error wraps ErrCanceledQueued) and a running one canceled
// on its querier.
func (q *Queue) Do(ctx context.Context, tenant string, req *meridianpb.HTTPRequest, maxOutstanding, maxQueriers int) (*meridianpb.HTTPResponse, error) {
	j := &job{ctx: ctx, tenant: tenant, req: req, maxQueriers: maxQueriers, done: make(chan result, 1)}
	if err := q.enqueue(j, maxOutstanding); err != nil {
		return nil, err
	}
	select {
	case r := <-j.done:
		return r.resp, r.err
	case <-ctx.Done():
		if q.remove(j) {
			q.outcomes.WithLabelValues("canceled").Inc()
			return nil, fmt.Errorf("%w: %w", ErrCanceledQueued, ctx.Err())
		}
		// A querier has it: it notices ctx and finishes the job.
		r := <-j.done
		return r.resp, r.err
	}
}

func (q *Queue) enqueue(j *job, maxOutstanding int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		q.outcomes.WithLabelValues("stopped").Inc()
		return ErrStopped
	}
	tq := q.queues[j.tenant]
	if maxOutstanding > 0 && len(tq) >= maxOutstanding {
		q.outcomes.WithLabelValues("rejected").Inc()
		return ErrTooManyOutstanding
	}
	if len(tq) == 0 {
		q.tenants = append(q.tenants, j.tenant)
	}
	q.queues[j.tenant] = append(tq, j)
	q.length.WithLabelValues(j.tenant).Set(float64(len(tq) + 1))
	q.notify()
	return nil
}

// remove takes j out of the queue; false means a querier has it already.
func (q *Queue) remove(j *job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	tq := q.queues[j.tenant]
	k := slices.Index(tq, j)
	if k < 0 {
		return false
	}
	q.take(j.tenant, k)
	return true
}

// take removes the k-th job of tenant's queue. Callers hold mu.
func (q *Queue) take(tenant string, k int) {
	tq := slices.Delete(q.queues[tenant], k, k+1)
	if len(tq) > 0 {
		q.queues[tenant] = tq
		q.length.WithLabelValues(tenant).Set(float64(len(tq)))
		return
	}
	i := slices.Index(q.tenants, tenant)
	delete(q.queues, tenant)
	q.tenants = slices.Delete(q.tenants, i, i+1)
	q.length.DeleteLabelValues(tenant)
	if i < q.next {
		q.next--
	}
}

// dequeue returns the next job querierID may run, waiting until there is
// one. It returns ErrStopped once the queue is closed and holds nothing for
// querierID, or ctx's error.
func (q *Queue) dequeue(ctx context.Context, querierID string) (*job, error) {
	for {
		q.mu.Lock()
		if j := q.pick(querierID); j != nil {
			q.mu.Unlock()
			if j.ctx.Err() != nil {
				q.outcomes.WithLabelValues("canceled").Inc()
				j.finish(nil, fmt.Errorf("%w: %w", ErrCanceledQueued, j.ctx.Err()))
				continue
			}
			return j, nil
		}
		if q.closed {
			q.mu.Unlock()
			return nil, ErrStopped
		}
		ch := q.changed
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// pick takes the head job of the first tenant, round-robin from next, that
// querierID serves. Callers hold mu.
func (q *Queue) pick(querierID string) *job {
	n := len(q.tenants)
	for off := range n {
		i := (q.next + off) % n
		t := q.tenants[i]
		j := q.queues[t][0]
		if !q.serves(querierID, t, j.maxQueriers) {
			continue
		}
		q.take(t, 0)
		// The tenant after t is served next; take may have shifted the list.
		if len(q.tenants) > 0 {
			if k := slices.Index(q.tenants, t); k >= 0 {
				q.next = (k + 1) % len(q.tenants)
			} else {
				q.next = i % len(q.tenants)
			}
		} else {
			q.next = 0
		}
		return j
	}
	return nil
}

// serves reports whether querierID is in tenant's shuffle shard of size
// maxQueriers among the connected queriers. Callers hold mu.
func (q *Queue) serves(querierID, tenant string, maxQueriers int) bool {
	if maxQueriers <= 0 || maxQueriers >= len(q.queriers) {
		return true
	}
	return slices.Contains(shard(tenant, q.querierIDs(), maxQueriers), querierID)
}

func (q *Queue) querierIDs() []string {
	ids := make([]string, 0, len(q.queriers))
	for id := range q.queriers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// shard picks n of the sorted ids for tenant: the same tenant and ids give
// the same shard, and different tenants mostly different ones.
func shard(tenant string, ids []string, n int) []string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(tenant))
	r := rand.New(rand.NewPCG(h.Sum64(), 0x6d65726964696e))
	perm := r.Perm(len(ids))
	out := make([]string, 0, n)
	for _, k := range perm[:n] {
		out = append(out, ids[k])
	}
	return out
}

func (q *Queue) connect(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queriers[id]++
	q.connected.Set(float64(len(q.queriers)))
	q.notify()
}

func (q *Queue) disconnect(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queriers[id]--; q.queriers[id] <= 0 {
		delete(q.queriers, id)
	}
	q.connected.Set(float64(len(q.queriers)))
	q.notify()
}

// Len is the number of requests of tenant waiting in the queue.
func (q *Queue) Len(tenant string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queues[tenant])
}

// Drain stops taking requests (Do fails with ErrStopped) but still hands
// out the queued ones: the pulling queriers return once nothing is left
// for them.
func (q *Queue) Drain() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.notify()
}

// Close fails every queued request with ErrStopped and ends the querier
// streams once their current request is answered.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for _, t := range q.tenants {
		for _, j := range q.queues[t] {
			q.outcomes.WithLabelValues("stopped").Inc()
			j.finish(nil, ErrStopped)
		}
		q.length.DeleteLabelValues(t)
	}
	q.queues, q.tenants, q.next = map[string][]*job{}, nil, 0
	q.notify()
}

// Work pulls requests as querier querierID and runs them with run, one at
// a time, until ctx is done or the queue is closed and holds nothing for
// querierID. run gets the request's context: it is canceled when the
// request's client goes away.
func (q *Queue) Work(ctx context.Context, querierID string, run func(ctx context.Context, tenant string, req *meridianpb.HTTPRequest) (*meridianpb.HTTPResponse, error)) {
	q.connect(querierID)
	defer q.disconnect(querierID)
	for {
		j, err := q.dequeue(ctx, querierID)
		if err != nil {
			return
		}
		resp, err := run(j.ctx, j.tenant, j.req)
		switch {
		case err == nil:
			q.outcomes.WithLabelValues("answered").Inc()
		case j.ctx.Err() != nil:
			q.outcomes.WithLabelValues("canceled").Inc()
		default:
			q.outcomes.WithLabelValues("querier_gone").Inc()
		}
		j.finish(resp, err)
	}
}

// QuerierLoop serves one querier worker stream: it sends the worker one
// request at a time and passes its answer back. When the request's client
// goes away the stream is ended, which cancels the work on the querier.
func (q *Queue) QuerierLoop(stream meridianpb.QueryQueue_QuerierLoopServer) error {
	hello, err := stream.Recv()
	if err != nil {
		return err
	}
	id := hello.QuerierId
	if id == "" {
		return status.Error(codes.InvalidArgument, "the first message of a querier stream must carry querier_id")
	}
	q.connect(id)
	defer q.disconnect(id)
	ctx := stream.Context()
	answers := make(chan result, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				answers <- result{err: err}
				return
			}
			answers <- result{resp: m.Response}
		}
	}()
	for {
		j, err := q.dequeue(ctx, id)
		if err != nil {
			return nil
		}
		if err := stream.Send(&meridianpb.QueueRequest{Tenant: j.tenant, Request: j.req}); err != nil {
			q.outcomes.WithLabelValues("querier_gone").Inc()
			j.finish(nil, fmt.Errorf("%w: send to querier %s: %v", ErrQuerierGone, id, err))
			return err
		}
		select {
		case a := <-answers:
			if a.err != nil || a.resp == nil {
				q.outcomes.WithLabelValues("querier_gone").Inc()
				j.finish(nil, fmt.Errorf("%w (querier %s: %v)", ErrQuerierGone, id, a.err))
				return a.err
			}
			q.outcomes.WithLabelValues("answered").Inc()
			j.finish(a.resp, nil)
		case <-j.ctx.Done():
			// End the stream: the querier cancels the request's work and
			// reconnects.
			q.outcomes.WithLabelValues("canceled").Inc()
			j.finish(nil, j.ctx.Err())
			return status.Error(codes.Canceled, "the request's client went away")
		case <-ctx.Done():
			q.outcomes.WithLabelValues("querier_gone").Inc()
			j.finish(nil, fmt.Errorf("%w (querier %s: %v)", ErrQuerierGone, id, ctx.Err()))
			return nil
		}
	}
}
