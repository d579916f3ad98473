package tenant

import (
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestConfig(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.True(t, cfg.MultitenancyEnabled)
	require.Empty(t, cfg.CredentialsFile)
	require.NoError(t, cfg.Validate())

	require.NoError(t, fs.Parse([]string{"-auth.multitenancy-enabled=false", "-auth.credentials-file=creds.yaml"}))
	err := cfg.Validate()
	require.ErrorContains(t, err, "needs -auth.multitenancy-enabled=true")
}

func TestValidateID(t *testing.T) {
	for _, tc := range []struct {
		id      string
		wantErr string
	}{
		{id: "team-a"},
		{id: "Team_A.prod(1)!*'"},
		{id: strings.Repeat("a", 150)},
		{id: "", wantErr: "empty"},
		{id: strings.Repeat("a", 151), wantErr: "151 characters long"},
		{id: ".", wantErr: "'.' or '..'"},
		{id: "..", wantErr: "'.' or '..'"},
		{id: "../x", wantErr: "contains '/'"},
		{id: "a/b", wantErr: "contains '/'"},
		{id: "a|b", wantErr: "several tenants"},
		{id: "a b", wantErr: "unsupported character ' '"},
		{id: "a:b", wantErr: "unsupported character ':'"},
		{id: "é", wantErr: "unsupported character"},
		{id: "rules", wantErr: `tenant ID "rules" is reserved`},
		{id: "alerts", wantErr: `tenant ID "alerts" is reserved`},
		{id: "rules2"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			err := ValidateID(tc.id)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// writeCredentials writes a credentials file with a MinCost bcrypt hash of
// each tenant's token, and returns its path.
func writeCredentials(t testing.TB, path string, tokens map[string]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("tenants:\n")
	for tenant, token := range tokens {
		h, err := bcrypt.GenerateFromPassword([]byte(token), bcrypt.MinCost)
		require.NoError(t, err)
		b.WriteString("  " + tenant + ":\n    token_hash: \"" + string(h) + "\"\n")
	}
	writeFile(t, path, b.String())
	return path
}

// writeFile replaces path with content in one step, and moves its
// modification time forward so a rewrite within one clock tick is still seen
// as a change.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	var mtime time.Time
	if fi, err := os.Stat(path); err == nil {
		mtime = fi.ModTime().Add(time.Second)
	} else {
		mtime = time.Now()
	}
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Chtimes(tmp, mtime, mtime))
	require.NoError(t, os.Rename(tmp, path))
}

type request struct {
	orgIDs    []string
	basicUser string
	basicPass string
	basic     bool
}

type seen struct {
	called    bool
	ctxTenant string
	header    string
}

func serve(t testing.TB, m *HTTPMiddleware, req request) (*httptest.ResponseRecorder, seen) {
	t.Helper()
	var s seen
	h := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.called = true
		id, err := user.ExtractOrgID(r.Context())
		require.NoError(t, err)
		s.ctxTenant = id
		s.header = r.Header.Get(user.OrgIDHeaderName)
		w.WriteHeader(http.StatusNoContent)
	}))
	r := httptest.NewRequest(http.MethodPost, "/api/v1/push", nil)
	for _, id := range req.orgIDs {
		r.Header.Add(user.OrgIDHeaderName, id)
	}
	if req.basic {
		r.SetBasicAuth(req.basicUser, req.basicPass)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, s
}

func TestHTTPMiddleware(t *testing.T) {
	credsPath := writeCredentials(t, filepath.Join(t.TempDir(), "creds.yaml"), map[string]string{
		"team-a": "secret-a",
		"team-b": "secret-b",
	})

	for _, tc := range []struct {
		name       string
		cfg        Config
		req        request
		wantTenant string // Empty means the request must be rejected with 401.
		wantBody   string
		wantReason string
	}{
		{
			name:       "header",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{orgIDs: []string{"team-a"}},
			wantTenant: "team-a",
		},
		{
			name:       "basic auth username",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{basic: true, basicUser: "team-a", basicPass: "anything"},
			wantTenant: "team-a",
		},
		{
			name:       "header and basic auth agree",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{orgIDs: []string{"team-a"}, basic: true, basicUser: "team-a"},
			wantTenant: "team-a",
		},
		{
			name:       "header and basic auth disagree",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{orgIDs: []string{"team-a"}, basic: true, basicUser: "team-b"},
			wantBody:   `the X-Scope-OrgID header names tenant "team-a" but the basic auth username names tenant "team-b"`,
			wantReason: reasonTenantMismatch,
		},
		{
			name:       "no tenant",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{},
			wantBody:   missingTenantMsg,
			wantReason: reasonMissingTenant,
		},
		{
			name:       "empty header",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{orgIDs: []string{""}},
			wantBody:   `send the header "X-Scope-OrgID: <tenant>", or HTTP basic auth with the tenant as the username`,
			wantReason: reasonMissingTenant,
		},
		{
			name:       "two headers",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{orgIDs: []string{"team-a", "team-b"}},
			wantBody:   "2 X-Scope-OrgID headers in the request: send exactly one",
			wantReason: reasonInvalidTenant,
		},
		{
			name:       "empty basic auth username",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{basic: true, basicPass: "secret-a"},
			wantBody:   "the basic auth username is empty",
			wantReason: reasonInvalidTenant,
		},
		{
			name:       "path traversal",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{orgIDs: []string{"../x"}},
			wantBody:   `invalid tenant ID "../x": tenant ID contains '/'; a tenant ID is 1 to 150 characters`,
			wantReason: reasonInvalidTenant,
		},
		{
			name:       "slash",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{orgIDs: []string{"a/b"}},
			wantBody:   `invalid tenant ID "a/b": tenant ID contains '/'`,
			wantReason: reasonInvalidTenant,
		},
		{
			name:       "dot dot",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{orgIDs: []string{".."}},
			wantBody:   `invalid tenant ID "..": tenant ID is '.' or '..'`,
			wantReason: reasonInvalidTenant,
		},
		{
			name:       "too long",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{orgIDs: []string{strings.Repeat("x", 151)}},
			wantBody:   "tenant ID is 151 characters long, more than the maximum of 150",
			wantReason: reasonInvalidTenant,
		},
		{
			name:       "invalid basic auth username",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{basic: true, basicUser: "a b"},
			wantBody:   `invalid tenant ID "a b": tenant ID 'a b' contains unsupported character ' '`,
			wantReason: reasonInvalidTenant,
		},
		{
			name:       "federated",
			cfg:        Config{MultitenancyEnabled: true},
			req:        request{orgIDs: []string{"a|b"}},
			wantBody:   `invalid tenant ID "a|b": tenant ID names several tenants separated by '|'; queries across tenants are not supported`,
			wantReason: reasonFederatedTenant,
		},
		{
			name:       "anonymous without header",
			cfg:        Config{MultitenancyEnabled: false},
			req:        request{},
			wantTenant: AnonymousTenant,
		},
		{
			name:       "anonymous ignores header",
			cfg:        Config{MultitenancyEnabled: false},
			req:        request{orgIDs: []string{"team-a"}, basic: true, basicUser: "team-b"},
			wantTenant: AnonymousTenant,
		},
		{
			name:       "anonymous ignores invalid header",
			cfg:        Config{MultitenancyEnabled: false},
			req:        request{orgIDs: []string{"../x"}},
			wantTenant: AnonymousTenant,
		},
		{
			name:       "credentials good token",
			cfg:        Config{MultitenancyEnabled: true, CredentialsFile: credsPath},
			req:        request{basic: true, basicUser: "team-a", basicPass: "secret-a"},
			wantTenant: "team-a",
		},
		{
			name:       "credentials good token with matching header",
			cfg:        Config{MultitenancyEnabled: true, CredentialsFile: credsPath},
			req:        request{orgIDs: []string{"team-b"}, basic: true, basicUser: "team-b", basicPass: "secret-b"},
			wantTenant: "team-b",
		},
		{
			name:       "credentials header does not match basic auth",
			cfg:        Config{MultitenancyEnabled: true, CredentialsFile: credsPath},
			req:        request{orgIDs: []string{"team-b"}, basic: true, basicUser: "team-a", basicPass: "secret-a"},
			wantBody:   `the X-Scope-OrgID header names tenant "team-b" but the basic auth username names tenant "team-a"`,
			wantReason: reasonTenantMismatch,
		},
		{
			name:       "credentials header alone is not enough",
			cfg:        Config{MultitenancyEnabled: true, CredentialsFile: credsPath},
			req:        request{orgIDs: []string{"team-a"}},
			wantBody:   missingCredentialsMsg,
			wantReason: reasonMissingCredentials,
		},
		{
			name:       "credentials wrong token",
			cfg:        Config{MultitenancyEnabled: true, CredentialsFile: credsPath},
			req:        request{basic: true, basicUser: "team-a", basicPass: "secret-b"},
			wantBody:   `invalid credentials for tenant "team-a": check the basic auth username (the tenant) and password (the tenant's token)`,
			wantReason: reasonWrongToken,
		},
		{
			name:       "credentials empty token",
			cfg:        Config{MultitenancyEnabled: true, CredentialsFile: credsPath},
			req:        request{basic: true, basicUser: "team-a"},
			wantBody:   `invalid credentials for tenant "team-a"`,
			wantReason: reasonWrongToken,
		},
		{
			name:       "credentials unknown tenant",
			cfg:        Config{MultitenancyEnabled: true, CredentialsFile: credsPath},
			req:        request{basic: true, basicUser: "team-c", basicPass: "secret-a"},
			wantBody:   `invalid credentials for tenant "team-c"`,
			wantReason: reasonUnknownTenant,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			m, err := NewHTTPMiddleware(tc.cfg, log.NewNopLogger(), reg)
			require.NoError(t, err)

			w, s := serve(t, m, tc.req)

			if tc.wantTenant != "" {
				require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
				require.True(t, s.called)
				require.Equal(t, tc.wantTenant, s.ctxTenant)
				require.Equal(t, tc.wantTenant, s.header)
				require.Equal(t, 7, testutil.CollectAndCount(reg, "meridian_auth_failures_total"), "every reason is exported from the start")
				require.Zero(t, totalFailures(t, m))
				return
			}
			require.Equal(t, http.StatusUnauthorized, w.Code)
			require.False(t, s.called, "rejected request reached the handler")
			require.Contains(t, w.Body.String(), tc.wantBody)
			require.NotEmpty(t, w.Header().Get("WWW-Authenticate"))
			require.Equal(t, 1.0, testutil.ToFloat64(m.failures.WithLabelValues(tc.wantReason)))
			require.Equal(t, 1.0, totalFailures(t, m))
		})
	}
}

func totalFailures(t testing.TB, m *HTTPMiddleware) float64 {
	t.Helper()
	var sum float64
	for _, r := range []string{reasonMissingTenant, reasonInvalidTenant, reasonFederatedTenant, reasonTenantMismatch, reasonMissingCredentials, reasonUnknownTenant, reasonWrongToken} {
		sum += testutil.ToFloat64(m.failures.WithLabelValues(r))
	}
	return sum
}

func TestHTTPMiddlewareBadCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		wantErr string
	}{
		{name: "unknown field", content: "tenants:\n  team-a:\n    token: x\n", wantErr: "field token not found"},
		{name: "not a bcrypt hash", content: "tenants:\n  team-a:\n    token_hash: plain\n", wantErr: `tenant "team-a": token_hash is not a bcrypt hash`},
		{name: "invalid tenant", content: "tenants:\n  a/b:\n    token_hash: plain\n", wantErr: `tenant "a/b": tenant ID contains '/'`},
		{name: "missing file", wantErr: "no such file"},
		{name: "empty file", content: "\n", wantErr: "lists no tenants"},
		{name: "no tenants", content: "tenants: {}\n", wantErr: "lists no tenants"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if tc.content != "" {
				writeFile(t, path, tc.content)
			}
			_, err := NewHTTPMiddleware(Config{MultitenancyEnabled: true, CredentialsFile: path}, log.NewNopLogger(), prometheus.NewPedanticRegistry())
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestHTTPMiddlewareCredentialsReload(t *testing.T) {
	path := writeCredentials(t, filepath.Join(t.TempDir(), "creds.yaml"), map[string]string{"team-a": "old"})
	reg := prometheus.NewPedanticRegistry()
	m, err := NewHTTPMiddleware(Config{MultitenancyEnabled: true, CredentialsFile: path}, log.NewNopLogger(), reg)
	require.NoError(t, err)
	now := time.Unix(1000, 0)
	m.creds.now = func() time.Time { return now }
	m.creds.lastCheck.Store(now.UnixNano())

	status := func(tenant, token string) int {
		w, _ := serve(t, m, request{basic: true, basicUser: tenant, basicPass: token})
		return w.Code
	}
	require.Equal(t, http.StatusNoContent, status("team-a", "old"))

	// A new token for team-a and a new tenant: not seen until the check interval passes.
	writeCredentials(t, path, map[string]string{"team-a": "new", "team-b": "b"})
	require.Equal(t, http.StatusNoContent, status("team-a", "old"))
	require.Equal(t, http.StatusUnauthorized, status("team-b", "b"))

	now = now.Add(defaultCredentialsCheckInterval)
	require.Equal(t, http.StatusUnauthorized, status("team-a", "old"))
	require.Equal(t, http.StatusNoContent, status("team-a", "new"))
	require.Equal(t, http.StatusNoContent, status("team-b", "b"))
	require.Equal(t, 1.0, testutil.ToFloat64(m.creds.reloadOK))

	// A broken file keeps the previous credentials in force.
	writeFile(t, path, "tenants: [")
	now = now.Add(defaultCredentialsCheckInterval)
	require.Equal(t, http.StatusNoContent, status("team-a", "new"))
	require.Equal(t, 0.0, testutil.ToFloat64(m.creds.reloadOK))

	// Removing the file does too.
	require.NoError(t, os.Remove(path))
	now = now.Add(defaultCredentialsCheckInterval)
	require.Equal(t, http.StatusNoContent, status("team-b", "b"))
	require.Equal(t, 0.0, testutil.ToFloat64(m.creds.reloadOK))

	// A fixed file is picked up again.
	writeCredentials(t, path, map[string]string{"team-c": "c"})
	now = now.Add(defaultCredentialsCheckInterval)
	require.Equal(t, http.StatusNoContent, status("team-c", "c"))
	require.Equal(t, http.StatusUnauthorized, status("team-a", "new"))
	require.Equal(t, 1.0, testutil.ToFloat64(m.creds.reloadOK))
}

func TestHashToken(t *testing.T) {
	h, err := HashToken("s3cret")
	require.NoError(t, err)
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret")))
	require.Error(t, bcrypt.CompareHashAndPassword([]byte(h), []byte("other")))

	path := filepath.Join(t.TempDir(), "creds.yaml")
	writeFile(t, path, "tenants:\n  team-a:\n    token_hash: \""+h+"\"\n")
	m, err := NewHTTPMiddleware(Config{MultitenancyEnabled: true, CredentialsFile: path}, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	require.NoError(t, err)
	w, s := serve(t, m, request{basic: true, basicUser: "team-a", basicPass: "s3cret"})
	require.Equal(t, http.StatusNoContent, w.Code)
	require.Equal(t, "team-a", s.ctxTenant)

	_, err = HashToken("")
	require.ErrorContains(t, err, "token is empty")
}

func TestGRPCServerInterceptors(t *testing.T) {
	unary, stream := GRPCServerInterceptors("/test.Service/NoTenant")
	for _, tc := range []struct {
		name       string
		method     string
		md         metadata.MD
		wantTenant string
		wantCode   codes.Code
	}{
		{name: "tenant", method: "/test.Service/Push", md: metadata.Pairs("x-scope-orgid", "team-a"), wantTenant: "team-a"},
		{name: "no tenant", method: "/test.Service/Push", wantCode: codes.Unauthenticated},
		{name: "two tenants", method: "/test.Service/Push", md: metadata.Pairs("x-scope-orgid", "a", "x-scope-orgid", "b"), wantCode: codes.Unauthenticated},
		{name: "invalid tenant", method: "/test.Service/Push", md: metadata.Pairs("x-scope-orgid", "../x"), wantCode: codes.Unauthenticated},
		{name: "health check needs no tenant", method: "/grpc.health.v1.Health/Check"},
		{name: "listed method needs no tenant", method: "/test.Service/NoTenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.md != nil {
				ctx = metadata.NewIncomingContext(ctx, tc.md)
			}
			check := func(err error, called bool, got string) {
				if tc.wantCode != codes.OK {
					require.Equal(t, tc.wantCode, status.Code(err), err)
					require.False(t, called)
					return
				}
				require.NoError(t, err)
				require.True(t, called)
				require.Equal(t, tc.wantTenant, got)
			}

			var called bool
			var got string
			_, err := unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: tc.method}, func(ctx context.Context, _ any) (any, error) {
				called = true
				got, _ = user.ExtractOrgID(ctx)
				return nil, nil
			})
			check(err, called, got)

			called, got = false, ""
			err = stream(nil, fakeServerStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: tc.method}, func(_ any, ss grpc.ServerStream) error {
				called = true
				got, _ = user.ExtractOrgID(ss.Context())
				return nil
			})
			check(err, called, got)
		})
	}
}

type fakeServerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f fakeServerStream) Context() context.Context { return f.ctx }

func TestGRPCClientInterceptors(t *testing.T) {
	unary, stream := GRPCClientInterceptors()
	ctx := user.InjectOrgID(context.Background(), "team-a")

	var sent []string
	err := unary(ctx, "/test.Service/Push", nil, nil, nil, func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		sent = md.Get("x-scope-orgid")
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"team-a"}, sent)

	sent = nil
	_, err = stream(ctx, &grpc.StreamDesc{}, nil, "/test.Service/Stream", func(ctx context.Context, _ *grpc.StreamDesc, _ *grpc.ClientConn, _ string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
		md, _ := metadata.FromOutgoingContext(ctx)
		sent = md.Get("x-scope-orgid")
		return nil, nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"team-a"}, sent)

	err = unary(context.Background(), "/test.Service/Push", nil, nil, nil, func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		t.Fatal("call without a tenant was sent")
		return nil
	})
	require.ErrorIs(t, err, user.ErrNoOrgID)
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestHTTPMiddlewareConcurrentReload(t *testing.T) {
	path := writeCredentials(t, filepath.Join(t.TempDir(), "creds.yaml"), map[string]string{"team-a": "a"})
	m, err := NewHTTPMiddleware(Config{MultitenancyEnabled: true, CredentialsFile: path}, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	require.NoError(t, err)
	m.creds.checkInterval = 0

	var wg sync.WaitGroup
	codes := make(chan int, 8*50)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				w, _ := serve(t, m, request{basic: true, basicUser: "team-a", basicPass: "a"})
				codes <- w.Code
			}
		}()
	}
	for range 5 {
		writeCredentials(t, path, map[string]string{"team-a": "a", "team-b": "b"})
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		require.Equal(t, http.StatusNoContent, c)
	}
	w, _ := serve(t, m, request{basic: true, basicUser: "team-b", basicPass: "b"})
	require.Equal(t, http.StatusNoContent, w.Code)
}
