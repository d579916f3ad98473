package frontend

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	// errTooManyOutstanding: the tenant's queue is full.
	errTooManyOutstanding = errors.New("too many outstanding requests")
	// errQueueStopped: the frontend is shutting down.
	errQueueStopped = errors.New("the query-frontend is stopping")
)

// request is one downstream request waiting for a worker.
type request struct {
	ctx    context.Context
	tenant string
	run    func(context.Context)
	done   chan struct{} // closed after run returns, or when it is skipped
	ran    bool          // run was called; set before done is closed
}

// fairQueue holds a FIFO per tenant and hands requests to workers
// round-robin across the tenants that have some queued.
type fairQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queues  map[string][]*request
	tenants []string // tenants with queued requests, in round-robin order
	next    int      // index in tenants of the tenant served next
	closed  bool

	length *prometheus.GaugeVec
}

func newFairQueue(reg prometheus.Registerer) *fairQueue {
	q := &fairQueue{
		queues: map[string][]*request{},
		length: promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_frontend_queue_length",
			Help: "Downstream requests waiting in the query-frontend queue, per tenant.",
		}, []string{"tenant"}),
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// enqueue adds req to its tenant's queue unless maxOutstanding (0: no
// limit) requests of the tenant are already waiting.
func (q *fairQueue) enqueue(req *request, maxOutstanding int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return errQueueStopped
	}
	tq := q.queues[req.tenant]
	if maxOutstanding > 0 && len(tq) >= maxOutstanding {
		return errTooManyOutstanding
	}
	if len(tq) == 0 {
		q.tenants = append(q.tenants, req.tenant)
	}
	q.queues[req.tenant] = append(tq, req)
	q.length.WithLabelValues(req.tenant).Set(float64(len(tq) + 1))
	q.cond.Signal()
	return nil
}

// dequeue waits for a request. After close it still hands out what is
// queued, and reports false once nothing is left.
func (q *fairQueue) dequeue() (*request, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.tenants) == 0 {
		if q.closed {
			return nil, false
		}
		q.cond.Wait()
	}
	i := q.next % len(q.tenants)
	t := q.tenants[i]
	tq := q.queues[t]
	req := tq[0]
	tq[0] = nil
	tq = tq[1:]
	if len(tq) == 0 {
		q.dropTenant(i)
		q.next = i // now the tenant after t
	} else {
		q.queues[t] = tq
		q.length.WithLabelValues(t).Set(float64(len(tq)))
		q.next = i + 1
	}
	return req, true
}

// remove takes req out of the queue; false means a worker has it already.
func (q *fairQueue) remove(req *request) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	tq := q.queues[req.tenant]
	j := slices.Index(tq, req)
	if j < 0 {
		return false
	}
	tq = slices.Delete(tq, j, j+1)
	if len(tq) > 0 {
		q.queues[req.tenant] = tq
		q.length.WithLabelValues(req.tenant).Set(float64(len(tq)))
		return true
	}
	i := slices.Index(q.tenants, req.tenant)
	q.dropTenant(i)
	if i < q.next {
		q.next--
	}
	return true
}

// dropTenant forgets the empty queue of q.tenants[i]. Callers hold mu.
func (q *fairQueue) dropTenant(i int) {
	t := q.tenants[i]
	delete(q.queues, t)
	q.tenants = slices.Delete(q.tenants, i, i+1)
	q.length.DeleteLabelValues(t)
}

// close wakes the workers; they drain the queue and return.
func (q *fairQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

// work runs requests until the queue is closed and empty. A request whose
// context is done is skipped.
func (q *fairQueue) work() {
	for {
		req, ok := q.dequeue()
		if !ok {
			return
		}
		if req.ctx.Err() == nil {
			req.ran = true
			req.run(req.ctx)
		}
		close(req.done)
	}
}

// do queues fn for tenant and waits until a worker has run it. When ctx is
// done first, a queued fn is dropped (do returns ctx's error) and a running
// one sees ctx canceled (do returns nil once fn has returned).
func (q *fairQueue) do(ctx context.Context, tenant string, maxOutstanding int, fn func(context.Context)) error {
	req := &request{ctx: ctx, tenant: tenant, run: fn, done: make(chan struct{})}
	if err := q.enqueue(req, maxOutstanding); err != nil {
		return err
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		if !q.remove(req) {
			<-req.done
			if req.ran {
				return nil
			}
		}
		return ctx.Err()
	}
}
