package integration

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// startRedis runs Debian's redis-server on a loopback address of its own,
// without persistence, until the test ends, and returns its address.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (Debian package redis-server; scripts/test.sh installs it): %v", err)
	}
	host := harness.NewHost()
	port := harness.FreePort(t, host)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--bind", host, "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	requireEventually(t, 10*time.Second, 50*time.Millisecond, "redis listening on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return addr
}

// TestFrontendSharedResultsCache: with memcached or redis as the results
// cache, a restarted query-frontend (its process memory gone) answers a
// repeated range query from the shared cache, identically to the first
// answer, which was computed by the querier.
func TestFrontendSharedResultsCache(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"memcached", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var flags []string
			switch backend {
			case "memcached":
				flags = []string{"-frontend.results-cache.backend=memcached", "-frontend.results-cache.memcached.addresses=" + startMemcached(t)}
			case "redis":
				flags = []string{"-frontend.results-cache.backend=redis", "-frontend.results-cache.redis.address=" + startRedis(t)}
			}
			m := harness.StartMeridian(t, harness.Options{Target: "all,query-frontend", Args: append(flags,
				"-frontend.max-cache-freshness=0s", "-frontend.split-queries-by-interval=20m")})
			end := time.Now().Truncate(time.Minute).Add(-time.Minute)
			var samples []prompb.Sample
			for i := range 90 {
				samples = append(samples, harness.Sample(end.Add(time.Duration(i-89)*time.Minute), float64(3*i+1)))
			}
			code, body := m.Push("cache-"+backend, harness.Series([]string{"__name__", "fe_cache_total", "backend", backend}, samples...))
			requirePushed(t, code, body)
			start := end.Add(-80 * time.Minute)
			query := func() []float64 {
				r := m.Client("cache-"+backend).QueryRange(`fe_cache_total * 2`, start, end, time.Minute)
				require.Equal(t, "success", r.Status, r.String())
				mat := r.Matrix(t)
				require.Len(t, mat, 1)
				var vs []float64
				for _, p := range mat[0].Values {
					vs = append(vs, float64(p.Value))
				}
				return vs
			}
			first := query()
			require.Len(t, first, 81)
			for k, v := range first {
				require.Equal(t, float64(2*(3*(k+9)+1)), v, "point %d", k)
			}
			// The write to the cache is asynchronous for memcached: wait
			// until a repeat is answered from it before restarting.
			requireEventually(t, 10*time.Second, 200*time.Millisecond, "cache filled", func() bool {
				before, _ := m.Metric("meridian_frontend_cache_hits_total", nil)
				query()
				after, _ := m.Metric("meridian_frontend_cache_hits_total", nil)
				return after > before
			})

			m.Restart()
			hits0, _ := m.Metric("meridian_frontend_cache_hits_total", nil)
			require.Zero(t, hits0, "a fresh process")
			again := query()
			require.Equal(t, first, again, "the cached answer equals the computed one")
			hits, _ := m.Metric("meridian_frontend_cache_hits_total", nil)
			misses, _ := m.Metric("meridian_frontend_cache_misses_total", nil)
			require.Positive(t, hits, "answered from %s after the restart", backend)
			require.Zero(t, misses, "nothing had to be fetched from the querier")
		})
	}
}
