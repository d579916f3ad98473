package ingester

import (
	"context"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestQueryStreamWhileAppending reads a series while it is being appended
// to: the open head chunk is streamed as raw bytes, so every read must decode
// to a clean prefix of what was pushed (run with -race as well).
func TestQueryStreamWhileAppending(t *testing.T) {
	ing := startIngester(t, testConfig(t, t.TempDir()), defaultLimits(t), nil)
	defer services.StopAndAwaitTerminated(context.Background(), ing) //nolint:errcheck

	const total = 2000
	base := time.Now().Add(-time.Hour).UnixMilli()
	ctx := user.InjectOrgID(context.Background(), "team-a")
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := 0; i < total; i++ {
			_, err := ing.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				series("grow", prompb.Sample{Timestamp: base + int64(i)*1000, Value: float64(i)}),
			}})
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	reads, longest := 0, 0
	for done := false; !done; reads++ {
		select {
		case <-finished:
			done = true // one more read after the last push
		default:
		}
		got := queryAll(t, ing, "team-a", base, base+total*1000)
		for _, ss := range got {
			for i, s := range ss {
				require.Equal(t, base+int64(i)*1000, s.Timestamp, "read %d sample %d", reads, i)
				require.Equal(t, float64(i), s.Value, "read %d sample %d", reads, i)
			}
			longest = max(longest, len(ss))
		}
	}
	require.Equal(t, total, longest)
	t.Logf("%d reads while appending %d samples", reads, total)
}
