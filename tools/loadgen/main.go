// Command loadgen is a Prometheus remote-write 1.0 load generator for
// benchmarking Meridian.
//
// It simulates -series active series split evenly across -tenants tenants
// (tenant-0 … tenant-N-1). Series look like what Prometheus scrapes from real
// targets: every target has job, instance, namespace, pod and cluster labels
// and exposes 96 series — counters (http_requests_total,
// node_cpu_seconds_total, …), gauges doing a random walk
// (node_memory_MemAvailable_bytes, go_goroutines, …) and classic histograms
// (http_request_duration_seconds_bucket/_sum/_count).
//
// The series are cut into requests of -batch series; request b is always sent
// by worker b mod -concurrency, one after the other, so the samples of every
// series arrive in timestamp order. Each pass over all series is one "step":
// it advances every series' sample time by -interval.
//
// Timestamps. Step k of request b carries time start + k×interval + offset(b),
// where offset spreads the requests over one interval the way Prometheus
// spreads scrapes. A sample is never sent before its timestamp has passed:
// a worker whose next step lies in the future waits for the clock.
//   - -rate=-1 (default, real time): start = now, so each series is sampled
//     once per -interval of wall time, like a real Prometheus.
//   - -rate=0 (as fast as possible) or -rate=R samples/s: simulated time runs
//     faster than the clock, so the timeline starts in the past. With -start=0
//     it starts early enough that the run fits before now even at R (or at
//     2 000 000 samples/s for -rate=0):
//     start = now − (ceil(R×duration/series)+1) × interval.
//     If the run is faster than that it catches up with the clock and is paced
//     by it from then on; a warning says so.
//   - -once: one sample per series, all at -start (default now), then exit.
//     Use it to create series; pass a later -start to the following run.
//
// The last line printed is machine readable:
//
//	RESULT samples_per_sec=... p99_ms=... errors=... samples_accepted=... ...
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

type config struct {
	url         string
	series      int
	tenants     int
	interval    time.Duration
	rate        float64
	duration    time.Duration
	batch       int
	concurrency int
	once        bool
	startMs     int64
	labels      string
	report      time.Duration
	timeout     time.Duration
	seed        uint64
}

// fastRateGuess is the throughput assumed for -rate=0 when choosing how far in
// the past the timeline starts.
const fastRateGuess = 2e6

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8080/api/v1/push", "Remote-write endpoint.")
	fs.IntVar(&c.series, "series", 100000, "Active series in total, split evenly across tenants.")
	fs.IntVar(&c.tenants, "tenants", 1, "Number of tenants (tenant-0 … tenant-N-1, sent as X-Scope-OrgID).")
	fs.DurationVar(&c.interval, "interval", 10*time.Second, "Scrape interval: how far each step moves a series' sample time.")
	fs.Float64Var(&c.rate, "rate", -1, "Samples per second to send. 0 = as fast as possible; -1 = real time (each series once per -interval of wall time).")
	fs.DurationVar(&c.duration, "duration", 60*time.Second, "How long to send for (ignored with -once).")
	fs.IntVar(&c.batch, "batch", 2000, "Series per request.")
	fs.IntVar(&c.concurrency, "concurrency", 4, "Requests in flight at once.")
	fs.BoolVar(&c.once, "once", false, "Send exactly one sample per series, at -start, and exit.")
	fs.Int64Var(&c.startMs, "start", 0, "Timestamp of the first step, in Unix milliseconds. 0 = automatic (see the package documentation).")
	fs.StringVar(&c.labels, "labels", "realistic", "Label shape: realistic (job/instance/pod/… labels, counters, gauges, histograms) or minimal (__name__ and series_id, gauges only).")
	fs.DurationVar(&c.report, "report-every", 10*time.Second, "How often to print progress. 0 = never.")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "Timeout of one request.")
	fs.Uint64Var(&c.seed, "seed", 1, "Seed of the generated label values and samples.")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case c.series <= 0:
		return c, errors.New("-series must be positive")
	case c.tenants <= 0:
		return c, errors.New("-tenants must be positive")
	case c.tenants > c.series:
		return c, errors.New("-tenants must not exceed -series")
	case c.batch <= 0:
		return c, errors.New("-batch must be positive")
	case c.concurrency <= 0:
		return c, errors.New("-concurrency must be positive")
	case c.interval < time.Millisecond:
		return c, errors.New("-interval must be at least 1ms")
	case c.rate < 0 && c.rate != -1:
		return c, errors.New("-rate must be -1 (real time), 0 (as fast as possible) or a positive number of samples per second")
	case !c.once && c.duration <= 0:
		return c, errors.New("-duration must be positive")
	case c.labels != "realistic" && c.labels != "minimal":
		return c, fmt.Errorf("-labels must be realistic or minimal, not %q", c.labels)
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	res, err := run(ctx, cfg, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	if res.acceptedSamples == 0 {
		fmt.Fprintln(os.Stderr, "loadgen: no sample was accepted")
		os.Exit(1)
	}
}

// batch is one request's worth of series, always sent by the same worker.
type batch struct {
	tenant   string
	specs    []seriesSpec
	values   []float64
	req      prompb.WriteRequest
	offsetMs int64 // spreads requests over one interval
}

// result is what a run measured.
type result struct {
	elapsed         time.Duration
	requests        int64
	sentSamples     int64
	acceptedSamples int64
	errors          int64
	errByCode       map[int]int64
	firstErr        map[int]string
	p50, p90, p99   time.Duration
	maxLatency      time.Duration
	firstTs, lastTs int64
	clamped         bool
	cpu             time.Duration
}

// stats is shared by the workers and the progress reporter.
type stats struct {
	mu              sync.Mutex
	requests        int64
	sentSamples     int64
	acceptedSamples int64
	errors          int64
	errByCode       map[int]int64 // 0 = no HTTP response
	firstErr        map[int]string
	latencies       []time.Duration
	firstTs, lastTs int64
	clamped         bool
}

func (s *stats) record(samples int, lat time.Duration, code int, body string, minTs, maxTs int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.sentSamples += int64(samples)
	s.latencies = append(s.latencies, lat)
	if code/100 == 2 {
		s.acceptedSamples += int64(samples)
		if s.firstTs == 0 || minTs < s.firstTs {
			s.firstTs = minTs
		}
		if maxTs > s.lastTs {
			s.lastTs = maxTs
		}
		return
	}
	s.errors++
	s.errByCode[code]++
	if _, ok := s.firstErr[code]; !ok {
		s.firstErr[code] = body
	}
}

func (s *stats) snapshot() result {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := result{
		requests:        s.requests,
		sentSamples:     s.sentSamples,
		acceptedSamples: s.acceptedSamples,
		errors:          s.errors,
		errByCode:       make(map[int]int64, len(s.errByCode)),
		firstErr:        make(map[int]string, len(s.firstErr)),
		firstTs:         s.firstTs,
		lastTs:          s.lastTs,
		clamped:         s.clamped,
	}
	for k, v := range s.errByCode {
		r.errByCode[k] = v
	}
	for k, v := range s.firstErr {
		r.firstErr[k] = v
	}
	lat := slices.Clone(s.latencies)
	slices.Sort(lat)
	r.p50, r.p90, r.p99 = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99)
	if len(lat) > 0 {
		r.maxLatency = lat[len(lat)-1]
	}
	return r
}

// percentile returns the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// limiter paces all workers to a shared samples-per-second rate.
type limiter struct {
	mu        sync.Mutex
	next      time.Time
	perSample time.Duration
}

// wait blocks until n more samples may be sent, or ctx ends.
func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = l.next.Add(time.Duration(n) * l.perSample)
	l.mu.Unlock()
	return sleepUntil(ctx, at)
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// buildBatches generates all series and cuts them into per-tenant requests.
func buildBatches(cfg config) []*batch {
	tmpl := targetTemplate()
	intervalSec := cfg.interval.Seconds()
	var batches []*batch
	firstTarget := 0
	for t := 0; t < cfg.tenants; t++ {
		n := cfg.series / cfg.tenants
		if t < cfg.series%cfg.tenants {
			n++
		}
		specs, targets := buildSeries(cfg.labels, t, n, firstTarget, tmpl, cfg.seed)
		firstTarget += targets
		tenant := fmt.Sprintf("tenant-%d", t)
		for lo := 0; lo < len(specs); lo += cfg.batch {
			hi := min(lo+cfg.batch, len(specs))
			b := &batch{tenant: tenant, specs: specs[lo:hi], values: make([]float64, hi-lo)}
			samples := make([]prompb.Sample, hi-lo)
			b.req.Timeseries = make([]prompb.TimeSeries, hi-lo)
			for i := range b.specs {
				b.values[i] = initialValue(&b.specs[i], intervalSec)
				b.req.Timeseries[i].Labels = b.specs[i].labels
				b.req.Timeseries[i].Samples = samples[i : i+1 : i+1]
			}
			batches = append(batches, b)
		}
	}
	if !cfg.once {
		for i, b := range batches {
			b.offsetMs = int64(i) * cfg.interval.Milliseconds() / int64(len(batches))
		}
	}
	return batches
}

// startTime picks the timestamp of step 0 (see the package documentation).
func startTime(cfg config, now time.Time) int64 {
	if cfg.startMs != 0 {
		return cfg.startMs
	}
	nowMs := now.UnixMilli()
	if cfg.once || cfg.rate < 0 {
		return nowMs
	}
	r := cfg.rate
	if r == 0 {
		r = fastRateGuess
	}
	steps := int64(math.Ceil(r*cfg.duration.Seconds()/float64(cfg.series))) + 1
	return nowMs - steps*cfg.interval.Milliseconds()
}

func run(ctx context.Context, cfg config, out io.Writer) (result, error) {
	batches := buildBatches(cfg)
	workers := min(cfg.concurrency, len(batches))
	start := startTime(cfg, time.Now())
	intervalMs := cfg.interval.Milliseconds()
	intervalSec := cfg.interval.Seconds()

	mode := "real time (one sample per series per interval)"
	switch {
	case cfg.once:
		mode = "once"
	case cfg.rate == 0:
		mode = "as fast as possible"
	case cfg.rate > 0:
		mode = fmt.Sprintf("%.0f samples/s", cfg.rate)
	}
	fmt.Fprintf(out, "loadgen: %d series, %d tenants, %d requests of up to %d series, %d workers, interval %s, rate: %s, labels: %s\n",
		cfg.series, cfg.tenants, len(batches), cfg.batch, workers, cfg.interval, mode, cfg.labels)
	fmt.Fprintf(out, "loadgen: first step at %s (%s before now), target %s\n",
		time.UnixMilli(start).UTC().Format(time.RFC3339Nano), time.Since(time.UnixMilli(start)).Round(time.Second), cfg.url)
	if cfg.concurrency > len(batches) {
		fmt.Fprintf(out, "loadgen: warning: only %d requests per step, so only %d of %d workers are used\n", len(batches), workers, cfg.concurrency)
	}

	st := &stats{errByCode: map[int]int64{}, firstErr: map[int]string{}}
	var lim *limiter
	if cfg.rate > 0 {
		lim = &limiter{perSample: time.Duration(float64(time.Second) / cfg.rate)}
	}
	client := &http.Client{
		Timeout: cfg.timeout,
		Transport: &http.Transport{
			MaxIdleConns:        workers,
			MaxIdleConnsPerHost: workers,
			DisableCompression:  true,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	defer client.CloseIdleConnections()

	cpuStart := processCPU()
	began := time.Now()
	deadline := began.Add(cfg.duration)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	reporterDone := make(chan struct{})
	if cfg.report > 0 && !cfg.once {
		go func() {
			defer close(reporterDone)
			tick := time.NewTicker(cfg.report)
			defer tick.Stop()
			var last int64
			lastAt := began
			for {
				select {
				case <-runCtx.Done():
					return
				case now := <-tick.C:
					r := st.snapshot()
					fmt.Fprintf(out, "[%4.0fs] sent=%d accepted=%d (%.0f samples/s, last %s: %.0f samples/s) errors=%d latency p50=%s p90=%s p99=%s\n",
						now.Sub(began).Seconds(), r.sentSamples, r.acceptedSamples,
						float64(r.acceptedSamples)/now.Sub(began).Seconds(), cfg.report,
						float64(r.acceptedSamples-last)/now.Sub(lastAt).Seconds(), r.errors,
						ms(r.p50), ms(r.p90), ms(r.p99))
					last, lastAt = r.acceptedSamples, now
				}
			}
		}()
	} else {
		close(reporterDone)
	}

	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		var mine []*batch
		for i := w; i < len(batches); i += workers {
			mine = append(mine, batches[i])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk := worker{cfg: cfg, client: client, st: st}
			for step := int64(0); ; step++ {
				for _, b := range mine {
					if runCtx.Err() != nil || (!cfg.once && !time.Now().Before(deadline)) {
						return
					}
					ts := start + step*intervalMs + b.offsetMs
					if wait := time.UnixMilli(ts); wait.After(time.Now()) {
						if cfg.rate >= 0 {
							st.mu.Lock()
							st.clamped = true
							st.mu.Unlock()
						}
						// Never send a sample from the future; stop at the deadline.
						until := wait
						if !cfg.once && deadline.Before(until) {
							until = deadline
						}
						if sleepUntil(runCtx, until) != nil || until.Before(wait) {
							return
						}
					}
					if err := lim.wait(runCtx, len(b.specs)); err != nil {
						return
					}
					if step > 0 {
						for i := range b.specs {
							b.values[i] = nextValue(&b.specs[i], b.values[i], intervalSec, step)
						}
					}
					for i := range b.req.Timeseries {
						b.req.Timeseries[i].Samples[0] = prompb.Sample{Value: b.values[i], Timestamp: ts}
					}
					wk.send(b, ts)
				}
				if cfg.once {
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	cancel()
	<-reporterDone

	res := st.snapshot()
	res.elapsed = elapsed
	res.cpu = processCPU() - cpuStart
	printResult(out, cfg, res)
	return res, nil
}

// worker owns the buffers of one sending goroutine.
type worker struct {
	cfg    config
	client *http.Client
	st     *stats
	raw    []byte
	comp   []byte
}

func (w *worker) send(b *batch, ts int64) {
	size := b.req.Size()
	if cap(w.raw) < size {
		w.raw = make([]byte, size)
	}
	w.raw = w.raw[:size]
	n, err := b.req.MarshalToSizedBuffer(w.raw)
	if err != nil || n != size {
		// Cannot happen with a well-formed request; count it as an error.
		w.st.record(len(b.specs), 0, 0, fmt.Sprintf("encoding the request failed: %v", err), ts, ts)
		return
	}
	w.comp = snappy.Encode(w.comp[:cap(w.comp)], w.raw)

	body := &trackedBody{Reader: bytes.NewReader(w.comp), closed: make(chan struct{})}
	req, err := http.NewRequest(http.MethodPost, w.cfg.url, body)
	if err != nil {
		w.st.record(len(b.specs), 0, 0, fmt.Sprintf("building the request failed: %v", err), ts, ts)
		return
	}
	req.ContentLength = int64(len(w.comp))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("X-Scope-OrgID", b.tenant)
	req.Header.Set("User-Agent", "meridian-loadgen")

	t0 := time.Now()
	resp, err := w.client.Do(req)
	code, msg := 0, ""
	if err != nil {
		msg = err.Error()
	} else {
		code = resp.StatusCode
		if code/100 != 2 {
			bs, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			msg = strings.TrimSpace(string(bs))
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	lat := time.Since(t0)
	// The transport may still hold the body after Do returns; the buffer is
	// reused for the next request only once it has been closed.
	body.wait()
	w.st.record(len(b.specs), lat, code, msg, ts, ts)
}

// trackedBody is a request body that reports when the transport is done with it.
type trackedBody struct {
	*bytes.Reader
	once   sync.Once
	closed chan struct{}
}

func (t *trackedBody) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}

func (t *trackedBody) wait() {
	select {
	case <-t.closed:
	case <-time.After(time.Minute):
	}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

func printResult(out io.Writer, cfg config, r result) {
	secs := r.elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(r.acceptedSamples) / secs
	}
	fmt.Fprintf(out, "loadgen: finished in %.1fs\n", secs)
	fmt.Fprintf(out, "  requests:         %d (%d failed)\n", r.requests, r.errors)
	fmt.Fprintf(out, "  samples sent:     %d\n", r.sentSamples)
	fmt.Fprintf(out, "  samples accepted: %d (2xx responses)\n", r.acceptedSamples)
	fmt.Fprintf(out, "  throughput:       %.0f samples/s accepted\n", rate)
	fmt.Fprintf(out, "  latency:          p50 %s, p90 %s, p99 %s, max %s\n", ms(r.p50), ms(r.p90), ms(r.p99), ms(r.maxLatency))
	if r.firstTs != 0 {
		fmt.Fprintf(out, "  sample times:     %s … %s\n",
			time.UnixMilli(r.firstTs).UTC().Format(time.RFC3339), time.UnixMilli(r.lastTs).UTC().Format(time.RFC3339))
	}
	if r.acceptedSamples > 0 {
		fmt.Fprintf(out, "  loadgen CPU:      %.2fs (%.2f CPU-seconds per million samples)\n", r.cpu.Seconds(), r.cpu.Seconds()/(float64(r.acceptedSamples)/1e6))
	}
	if r.clamped {
		fmt.Fprintln(out, "  warning: the timeline caught up with the clock, so sending was paced by it; pass an earlier -start to measure the maximum")
	}
	codes := make([]int, 0, len(r.errByCode))
	for c := range r.errByCode {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		what := fmt.Sprintf("HTTP %d", c)
		if c == 0 {
			what = "no response"
		}
		fmt.Fprintf(out, "  errors %s: %d, first: %s\n", what, r.errByCode[c], oneLine(r.firstErr[c]))
	}
	fmt.Fprintf(out, "RESULT samples_per_sec=%.0f p99_ms=%.2f errors=%d samples_accepted=%d samples_sent=%d requests=%d p50_ms=%.2f p90_ms=%.2f series=%d tenants=%d elapsed_s=%.2f first_ts_ms=%d last_ts_ms=%d loadgen_cpu_s=%.2f\n",
		rate, float64(r.p99)/1e6, r.errors, r.acceptedSamples, r.sentSamples, r.requests,
		float64(r.p50)/1e6, float64(r.p90)/1e6, cfg.series, cfg.tenants, secs, r.firstTs, r.lastTs, r.cpu.Seconds())
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

// processCPU is the user+system CPU time this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
