package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
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

// killGroup SIGKILLs a helper server started in its own process group and
// waits (bounded by killTimeout) for done, which closes when it has exited.
func killGroup(tb testing.TB, name string, cmd *exec.Cmd, done <-chan struct{}) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(killTimeout):
		tb.Errorf("%s (pid %d) did not exit within %s of SIGKILL", name, cmd.Process.Pid, killTimeout)
	}
}
