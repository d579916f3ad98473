package scheduler

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/meridianhq/meridian/pkg/meridianpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// enqueueAsync queues a request for tenant whose URL is name and returns
// the channel its error (nil when answered) arrives on.
func enqueueAsync(t *testing.T, q *Queue, ctx context.Context, tenant, name string, maxQueriers int) <-chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := q.Do(ctx, tenant, &meridianpb.HTTPRequest{Url: name}, 0, maxQueriers)
		errc <- err
	}()
	return errc
}

// waitLength waits until n requests are queued in total.
func waitLength(t *testing.T, q *Queue, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		total := 0
		for _, tq := range q.queues {
			total += len(tq)
		}
		return total == n
	}, 5*time.Second, time.Millisecond)
}

func TestQueueRoundRobinAcrossTenants(t *testing.T) {
	q := NewQueue(NewQueueMetrics(prometheus.NewRegistry()))
	defer q.Close()
	ctx := context.Background()
	var errs []<-chan error
	// Tenant a queues three requests before b queues one: b still goes second.
	for i := range 3 {
		errs = append(errs, enqueueAsync(t, q, ctx, "a", fmt.Sprintf("a%d", i), 0))
		waitLength(t, q, i+1)
	}
	errs = append(errs, enqueueAsync(t, q, ctx, "b", "b0", 0))
	waitLength(t, q, 4)

	q.connect("q1")
	var order []string
	for range 4 {
		j, err := q.dequeue(ctx, "q1")
		require.NoError(t, err)
		order = append(order, j.req.Url)
		j.finish(&meridianpb.HTTPResponse{Code: 200}, nil)
	}
	require.Equal(t, []string{"a0", "b0", "a1", "a2"}, order)
	for _, e := range errs {
		require.NoError(t, <-e)
	}
}

func TestQueueMaxOutstanding(t *testing.T) {
	q := NewQueue(NewQueueMetrics(prometheus.NewRegistry()))
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	first := enqueueAsync(t, q, ctx, "a", "a0", 0)
	waitLength(t, q, 1)
	_, err := q.Do(ctx, "a", &meridianpb.HTTPRequest{}, 1, 0)
	require.ErrorIs(t, err, ErrTooManyOutstanding)
	// Another tenant has its own budget; its canceled request leaves the queue.
	cancel()
	require.ErrorIs(t, <-first, context.Canceled)
	waitLength(t, q, 0)
}

func TestQueueShuffleSharding(t *testing.T) {
	q := NewQueue(NewQueueMetrics(prometheus.NewRegistry()))
	defer q.Close()
	for _, id := range []string{"q1", "q2", "q3", "q4"} {
		q.connect(id)
	}
	ids := q.querierIDs()
	sh := shard("tenant-x", ids, 2)
	require.Len(t, sh, 2)
	require.Equal(t, sh, shard("tenant-x", ids, 2), "the shard is deterministic")

	ctx := context.Background()
	errc := enqueueAsync(t, q, ctx, "tenant-x", "x", 2)
	waitLength(t, q, 1)
	for _, id := range ids {
		q.mu.Lock()
		serves := q.serves(id, "tenant-x", 2)
		q.mu.Unlock()
		require.Equal(t, slices.Contains(sh, id), serves, id)
		if !serves {
			// An outside querier finds nothing to do.
			short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			_, err := q.dequeue(short, id)
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}
	}
	j, err := q.dequeue(ctx, sh[0])
	require.NoError(t, err)
	j.finish(&meridianpb.HTTPResponse{Code: 204}, nil)
	require.NoError(t, <-errc)

	// Different tenants spread over different shards.
	seen := map[string]bool{}
	for i := range 20 {
		for _, id := range shard(fmt.Sprint("t", i), ids, 1) {
			seen[id] = true
		}
	}
	require.Greater(t, len(seen), 1)
}

func TestQueueCloseFailsQueued(t *testing.T) {
	q := NewQueue(NewQueueMetrics(prometheus.NewRegistry()))
	errc := enqueueAsync(t, q, context.Background(), "a", "a0", 0)
	waitLength(t, q, 1)
	q.Close()
	require.ErrorIs(t, <-errc, ErrStopped)
	_, err := q.Do(context.Background(), "a", &meridianpb.HTTPRequest{}, 0, 0)
	require.ErrorIs(t, err, ErrStopped)
}

func TestQueueCanceledWhileQueued(t *testing.T) {
	q := NewQueue(NewQueueMetrics(prometheus.NewRegistry()))
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := enqueueAsync(t, q, ctx, "a", "a0", 0)
	waitLength(t, q, 1)
	cancel()
	err := <-errc
	require.ErrorIs(t, err, ErrCanceledQueued)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, q.Len("a"))
}

// TestQueueWork: a Work loop answers requests round-robin across tenants,
// and after Drain sends what is queued before it returns.
func TestQueueWork(t *testing.T) {
	q := NewQueue(NewQueueMetrics(prometheus.NewRegistry()))
	defer q.Close()
	ctx := context.Background()
	var errs []<-chan error
	for i := range 3 {
		errs = append(errs, enqueueAsync(t, q, ctx, "a", fmt.Sprintf("a%d", i), 0))
		waitLength(t, q, i+1)
	}
	errs = append(errs, enqueueAsync(t, q, ctx, "b", "b0", 0))
	waitLength(t, q, 4)
	q.Drain()
	_, err := q.Do(ctx, "c", &meridianpb.HTTPRequest{}, 0, 0)
	require.ErrorIs(t, err, ErrStopped, "a draining queue takes nothing new")

	var order []string
	q.Work(ctx, "w", func(_ context.Context, tenant string, req *meridianpb.HTTPRequest) (*meridianpb.HTTPResponse, error) {
		order = append(order, req.Url)
		return &meridianpb.HTTPResponse{Code: 200}, nil
	})
	require.Equal(t, []string{"a0", "b0", "a1", "a2"}, order)
	for _, e := range errs {
		require.NoError(t, <-e)
	}
}
