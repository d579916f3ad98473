package harness

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	// DefaultReadyTimeout bounds the wait for /ready after a start.
	DefaultReadyTimeout = 60 * time.Second
	// stopTimeout bounds the wait after SIGTERM before SIGKILL follows.
	stopTimeout = 30 * time.Second
	// killTimeout bounds the wait for the process to vanish after SIGKILL.
	killTimeout = 15 * time.Second
	// logTailLines is how much of the log a failed test prints.
	logTailLines = 80
)

// Options configure StartMeridian. The zero value runs `-target=all`.
type Options struct {
	// Target is the -target value; "all" when empty.
	Target string
	// Args are extra command-line flags, appended after the harness' own
	// (a later flag wins, so Args may override the defaults).
	Args []string
	// Env is added to the process' environment.
	Env []string
	// Host is the loopback address to listen on; a fresh 127.0.0.x when empty.
	Host string
	// ReadyTimeout bounds the wait for /ready; DefaultReadyTimeout when zero.
	ReadyTimeout time.Duration
	// Name labels the process in logs and paths; "meridian" when empty.
	Name string
	// NoWaitReady makes Start return as soon as the process runs, without
	// waiting for /ready: for a process that cannot be ready yet (a
	// distributor started before any ingester, one that cannot join its
	// peers). Call WaitReady when it should be.
	NoWaitReady bool
}

// Process is one running (or stopped) meridian process. Its ports and data
// directory stay the same across Restart.
type Process struct {
	tb   testing.TB
	bin  string
	opts Options

	host     string
	httpPort int
	grpcPort int
	extra    []string          // flags for listeners found in -help
	listen   map[string]string // host:port listener flag → its address
	root     string            // holds data/ and the log; kept when the test fails
	dataDir  string
	logPath  string

	http *http.Client

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd has exited
	waitErr  error
	stopping bool // set before we signal the process ourselves
	crashes  []string
	starts   int
}

var hostCounter atomic.Uint32

// nextHost returns a loopback address of its own for each process in this
// test binary, spread by pid so concurrent test binaries rarely share one.
func nextHost() string {
	n := hostCounter.Add(1)
	x := 2 + (uint32(os.Getpid())*7+n)%250
	return fmt.Sprintf("127.0.0.%d", x)
}

// handedOut remembers every host:port FreePort returned in this test
// binary: a port is free only until its process binds it, and the kernel
// may offer the same ephemeral port again before then (one process was once
// given one port for both HTTP and gRPC).
var handedOut sync.Map

// FreePort returns a TCP port that is free on host right now and was not
// returned before by this test binary.
func FreePort(tb testing.TB, host string) int {
	tb.Helper()
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			tb.Fatalf("finding a free port on %s: %v", host, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if _, dup := handedOut.LoadOrStore(net.JoinHostPort(host, strconv.Itoa(port)), true); !dup {
			return port
		}
	}
	tb.Fatalf("no port on %s that was not handed out before, after 100 tries", host)
	return 0
}

var unsafeNameChars = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// StartMeridian starts meridian with its own loopback address, ports and data
// directory, and waits until /ready answers 200. The process is killed when
// the test ends; if the test failed, the data directory is kept, and its path
// and the tail of the log are printed.
func StartMeridian(tb testing.TB, opts Options) *Process {
	tb.Helper()
	bin := BuildBinary(tb)
	if opts.Target == "" {
		opts.Target = "all"
	}
	if opts.Name == "" {
		opts.Name = "meridian"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	host := opts.Host
	if host == "" {
		host = nextHost()
	}
	name := unsafeNameChars.ReplaceAllString(tb.Name()+"-"+opts.Name, "_")
	if len(name) > 80 {
		name = name[len(name)-80:]
	}
	root, err := os.MkdirTemp("", "meridian-it-"+name+"-")
	if err != nil {
		tb.Fatalf("creating the data directory: %v", err)
	}
	p := &Process{
		tb:       tb,
		bin:      bin,
		opts:     opts,
		host:     host,
		httpPort: FreePort(tb, host),
		grpcPort: FreePort(tb, host),
		root:     root,
		dataDir:  filepath.Join(root, "data"),
		logPath:  filepath.Join(root, opts.Name+".log"),
		http:     &http.Client{Timeout: 2 * time.Minute},
		listen:   map[string]string{},
	}
	flags := knownFlags(bin)
	p.extra = p.extraListenerFlags(flags)
	if flags["store-gateway.ring.instance-id"] {
		// The default, the hostname, is the same for every process here.
		p.extra = append(p.extra, "-store-gateway.ring.instance-id="+opts.Name+"@"+host)
	}
	if flags["compactor.ring.instance-id"] {
		p.extra = append(p.extra, "-compactor.ring.instance-id="+opts.Name+"@"+host)
	}
	tb.Cleanup(p.cleanup)
	p.Start()
	return p
}

// extraListenerFlags moves listeners other than HTTP and gRPC (carbon,
// memberlist, ...) that the binary offers flags for onto this process'
// loopback address and free ports, so parallel tests do not collide.
func (p *Process) extraListenerFlags(flags map[string]bool) []string {
	names := make([]string, 0, len(flags))
	for f := range flags {
		names = append(names, f)
	}
	sort.Strings(names)
	var out []string
	for _, f := range names {
		if strings.HasPrefix(f, "server.") {
			continue // set explicitly below
		}
		switch {
		case strings.HasPrefix(f, "graphite.") && strings.HasSuffix(f, "listen-address"):
			// host:port listeners (carbon).
			addr := net.JoinHostPort(p.host, strconv.Itoa(FreePort(p.tb, p.host)))
			p.listen[f] = addr
			out = append(out, fmt.Sprintf("-%s=%s", f, addr))
		case strings.HasSuffix(f, "listen-port") || strings.HasSuffix(f, "bind-port"):
			out = append(out, fmt.Sprintf("-%s=%d", f, FreePort(p.tb, p.host)))
		case strings.HasSuffix(f, "listen-address") || strings.HasSuffix(f, "listen-addr") || strings.HasSuffix(f, "bind-addr"):
			out = append(out, fmt.Sprintf("-%s=%s", f, p.host))
		}
	}
	return out
}

func (p *Process) args() []string {
	args := []string{
		"-target=" + p.opts.Target,
		"-server.http-listen-address=" + p.host,
		"-server.http-listen-port=" + strconv.Itoa(p.httpPort),
		"-server.grpc-listen-address=" + p.host,
		"-server.grpc-listen-port=" + strconv.Itoa(p.grpcPort),
		"-common.data-dir=" + p.dataDir,
	}
	args = append(args, p.extra...)
	return append(args, p.opts.Args...)
}

// Start starts the process again after Kill or Stop, with the same flags,
// ports and data directory, and waits for /ready unless Options.NoWaitReady.
func (p *Process) Start() {
	p.tb.Helper()
	p.mu.Lock()
	if p.cmd != nil && !p.exited() {
		p.mu.Unlock()
		p.tb.Fatalf("%s: Start called while the process is running", p.opts.Name)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.mu.Unlock()
		p.tb.Fatalf("opening the log %s: %v", p.logPath, err)
	}
	p.starts++
	args := p.args()
	fmt.Fprintf(logFile, "==== harness: start #%d at %s: %s %s\n", p.starts, time.Now().Format(time.RFC3339Nano), p.bin, strings.Join(args, " "))
	cmd := exec.Command(p.bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), p.opts.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		p.mu.Unlock()
		p.tb.Fatalf("starting %s: %v", p.bin, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.waitErr, p.stopping = cmd, done, nil, false
	go func() {
		err := cmd.Wait()
		logFile.Close()
		p.mu.Lock()
		p.waitErr = err
		if !p.stopping {
			p.crashes = append(p.crashes, fmt.Sprintf("exited on its own: %v", err))
		}
		p.mu.Unlock()
		close(done)
	}()
	p.mu.Unlock()
	if !p.opts.NoWaitReady {
		p.WaitReady(p.opts.ReadyTimeout)
	}
}

// exited reports whether the current process has exited; p.mu must be held.
func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Running reports whether the process is alive.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !p.exited()
}

// WaitReady polls GET /ready until it answers 200, failing the test when the
// process exits or timeout passes.
func (p *Process) WaitReady(timeout time.Duration) {
	p.tb.Helper()
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	last := "no answer yet"
	for attempt := 0; time.Now().Before(deadline) && attempt < 100000; attempt++ {
		select {
		case <-done:
			p.tb.Fatalf("%s exited before it was ready (%v); log %s:\n%s", p.opts.Name, p.exitErr(), p.logPath, p.LogTail(logTailLines))
		default:
		}
		resp, err := client.Get(p.URL() + "/ready")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.tb.Fatalf("%s was not ready within %s (last /ready answer: %s); log %s:\n%s", p.opts.Name, timeout, last, p.logPath, p.LogTail(logTailLines))
}

func (p *Process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Kill sends SIGKILL and waits (bounded) until the process is gone.
func (p *Process) Kill() {
	p.tb.Helper()
	p.signalAndWait(syscall.SIGKILL, killTimeout)
}

// Stop sends SIGTERM, waits up to 30 s for a clean exit, then kills. A
// non-zero exit after SIGTERM fails the test.
func (p *Process) Stop() {
	p.tb.Helper()
	if !p.signalAndWait(syscall.SIGTERM, stopTimeout) {
		p.tb.Errorf("%s did not exit within %s of SIGTERM; killed it. Log %s:\n%s", p.opts.Name, stopTimeout, p.logPath, p.LogTail(logTailLines))
		p.signalAndWait(syscall.SIGKILL, killTimeout)
		return
	}
	if err := p.exitErr(); err != nil {
		p.tb.Errorf("%s exited with an error after SIGTERM: %v. Log %s:\n%s", p.opts.Name, err, p.logPath, p.LogTail(logTailLines))
	}
}

// Restart stops the process cleanly and starts it again with the same
// flags, ports and data directory.
func (p *Process) Restart() {
	p.tb.Helper()
	p.Stop()
	p.Start()
}

// signalAndWait signals the process and reports whether it exited within
// timeout. It is a no-op on a process that is not running.
func (p *Process) signalAndWait(sig syscall.Signal, timeout time.Duration) bool {
	p.mu.Lock()
	if p.cmd == nil || p.exited() {
		p.mu.Unlock()
		return true
	}
	p.stopping = true
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL {
		// Children of the process, if any, go too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (p *Process) cleanup() {
	p.signalAndWait(syscall.SIGKILL, killTimeout)
	p.mu.Lock()
	crashes := append([]string(nil), p.crashes...)
	p.mu.Unlock()
	if len(crashes) > 0 {
		p.tb.Errorf("%s %s during the test", p.opts.Name, strings.Join(crashes, "; "))
	}
	if p.tb.Failed() {
		p.tb.Logf("%s: data directory kept at %s; log %s; last %d lines:\n%s", p.opts.Name, p.root, p.logPath, logTailLines, p.LogTail(logTailLines))
		return
	}
	_ = os.RemoveAll(p.root)
}

// LogTail returns the last n lines of the process log.
func (p *Process) LogTail(n int) string { return fileTail(p.logPath, n) }

// URL is the base HTTP URL, e.g. http://127.0.0.5:41234.
func (p *Process) URL() string { return "http://" + p.HTTPAddr() }

// HTTPAddr is host:port of the HTTP server.
func (p *Process) HTTPAddr() string { return net.JoinHostPort(p.host, strconv.Itoa(p.httpPort)) }

// GRPCAddr is host:port of the gRPC server.
func (p *Process) GRPCAddr() string { return net.JoinHostPort(p.host, strconv.Itoa(p.grpcPort)) }

// Host is the loopback address the process listens on.
func (p *Process) Host() string { return p.host }

// Name is the process' name in the test (Options.Name).
func (p *Process) Name() string { return p.opts.Name }

// DataDir is the -common.data-dir of the process.
func (p *Process) DataDir() string { return p.dataDir }

// LogPath is the file that receives the process' stdout and stderr.
func (p *Process) LogPath() string { return p.logPath }

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
