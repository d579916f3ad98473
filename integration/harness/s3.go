package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/s3"
)

// VersityGWVersion is the versitygw release scripts/build-versitygw.sh builds.
const VersityGWVersion = "v1.8.0"

const (
	// s3ReadyTimeout bounds the wait for versitygw to serve the bucket.
	s3ReadyTimeout = 30 * time.Second
	// S3Region is the region versitygw answers for by default.
	S3Region = "us-east-1"
)

// VersityGW returns the path of the versitygw binary built by
// scripts/build-versitygw.sh: $MERIDIAN_VERSITYGW, or else
// ${MERIDIAN_CACHE:-$HOME/.cache/meridian}/versitygw-v1.8.0/versitygw. The
// error says how to build it.
func VersityGW() (string, error) {
	const hint = "build it with scripts/build-versitygw.sh (or set MERIDIAN_VERSITYGW to a versitygw " + VersityGWVersion + " binary)"
	if p := os.Getenv("MERIDIAN_VERSITYGW"); p != "" {
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("MERIDIAN_VERSITYGW=%q is not an executable file; %s", p, hint)
		}
		return p, nil
	}
	cache := os.Getenv("MERIDIAN_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no MERIDIAN_CACHE and no home directory (%v); %s", err, hint)
		}
		cache = filepath.Join(home, ".cache", "meridian")
	}
	p := filepath.Join(cache, "versitygw-"+VersityGWVersion, "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw %s is missing at %s; %s", VersityGWVersion, p, hint)
	}
	return p, nil
}

// S3Server is a versitygw process serving one bucket from a directory of
// its own (posix backend: the bucket is a directory, each object a file
// under it, so tests can read what was stored straight from disk). It
// checks SigV4 signatures against one root access key and secret.
type S3Server struct {
	tb testing.TB

	Endpoint  string // host:port, plain HTTP
	Bucket    string // bucket name
	AccessKey string
	SecretKey string

	root    string // holds gw/ (the posix root) and the log; kept on failure
	gwRoot  string
	logPath string
	proc    *child
}

// StartVersityGW starts versitygw on a fresh loopback address and free port
// with its own root directory and a bucket named "meridian", and waits
// (bounded) until a signed request sees the bucket. It is killed when the
// test ends; if the test failed its directory and log are kept and printed.
// A missing binary fails the test with a hint to scripts/build-versitygw.sh.
func StartVersityGW(tb testing.TB) *S3Server {
	tb.Helper()
	bin, err := VersityGW()
	if err != nil {
		tb.Fatalf("S3 server for the test: %v", err)
	}
	name := unsafeNameChars.ReplaceAllString(tb.Name(), "_")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	root, err := os.MkdirTemp("", "meridian-s3-"+name+"-")
	if err != nil {
		tb.Fatalf("creating the S3 directory: %v", err)
	}
	host := nextHost()
	s := &S3Server{
		tb:        tb,
		Endpoint:  net.JoinHostPort(host, strconv.Itoa(FreePort(tb, host))),
		Bucket:    "meridian",
		AccessKey: "meridian-test-key",
		SecretKey: "meridian-test-secret-" + strconv.Itoa(os.Getpid()),
		root:      root,
		gwRoot:    filepath.Join(root, "gw"),
		logPath:   filepath.Join(root, "versitygw.log"),
	}
	if err := os.MkdirAll(s.BucketDir(), 0o755); err != nil {
		tb.Fatalf("creating the bucket directory: %v", err)
	}
	cmd := exec.Command(bin, "--port", s.Endpoint, "posix", s.gwRoot)
	cmd.Env = append(versityEnv(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	s.proc, err = startChild("versitygw", s.logPath, cmd)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.cleanup)
	s.waitReady()
	return s
}

// versityEnv is the test's environment without versitygw's own settings
// (VGW_*, ROOT_*), so nothing outside the test changes how it runs.
func versityEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitReady polls until a signed request for an absent object in the bucket
// answers "not found", failing the test if versitygw exits or the wait
// passes s3ReadyTimeout.
func (s *S3Server) waitReady() {
	s.tb.Helper()
	bkt, closeBkt, err := s.newBucket(s.SecretKey)
	if err != nil {
		s.tb.Fatalf("S3 client for %s: %v", s.Endpoint, err)
	}
	defer closeBkt()
	err = Retry(context.Background(), s3ReadyTimeout, 100*time.Millisecond, func() error {
		if err := s.proc.exitedError(); err != nil {
			return Permanent(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ok, err := bkt.Exists(ctx, "harness-readiness-probe")
		if err != nil {
			return err
		}
		if ok {
			return errors.New("the probe object exists")
		}
		return nil
	})
	if err != nil {
		s.tb.Fatalf("versitygw at %s did not serve bucket %q: %v", s.Endpoint, s.Bucket, err)
	}
}

// newBucket returns an objstore S3 client for the server's bucket signing
// with secret, and a function that drops its idle connections.
func (s *S3Server) newBucket(secret string) (objstore.Bucket, func(), error) {
	cfg := s3.DefaultConfig
	cfg.Endpoint = s.Endpoint
	cfg.Bucket = s.Bucket
	cfg.AccessKey = s.AccessKey
	cfg.SecretKey = secret
	cfg.Region = S3Region
	cfg.Insecure = true
	cfg.BucketLookupType = s3.PathLookup
	cfg.MaxRetries = 1
	tr := &http.Transport{DisableKeepAlives: true, ResponseHeaderTimeout: 10 * time.Second}
	bkt, err := s3.NewBucketWithConfig(log.NewNopLogger(), cfg, "integration-test", func(http.RoundTripper) http.RoundTripper { return tr })
	if err != nil {
		return nil, nil, err
	}
	return bkt, func() { _ = bkt.Close(); tr.CloseIdleConnections() }, nil
}

// Client returns an S3 client for the bucket with the right credentials;
// its connections are closed when the test ends.
func (s *S3Server) Client() objstore.Bucket {
	s.tb.Helper()
	bkt, closeBkt, err := s.newBucket(s.SecretKey)
	if err != nil {
		s.tb.Fatalf("S3 client for %s: %v", s.Endpoint, err)
	}
	s.tb.Cleanup(closeBkt)
	return bkt
}

// MeridianArgs are the -blocks-storage.* flags that point meridian at this
// server's bucket with its credentials (plain HTTP, path-style lookup).
// Append a later -blocks-storage.s3.* flag to override one.
func (s *S3Server) MeridianArgs() []string {
	return []string{
		"-blocks-storage.backend=s3",
		"-blocks-storage.s3.endpoint=" + s.Endpoint,
		"-blocks-storage.s3.bucket-name=" + s.Bucket,
		"-blocks-storage.s3.access-key-id=" + s.AccessKey,
		"-blocks-storage.s3.secret-access-key=" + s.SecretKey,
		"-blocks-storage.s3.region=" + S3Region,
		"-blocks-storage.s3.insecure=true",
		"-blocks-storage.s3.force-path-style=true",
	}
}

// BucketDir is the directory that holds the bucket's objects: object
// "a/b/c" is the file BucketDir()/a/b/c.
func (s *S3Server) BucketDir() string { return filepath.Join(s.gwRoot, s.Bucket) }

// LogPath is versitygw's log file.
func (s *S3Server) LogPath() string { return s.logPath }

// Blocks lists the complete blocks (those with a meta.json) of tenant in
// the bucket, read from disk.
func (s *S3Server) Blocks(tenant string) ([]BucketBlock, error) {
	metas, err := filepath.Glob(filepath.Join(s.BucketDir(), tenant, "*", "meta.json"))
	if err != nil {
		return nil, err
	}
	out := make([]BucketBlock, 0, len(metas))
	for _, m := range metas {
		data, err := os.ReadFile(m)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted since the glob
			}
			return nil, err
		}
		var b BucketBlock
		if err := json.Unmarshal(data, &b); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", m, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func (s *S3Server) cleanup() {
	if s.proc.crashed() {
		s.tb.Errorf("versitygw exited on its own during the test: %v", s.proc.exitErr())
	}
	s.Kill()
	if s.tb.Failed() {
		s.tb.Logf("versitygw: directory kept at %s; log %s; last %d lines:\n%s", s.root, s.logPath, logTailLines, s.LogTail(logTailLines))
		return
	}
	_ = os.RemoveAll(s.root)
}

// Kill stops versitygw with SIGKILL and waits (bounded) for it to exit.
func (s *S3Server) Kill() {
	if err := s.proc.kill(); err != nil {
		s.tb.Error(err)
	}
}

// LogTail returns the last n lines of versitygw' log.
func (s *S3Server) LogTail(n int) string { return fileTail(s.logPath, n) }
