package tenant

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/middleware"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Reasons a request is rejected, the values of the reason label of
// meridian_auth_failures_total.
const (
	reasonMissingTenant      = "missing_tenant"
	reasonInvalidTenant      = "invalid_tenant"
	reasonFederatedTenant    = "federated_tenant"
	reasonTenantMismatch     = "tenant_mismatch"
	reasonMissingCredentials = "missing_credentials"
	reasonUnknownTenant      = "unknown_tenant"
	reasonWrongToken         = "wrong_token"
)

const (
	missingTenantMsg = "no tenant in the request: send the header \"X-Scope-OrgID: <tenant>\", " +
		"or HTTP basic auth with the tenant as the username (Prometheus remote_write: basic_auth: {username: <tenant>, password: <token>})"
	missingCredentialsMsg = "this server requires credentials: send HTTP basic auth with the tenant as the username and its token as the password " +
		"(Prometheus remote_write: basic_auth: {username: <tenant>, password: <token>})"
	idRulesMsg = "a tenant ID is 1 to 150 characters from a-z A-Z 0-9 ! - _ . * ' ( ), and is not \".\", \"..\", \"rules\" or \"alerts\""
)

// HTTPMiddleware reads the tenant of each request, checks it and puts it
// into the request context (user.InjectOrgID) and the X-Scope-OrgID header.
type HTTPMiddleware struct {
	cfg      Config
	logger   log.Logger
	creds    *credentialStore // nil without a credentials file.
	failures *prometheus.CounterVec
}

var _ middleware.Interface = (*HTTPMiddleware)(nil)

// NewHTTPMiddleware returns the tenant middleware. It loads the credentials
// file if one is configured.
func NewHTTPMiddleware(cfg Config, logger log.Logger, reg prometheus.Registerer) (*HTTPMiddleware, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &HTTPMiddleware{
		cfg:    cfg,
		logger: logger,
		failures: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_auth_failures_total",
			Help: "Requests rejected because their tenant was missing, invalid or not authenticated, by reason.",
		}, []string{"reason"}),
	}
	for _, r := range []string{reasonMissingTenant, reasonInvalidTenant, reasonFederatedTenant, reasonTenantMismatch, reasonMissingCredentials, reasonUnknownTenant, reasonWrongToken} {
		m.failures.WithLabelValues(r)
	}
	if cfg.CredentialsFile != "" {
		creds, err := newCredentialStore(cfg.CredentialsFile, logger, reg)
		if err != nil {
			return nil, err
		}
		m.creds = creds
	}
	return m, nil
}

// authError is a rejected request: the reason for the metric and the message
// for the client.
type authError struct {
	reason string
	msg    string
	tenant string
	err    error // Detail for the log only; never sent to the client.
}

// Wrap returns next behind the tenant check.
func (m *HTTPMiddleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenantID, aerr := m.tenant(r)
		if aerr != nil {
			m.failures.WithLabelValues(aerr.reason).Inc()
			detail := aerr.msg
			if aerr.err != nil {
				detail = aerr.err.Error()
			}
			level.Debug(m.logger).Log("msg", "request rejected", "reason", aerr.reason, "tenant", aerr.tenant, "path", r.URL.Path, "remote_addr", r.RemoteAddr, "err", detail)
			w.Header().Set("WWW-Authenticate", `Basic realm="meridian", charset="UTF-8"`)
			http.Error(w, aerr.msg, http.StatusUnauthorized)
			return
		}
		r = r.WithContext(user.InjectOrgID(r.Context(), tenantID))
		r.Header.Set(user.OrgIDHeaderName, tenantID)
		next.ServeHTTP(w, r)
	})
}

// tenant returns the authenticated tenant of r.
func (m *HTTPMiddleware) tenant(r *http.Request) (string, *authError) {
	if !m.cfg.MultitenancyEnabled {
		return AnonymousTenant, nil
	}

	headerIDs := r.Header.Values(user.OrgIDHeaderName)
	if len(headerIDs) > 1 {
		return "", &authError{reason: reasonInvalidTenant, msg: fmt.Sprintf("%d X-Scope-OrgID headers in the request: send exactly one", len(headerIDs))}
	}
	var headerID string
	if len(headerIDs) == 1 {
		headerID = headerIDs[0]
	}
	username, token, hasBasic := r.BasicAuth()

	if m.creds != nil && !hasBasic {
		return "", &authError{reason: reasonMissingCredentials, msg: missingCredentialsMsg, tenant: headerID}
	}
	if hasBasic && username == "" {
		return "", &authError{reason: reasonInvalidTenant, msg: "the basic auth username is empty: set it to your tenant ID"}
	}
	id := headerID
	if hasBasic {
		if headerID != "" && headerID != username {
			return "", &authError{
				reason: reasonTenantMismatch,
				tenant: username,
				msg:    fmt.Sprintf("the X-Scope-OrgID header names tenant %q but the basic auth username names tenant %q: send one of them, or make them the same", headerID, username),
			}
		}
		id = username
	}
	if id == "" {
		return "", &authError{reason: reasonMissingTenant, msg: missingTenantMsg}
	}
	if err := ValidateID(id); err != nil {
		if errors.Is(err, ErrFederatedID) {
			return "", &authError{reason: reasonFederatedTenant, tenant: id, msg: fmt.Sprintf("invalid tenant ID %q: %v", id, err)}
		}
		return "", &authError{reason: reasonInvalidTenant, tenant: id, msg: fmt.Sprintf("invalid tenant ID %q: %v; %s", id, err, idRulesMsg)}
	}

	if m.creds != nil {
		// Unknown tenant and wrong token get the same answer, so the
		// response does not tell which tenants exist.
		if err := m.creds.get().verify(id, token); err != nil {
			reason := reasonWrongToken
			if errors.Is(err, errUnknownTenant) {
				reason = reasonUnknownTenant
			}
			return "", &authError{
				reason: reason,
				tenant: id,
				err:    err,
				msg:    fmt.Sprintf("invalid credentials for tenant %q: check the basic auth username (the tenant) and password (the tenant's token)", id),
			}
		}
	}
	return id, nil
}
