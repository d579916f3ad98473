// Package integration runs the real meridian binary as separate processes
// on loopback addresses. TestMain builds ./cmd/meridian once (or uses
// MERIDIAN_BIN); every test starts the processes it needs.
package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/meridianhq/meridian/integration/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveBuild()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the integration tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// requirePushed fails the test unless a push answered 2xx.
func requirePushed(t testing.TB, code int, body string) {
	t.Helper()
	require.Truef(t, code/100 == 2, "push was not acknowledged: HTTP %d: %s", code, body)
}

// requireEventually is harness.Eventually for a condition with nothing to
// say about why it does not hold yet.
func requireEventually(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	harness.Eventually(t, timeout, interval, what, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
}

// seriesAt builds one series whose samples are values at consecutive steps
// from start.
func seriesAt(labels []string, start time.Time, step time.Duration, values []float64) prompb.TimeSeries {
	samples := make([]prompb.Sample, len(values))
	for i, v := range values {
		samples[i] = harness.Sample(start.Add(time.Duration(i)*step), v)
	}
	return harness.Series(labels, samples...)
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// mustPush pushes series and fails the test unless the push answered 2xx.
func mustPush(t testing.TB, c *harness.Client, series ...prompb.TimeSeries) {
	t.Helper()
	code, body := c.Push(series...)
	requirePushed(t, code, body)
}

// mustPushRequest pushes wr and fails the test unless it answered 2xx.
func mustPushRequest(t testing.TB, c *harness.Client, wr *prompb.WriteRequest) {
	t.Helper()
	code, body := c.PushRequest(wr)
	requirePushed(t, code, body)
}
