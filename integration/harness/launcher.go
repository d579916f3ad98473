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
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// DefaultReadyTimeout bounds the wait for /ready after a start.
	DefaultReadyTimeout = 60 * time.Second
	// stopTimeout bounds the wait after SIGTERM before SIGKILL follows.
	stopTimeout = 30 * time.Second
	// killTimeout bounds the wait for the process to vanish after SIGKILL.
	killTimeout = 15 * time.Second
	// logTailLines is how much of a log an error or a failed test shows.
	logTailLines = 80
)

// Options configure a meridian process. The zero value runs `-target=all`.
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
	// Dir holds the data directory and the log; a new temporary directory
	// when empty. It is not removed.
	Dir string
}

// Meridian is one meridian process on a loopback address with its own
// ports and data directory, which stay the same across restarts. It does
// not depend on testing: tools start one with LaunchMeridian and get
// errors; tests call StartMeridian, whose Process wraps it.
type Meridian struct {
	bin  string
	opts Options

	host     string
	httpPort int
	grpcPort int
	extra    []string          // flags for listeners found in -help
	listen   map[string]string // host:port listener flag → its address
	root     string            // holds data/ and the log
	dataDir  string
	logPath  string

	mu      sync.Mutex
	proc    *child   // the current run; nil before the first start
	crashes []string // how earlier runs exited on their own
}

// NewMeridian prepares a process of the binary bin: it picks the address,
// ports and directory, and starts nothing.
func NewMeridian(bin string, opts Options) (*Meridian, error) {
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
	root := opts.Dir
	if root == "" {
		d, err := os.MkdirTemp("", "meridian-"+unsafeNameChars.ReplaceAllString(opts.Name, "_")+"-")
		if err != nil {
			return nil, fmt.Errorf("create the directory of %s: %w", opts.Name, err)
		}
		root = d
	}
	m := &Meridian{
		bin:     bin,
		opts:    opts,
		host:    host,
		root:    root,
		dataDir: filepath.Join(root, "data"),
		logPath: filepath.Join(root, opts.Name+".log"),
		listen:  map[string]string{},
	}
	var err error
	if m.httpPort, err = freePort(host); err != nil {
		return nil, err
	}
	if m.grpcPort, err = freePort(host); err != nil {
		return nil, err
	}
	flags := knownFlags(bin)
	if m.extra, err = m.extraListenerFlags(flags); err != nil {
		return nil, err
	}
	if flags["store-gateway.ring.instance-id"] {
		// The default, the hostname, is the same for every process here.
		m.extra = append(m.extra, "-store-gateway.ring.instance-id="+opts.Name+"@"+host)
	}
	if flags["compactor.ring.instance-id"] {
		m.extra = append(m.extra, "-compactor.ring.instance-id="+opts.Name+"@"+host)
	}
	return m, nil
}

// LaunchMeridian prepares a process (NewMeridian) and starts it; on error
// nothing is left running.
func LaunchMeridian(bin string, opts Options) (*Meridian, error) {
	m, err := NewMeridian(bin, opts)
	if err != nil {
		return nil, err
	}
	if err := m.Start(); err != nil {
		_ = m.Kill()
		return nil, err
	}
	return m, nil
}

var hostCounter atomic.Uint32

// nextHost returns a loopback address of its own for each process in this
// program, spread by pid so concurrent programs rarely share one.
func nextHost() string {
	n := hostCounter.Add(1)
	x := 2 + (uint32(os.Getpid())*7+n)%250
	return fmt.Sprintf("127.0.0.%d", x)
}

// handedOut remembers every host:port freePort returned in this program: a
// port is free only until its process binds it, and the kernel may offer
// the same ephemeral port again before then (one process was once given one
// port for both HTTP and gRPC).
var handedOut sync.Map

// freePort returns a TCP port that is free on host right now and was not
// returned before by this program.
func freePort(host string) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("find a free port on %s: %w", host, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if _, dup := handedOut.LoadOrStore(net.JoinHostPort(host, strconv.Itoa(port)), true); !dup {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port on %s that was not handed out before, after 100 tries", host)
}

// extraListenerFlags moves listeners other than HTTP and gRPC (carbon,
// memberlist, ...) that the binary offers flags for onto this process'
// loopback address and free ports, so processes do not collide.
func (m *Meridian) extraListenerFlags(flags map[string]bool) ([]string, error) {
	names := make([]string, 0, len(flags))
	for f := range flags {
		names = append(names, f)
	}
	sort.Strings(names)
	var out []string
	port := func(f string) (string, error) {
		p, err := freePort(m.host)
		if err != nil {
			return "", fmt.Errorf("-%s: %w", f, err)
		}
		return strconv.Itoa(p), nil
	}
	for _, f := range names {
		if strings.HasPrefix(f, "server.") {
			continue // set explicitly in args
		}
		switch {
		case strings.HasPrefix(f, "graphite.") && strings.HasSuffix(f, "listen-address"):
			// host:port listeners (carbon).
			p, err := port(f)
			if err != nil {
				return nil, err
			}
			addr := net.JoinHostPort(m.host, p)
			m.listen[f] = addr
			out = append(out, fmt.Sprintf("-%s=%s", f, addr))
		case strings.HasSuffix(f, "listen-port") || strings.HasSuffix(f, "bind-port"):
			p, err := port(f)
			if err != nil {
				return nil, err
			}
			out = append(out, fmt.Sprintf("-%s=%s", f, p))
		case strings.HasSuffix(f, "listen-address") || strings.HasSuffix(f, "listen-addr") || strings.HasSuffix(f, "bind-addr"):
			out = append(out, fmt.Sprintf("-%s=%s", f, m.host))
		}
	}
	return out, nil
}

func (m *Meridian) args() []string {
	args := []string{
		"-target=" + m.opts.Target,
		"-server.http-listen-address=" + m.host,
		"-server.http-listen-port=" + strconv.Itoa(m.httpPort),
		"-server.grpc-listen-address=" + m.host,
		"-server.grpc-listen-port=" + strconv.Itoa(m.grpcPort),
		"-common.data-dir=" + m.dataDir,
	}
	args = append(args, m.extra...)
	return append(args, m.opts.Args...)
}

// current is the current run; nil before the first start.
func (m *Meridian) current() *child {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc
}

// Start starts the process, or starts it again after Kill or Stop with the
// same flags, ports and data directory, and waits for /ready unless
// Options.NoWaitReady.
func (m *Meridian) Start() error {
	m.mu.Lock()
	prev := m.proc
	if prev != nil && !prev.exited() {
		m.mu.Unlock()
		return fmt.Errorf("%s: Start called while the process is running", m.opts.Name)
	}
	if prev != nil && prev.crashed() {
		m.crashes = append(m.crashes, fmt.Sprintf("exited on its own: %v", prev.exitErr()))
	}
	cmd := exec.Command(m.bin, m.args()...)
	cmd.Env = append(os.Environ(), m.opts.Env...)
	proc, err := startChild(m.opts.Name, m.logPath, cmd)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	m.proc = proc
	m.mu.Unlock()
	if m.opts.NoWaitReady {
		return nil
	}
	return m.WaitReady(m.opts.ReadyTimeout)
}

// Running reports whether the process is alive.
func (m *Meridian) Running() bool {
	p := m.current()
	return p != nil && !p.exited()
}

// WaitReady polls GET /ready until it answers 200; it fails at once when
// the process exits, and after timeout with the last answer.
func (m *Meridian) WaitReady(timeout time.Duration) error {
	p := m.current()
	if p == nil {
		return fmt.Errorf("%s: WaitReady before Start", m.opts.Name)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	err := Retry(context.Background(), timeout, 100*time.Millisecond, func() error {
		if err := p.exitedError(); err != nil {
			return Permanent(fmt.Errorf("before it was ready: %w", err))
		}
		resp, err := client.Get(m.URL() + "/ready")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/ready answered %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return nil
	})
	if err != nil {
		if p.exited() {
			return err // the log tail is in it
		}
		return fmt.Errorf("%s was not ready: %w; log %s:\n%s", m.opts.Name, err, m.logPath, m.LogTail(logTailLines))
	}
	return nil
}

// Kill sends SIGKILL and waits (bounded) until the process is gone.
func (m *Meridian) Kill() error { return m.current().kill() }

// Stop sends SIGTERM and waits up to 30 s for a clean exit, then kills. A
// process that needed the kill, or exited with an error, is an error.
func (m *Meridian) Stop() error {
	p := m.current()
	if p == nil {
		return nil
	}
	if !p.signal(syscall.SIGTERM, stopTimeout) {
		err := fmt.Errorf("%s did not exit within %s of SIGTERM; killed it. Log %s:\n%s", m.opts.Name, stopTimeout, m.logPath, m.LogTail(logTailLines))
		return errors.Join(err, p.kill())
	}
	if err := p.exitErr(); err != nil {
		return fmt.Errorf("%s exited with an error after SIGTERM: %v. Log %s:\n%s", m.opts.Name, err, m.logPath, m.LogTail(logTailLines))
	}
	return nil
}

// Signal sends sig (e.g. SIGSTOP, SIGCONT) to the running process; it is an
// error when the process is not running. Use Kill and Stop to end it.
func (m *Meridian) Signal(sig syscall.Signal) error {
	p := m.current()
	if p == nil || p.exited() {
		return fmt.Errorf("%s is not running", m.opts.Name)
	}
	return p.cmd.Process.Signal(sig)
}

// WaitExit waits (bounded by timeout) for a process that is meant to exit
// on its own, e.g. at start-up with bad object storage credentials, and
// returns its exit status; the exit then is no crash. The error is set when
// it did not exit in time.
func (m *Meridian) WaitExit(timeout time.Duration) (exitErr, err error) {
	p := m.current()
	if p == nil {
		return nil, fmt.Errorf("%s: WaitExit before Start", m.opts.Name)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		return nil, fmt.Errorf("%s was still running %s after start; it was expected to exit. Log %s:\n%s", m.opts.Name, timeout, m.logPath, m.LogTail(logTailLines))
	}
	p.expectExit()
	return p.exitErr(), nil
}

// Crashes describes each time the process exited without being stopped,
// killed or expected to.
func (m *Meridian) Crashes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := append([]string(nil), m.crashes...)
	if m.proc != nil && m.proc.crashed() {
		out = append(out, fmt.Sprintf("exited on its own: %v", m.proc.exitErr()))
	}
	return out
}

// PID is the process ID of the current run (0 before the first start).
func (m *Meridian) PID() int {
	if p := m.current(); p != nil {
		return p.pid()
	}
	return 0
}

// LogTail returns the last n lines of the process log.
func (m *Meridian) LogTail(n int) string { return fileTail(m.logPath, n) }

// URL is the base HTTP URL, e.g. http://127.0.0.5:41234.
func (m *Meridian) URL() string { return "http://" + m.HTTPAddr() }

// HTTPAddr is host:port of the HTTP server.
func (m *Meridian) HTTPAddr() string { return net.JoinHostPort(m.host, strconv.Itoa(m.httpPort)) }

// GRPCAddr is host:port of the gRPC server.
func (m *Meridian) GRPCAddr() string { return net.JoinHostPort(m.host, strconv.Itoa(m.grpcPort)) }

// Host is the loopback address the process listens on.
func (m *Meridian) Host() string { return m.host }

// Name is the process' name (Options.Name).
func (m *Meridian) Name() string { return m.opts.Name }

// Dir holds the data directory and the log (Options.Dir).
func (m *Meridian) Dir() string { return m.root }

// DataDir is the -common.data-dir of the process.
func (m *Meridian) DataDir() string { return m.dataDir }

// LogPath is the file that receives the process' stdout and stderr.
func (m *Meridian) LogPath() string { return m.logPath }

// ListenAddr is the host:port the harness gave a host:port listener flag
// (e.g. "graphite.carbon.tcp-listen-address"); "" when the binary has no
// such flag.
func (m *Meridian) ListenAddr(flag string) string { return m.listen[flag] }

// CarbonTCPAddr is the address of the process' carbon TCP listener.
func (m *Meridian) CarbonTCPAddr() string { return m.ListenAddr(FlagCarbonTCPListenAddress) }
