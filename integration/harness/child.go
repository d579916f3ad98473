package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fileTail returns the last n lines of the file at path, or a note saying
// why it could not be read.
func fileTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// child is a process the harness started in its own process group (so a
// kill takes its children too) with its output appended to a log file:
// meridian, graphite-web, carbon-cache, Prometheus, versitygw.
type child struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once it has exited

	mu       sync.Mutex
	waitErr  error // its exit status, once done
	expected bool  // signaled by the harness or expected to exit: no crash
}

// startChild starts cmd (its path, arguments, directory and environment
// set by the caller) with stdout and stderr appended to logPath, after a
// line that says when and how it was started.
func startChild(name, logPath string, cmd *exec.Cmd) (*child, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the log of %s: %w", name, err)
	}
	fmt.Fprintf(logFile, "==== harness: start at %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(cmd.Args, " "))
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, cmd.Path, err)
	}
	c := &child{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		logFile.Close()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

// exited reports whether the process has exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// exitErr is the exit status once the process has exited.
func (c *child) exitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waitErr
}

// exitedError describes the exit with the tail of the log once the process
// has exited, and is nil while it runs.
func (c *child) exitedError() error {
	if !c.exited() {
		return nil
	}
	return fmt.Errorf("%s exited (%v); log %s:\n%s", c.name, c.exitErr(), c.logPath, fileTail(c.logPath, logTailLines))
}

// crashed reports whether the process exited without the harness signaling
// it or expecting the exit.
func (c *child) crashed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exited() && !c.expected
}

// expectExit makes an exit of the process not count as a crash.
func (c *child) expectExit() {
	c.mu.Lock()
	c.expected = true
	c.mu.Unlock()
}

// signal sends sig (SIGKILL to the whole process group) and reports whether
// the process exited within timeout. It is a no-op on a process that has
// exited already.
func (c *child) signal(sig syscall.Signal, timeout time.Duration) bool {
	if c.exited() {
		return true
	}
	c.expectExit()
	_ = c.cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-c.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// kill SIGKILLs the process group and waits, bounded, for the process to
// exit. A nil child has nothing to kill.
func (c *child) kill() error {
	if c == nil || c.signal(syscall.SIGKILL, killTimeout) {
		return nil
	}
	return fmt.Errorf("%s (pid %d) did not exit within %s of SIGKILL", c.name, c.cmd.Process.Pid, killTimeout)
}

// pid is the process' ID (the leader of its process group).
func (c *child) pid() int { return c.cmd.Process.Pid }
