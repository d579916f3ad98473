package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The Debian packages that provide graphite-web, carbon-cache and gunicorn,
// and the command that installs them (scripts/test.sh runs it as root).
const (
	GraphiteWebPackages    = "graphite-web graphite-carbon gunicorn"
	GraphiteWebInstallHint = "install them with 'apt-get install -y " + GraphiteWebPackages + "' (scripts/test.sh does when run as root)"
)

// graphiteWebCommands are the programs StartGraphiteWeb runs, with the
// Debian package of each.
var graphiteWebCommands = []struct{ cmd, pkg string }{
	{"carbon-cache", "graphite-carbon"},
	{"graphite-manage", "graphite-web"},
	{"gunicorn", "gunicorn"},
}

// GraphiteWebMissing returns an error naming the missing programs and the
// apt-get command that installs them, or nil when all are on PATH.
func GraphiteWebMissing() error {
	var missing []string
	for _, c := range graphiteWebCommands {
		if _, err := exec.LookPath(c.cmd); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", c.cmd, c.pkg))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("graphite-web is not installed: %s not on PATH; %s", strings.Join(missing, ", "), GraphiteWebInstallHint)
}

// GraphiteWebOptions configure LaunchGraphiteWeb and StartGraphiteWeb.
type GraphiteWebOptions struct {
	// Host is the loopback address carbon and graphite-web listen on;
	// 127.0.0.1 when empty.
	Host string
	// Retentions is the whisper retention for every metric, as in
	// storage-schemas.conf; "10s:2d" when empty. Its first precision is
	// the step graphite-web answers with.
	Retentions string
	// Schemas, when set, replaces the whole storage-schemas.conf (for
	// several retentions by pattern); Retentions is then ignored.
	Schemas string
	// Workers is the number of gunicorn workers; 2 when zero.
	Workers int
	// ReadyTimeout bounds each readiness wait; 60 s when zero.
	ReadyTimeout time.Duration
	// Dir is the directory for configuration, whisper files, the database
	// and logs; a new temporary directory when empty.
	Dir string
}

// GraphiteWeb is a running carbon-cache and graphite-web (under gunicorn),
// with everything under one directory.
type GraphiteWeb struct {
	dir        string
	host       string
	carbonPort int
	queryPort  int
	webPort    int
	carbon     *child
	web        *child
}

// startGroupProcess starts a helper server of graphite-web in dir with env
// added to the environment.
func startGroupProcess(name, logPath, dir string, env []string, bin string, args ...string) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return startChild(name, logPath, cmd)
}

// LaunchGraphiteWeb starts carbon-cache and graphite-web on free loopback
// ports with all their state under one directory and waits (bounded) until
// both answer. It does not depend on testing, so tools can use it; tests
// call StartGraphiteWeb. On error everything started is stopped again.
func LaunchGraphiteWeb(opts GraphiteWebOptions) (*GraphiteWeb, error) {
	if err := GraphiteWebMissing(); err != nil {
		return nil, err
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Retentions == "" {
		opts.Retentions = "10s:2d"
	}
	if opts.Schemas == "" {
		opts.Schemas = "[default]\npattern = .*\nretentions = " + opts.Retentions + "\n"
	}
	if opts.Workers == 0 {
		opts.Workers = 2
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "graphite-web-")
		if err != nil {
			return nil, fmt.Errorf("creating graphite-web's directory: %w", err)
		}
		dir = d
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	g := &GraphiteWeb{dir: dir, host: opts.Host}
	ports, err := freePorts(opts.Host, 3)
	if err != nil {
		return nil, err
	}
	g.carbonPort, g.queryPort, g.webPort = ports[0], ports[1], ports[2]
	if err := g.writeConfig(opts); err != nil {
		return nil, err
	}

	g.carbon, err = startGroupProcess("carbon-cache", filepath.Join(dir, "carbon-cache.log"), dir, nil,
		"carbon-cache", "--config="+filepath.Join(dir, "carbon.conf"), "--debug", "start")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = g.Stop()
		}
	}()

	// The database of graphite-web (users, tags, dashboards) must exist
	// before gunicorn serves; migrating takes about a second.
	env := []string{"PYTHONPATH=" + filepath.Join(dir, "webapp"), "GRAPHITE_SETTINGS_MODULE=local_settings"}
	migrate := exec.Command("graphite-manage", "migrate", "--run-syncdb", "--noinput")
	migrate.Dir = dir
	migrate.Env = append(os.Environ(), env...)
	migrate.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if out, err := runBounded(migrate, 2*opts.ReadyTimeout); err != nil {
		return nil, fmt.Errorf("graphite-manage migrate --run-syncdb: %w\n%s", err, tailString(out, 40))
	}

	g.web, err = startGroupProcess("graphite-web (gunicorn)", filepath.Join(dir, "gunicorn.log"), dir, env,
		"gunicorn",
		"--bind", net.JoinHostPort(opts.Host, strconv.Itoa(g.webPort)),
		"--workers", strconv.Itoa(opts.Workers),
		"--timeout", "600",
		"--chdir", dir,
		"--pid", filepath.Join(dir, "gunicorn.pid"),
		"graphite.wsgi:application")
	if err != nil {
		return nil, err
	}

	if err := Retry(context.Background(), opts.ReadyTimeout, 100*time.Millisecond, func() error {
		if err := g.carbon.exitedError(); err != nil {
			return Permanent(err)
		}
		for _, addr := range []string{g.CarbonAddr(), net.JoinHostPort(g.host, strconv.Itoa(g.queryPort))} {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("carbon-cache did not listen on %s: %w; log %s:\n%s", g.CarbonAddr(), err, g.carbon.logPath, fileTail(g.carbon.logPath, logTailLines))
	}
	client := &http.Client{Timeout: 5 * time.Second}
	if err := Retry(context.Background(), opts.ReadyTimeout, 100*time.Millisecond, func() error {
		if err := g.web.exitedError(); err != nil {
			return Permanent(err)
		}
		resp, err := client.Get(g.URL() + "/version")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/version answered %s", resp.Status)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("graphite-web did not answer %s/version: %w; log %s:\n%s%s", g.URL(), err, g.web.logPath, fileTail(g.web.logPath, logTailLines), g.webappLogs())
	}
	ok = true
	return g, nil
}

// StartGraphiteWeb starts carbon-cache and graphite-web for a test, failing
// it (never skipping) with the apt-get command when a package is missing.
// Both are killed when the test ends; their directory and logs are kept
// and the log tails printed when the test failed.
func StartGraphiteWeb(tb testing.TB, opts GraphiteWebOptions) *GraphiteWeb {
	tb.Helper()
	if err := GraphiteWebMissing(); err != nil {
		tb.Fatal(err)
	}
	g, err := LaunchGraphiteWeb(opts)
	if err != nil {
		tb.Fatalf("starting graphite-web and carbon: %v", err)
	}
	tb.Cleanup(func() {
		if err := g.Stop(); err != nil {
			tb.Error(err)
		}
		if tb.Failed() {
			tb.Logf("graphite-web: directory kept at %s\ncarbon-cache log:\n%s\ngunicorn log:\n%s%s",
				g.dir, fileTail(g.carbon.logPath, logTailLines), fileTail(g.web.logPath, logTailLines), g.webappLogs())
			return
		}
		_ = os.RemoveAll(g.dir)
	})
	return g
}

// writeConfig writes carbon.conf, storage-schemas.conf,
// storage-aggregation.conf and graphite-web's local_settings.py.
func (g *GraphiteWeb) writeConfig(opts GraphiteWebOptions) error {
	for _, d := range []string{"whisper", "carbon-log", "webapp", "webapp-log"} {
		if err := os.MkdirAll(filepath.Join(g.dir, d), 0o755); err != nil {
			return err
		}
	}
	whisper := filepath.Join(g.dir, "whisper") + "/"
	// No pickle or UDP receivers, no self-reported carbon.* metrics (they
	// would show up in finds), no limits on creates or updates so that
	// loading many series is not throttled.
	carbon := fmt.Sprintf(`[cache]
STORAGE_DIR = %[1]s/
LOCAL_DATA_DIR = %[2]s
WHISPER_DIR = %[2]s
CONF_DIR = %[1]s/
LOG_DIR = %[1]s/carbon-log/
PID_DIR = %[1]s/
DATABASE = whisper
ENABLE_LOGROTATION = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
MIN_TIMESTAMP_RESOLUTION = 1
LINE_RECEIVER_INTERFACE = %[3]s
LINE_RECEIVER_PORT = %[4]d
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_PORT = 0
CACHE_QUERY_INTERFACE = %[3]s
CACHE_QUERY_PORT = %[5]d
USE_FLOW_CONTROL = True
LOG_UPDATES = False
LOG_CREATES = False
LOG_CACHE_HITS = False
CACHE_WRITE_STRATEGY = sorted
WHISPER_AUTOFLUSH = False
WHISPER_FALLOCATE_CREATE = True
ENABLE_TAGS = False
CARBON_METRIC_INTERVAL = 0
`, g.dir, whisper, g.host, g.carbonPort, g.queryPort)
	aggregation := "[default]\npattern = .*\nxFilesFactor = 0\naggregationMethod = average\n"
	// CARBONLINK_HOSTS points at this carbon-cache (the default would ask
	// whatever listens on 127.0.0.1:7002), so renders include points not yet
	// written to whisper. The dummy cache keeps renders and finds from being
	// served stale while a test waits for its data.
	settings := fmt.Sprintf(`# Written by integration/harness/graphiteweb.go.
SECRET_KEY = 'meridian-harness-not-secret'
TIME_ZONE = 'UTC'
STORAGE_DIR = %[1]q
WHISPER_DIR = %[2]q
STANDARD_DIRS = [%[2]q]
CONF_DIR = %[1]q
LOG_DIR = %[3]q
INDEX_FILE = %[4]q
LOG_ROTATION = False
LOG_RENDERING_PERFORMANCE = False
LOG_CACHE_PERFORMANCE = False
DEFAULT_XFILES_FACTOR = 0
CARBONLINK_HOSTS = ['%[5]s:%[6]d:a']
CARBONLINK_TIMEOUT = 10.0
CACHES = {'default': {'BACKEND': 'django.core.cache.backends.dummy.DummyCache'}}
DEFAULT_CACHE_DURATION = 0
FIND_CACHE_DURATION = 0
FIND_TIMEOUT = 600.0
FETCH_TIMEOUT = 600.0
DATABASES = {'default': {'NAME': %[7]q, 'ENGINE': 'django.db.backends.sqlite3', 'USER': '', 'PASSWORD': '', 'HOST': '', 'PORT': ''}}
`, g.dir+"/", whisper, filepath.Join(g.dir, "webapp-log")+"/", filepath.Join(g.dir, "index"),
		g.host, g.queryPort, filepath.Join(g.dir, "graphite.db"))
	files := map[string]string{
		"carbon.conf":              carbon,
		"storage-schemas.conf":     opts.Schemas,
		"storage-aggregation.conf": aggregation,
		"webapp/local_settings.py": settings,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(g.dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

// webappLogs returns the tail of graphite-web's exception log, if any.
func (g *GraphiteWeb) webappLogs() string {
	p := filepath.Join(g.dir, "webapp-log", "exception.log")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return "\ngraphite-web exception.log:\n" + fileTail(p, logTailLines)
}

// Stop kills carbon-cache and gunicorn (with its workers) and waits,
// bounded, for them to exit. The directory stays.
func (g *GraphiteWeb) Stop() error {
	return errors.Join(g.web.kill(), g.carbon.kill())
}

// URL is graphite-web's base URL (its API is at the root: /render, ...).
func (g *GraphiteWeb) URL() string {
	return "http://" + net.JoinHostPort(g.host, strconv.Itoa(g.webPort))
}

// CarbonAddr is host:port of carbon's plaintext (line) receiver.
func (g *GraphiteWeb) CarbonAddr() string {
	return net.JoinHostPort(g.host, strconv.Itoa(g.carbonPort))
}

// Dir holds the configuration, whisper files, database and logs.
func (g *GraphiteWeb) Dir() string { return g.dir }

// WhisperDir is where carbon writes one .wsp file per metric.
func (g *GraphiteWeb) WhisperDir() string { return filepath.Join(g.dir, "whisper") }

// CarbonPID and WebPID are the process-group leaders (gunicorn's master;
// its workers share its process group), for memory measurements.
func (g *GraphiteWeb) CarbonPID() int { return g.carbon.pid() }

// WebPID is gunicorn's master process (see CarbonPID).
func (g *GraphiteWeb) WebPID() int { return g.web.pid() }

// freePorts returns n distinct TCP ports free on host right now.
func freePorts(host string, n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("finding a free port on %s: %w", host, err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// runBounded runs cmd (started in its own process group) and kills the
// group if it takes longer than timeout; it returns the combined output.
func runBounded(cmd *exec.Cmd, timeout time.Duration) ([]byte, error) {
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return []byte(out.String()), err
	case <-time.After(timeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return []byte(out.String()), fmt.Errorf("killed after %s", timeout)
	}
}

func tailString(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
