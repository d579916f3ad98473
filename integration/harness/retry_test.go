package harness

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestRetry(t *testing.T) {
	errNotYet := errors.New("not yet")
	t.Run("until it succeeds", func(t *testing.T) {
		calls := 0
		err := Retry(context.Background(), time.Minute, time.Millisecond, func() error {
			calls++
			if calls < 3 {
				return fmt.Errorf("call %d: %w", calls, errNotYet)
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Fatalf("got %v after %d calls, want nil after 3", err, calls)
		}
	})
	t.Run("times out with the last error", func(t *testing.T) {
		calls := 0
		start := time.Now()
		err := Retry(context.Background(), 50*time.Millisecond, 10*time.Millisecond, func() error {
			calls++
			return fmt.Errorf("call %d: %w", calls, errNotYet)
		})
		if !errors.Is(err, errNotYet) || calls < 2 {
			t.Fatalf("got %v after %d calls, want errNotYet after several", err, calls)
		}
		if want := fmt.Sprintf("not within 50ms: call %d: not yet", calls); err.Error() != want {
			t.Fatalf("got %q, want %q", err, want)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("took %s", took)
		}
	})
	t.Run("a permanent error stops at once", func(t *testing.T) {
		calls := 0
		err := Retry(context.Background(), time.Minute, time.Millisecond, func() error {
			calls++
			return Permanent(errNotYet)
		})
		if err != errNotYet || calls != 1 {
			t.Fatalf("got %v after %d calls, want errNotYet after 1", err, calls)
		}
	})
	t.Run("stops when the context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		err := Retry(ctx, time.Minute, time.Millisecond, func() error {
			calls++
			if calls == 2 {
				cancel()
			}
			return errNotYet
		})
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errNotYet) || calls != 2 {
			t.Fatalf("got %v after %d calls, want canceled and errNotYet after 2", err, calls)
		}
	})
}
