package harness

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// maxRetryCalls bounds Retry's calls even when a clock misbehaves.
const maxRetryCalls = 1_000_000

// permanentError marks an error that ends Retry at once.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that Retry returns it at once instead of trying
// again: for a state that cannot change any more, e.g. the process being
// waited for has exited.
func Permanent(err error) error { return permanentError{err: err} }

// Retry calls try until it returns nil, sleeping interval between calls,
// and gives up once timeout has passed or ctx ends: it then returns an error
// that wraps try's last error. try is called at least once. An error
// wrapped with Permanent is returned (unwrapped) at once. Retry does not
// depend on testing, so tools use it too; tests call Eventually.
func Retry(ctx context.Context, timeout, interval time.Duration, try func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for range maxRetryCalls {
		if last = try(); last == nil {
			return nil
		}
		if p, ok := errors.AsType[permanentError](last); ok {
			return p.err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("not within %s: %w", timeout, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), last)
		case <-time.After(interval):
		}
	}
	return fmt.Errorf("not after %d tries: %w", maxRetryCalls, last)
}

// Eventually retries cond (see Retry) until it returns nil, failing tb with
// cond's last error once timeout passes. what names the awaited state.
func Eventually(tb testing.TB, timeout, interval time.Duration, what string, cond func() error) {
	tb.Helper()
	if err := Retry(context.Background(), timeout, interval, cond); err != nil {
		tb.Fatalf("waiting for %s: %v", what, err)
	}
}
