package integration

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridianhq/meridian/integration/harness"
)

// The Graphite compatibility test feeds the same carbon plaintext points to
// graphite-web + carbon (Debian packages, see harness.StartGraphiteWeb) and
// to Meridian, then renders the same targets on both and compares the JSON:
// series names, timestamps, values (within graphiteTolerance) and nulls.
//
// MERIDIAN_GRAPHITE_COMPAT_SUBJECT=graphite-web compares graphite-web with a
// second graphite-web instead of Meridian: a check of the test itself (its
// data, targets and comparison), which must report every target identical.
const (
	graphiteStep    = 10 * time.Second
	graphiteBuckets = 780 // 2h10m at graphiteStep
	graphiteTenant  = "graphite-compat"
	// graphiteTolerance is the largest relative difference accepted between
	// two values (an absolute one near zero): the backends may add in a
	// different order.
	graphiteTolerance = 1e-9
	graphiteTimeout   = 3 * time.Minute
)

// graphiteSubjectEnv selects what graphite-web is compared with.
const graphiteSubjectEnv = "MERIDIAN_GRAPHITE_COMPAT_SUBJECT"

// graphiteBackend is one side of the comparison.
type graphiteBackend struct {
	name   string
	api    *harness.GraphiteAPI
	carbon string // host:port of the carbon plaintext listener
}

// graphiteSeries is one series of the test data: which buckets have a value,
// and the points sent for them (several for a bucket: the last one wins).
type graphiteSeries struct {
	path   string
	points []harness.CarbonPoint
	want   []*float64 // per bucket from the data's start
}

// graphiteData builds the test data over graphiteBuckets buckets from start: CPU
// gauges under servers.*, counters with a reset and gaps under app.*,
// negative temperatures under sensors.*, network rates under net.*. Gaps,
// a series that starts late, one that stops early, one that is null for a
// 20-minute window, and a bucket that receives two points are deliberate.
func graphiteData(start int64) []*graphiteSeries {
	step := int64(graphiteStep / time.Second)
	var all []*graphiteSeries
	add := func(path string, value func(i int) (float64, bool)) *graphiteSeries {
		s := &graphiteSeries{path: path, want: make([]*float64, graphiteBuckets)}
		idx := len(all)
		for i := 0; i < graphiteBuckets; i++ {
			v, ok := value(i)
			if !ok {
				continue
			}
			bucket := start + int64(i)*step
			// Timestamps anywhere in the bucket: both backends align them.
			ts := bucket + int64(i*3+idx)%step
			s.points = append(s.points, harness.CarbonPoint{Path: path, Value: v, TS: ts})
			vv := v
			s.want[i] = &vv
		}
		all = append(all, s)
		return s
	}
	for n := 1; n <= 6; n++ {
		k := float64(n)
		n := n
		user := add(fmt.Sprintf("servers.web%02d.cpu.user", n), func(i int) (float64, bool) {
			switch {
			case n == 3 && i%13 == 0: // regular gaps
				return 0, false
			case n == 4 && i >= 700: // stops early
				return 0, false
			case n == 5 && i >= 300 && i < 420: // null for 20 minutes
				return 0, false
			case n == 6 && i < 100: // starts late
				return 0, false
			}
			return 20 + 10*math.Sin(float64(i)/20+k) + 3*k, true
		})
		if n == 1 {
			// Two points in bucket 50: the later one (sent last) wins.
			const dup = 50
			for j, p := range user.points {
				if p.TS-p.TS%step == start+dup*step {
					first := harness.CarbonPoint{Path: p.Path, Value: -1234.5, TS: start + dup*step + 1}
					last := harness.CarbonPoint{Path: p.Path, Value: 77.25, TS: start + dup*step + 8}
					user.points = append(user.points[:j], append([]harness.CarbonPoint{first, last}, user.points[j+1:]...)...)
					v := last.Value
					user.want[dup] = &v
					break
				}
			}
		}
		add(fmt.Sprintf("servers.web%02d.cpu.system", n), func(i int) (float64, bool) {
			if n == 2 && i%7 == 3 {
				return 0, false
			}
			return 5 + float64(i%7) + k*0.5 + float64(i)/1000, true
		})
		add(fmt.Sprintf("servers.web%02d.cpu.idle", n), func(i int) (float64, bool) {
			return 100 - (25 + 10*math.Sin(float64(i)/20+k) + 3*k) - (5 + float64(i%7)), true
		})
	}
	for _, db := range []string{"dba", "dbb"} {
		off := float64(len(db) + int(db[2]))
		add("servers."+db+".cpu.user", func(i int) (float64, bool) {
			return off/10 + float64((i*7)%23), true
		})
	}
	apiCount := 0.0
	add("app.requests.api.count", func(i int) (float64, bool) {
		if i == 400 { // counter reset
			apiCount = 0
		}
		apiCount += float64(5 + i%11)
		return apiCount, true
	})
	webCount := 1000.0
	add("app.requests.web.count", func(i int) (float64, bool) {
		webCount += float64(2*(i%5) + 1)
		return webCount, i%17 != 0 // gaps: the counter keeps counting
	})
	for j, where := range []string{"north", "south"} {
		j := float64(j)
		add("sensors."+where+".temp", func(i int) (float64, bool) {
			return -10 + 15*math.Sin(float64(i)/30+j) - 2.5*j, true
		})
	}
	for _, eth := range []string{"eth0", "eth1"} {
		for d, dir := range []string{"rx", "tx"} {
			base := float64(1000*(d+1)) + float64(len(eth))
			add("net."+eth+"."+dir+"_bytes", func(i int) (float64, bool) {
				return base + float64((i*37)%101)*12.5, true
			})
		}
	}
	return all
}

// graphiteCase is one render: its targets and extra parameters.
type graphiteCase struct {
	target string
	params url.Values
}

func graphiteCases() []graphiteCase {
	targets := []string{
		// Plain paths and globs.
		`servers.web01.cpu.user`,
		`servers.*.cpu.user`,
		`servers.web0{1,2}.cpu.{user,system}`,
		`servers.web0[1-3].cpu.user`,
		`servers.db[a-z].cpu.*`,
		`net.*.*`,
		// What Grafana sends.
		`aliasByNode(sumSeries(servers.*.cpu.user),1)`,
		`aliasSub(servers.*.cpu.user,'(^.*$)','\1 A')`,
		`aliasSub(aliasByNode(sumSeries(servers.*.cpu.user),1),'(^.*$)','\1 A')`,
		`constantLine(100)`,
		`aliasSub(constantLine(100),'(^.*$)','\1 A')`,
		// Aliases.
		`alias(servers.web01.cpu.user,'web one')`,
		`aliasByNode(servers.*.cpu.*,1,3)`,
		`aliasByMetric(servers.web0{1,2}.cpu.*)`,
		`aliasSub(servers.web0*.cpu.user,'servers\.web0(\d)\.cpu\.(.*)','\2 on \1')`,
		// Combining series.
		`sumSeries(servers.*.cpu.user)`,
		`averageSeries(servers.*.cpu.user)`,
		`maxSeries(servers.*.cpu.user)`,
		`minSeries(servers.*.cpu.user)`,
		`diffSeries(servers.web01.cpu.user,servers.web02.cpu.user)`,
		`diffSeries(servers.web01.cpu.idle,servers.web0[2-4].cpu.system)`,
		`divideSeries(servers.*.cpu.system,servers.web01.cpu.user)`,
		`multiplySeries(servers.web01.cpu.user,servers.web02.cpu.system)`,
		`stddevSeries(servers.*.cpu.user)`,
		`countSeries(servers.*.cpu.user)`,
		`percentileOfSeries(servers.*.cpu.user,90)`,
		`percentileOfSeries(servers.*.cpu.system,50,true)`,
		`asPercent(servers.*.cpu.user)`,
		`asPercent(servers.web0[1-3].cpu.user,sumSeries(servers.*.cpu.user))`,
		`asPercent(servers.web01.cpu.user,100)`,
		`groupByNode(servers.*.cpu.*,3,'sumSeries')`,
		`groupByNode(servers.*.cpu.*,1,'averageSeries')`,
		`groupByNodes(net.*.*,'maxSeries',1)`,
		`sumSeriesWithWildcards(servers.*.cpu.*,1)`,
		`averageSeriesWithWildcards(net.*.*,2)`,
		`aggregate(servers.*.cpu.user,'median')`,
		`aggregate(servers.*.cpu.system,'max')`,
		`aggregateWithWildcards(servers.*.cpu.*,'avg',1)`,
		// Transforms.
		`scale(servers.web01.cpu.user,2.5)`,
		`offset(sensors.*.temp,-3)`,
		`absolute(sensors.*.temp)`,
		`invert(servers.web01.cpu.system)`,
		`pow(servers.web02.cpu.system,2)`,
		`offsetToZero(sensors.*.temp)`,
		`scaleToSeconds(app.requests.api.count,60)`,
		`derivative(app.requests.*.count)`,
		`nonNegativeDerivative(app.requests.*.count)`,
		`perSecond(app.requests.*.count)`,
		`integral(servers.web03.cpu.user)`,
		`delay(servers.web01.cpu.user,3)`,
		`timeShift(servers.web01.cpu.user,'30min')`,
		`changed(servers.web03.cpu.user)`,
		`isNonNull(servers.web0*.cpu.user)`,
		// Summaries and windows.
		`summarize(servers.web01.cpu.user,'5min')`,
		`summarize(servers.web01.cpu.user,'15min','avg')`,
		`summarize(servers.web03.cpu.user,'7min','max',true)`,
		`summarize(app.requests.api.count,'1h','last')`,
		`summarize(servers.web05.cpu.user,'10min','min')`,
		`smartSummarize(servers.web02.cpu.user,'10min','avg')`,
		`hitcount(app.requests.web.count,'5min')`,
		`movingAverage(servers.web01.cpu.user,5)`,
		`movingAverage(servers.web03.cpu.user,'10min')`,
		`movingSum(servers.web05.cpu.user,12)`,
		`movingSum(app.requests.web.count,'5min')`,
		`movingMedian(servers.web02.cpu.user,7)`,
		`movingMax(sensors.north.temp,'3min')`,
		`movingMin(sensors.south.temp,4)`,
		`nPercentile(servers.web01.cpu.user,75)`,
		// Filters and sorting.
		`highestCurrent(servers.*.cpu.user,2)`,
		`highestMax(servers.*.cpu.system,3)`,
		`highestAverage(servers.*.cpu.user,2)`,
		`lowestAverage(servers.*.cpu.user,2)`,
		`lowestCurrent(servers.*.cpu.user,3)`,
		`highest(servers.*.cpu.idle,2,'max')`,
		`lowest(servers.*.cpu.idle,2,'sum')`,
		`sortByName(servers.*.cpu.*)`,
		`sortByMaxima(servers.*.cpu.user)`,
		`sortByTotal(servers.*.cpu.system)`,
		`sortBy(servers.*.cpu.user,'max',true)`,
		`limit(servers.*.cpu.user,3)`,
		`currentAbove(servers.*.cpu.user,25)`,
		`currentBelow(servers.*.cpu.user,25)`,
		`maximumAbove(servers.*.cpu.system,9)`,
		`averageAbove(servers.*.cpu.user,30)`,
		`mostDeviant(servers.*.cpu.user,2)`,
		`filterSeries(servers.*.cpu.user,'max','>',35)`,
		`removeBelowValue(servers.web01.cpu.user,20)`,
		`removeAboveValue(sensors.*.temp,0)`,
		`removeEmptySeries(servers.web05.cpu.user)`,
		`exclude(servers.*.cpu.user,'web0[12]')`,
		`grep(servers.*.cpu.*,'system')`,
		`unique(servers.web01.cpu.user,servers.web0[12].cpu.user)`,
		`fallbackSeries(servers.nothere.cpu.user,constantLine(1))`,
		// Nulls.
		`keepLastValue(servers.web03.cpu.user)`,
		`keepLastValue(servers.web05.cpu.user,5)`,
		`transformNull(servers.web05.cpu.user)`,
		`transformNull(servers.web03.cpu.user,-1)`,
		`consolidateBy(servers.web01.cpu.user,'max')`,
		// Styling functions pass series through.
		`color(lineWidth(servers.web01.cpu.user,2),'red')`,
	}
	cases := make([]graphiteCase, 0, len(targets)+3)
	for _, t := range targets {
		cases = append(cases, graphiteCase{target: t})
	}
	// Consolidation to maxDataPoints (average unless consolidateBy says).
	cases = append(cases,
		graphiteCase{target: `servers.web03.cpu.user`, params: url.Values{"maxDataPoints": {"100"}}},
		graphiteCase{target: `consolidateBy(servers.web05.cpu.user,'max')`, params: url.Values{"maxDataPoints": {"47"}}},
		graphiteCase{target: `sumSeries(servers.*.cpu.user)`, params: url.Values{"maxDataPoints": {"200"}}},
	)
	return cases
}

// graphiteFindQueries are compared on /metrics/find: names and leaf flags.
var graphiteFindQueries = []string{
	`*`,
	`servers.*`,
	`servers.*.cpu.*`,
	`servers.web0[1-3].cpu.*`,
	`app.requests.{api,web}.*`,
	`net.eth0.*`,
	`servers.nothere.*`,
}

func TestGraphiteCompat(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), graphiteTimeout)
	defer cancel()

	stepSec := int64(graphiteStep / time.Second)
	ref := harness.StartGraphiteWeb(t, harness.GraphiteWebOptions{Retentions: fmt.Sprintf("%ds:2d", stepSec)})
	refSide := graphiteBackend{name: "graphite-web", api: harness.NewGraphiteAPI(ref.URL(), ""), carbon: ref.CarbonAddr()}
	subject := startGraphiteSubject(t)

	// The data ends two steps before now, so that neither whisper (which
	// never answers beyond now) nor Meridian cuts off a bucket.
	now := time.Now().Unix()
	last := now - now%stepSec - 2*stepSec
	start := last - (graphiteBuckets-1)*stepSec
	data := graphiteData(start)
	errs := make(chan error, 2)
	for _, b := range []graphiteBackend{refSide, subject} {
		go func(b graphiteBackend) {
			if err := harness.SendCarbon(b.carbon, graphiteLines(data)); err != nil {
				errs <- fmt.Errorf("%s: %w", b.name, err)
				return
			}
			errs <- nil
		}(b)
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	// Both must answer every series exactly as sent before comparing
	// functions over them.
	for _, b := range []graphiteBackend{refSide, subject} {
		waitGraphiteData(ctx, t, b, data, start)
	}

	for _, q := range graphiteFindQueries {
		want, err := refSide.api.Find(ctx, q)
		if err != nil {
			t.Fatalf("graphite-web: %v", err)
		}
		if len(want) == 0 && !strings.Contains(q, "nothere") {
			t.Errorf("graphite-web found nothing for %s: the test data does not cover it", q)
		}
		got, err := subject.api.Find(ctx, q)
		if err != nil {
			t.Errorf("%s: %v", subject.name, err)
			continue
		}
		if d := diffFind(want, got); d != "" {
			t.Errorf("metrics/find?query=%s: %s differs from graphite-web: %s", q, subject.name, d)
		}
		wantC, err := refSide.api.FindCompleter(ctx, q)
		if err != nil {
			t.Fatalf("graphite-web: %v", err)
		}
		gotC, err := subject.api.FindCompleter(ctx, q)
		if err != nil {
			t.Errorf("%s: %v", subject.name, err)
			continue
		}
		if d := diffCompleter(wantC, gotC); d != "" {
			t.Errorf("metrics/find?format=completer&query=%s: %s differs from graphite-web: %s", q, subject.name, d)
		}
	}

	// Render from 20 minutes into the data, so that timeShift and
	// time-windowed moving functions have earlier points to use.
	from := start + 120*stepSec
	until := last
	cases := graphiteCases()
	identical, tagDiffs := 0, 0
	for _, c := range cases {
		name := c.target
		if len(c.params) > 0 {
			name += " (" + c.params.Encode() + ")"
		}
		want, err := refSide.api.Render(ctx, []string{c.target}, from, until, c.params)
		if err != nil {
			t.Errorf("graphite-web rejected a target of the test: %v", err)
			continue
		}
		if !hasValues(want) {
			t.Errorf("graphite-web returned no values for %s: the test data does not exercise it", name)
			continue
		}
		got, err := subject.api.Render(ctx, []string{c.target}, from, until, c.params)
		if err != nil {
			t.Errorf("%s: %v", subject.name, err)
			continue
		}
		if d := diffRender(want, got); d != "" {
			t.Errorf("target %s: %s differs from graphite-web: %s", name, subject.name, d)
			continue
		}
		identical++
		if !sameTags(want, got) {
			tagDiffs++
		}
	}
	t.Logf("graphite compat: %d/%d targets identical (%s vs graphite-web, %d find queries compared; tags differ on %d identical targets, not compared)",
		identical, len(cases), subject.name, len(graphiteFindQueries), tagDiffs)
	if len(cases) < 60 {
		t.Errorf("only %d targets compared; the issue asks for at least 50 and this test keeps 60 or more", len(cases))
	}
}

// startGraphiteSubject starts what graphite-web is compared with: Meridian
// with a carbon listener, or a second graphite-web (graphiteSubjectEnv).
func startGraphiteSubject(t *testing.T) graphiteBackend {
	switch os.Getenv(graphiteSubjectEnv) {
	case "", "meridian":
	case "graphite-web":
		g := harness.StartGraphiteWeb(t, harness.GraphiteWebOptions{Retentions: fmt.Sprintf("%ds:2d", int64(graphiteStep/time.Second))})
		return graphiteBackend{name: "second graphite-web", api: harness.NewGraphiteAPI(g.URL(), ""), carbon: g.CarbonAddr()}
	default:
		t.Fatalf("%s=%q: use meridian (the default) or graphite-web", graphiteSubjectEnv, os.Getenv(graphiteSubjectEnv))
	}
	harness.RequireMeridianFlags(t, harness.FlagCarbonTCPListenAddress, harness.FlagCarbonTenant, harness.FlagGraphiteStep)
	host := harness.LoopbackHost()
	carbon := net.JoinHostPort(host, strconv.Itoa(harness.FreePort(t, host)))
	m := harness.StartMeridian(t, harness.Options{
		Host: host,
		Args: harness.MeridianGraphiteArgs(carbon, graphiteTenant, graphiteStep),
	})
	return graphiteBackend{name: "Meridian", api: harness.NewGraphiteAPI(m.URL()+harness.GraphitePrefix, graphiteTenant), carbon: carbon}
}

// graphiteLines orders all points by bucket, then by series (as carbon
// clients send them), keeping each series' own order.
func graphiteLines(data []*graphiteSeries) []harness.CarbonPoint {
	var out []harness.CarbonPoint
	next := make([]int, len(data))
	for {
		progressed := false
		var minTS int64 = math.MaxInt64
		for i, s := range data {
			if next[i] < len(s.points) && s.points[next[i]].TS < minTS {
				minTS = s.points[next[i]].TS
			}
		}
		step := int64(graphiteStep / time.Second)
		bucket := minTS - minTS%step
		for i, s := range data {
			for next[i] < len(s.points) && s.points[next[i]].TS < bucket+step {
				out = append(out, s.points[next[i]])
				next[i]++
				progressed = true
			}
		}
		if !progressed {
			return out
		}
	}
}

// waitGraphiteData waits (bounded) until b renders every series of data
// exactly as sent, failing with the first difference otherwise.
func waitGraphiteData(ctx context.Context, t *testing.T, b graphiteBackend, data []*graphiteSeries, start int64) {
	t.Helper()
	step := int64(graphiteStep / time.Second)
	from, until := start-step, start+(graphiteBuckets-1)*step
	paths := make([]string, len(data))
	for i, s := range data {
		paths[i] = s.path
	}
	err := harness.Retry(ctx, 90*time.Second, time.Second, func() error {
		got, err := b.api.Render(ctx, paths, from, until, nil)
		if err != nil {
			return err
		}
		byName := map[string]harness.GraphiteSeries{}
		for _, s := range got {
			byName[s.Target] = s
		}
		for _, s := range data {
			g, ok := byName[s.path]
			if !ok {
				return fmt.Errorf("%s is missing", s.path)
			}
			if d := diffPoints(s.path, graphiteExpected(s, start), g); d != "" {
				return errors.New(d)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s did not answer the data as sent: %v", b.name, err)
	}
}

// graphiteExpected is the raw series the backends must render for s over
// all buckets.
func graphiteExpected(s *graphiteSeries, start int64) harness.GraphiteSeries {
	step := int64(graphiteStep / time.Second)
	out := harness.GraphiteSeries{Target: s.path, Values: s.want}
	for i := range s.want {
		out.Timestamps = append(out.Timestamps, start+int64(i)*step)
	}
	return out
}

// diffRender compares two render answers; "" when they agree.
func diffRender(want, got []harness.GraphiteSeries) string {
	names := func(ss []harness.GraphiteSeries) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = s.Target
		}
		return out
	}
	wn, gn := names(want), names(got)
	if strings.Join(wn, "\x00") != strings.Join(gn, "\x00") {
		ws, gs := append([]string(nil), wn...), append([]string(nil), gn...)
		sort.Strings(ws)
		sort.Strings(gs)
		if strings.Join(ws, "\x00") == strings.Join(gs, "\x00") {
			return fmt.Sprintf("same series in another order: want %q, got %q", wn, gn)
		}
		return fmt.Sprintf("series names: want %q, got %q", wn, gn)
	}
	for i := range want {
		if d := diffPoints(want[i].Target, want[i], got[i]); d != "" {
			return d
		}
	}
	return ""
}

// diffPoints compares the timestamps and values of one series.
func diffPoints(name string, want, got harness.GraphiteSeries) string {
	if len(want.Timestamps) != len(got.Timestamps) {
		first := func(s harness.GraphiteSeries) string {
			if len(s.Timestamps) == 0 {
				return "none"
			}
			return fmt.Sprintf("%d..%d", s.Timestamps[0], s.Timestamps[len(s.Timestamps)-1])
		}
		return fmt.Sprintf("%s: %d points (%s) instead of %d (%s)", name, len(got.Timestamps), first(got), len(want.Timestamps), first(want))
	}
	for j := range want.Timestamps {
		if want.Timestamps[j] != got.Timestamps[j] {
			return fmt.Sprintf("%s: point %d at %d instead of %d", name, j, got.Timestamps[j], want.Timestamps[j])
		}
		w, g := want.Values[j], got.Values[j]
		switch {
		case w == nil && g == nil:
		case w == nil || g == nil:
			return fmt.Sprintf("%s: at %d (point %d) %s instead of %s", name, want.Timestamps[j], j, fmtValue(g), fmtValue(w))
		case !closeEnough(*w, *g):
			return fmt.Sprintf("%s: at %d (point %d) %s instead of %s", name, want.Timestamps[j], j, fmtValue(g), fmtValue(w))
		}
	}
	return ""
}

func closeEnough(a, b float64) bool {
	if a == b || (math.IsNaN(a) && math.IsNaN(b)) {
		return true
	}
	d := math.Abs(a - b)
	return d <= graphiteTolerance || d <= graphiteTolerance*math.Max(math.Abs(a), math.Abs(b))
}

func fmtValue(v *float64) string {
	if v == nil {
		return "null"
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

// hasValues reports whether any series of a render answer has a value.
func hasValues(ss []harness.GraphiteSeries) bool {
	for _, s := range ss {
		for _, v := range s.Values {
			if v != nil {
				return true
			}
		}
	}
	return false
}

// sameTags reports whether both answers carry the same tags per series.
func sameTags(want, got []harness.GraphiteSeries) bool {
	for i := range want {
		if fmt.Sprint(want[i].Tags) != fmt.Sprint(got[i].Tags) {
			return false
		}
	}
	return true
}

// diffCompleter compares two completer-format find answers as sets:
// graphite-web sorts them by name only, so paths with the same last node
// come in the order its finder produced them.
func diffCompleter(want, got []harness.GraphiteCompleterNode) string {
	key := func(ns []harness.GraphiteCompleterNode) string {
		ss := make([]string, len(ns))
		for i, n := range ns {
			ss[i] = fmt.Sprintf("%+v", n)
		}
		sort.Strings(ss)
		return strings.Join(ss, " ")
	}
	if w, g := key(want), key(got); w != g {
		return fmt.Sprintf("want %s, got %s", w, g)
	}
	return ""
}

// diffFind compares two find answers (ids, names, leaf and branch flags,
// in order); "" when they agree.
func diffFind(want, got []harness.GraphiteNode) string {
	if fmt.Sprint(want) == fmt.Sprint(got) {
		return ""
	}
	return fmt.Sprintf("want %+v, got %+v", want, got)
}

// TestGraphiteCompatDiff checks that the comparison of the compatibility
// test notices each kind of difference it promises to.
func TestGraphiteCompatDiff(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	base := func() []harness.GraphiteSeries {
		return []harness.GraphiteSeries{
			{Target: "a", Timestamps: []int64{10, 20, 30}, Values: []*float64{f(1), nil, f(3)}},
			{Target: "b", Timestamps: []int64{10, 20, 30}, Values: []*float64{f(-1e6), f(0), nil}},
		}
	}
	if d := diffRender(base(), base()); d != "" {
		t.Fatalf("identical answers differ: %s", d)
	}
	near := base()
	*near[1].Values[0] *= 1 + graphiteTolerance/10
	if d := diffRender(base(), near); d != "" {
		t.Errorf("a difference within the tolerance was reported: %s", d)
	}
	for name, change := range map[string]func(ss []harness.GraphiteSeries) []harness.GraphiteSeries{
		"value":          func(ss []harness.GraphiteSeries) []harness.GraphiteSeries { *ss[0].Values[2] += 1e-6; return ss },
		"null for value": func(ss []harness.GraphiteSeries) []harness.GraphiteSeries { ss[1].Values[0] = nil; return ss },
		"value for null": func(ss []harness.GraphiteSeries) []harness.GraphiteSeries { ss[0].Values[1] = f(0); return ss },
		"timestamp":      func(ss []harness.GraphiteSeries) []harness.GraphiteSeries { ss[1].Timestamps[2] = 40; return ss },
		"length": func(ss []harness.GraphiteSeries) []harness.GraphiteSeries {
			ss[0].Timestamps, ss[0].Values = ss[0].Timestamps[:2], ss[0].Values[:2]
			return ss
		},
		"order": func(ss []harness.GraphiteSeries) []harness.GraphiteSeries {
			return []harness.GraphiteSeries{ss[1], ss[0]}
		},
		"name":           func(ss []harness.GraphiteSeries) []harness.GraphiteSeries { ss[1].Target = "c"; return ss },
		"missing series": func(ss []harness.GraphiteSeries) []harness.GraphiteSeries { return ss[:1] },
	} {
		if d := diffRender(base(), change(base())); d == "" {
			t.Errorf("a changed %s was not reported", name)
		} else {
			t.Logf("%s: %s", name, d)
		}
	}
}
