package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PrometheusModule is the module whose version the reference Prometheus
// must match.
const PrometheusModule = "github.com/prometheus/prometheus"

// RefPrometheus returns the path of the reference Prometheus binary built by
// scripts/build-reference-prometheus.sh: $MERIDIAN_REF_PROMETHEUS, or else
// ${MERIDIAN_CACHE:-$HOME/.cache/meridian}/refprom-<version>/prometheus for
// the prometheus version this test binary was built with. The error says
// how to build it.
func RefPrometheus() (string, error) {
	const hint = "build it with scripts/build-reference-prometheus.sh (or set MERIDIAN_REF_PROMETHEUS to a Prometheus binary of the same version as go.mod)"
	if p := os.Getenv("MERIDIAN_REF_PROMETHEUS"); p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			return "", fmt.Errorf("MERIDIAN_REF_PROMETHEUS=%q is not a file; %s", p, hint)
		}
		return p, nil
	}
	version := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == PrometheusModule {
				version = d.Version
			}
		}
	}
	if version == "" {
		// Test binaries usually carry no module list: ask the go command.
		v, err := goModVersion(PrometheusModule)
		if err != nil {
			return "", fmt.Errorf("cannot tell which %s version go.mod requires (%v); %s", PrometheusModule, err, hint)
		}
		version = v
	}
	cache := os.Getenv("MERIDIAN_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no MERIDIAN_CACHE and no home directory (%v); %s", err, hint)
		}
		cache = filepath.Join(home, ".cache", "meridian")
	}
	p := filepath.Join(cache, "refprom-"+version, "prometheus")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the reference Prometheus %s is missing at %s; %s", version, p, hint)
	}
	return p, nil
}

// goModVersion returns the version of module that Meridian's go.mod selects.
func goModVersion(module string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", module)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// PrometheusOptions configure StartPrometheus.
type PrometheusOptions struct {
	// Bin is the prometheus binary.
	Bin string
	// Host is the loopback address to listen on; 127.0.0.1 when empty.
	Host string
	// Config returns prometheus.yml given Prometheus' own listen address
	// (host:port), so it can scrape itself.
	Config func(selfAddr string) string
	// Args are extra flags.
	Args []string
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	tb      testing.TB
	addr    string
	root    string
	logPath string
	proc    *child
}

// StartPrometheus starts Prometheus on loopback with its own storage and
// waits (60 s at most) for /-/ready. It is killed with SIGKILL when the test
// ends (on SIGTERM it may spend many seconds flushing remote write); its
// directory and log are kept when the test failed.
func StartPrometheus(tb testing.TB, opts PrometheusOptions) *Prometheus {
	tb.Helper()
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	root, err := os.MkdirTemp("", "prometheus-it-")
	if err != nil {
		tb.Fatalf("creating Prometheus' directory: %v", err)
	}
	p := &Prometheus{
		tb:      tb,
		addr:    net.JoinHostPort(host, strconv.Itoa(FreePort(tb, host))),
		root:    root,
		logPath: filepath.Join(root, "prometheus.log"),
	}
	tb.Cleanup(p.cleanup)
	cfgPath := filepath.Join(root, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(opts.Config(p.addr)), 0o644); err != nil {
		tb.Fatalf("writing %s: %v", cfgPath, err)
	}
	args := append([]string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(root, "data"),
		"--web.listen-address=" + p.addr,
	}, opts.Args...)
	p.proc, err = startChild("Prometheus", p.logPath, exec.Command(opts.Bin, args...))
	if err != nil {
		tb.Fatal(err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	err = Retry(context.Background(), 60*time.Second, 100*time.Millisecond, func() error {
		if err := p.proc.exitedError(); err != nil {
			return Permanent(err)
		}
		resp, err := client.Get(p.URL() + "/-/ready")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready answered %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("Prometheus was not ready: %v", err)
	}
	return p
}

// URL is Prometheus' base URL.
func (p *Prometheus) URL() string { return "http://" + p.addr }

// Addr is Prometheus' host:port.
func (p *Prometheus) Addr() string { return p.addr }

// Client returns an API client for Prometheus (API under /api/v1).
func (p *Prometheus) Client() *Client { return NewClient(p.tb, p.URL(), "/api/v1") }

func (p *Prometheus) cleanup() {
	p.Kill()
	if p.tb.Failed() {
		p.tb.Logf("Prometheus: directory kept at %s; log %s; last %d lines:\n%s", p.root, p.logPath, logTailLines, p.LogTail(logTailLines))
		return
	}
	_ = os.RemoveAll(p.root)
}

// Kill stops Prometheus with SIGKILL and waits (bounded) for it to exit.
func (p *Prometheus) Kill() {
	if err := p.proc.kill(); err != nil {
		p.tb.Error(err)
	}
}

// LogTail returns the last n lines of Prometheus' log.
func (p *Prometheus) LogTail(n int) string { return fileTail(p.logPath, n) }
