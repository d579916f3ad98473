// Package tenant is the edge where Meridian reads the tenant of a request,
// once, and puts it into the request context for everything downstream.
//
// Over HTTP the tenant comes from the X-Scope-OrgID header or, when that header
// is absent, from the username of HTTP basic auth (the password is the
// tenant's token). Basic auth is the convention hosted Prometheus services
// use, and the only choice for Prometheus versions that cannot send custom
// headers (Debian's Prometheus 2.42, for instance).
//
// With multi-tenancy disabled (-auth.multitenancy-enabled=false) every request
// belongs to the tenant "anonymous"; an X-Scope-OrgID header, if sent, is
// ignored and overwritten.
//
// An optional credentials file (-auth.credentials-file) holds a bcrypt hash of
// each tenant's token. When it is set, every request must carry basic auth
// whose password matches its tenant's hash. HashToken makes such a hash;
// `meridian -auth.hash-token=<token>` prints one.
//
// Between components the tenant travels in gRPC metadata: see
// GRPCServerInterceptors and GRPCClientInterceptors.
package tenant

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// AnonymousTenant is the tenant of every request when multi-tenancy is disabled.
const AnonymousTenant = "anonymous"

// MaxIDLength is the longest tenant ID accepted, in bytes.
const MaxIDLength = dskittenant.MaxTenantIDLength

// ErrFederatedID is returned by ValidateID for an ID naming several tenants ("a|b").
var ErrFederatedID = errors.New("tenant ID names several tenants separated by '|'; queries across tenants are not supported, send one tenant")

// Config configures how the tenant of a request is identified.
type Config struct {
	MultitenancyEnabled bool   `yaml:"multitenancy_enabled"`
	CredentialsFile     string `yaml:"credentials_file"`
}

// RegisterFlags registers the flags of Config.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.MultitenancyEnabled, "auth.multitenancy-enabled", true, "Read the tenant of each request from the X-Scope-OrgID header or the basic-auth username. When false, every request belongs to the tenant \"anonymous\" and the header is ignored.")
	f.StringVar(&c.CredentialsFile, "auth.credentials-file", "", "YAML file with a bcrypt token hash per tenant. When set, every request must send basic auth with the tenant as username and its token as password. The file is re-read when it changes.")
}

// Validate checks that the config makes sense.
func (c *Config) Validate() error {
	if c.CredentialsFile != "" && !c.MultitenancyEnabled {
		return errors.New("-auth.credentials-file needs -auth.multitenancy-enabled=true: to protect a single-tenant setup, enable multi-tenancy and give the one tenant a token")
	}
	return nil
}

// ValidateID returns an error saying what is wrong with a tenant ID, or nil.
// A tenant ID is 1 to 150 characters from a-z A-Z 0-9 ! - _ . * ' ( ), and is
// not "." or "..". It is used in object-store paths, so '/' is never allowed,
// and the bucket's own top-level names (rules, alerts) are reserved.
func ValidateID(id string) error {
	switch {
	case id == "":
		return errors.New("tenant ID is empty")
	case strings.IndexByte(id, '|') >= 0:
		return ErrFederatedID
	case strings.IndexByte(id, '/') >= 0:
		return errors.New("tenant ID contains '/'")
	case len(id) > MaxIDLength:
		return fmt.Errorf("tenant ID is %d characters long, more than the maximum of %d", len(id), MaxIDLength)
	}
	if holds, ok := bucket.ReservedTenantIDs()[id]; ok {
		return fmt.Errorf("tenant ID %q is reserved: object storage keeps %s under that name; use another tenant ID", id, holds)
	}
	return dskittenant.ValidTenantID(id)
}
