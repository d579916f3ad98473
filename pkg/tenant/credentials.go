package tenant

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// defaultCredentialsCheckInterval is how often, at most, a request makes the
// middleware look at the credentials file's modification time.
const defaultCredentialsCheckInterval = time.Second

var (
	errUnknownTenant = errors.New("tenant is not in the credentials file")
	errWrongToken    = errors.New("token does not match the tenant's token_hash")
)

// HashToken returns the bcrypt hash of a tenant's token, to put in the
// credentials file as token_hash.
func HashToken(token string) (string, error) {
	if token == "" {
		return "", errors.New("token is empty: choose a long random token, for example the output of `openssl rand -hex 32`")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(token), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash token: %w", err)
	}
	return string(h), nil
}

// credentialsFile is the on-disk format of -auth.credentials-file.
type credentialsFile struct {
	Tenants map[string]struct {
		TokenHash string `yaml:"token_hash"`
	} `yaml:"tenants"`
}

// credentials is one loaded version of the credentials file.
type credentials struct {
	hashes map[string][]byte

	// verified caches, per tenant, the SHA-256 of the last token that matched
	// the tenant's bcrypt hash, so bcrypt (tens of milliseconds of CPU) runs
	// once per tenant and token rather than on every request. A reload builds
	// a new credentials value, which drops the cache.
	verifiedMtx sync.RWMutex
	verified    map[string][sha256.Size]byte
}

func parseCredentials(r io.Reader) (*credentials, error) {
	var f credentialsFile
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(f.Tenants) == 0 {
		// Also what a reader sees of a file being rewritten in place.
		return nil, errors.New("the file lists no tenants, so no request could be accepted: add tenants under \"tenants:\"")
	}
	c := &credentials{
		hashes:   make(map[string][]byte, len(f.Tenants)),
		verified: make(map[string][sha256.Size]byte, len(f.Tenants)),
	}
	for id, t := range f.Tenants {
		if err := ValidateID(id); err != nil {
			return nil, fmt.Errorf("tenant %q: %w", id, err)
		}
		if _, err := bcrypt.Cost([]byte(t.TokenHash)); err != nil {
			return nil, fmt.Errorf("tenant %q: token_hash is not a bcrypt hash (make one with `meridian -auth.hash-token=<token>`): %w", id, err)
		}
		c.hashes[id] = []byte(t.TokenHash)
	}
	return c, nil
}

// verify returns nil when token is the token of tenant.
func (c *credentials) verify(tenant, token string) error {
	hash, ok := c.hashes[tenant]
	if !ok {
		return errUnknownTenant
	}
	sum := sha256.Sum256([]byte(token))
	c.verifiedMtx.RLock()
	known, ok := c.verified[tenant]
	c.verifiedMtx.RUnlock()
	if ok && subtle.ConstantTimeCompare(known[:], sum[:]) == 1 {
		return nil
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(token)); err != nil {
		return errWrongToken
	}
	c.verifiedMtx.Lock()
	c.verified[tenant] = sum
	c.verifiedMtx.Unlock()
	return nil
}

// credentialStore holds the current credentials and re-reads the file when
// its modification time or size changes. The check runs on requests, at most
// once per checkInterval, so there is no background goroutine to stop.
type credentialStore struct {
	path          string
	logger        log.Logger
	checkInterval time.Duration
	now           func() time.Time

	current   atomic.Pointer[credentials]
	lastCheck atomic.Int64 // Unix nanoseconds.

	reloadMtx  sync.Mutex // Guards the fields below.
	modTime    time.Time
	size       int64
	lastErrMsg string

	reloadOK prometheus.Gauge
}

func newCredentialStore(path string, logger log.Logger, reg prometheus.Registerer) (*credentialStore, error) {
	s := &credentialStore{
		path:          path,
		logger:        logger,
		checkInterval: defaultCredentialsCheckInterval,
		now:           time.Now,
		reloadOK: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "meridian_auth_credentials_last_reload_successful",
			Help: "1 if the last read of the credentials file succeeded, 0 if it failed and the previous credentials stay in force.",
		}),
	}
	fi, c, err := s.read()
	if err != nil {
		return nil, err
	}
	s.current.Store(c)
	s.modTime, s.size = fi.ModTime(), fi.Size()
	s.lastCheck.Store(s.now().UnixNano())
	s.reloadOK.Set(1)
	level.Info(logger).Log("msg", "credentials file loaded", "file", path, "tenants", len(c.hashes))
	return s, nil
}

func (s *credentialStore) read() (os.FileInfo, *credentials, error) {
	// Stat before reading: if the file changes in between, the next check sees
	// a newer modification time and reads it again.
	fi, err := os.Stat(s.path)
	if err != nil {
		return nil, nil, fmt.Errorf("read credentials file: %w", err)
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return nil, nil, fmt.Errorf("read credentials file: %w", err)
	}
	c, err := parseCredentials(bytes.NewReader(data))
	if err != nil {
		return nil, nil, fmt.Errorf("parse credentials file %s: %w", s.path, err)
	}
	return fi, c, nil
}

// get returns the current credentials, first re-reading the file if it is
// time to check and the file changed.
func (s *credentialStore) get() *credentials {
	s.maybeReload()
	return s.current.Load()
}

func (s *credentialStore) maybeReload() {
	now := s.now().UnixNano()
	last := s.lastCheck.Load()
	if now-last < int64(s.checkInterval) || !s.lastCheck.CompareAndSwap(last, now) {
		return
	}
	if !s.reloadMtx.TryLock() {
		return
	}
	defer s.reloadMtx.Unlock()

	fi, err := os.Stat(s.path)
	if err == nil && fi.ModTime().Equal(s.modTime) && fi.Size() == s.size {
		return
	}
	var c *credentials
	if err == nil {
		fi, c, err = s.read()
	}
	if err != nil {
		s.reloadOK.Set(0)
		// Warn once per distinct problem, not on every check.
		if msg := err.Error(); msg != s.lastErrMsg {
			s.lastErrMsg = msg
			level.Warn(s.logger).Log("msg", "credentials file not reloaded; the previously loaded credentials stay in force", "file", s.path, "err", err)
		}
		return
	}
	s.current.Store(c)
	s.modTime, s.size, s.lastErrMsg = fi.ModTime(), fi.Size(), ""
	s.reloadOK.Set(1)
	level.Info(s.logger).Log("msg", "credentials file reloaded", "file", s.path, "tenants", len(c.hashes))
}
