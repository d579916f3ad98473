package harness

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Process is a Meridian process of a test: its methods fail the test
// instead of returning errors, it is killed when the test ends, and its
// directory is kept (and the log tail printed) when the test failed.
type Process struct {
	*Meridian
	tb   testing.TB
	http *http.Client
}

// FreePort returns a TCP port that is free on host right now and was not
// returned before by this test binary.
func FreePort(tb testing.TB, host string) int {
	tb.Helper()
	port, err := freePort(host)
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

var unsafeNameChars = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// StartMeridian starts meridian with its own loopback address, ports and data
// directory, and waits until /ready answers 200. The process is killed when
// the test ends; if the test failed, the data directory is kept, and its path
// and the tail of the log are printed.
func StartMeridian(tb testing.TB, opts Options) *Process {
	tb.Helper()
	bin := BuildBinary(tb)
	if opts.Name == "" {
		opts.Name = "meridian"
	}
	if opts.Dir == "" {
		name := unsafeNameChars.ReplaceAllString(tb.Name()+"-"+opts.Name, "_")
		if len(name) > 80 {
			name = name[len(name)-80:]
		}
		dir, err := os.MkdirTemp("", "meridian-it-"+name+"-")
		if err != nil {
			tb.Fatalf("creating the data directory: %v", err)
		}
		opts.Dir = dir
	}
	m, err := NewMeridian(bin, opts)
	if err != nil {
		tb.Fatal(err)
	}
	p := &Process{Meridian: m, tb: tb, http: &http.Client{Timeout: 2 * time.Minute}}
	tb.Cleanup(p.cleanup)
	p.Start()
	return p
}

// Start starts the process again after Kill or Stop, with the same flags,
// ports and data directory, and waits for /ready unless Options.NoWaitReady.
func (p *Process) Start() {
	p.tb.Helper()
	if err := p.Meridian.Start(); err != nil {
		p.tb.Fatal(err)
	}
}

// WaitReady polls GET /ready until it answers 200, failing the test when the
// process exits or timeout passes.
func (p *Process) WaitReady(timeout time.Duration) {
	p.tb.Helper()
	if err := p.Meridian.WaitReady(timeout); err != nil {
		p.tb.Fatal(err)
	}
}

// Kill sends SIGKILL and waits (bounded) until the process is gone.
func (p *Process) Kill() {
	p.tb.Helper()
	if err := p.Meridian.Kill(); err != nil {
		p.tb.Error(err)
	}
}

// Stop sends SIGTERM, waits up to 30 s for a clean exit, then kills. A
// non-zero exit after SIGTERM fails the test.
func (p *Process) Stop() {
	p.tb.Helper()
	if err := p.Meridian.Stop(); err != nil {
		p.tb.Error(err)
	}
}

// Restart stops the process cleanly and starts it again with the same
// flags, ports and data directory.
func (p *Process) Restart() {
	p.tb.Helper()
	p.Stop()
	p.Start()
}

// ExpectExit waits (bounded by timeout) for a process that is meant to
// fail on its own, e.g. at start-up with bad object storage credentials,
// and returns its exit error. The exit then does not count as a crash at
// cleanup; a process still running after timeout fails the test.
func (p *Process) ExpectExit(timeout time.Duration) error {
	p.tb.Helper()
	exitErr, err := p.WaitExit(timeout)
	if err != nil {
		p.tb.Fatal(err)
	}
	return exitErr
}

func (p *Process) cleanup() {
	if err := p.Meridian.Kill(); err != nil {
		p.tb.Error(err)
	}
	if crashes := p.Crashes(); len(crashes) > 0 {
		p.tb.Errorf("%s %s during the test", p.opts.Name, strings.Join(crashes, "; "))
	}
	if p.tb.Failed() {
		p.tb.Logf("%s: data directory kept at %s; log %s; last %d lines:\n%s", p.opts.Name, p.root, p.logPath, logTailLines, p.LogTail(logTailLines))
		return
	}
	_ = os.RemoveAll(p.root)
}

// Get issues a GET on path (relative to URL) with no tenant and returns the
// status code and body; transport errors fail the test.
func (p *Process) Get(path string) (int, []byte) {
	p.tb.Helper()
	return p.Client("").do(http.MethodGet, path, nil, "", nil)
}

// PostPath issues a POST with an empty body on path as tenant (no tenant
// header when tenant is empty), e.g. "/ingester/flush?wait=true".
func (p *Process) PostPath(tenant, path string) (int, []byte) {
	p.tb.Helper()
	return p.Client(tenant).do(http.MethodPost, path, nil, "", nil)
}
