package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// startMemcached runs Debian's memcached on a loopback address of its own
// until the test ends and returns its address.
func startMemcached(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		t.Fatalf("memcached is not installed (Debian package memcached; scripts/test.sh installs it): %v", err)
	}
	host := harness.NewHost()
	port := harness.FreePort(t, host)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-l", host, "-p", strconv.Itoa(port), "-U", "0", "-m", "64", "-u", "nobody")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	requireEventually(t, 10*time.Second, 50*time.Millisecond, "memcached listening on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return addr
}

// memcachedStat reads one counter of memcached's "stats".
func memcachedStat(t *testing.T, addr, name string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = fmt.Fprint(c, "stats\r\n")
	require.NoError(t, err)
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := sc.Text()
		if line == "END" {
			break
		}
		f := strings.Fields(line)
		if len(f) == 3 && f[1] == name {
			n, err := strconv.Atoi(f[2])
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("memcached has no stat %s", name)
	return 0
}

// TestStoreGatewayMemcachedCache: with -store-gateway.cache.backend=memcached
// the store-gateway keeps index and chunk pages in a real memcached, and a
// repeated query reads no byte from object storage.
func TestStoreGatewayMemcachedCache(t *testing.T) {
	t.Parallel()
	mc := startMemcached(t)
	p := harness.StartMeridian(t, harness.Options{Target: shippingTarget, Args: []string{
		"-ingester.ship-interval=1s",
		"-ingester.retention-period=1s",
		"-ingester.head-compaction-interval=1s",
		"-querier.bucket-sync-interval=1s",
		"-store-gateway.cache.backend=memcached",
		"-store-gateway.cache.memcached.addresses=" + mc,
	}})
	const tenant = "memcached"
	c := p.Client(tenant)
	step := 30 * time.Second
	last := time.Now().Truncate(step)
	first := last.Add(-5 * time.Hour)
	var series []prompb.TimeSeries
	n := 0
	for s := 0; s < 5; s++ {
		var samples []prompb.Sample
		for ts := first; !ts.After(last); ts = ts.Add(step) {
			samples = append(samples, harness.Sample(ts, float64(s)))
			n++
		}
		series = append(series, harness.Series([]string{"__name__", "mc_metric", "s", strconv.Itoa(s)}, samples...))
	}
	mustPush(t, c, series...)
	code, body := p.PostPath(tenant, "/ingester/flush?wait=true")
	require.Truef(t, code/100 == 2, "flush: HTTP %d: %s", code, body)
	localDir := p.DataDir() + "/tsdb/" + tenant
	requireEventually(t, 2*time.Minute, 200*time.Millisecond, "the shipped blocks to leave "+localDir, func() bool {
		return len(shippedBlocks(t, p, tenant)) > 0 && len(ulidDirs(t, localDir)) == 0
	})

	window := fmt.Sprintf("%dm", int(last.Sub(first).Minutes())+1)
	count := func() float64 {
		v := c.Query(`sum(count_over_time(mc_metric[`+window+`]))`, last).Vector(t)
		if len(v) == 0 {
			return 0
		}
		return float64(v[0].Value)
	}
	requireEventually(t, 30*time.Second, 500*time.Millisecond, "every sample from the store-gateway", func() bool {
		return count() == float64(n)
	})
	fetched := func() float64 {
		var sum float64
		for _, kind := range []string{"index", "chunks"} {
			v, _ := p.Metric("meridian_storegateway_bucket_bytes_fetched_total", map[string]string{"kind": kind})
			sum += v
		}
		return sum
	}
	// memcached stores asynchronously: wait until it holds the pages.
	requireEventually(t, 10*time.Second, 100*time.Millisecond, "pages stored in memcached", func() bool {
		return memcachedStat(t, mc, "curr_items") > 0
	})
	require.Positive(t, fetched())
	// Once memcached holds every page (stores are asynchronous), a repeated
	// query reads nothing from object storage.
	hitsBefore := memcachedStat(t, mc, "get_hits")
	requireEventually(t, 20*time.Second, 200*time.Millisecond, "a repeated query served from memcached only", func() bool {
		before := fetched()
		got := count()
		return got == float64(n) && fetched() == before
	})
	require.Greater(t, memcachedStat(t, mc, "get_hits"), hitsBefore, "pages were read from memcached")
}
