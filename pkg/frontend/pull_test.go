package frontend

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/scheduler"
)

// dyingQueriers is an executor whose queriers all die on every request.
type dyingQueriers struct{ calls atomic.Int32 }

func (d *dyingQueriers) Do(context.Context, string, *meridianpb.HTTPRequest, int, int) (*meridianpb.HTTPResponse, error) {
	d.calls.Add(1)
	return nil, scheduler.ErrQuerierGone
}

func (d *dyingQueriers) start() {}
func (d *dyingQueriers) stop()  {}

// TestQueryOfDeathNotRetriedForever: a request whose querier dies is
// retried -frontend.max-retries times, then answered 502 with the error ID.
func TestQueryOfDeathNotRetriedForever(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.MaxRetries = 2
	f, _ := startFrontend(t, cfg, testLimits, nil, nil)
	_, ok := f.QueueServer()
	require.True(t, ok, "without downstream URL and scheduler the frontend queues itself")
	exec := &dyingQueriers{}
	f.exec = exec
	start := time.Now()
	code, body := do(context.Background(), f.Handler(), "t1", "/prometheus/api/v1/query", map[string][]string{"query": {"up"}}, nil)
	require.Equal(t, http.StatusBadGateway, code)
	require.Contains(t, string(body), ErrIDQueryOfDeath)
	require.Contains(t, string(body), "3 time(s) in a row")
	require.EqualValues(t, 3, exec.calls.Load())
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestPullModeTooManyOutstanding: the in-process queue's per-tenant limit
// answers 429 with the error ID, not retried.
func TestPullModeTooManyOutstanding(t *testing.T) {
	cfg := testConfig(t, "")
	f, reg := startFrontend(t, cfg, StaticLimits{MaxOutstanding: 1, MaxQueryParallelism: 1}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// No querier is connected: the first request waits in the queue.
	done := make(chan int, 1)
	go func() {
		code, _ := do(ctx, f.Handler(), "t1", "/prometheus/api/v1/query", map[string][]string{"query": {"up"}}, nil)
		done <- code
	}()
	// Probe only once it is queued, or the probe could take its place.
	require.Eventually(t, func() bool {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "meridian_query_queue_length" {
				for _, m := range mf.GetMetric() {
					if m.GetGauge().GetValue() == 1 {
						return true
					}
				}
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond)
	code, body := do(ctx, f.Handler(), "t1", "/prometheus/api/v1/query", map[string][]string{"query": {"up"}}, nil)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Contains(t, string(body), ErrIDMaxOutstanding)
	cancel()
	require.Equal(t, statusClientClosedRequest, <-done)
}
