// Command graphitebench compares Meridian's Graphite API with graphite-web
// on the same data (docs/benchmarks.md, section "Graphite").
//
// It starts a Meridian monolith (-meridian-bin) with a carbon listener and
// a carbon-cache + graphite-web (Debian packages graphite-web,
// graphite-carbon, gunicorn) on free ports of 127.0.0.1, then:
//  1. loads the same carbon plaintext into each, one after the other:
//     -series series over -duration at -step (bench.NNNN.cpu), then a tree
//     of -tree-shape leaves (tree.A.B, one point each), and measures how
//     long sending takes and how long until the data can be queried;
//  2. renders sumSeries(bench.*.cpu) over the whole -duration and runs
//     /metrics/find?query=tree.*.*, -runs times each after one warm-up,
//     checking that both answers agree with what was sent;
//  3. reads the resident memory of each process from /proc.
//
// It prints a table and a machine-readable line starting BENCH_GRAPHITE.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meridianhq/meridian/integration/harness"
)

type config struct {
	settle        time.Duration
	meridianBin   string
	meridianFlags string
	series        int
	duration      time.Duration
	step          time.Duration
	treeShape     string
	runs          int
	loadTimeout   time.Duration
	readyTimeout  time.Duration
	keep          bool
	tenant        string
	workers       int
	backends      string
}

func main() {
	var c config
	flag.StringVar(&c.meridianBin, "meridian-bin", "bin/meridian", "Meridian binary to start.")
	flag.StringVar(&c.meridianFlags, "meridian-flags", "-distributor.ingestion-rate-limit=0 -querier.max-fetched-series-per-query=0 -graphite.max-series-per-render=0 -graphite.max-points-per-render=0",
		"Extra flags for Meridian, separated by spaces (the defaults lift limits a single tenant loading this much data would hit).")
	flag.IntVar(&c.series, "series", 1000, "Series in the render benchmark.")
	flag.DurationVar(&c.duration, "duration", 24*time.Hour, "Time span of the render benchmark's series, ending now.")
	flag.DurationVar(&c.step, "step", 10*time.Second, "Interval between points (carbon's retention and Meridian's Graphite step).")
	flag.StringVar(&c.treeShape, "tree-shape", "100x1000", "Tree for the find benchmark: AxB leaves tree.{0..A-1}.{0..B-1}, found with tree.*.*.")
	flag.IntVar(&c.runs, "runs", 20, "Timed runs of each query (after one untimed warm-up).")
	flag.DurationVar(&c.loadTimeout, "load-timeout", time.Hour, "Longest wait for one backend to show all loaded data.")
	flag.DurationVar(&c.readyTimeout, "ready-timeout", 2*time.Minute, "Longest wait for a server to start.")
	flag.BoolVar(&c.keep, "keep", false, "Keep the data directories (their paths are printed).")
	flag.StringVar(&c.tenant, "tenant", "graphite-bench", "Meridian tenant of the carbon listener.")
	flag.IntVar(&c.workers, "graphite-web-workers", 2, "gunicorn workers for graphite-web.")
	flag.StringVar(&c.backends, "backends", "meridian,graphite-web", "What to benchmark, in this order: meridian, graphite-web or both.")
	flag.DurationVar(&c.settle, "settle", 0, "Wait this long after loading every backend before the timed queries (e.g. for Meridian to cut and ship blocks that a store-gateway then serves, as in steady state).")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "graphitebench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "graphitebench: "+format+"\n", args...)
}

// backend is one system under test.
type backend struct {
	name   string
	api    *harness.GraphiteAPI
	carbon string
	rss    func() (string, int64) // description and bytes
	// cpu is the CPU time its processes used so far: per query, it tells
	// the work a query costs even when other processes share the machine
	// and stretch the latencies.
	cpu func() time.Duration
}

// result holds one backend's measurements.
type result struct {
	sendSeries, visibleSeries time.Duration
	sendTree, visibleTree     time.Duration
	render, find              []time.Duration
	renderCPU, findCPU        time.Duration // per query
	rssAfterLoad, rssAfter    int64
	rssDesc                   string
}

func run(ctx context.Context, c config) error {
	a, b, err := parseShape(c.treeShape)
	if err != nil {
		return err
	}
	stepSec := int64(c.step / time.Second)
	if stepSec < 1 || c.step%time.Second != 0 {
		return fmt.Errorf("-step=%s: use whole seconds", c.step)
	}
	points := int(c.duration / c.step)
	if c.series < 1 || points < 1 || c.runs < 1 {
		return errors.New("-series, -duration/-step and -runs must all be at least 1")
	}
	root, err := os.MkdirTemp("", "graphitebench-")
	if err != nil {
		return err
	}
	if c.keep {
		logf("data under %s (kept)", root)
	} else {
		defer os.RemoveAll(root)
	}

	var backends []backend
	for _, name := range strings.Split(c.backends, ",") {
		switch strings.TrimSpace(name) {
		case "graphite-web":
			// Whisper keeps the series for the whole span (plus slack) and
			// the tree leaves, which hold one point each, for an hour:
			// 100 000 leaves at the series' retention would take gigabytes.
			retention := fmt.Sprintf("%ds:%ds", stepSec, int64((c.duration+2*time.Hour)/time.Second))
			schemas := fmt.Sprintf("[tree]\npattern = ^tree\\.\nretentions = %ds:1h\n\n[default]\npattern = .*\nretentions = %s\n", stepSec, retention)
			logf("starting carbon-cache and graphite-web (retention %s)", retention)
			gw, err := harness.LaunchGraphiteWeb(harness.GraphiteWebOptions{
				Schemas: schemas, Workers: c.workers, ReadyTimeout: c.readyTimeout, Dir: filepath.Join(root, "graphite-web"),
			})
			if err != nil {
				return err
			}
			defer func() {
				if err := gw.Stop(); err != nil {
					logf("%v", err)
				}
			}()
			backends = append(backends, backend{name: "graphite-web", api: harness.NewGraphiteAPI(gw.URL(), ""), carbon: gw.CarbonAddr(),
				rss: func() (string, int64) {
					web, _ := harness.ProcessGroupRSS(gw.WebPID())
					carbon, _ := harness.ProcessRSS(gw.CarbonPID())
					return fmt.Sprintf("gunicorn %s + carbon-cache %s", mib(web), mib(carbon)), web + carbon
				},
				cpu: func() time.Duration {
					// graphite-web asks carbon-cache for the points not yet
					// written to whisper files, so both work for a render.
					web, _ := harness.ProcessGroupCPU(gw.WebPID())
					carbon, _ := harness.ProcessCPU(gw.CarbonPID())
					return web + carbon
				}})
		case "meridian":
			logf("starting Meridian %s", c.meridianBin)
			m, err := startMeridian(c, filepath.Join(root, "meridian"))
			if err != nil {
				return err
			}
			defer func() {
				if err := m.Kill(); err != nil {
					logf("%v", err)
				}
			}()
			backends = append(backends, backend{name: "Meridian", api: harness.NewGraphiteAPI(m.URL()+harness.GraphitePrefix, c.tenant), carbon: m.CarbonTCPAddr(),
				rss: func() (string, int64) {
					r, _ := harness.ProcessRSS(m.PID())
					return "meridian", r
				},
				cpu: func() time.Duration {
					d, _ := harness.ProcessCPU(m.PID())
					return d
				}})
		default:
			return fmt.Errorf("-backends=%q: use meridian, graphite-web or both separated by a comma", c.backends)
		}
	}

	now := time.Now().Unix()
	last := now - now%stepSec - stepSec
	start := last - int64(points-1)*stepSec
	d := dataset{series: c.series, points: points, start: start, step: stepSec, treeA: a, treeB: b, treeTS: last}
	logf("data: %d series × %d points (%s at %s) = %d points; tree of %d leaves", c.series, points, c.duration, c.step, c.series*points, a*b)

	results := make([]result, len(backends))
	for i, be := range backends {
		r := &results[i]
		logf("%s: loading the series", be.name)
		t0 := time.Now()
		if err := harness.SendCarbonFunc(be.carbon, d.writeSeries); err != nil {
			return fmt.Errorf("%s: %w", be.name, err)
		}
		r.sendSeries = time.Since(t0)
		if err := waitFor(ctx, c.loadTimeout, time.Second, be.name+": all series points", func() (bool, string) {
			ok, why, _ := d.checkRender(ctx, be.api)
			return ok, why
		}); err != nil {
			return err
		}
		r.visibleSeries = time.Since(t0)
		logf("%s: series sent in %s, queryable after %s", be.name, r.sendSeries.Round(time.Millisecond), r.visibleSeries.Round(time.Millisecond))

		logf("%s: loading the tree", be.name)
		t0 = time.Now()
		if err := harness.SendCarbonFunc(be.carbon, d.writeTree); err != nil {
			return fmt.Errorf("%s: %w", be.name, err)
		}
		r.sendTree = time.Since(t0)
		if err := waitFor(ctx, c.loadTimeout, time.Second, be.name+": all tree leaves", func() (bool, string) {
			ok, why, _ := d.checkFind(ctx, be.api)
			return ok, why
		}); err != nil {
			return err
		}
		r.visibleTree = time.Since(t0)
		logf("%s: tree sent in %s, found after %s", be.name, r.sendTree.Round(time.Millisecond), r.visibleTree.Round(time.Millisecond))
		_, r.rssAfterLoad = be.rss()
	}
	if c.settle > 0 {
		logf("settling for %s before the queries", c.settle)
		select {
		case <-time.After(c.settle):
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	for i, be := range backends {
		r := &results[i]
		logf("%s: %d renders of %s and %d finds of tree.*.*", be.name, c.runs, d.renderTarget(), c.runs)
		var err error
		if r.render, r.renderCPU, err = timeRuns(c.runs, be, func() (bool, string, time.Duration) { return d.checkRender(ctx, be.api) }); err != nil {
			return fmt.Errorf("%s: render: %w", be.name, err)
		}
		if r.find, r.findCPU, err = timeRuns(c.runs, be, func() (bool, string, time.Duration) { return d.checkFind(ctx, be.api) }); err != nil {
			return fmt.Errorf("%s: find: %w", be.name, err)
		}
		logf("%s: render latencies in run order: %s", be.name, msList(r.render))
		logf("%s: find latencies in run order: %s", be.name, msList(r.find))
		r.rssDesc, r.rssAfter = be.rss()
	}
	printTable(os.Stdout, c, d, backends, results)
	return nil
}

// timeRuns runs query once untimed, then runs times, and returns each
// run's latency and the backend's CPU time per timed run.
func timeRuns(runs int, be backend, query func() (bool, string, time.Duration)) ([]time.Duration, time.Duration, error) {
	var lat []time.Duration
	var cpu0 time.Duration
	for j := 0; j <= runs; j++ {
		if j == 1 {
			cpu0 = be.cpu()
		}
		ok, why, took := query()
		if !ok {
			return nil, 0, errors.New(why)
		}
		if j > 0 {
			lat = append(lat, took)
		}
	}
	return lat, (be.cpu() - cpu0) / time.Duration(runs), nil
}

// dataset is the benchmark data: deterministic, so the expected answers
// can be computed.
type dataset struct {
	series, points int
	start, step    int64
	treeA, treeB   int
	treeTS         int64
}

func (d dataset) value(series, i int) float64 { return float64((series*7 + i) % 100) }

func (d dataset) path(series int) string { return fmt.Sprintf("bench.s%05d.cpu", series) }

func (d dataset) renderTarget() string { return "sumSeries(bench.*.cpu)" }

// writeSeries sends the series time-major (every series' point for one
// step, then the next step), as carbon clients do.
func (d dataset) writeSeries(w *bufio.Writer) error {
	paths := make([]string, d.series)
	for s := range paths {
		paths[s] = d.path(s) + " "
	}
	var buf []byte
	for i := 0; i < d.points; i++ {
		ts := strconv.FormatInt(d.start+int64(i)*d.step, 10)
		for s := 0; s < d.series; s++ {
			buf = append(buf[:0], paths[s]...)
			buf = strconv.AppendFloat(buf, d.value(s, i), 'g', -1, 64)
			buf = append(buf, ' ')
			buf = append(buf, ts...)
			buf = append(buf, '\n')
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d dataset) writeTree(w *bufio.Writer) error {
	ts := strconv.FormatInt(d.treeTS, 10)
	for x := 0; x < d.treeA; x++ {
		for y := 0; y < d.treeB; y++ {
			if _, err := fmt.Fprintf(w, "tree.%d.%d 1 %s\n", x, y, ts); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkRender renders the sum over all series and compares every point
// with the sum of what was sent; took is the time of the HTTP request
// (until the whole answer is read).
func (d dataset) checkRender(ctx context.Context, api *harness.GraphiteAPI) (bool, string, time.Duration) {
	t0 := time.Now()
	code, body, err := api.Get(ctx, "/render", harness.RenderParams([]string{d.renderTarget()}, d.start-d.step, d.start+int64(d.points-1)*d.step, nil))
	took := time.Since(t0)
	if err != nil {
		return false, err.Error(), took
	}
	got, err := harness.ParseRender("render "+d.renderTarget(), code, body)
	if err != nil {
		return false, err.Error(), took
	}
	if len(got) != 1 {
		return false, fmt.Sprintf("%d series instead of 1", len(got)), took
	}
	s := got[0]
	if len(s.Values) != d.points {
		return false, fmt.Sprintf("%d points instead of %d", len(s.Values), d.points), took
	}
	for i, v := range s.Values {
		want := 0.0
		for k := 0; k < d.series; k++ {
			want += d.value(k, i)
		}
		if v == nil || math.Abs(*v-want) > 1e-6*math.Max(1, want) {
			gotS := "null"
			if v != nil {
				gotS = strconv.FormatFloat(*v, 'g', -1, 64)
			}
			return false, fmt.Sprintf("point %d at %d is %s instead of %g", i, s.Timestamps[i], gotS, want), took
		}
		if s.Timestamps[i] != d.start+int64(i)*d.step {
			return false, fmt.Sprintf("point %d at %d instead of %d", i, s.Timestamps[i], d.start+int64(i)*d.step), took
		}
	}
	return true, "", took
}

// checkFind finds tree.*.* (completer format: the default one keeps one
// node per name) and checks it answers every leaf; took is the time of the
// HTTP request.
func (d dataset) checkFind(ctx context.Context, api *harness.GraphiteAPI) (bool, string, time.Duration) {
	t0 := time.Now()
	code, body, err := api.Get(ctx, "/metrics/find", harness.FindCompleterParams("tree.*.*"))
	took := time.Since(t0)
	if err != nil {
		return false, err.Error(), took
	}
	nodes, err := harness.ParseFindCompleter("find tree.*.*", code, body)
	if err != nil {
		return false, err.Error(), took
	}
	leaves := 0
	for _, n := range nodes {
		if n.IsLeaf == "1" {
			leaves++
		}
	}
	if leaves != d.treeA*d.treeB {
		return false, fmt.Sprintf("%d leaves of %d", leaves, d.treeA*d.treeB), took
	}
	return true, "", took
}

// waitFor retries cond every interval until it holds or timeout passes,
// saying every minute what it still waits for.
func waitFor(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, string)) error {
	lastLog := time.Now()
	err := harness.Retry(ctx, timeout, interval, func() error {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Since(lastLog) > time.Minute {
			logf("still waiting for %s: %s", what, why)
			lastLog = time.Now()
		}
		return errors.New(why)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// startMeridian starts the Meridian monolith on 127.0.0.1 with its data
// and log under dir, and waits until it is ready.
func startMeridian(c config, dir string) (*harness.Meridian, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args := []string{
		"-" + harness.FlagCarbonTenant + "=" + c.tenant,
		"-" + harness.FlagGraphiteStep + "=" + c.step.String(),
	}
	m, err := harness.LaunchMeridian(c.meridianBin, harness.Options{
		Host:         "127.0.0.1",
		Dir:          dir,
		ReadyTimeout: c.readyTimeout,
		Args:         append(args, strings.Fields(c.meridianFlags)...),
	})
	if err != nil {
		return nil, err
	}
	if m.CarbonTCPAddr() == "" {
		_ = m.Kill()
		return nil, fmt.Errorf("%s -help lists no -%s flag", c.meridianBin, harness.FlagCarbonTCPListenAddress)
	}
	return m, nil
}

func parseShape(s string) (int, int, error) {
	x, y, ok := strings.Cut(s, "x")
	a, err1 := strconv.Atoi(x)
	b, err2 := strconv.Atoi(y)
	if !ok || err1 != nil || err2 != nil || a < 1 || b < 1 {
		return 0, 0, fmt.Errorf("-tree-shape=%q: want AxB, e.g. 100x1000", s)
	}
	return a, b, nil
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	// Nearest rank.
	i := int(math.Ceil(q*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func printTable(w io.Writer, c config, d dataset, backends []backend, rs []result) {
	// The ratio column compares graphite-web with Meridian when both ran.
	mi, gi := -1, -1
	for i, b := range backends {
		switch b.name {
		case "Meridian":
			mi = i
		case "graphite-web":
			gi = i
		}
	}
	ratio := func(get func(r result) float64) string {
		if mi < 0 || gi < 0 || get(rs[mi]) <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f×", get(rs[gi])/get(rs[mi]))
	}
	row := func(name string, format func(r result) string, get func(r result) float64) {
		fmt.Fprintf(w, "%-36s", name)
		for _, r := range rs {
			fmt.Fprintf(w, " %14s", format(r))
		}
		fmt.Fprintf(w, " %12s\n", ratio(get))
	}
	dur := func(get func(r result) time.Duration) (func(r result) string, func(r result) float64) {
		return func(r result) string { return ms(get(r)) }, func(r result) float64 { return float64(get(r)) }
	}
	fmt.Fprintf(w, "\nGraphite benchmark: %d series × %d points (%s at %s), tree of %d leaves (tree.*.*), %d runs per query\n",
		d.series, d.points, c.duration, c.step, d.treeA*d.treeB, c.runs)
	fmt.Fprintf(w, "%-36s", "")
	for _, b := range backends {
		fmt.Fprintf(w, " %14s", b.name)
	}
	fmt.Fprintf(w, " %12s\n", "gw/Meridian")
	f, g := dur(func(r result) time.Duration { return r.sendSeries })
	row("load series: send", f, g)
	f, g = dur(func(r result) time.Duration { return r.visibleSeries })
	row("load series: until queryable", f, g)
	f, g = dur(func(r result) time.Duration { return r.sendTree })
	row("load tree: send", f, g)
	f, g = dur(func(r result) time.Duration { return r.visibleTree })
	row("load tree: until found", f, g)
	f, g = dur(func(r result) time.Duration { return quantile(r.render, 0.5) })
	row("render "+d.renderTarget()+" p50", f, g)
	f, g = dur(func(r result) time.Duration { return quantile(r.render, 0.99) })
	row("render p99", f, g)
	f, g = dur(func(r result) time.Duration { return r.renderCPU })
	row("render CPU time per query", f, g)
	f, g = dur(func(r result) time.Duration { return quantile(r.find, 0.5) })
	row("find tree.*.* p50", f, g)
	f, g = dur(func(r result) time.Duration { return quantile(r.find, 0.99) })
	row("find p99", f, g)
	f, g = dur(func(r result) time.Duration { return r.findCPU })
	row("find CPU time per query", f, g)
	row("RSS after loading", func(r result) string { return mib(r.rssAfterLoad) }, func(r result) float64 { return float64(r.rssAfterLoad) })
	row("RSS after the queries", func(r result) string { return mib(r.rssAfter) }, func(r result) float64 { return float64(r.rssAfter) })
	for i, b := range backends {
		fmt.Fprintf(w, "  %s RSS: %s\n", b.name, rs[i].rssDesc)
	}
	fmt.Fprintf(w, "BENCH_GRAPHITE series=%d points=%d tree=%d runs=%d", d.series, d.points, d.treeA*d.treeB, c.runs)
	for i, b := range backends {
		k := strings.ToLower(strings.ReplaceAll(b.name, "-", ""))
		r := rs[i]
		fmt.Fprintf(w, " %[1]s_render_p50_ms=%.1[2]f %[1]s_render_p99_ms=%.1[3]f %[1]s_find_p50_ms=%.1[4]f %[1]s_find_p99_ms=%.1[5]f"+
			" %[1]s_load_s=%.1[6]f %[1]s_tree_load_s=%.1[7]f %[1]s_rss_bytes=%[8]d %[1]s_render_cpu_ms=%.1[9]f %[1]s_find_cpu_ms=%.1[10]f",
			k, msf(quantile(r.render, 0.5)), msf(quantile(r.render, 0.99)), msf(quantile(r.find, 0.5)), msf(quantile(r.find, 0.99)),
			r.visibleSeries.Seconds(), r.visibleTree.Seconds(), r.rssAfter, msf(r.renderCPU), msf(r.findCPU))
	}
	fmt.Fprintln(w)
}

// msList formats latencies as whole milliseconds.
func msList(ds []time.Duration) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = strconv.FormatInt(d.Milliseconds(), 10)
	}
	return strings.Join(out, " ")
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
