// Package harness starts real meridian processes on loopback addresses for
// integration tests: it builds the binary once per test binary, gives every
// process its own ports and data directory, waits for /ready, and offers
// clients that push remote-write requests, call the Prometheus HTTP API and
// scrape /metrics. Data directories and logs of failed tests are kept and
// their paths printed. Tools use the parts that return errors instead of
// failing a test: LaunchMeridian, LaunchGraphiteWeb, Retry and the Graphite
// client.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// modulePath is the Go module whose cmd/meridian the harness builds.
const modulePath = "github.com/meridianhq/meridian"

// buildTimeout bounds `go build ./cmd/meridian`; a cold build takes minutes.
const buildTimeout = 20 * time.Minute

var (
	buildOnce sync.Once
	buildPath string
	buildDir  string
	buildErr  error

	helpOnce  sync.Once
	helpFlags map[string]bool
)

// BuildBinary returns the path of a meridian binary. When the environment
// variable MERIDIAN_BIN names a file, that binary is used as is; otherwise
// ./cmd/meridian is built once per test binary into a temporary directory
// (call RemoveBuild from TestMain to delete it). A build failure fails tb.
func BuildBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		buildPath, buildErr = build()
	})
	if buildErr != nil {
		tb.Fatalf("meridian binary: %v", buildErr)
	}
	return buildPath
}

// RemoveBuild deletes the binary BuildBinary built, if it built one. It is
// meant for TestMain, after m.Run.
func RemoveBuild() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

func build() (string, error) {
	if bin := os.Getenv("MERIDIAN_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return "", fmt.Errorf("MERIDIAN_BIN=%q: %w", bin, err)
		}
		st, err := os.Stat(abs)
		if err != nil {
			return "", fmt.Errorf("MERIDIAN_BIN=%q does not name a usable file: %w", bin, err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("MERIDIAN_BIN=%q is not an executable file", bin)
		}
		return abs, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "meridian-bin-")
	if err != nil {
		return "", fmt.Errorf("creating a directory for the meridian binary: %w", err)
	}
	buildDir = dir
	out := filepath.Join(dir, "meridian")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/meridian")
	cmd.Dir = root
	var combined bytes.Buffer
	cmd.Stdout = &combined
	cmd.Stderr = &combined
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/meridian in %s failed after %s: %v\n%s", root, time.Since(start).Round(time.Second), err, combined.String())
	}
	return out, nil
}

// RepoRoot returns the directory holding Meridian's go.mod, searching upwards
// from the working directory.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		if parent := filepath.Dir(dir); parent == dir {
			return "", fmt.Errorf("no go.mod for module %s above %s", modulePath, wd)
		}
	}
}

// flagNameRE matches a flag name at the start of a `-help` line, in both the
// Go flag package layout ("  -name value") and dskit's.
var flagNameRE = regexp.MustCompile(`^\s+-{1,2}([a-zA-Z0-9][a-zA-Z0-9._-]*)`)

// knownFlags returns the flag names `meridian -help` lists, so the harness
// can move every extra listener (carbon, memberlist, ...) onto the test's
// loopback address and a free port. An empty map means -help gave nothing.
func knownFlags(bin string) map[string]bool {
	helpOnce.Do(func() {
		helpFlags = map[string]bool{}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, "-help")
		cmd.Stdout = &out
		cmd.Stderr = &out
		_ = cmd.Run() // -help may exit non-zero; the text is what matters.
		sc := bufio.NewScanner(&out)
		sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
		for sc.Scan() {
			if m := flagNameRE.FindStringSubmatch(sc.Text()); m != nil {
				helpFlags[strings.TrimSpace(m[1])] = true
			}
		}
	})
	return helpFlags
}
