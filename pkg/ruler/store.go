package ruler

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/thanos-io/objstore"
	"gopkg.in/yaml.v3"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// maxGroupObjectSize bounds a stored rule group: a larger object is not one
// our API wrote.
const maxGroupObjectSize = 16 << 20

// Store keeps each tenant's rule groups in object storage, one object per
// group in the Prometheus rule-file format of one group (the bucket layout
// is pkg/storage/bucket's).
type Store struct {
	bkt objstore.Bucket
}

// NewStore returns the rule store over bkt, the whole bucket.
func NewStore(bkt objstore.Bucket) *Store { return &Store{bkt: bkt} }

// Tenants lists the tenants that have rule groups.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	return bucket.ListRuleTenants(ctx, s.bkt)
}

// List lists the tenant's groups, of one namespace when it is not empty.
func (s *Store) List(ctx context.Context, tenant, namespace string) ([]bucket.RuleGroupKey, error) {
	return bucket.ListRuleGroups(ctx, s.bkt, tenant, namespace)
}

// Get reads one group; the error is objstore's not-found error (see
// IsNotFound) when there is none.
func (s *Store) Get(ctx context.Context, tenant, namespace, group string) (rulefmt.RuleGroup, error) {
	name := bucket.RuleGroupName(tenant, namespace, group)
	r, err := s.bkt.Get(ctx, name)
	if err != nil {
		return rulefmt.RuleGroup{}, fmt.Errorf("read rule group %q/%q of tenant %s: %w", namespace, group, tenant, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxGroupObjectSize+1))
	if err != nil {
		return rulefmt.RuleGroup{}, fmt.Errorf("read rule group %q/%q of tenant %s: %w", namespace, group, tenant, err)
	}
	var g rulefmt.RuleGroup
	if len(b) > maxGroupObjectSize {
		return g, fmt.Errorf("rule group object %s is larger than %d bytes", name, maxGroupObjectSize)
	}
	if err := yaml.Unmarshal(b, &g); err != nil {
		return g, fmt.Errorf("decode rule group object %s: %w", name, err)
	}
	return g, nil
}

// IsNotFound tells whether err says that an object does not exist.
func (s *Store) IsNotFound(err error) bool { return s.bkt.IsObjNotFoundErr(err) }

// Put writes (or replaces) one group of the namespace.
func (s *Store) Put(ctx context.Context, tenant, namespace string, g rulefmt.RuleGroup) error {
	b, err := yaml.Marshal(g)
	if err != nil {
		return fmt.Errorf("encode rule group %q: %w", g.Name, err)
	}
	if err := s.bkt.Upload(ctx, bucket.RuleGroupName(tenant, namespace, g.Name), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("write rule group %q/%q of tenant %s: %w", namespace, g.Name, tenant, err)
	}
	return nil
}

// Delete removes one group.
func (s *Store) Delete(ctx context.Context, tenant, namespace, group string) error {
	if err := s.bkt.Delete(ctx, bucket.RuleGroupName(tenant, namespace, group)); err != nil {
		return fmt.Errorf("delete rule group %q/%q of tenant %s: %w", namespace, group, tenant, err)
	}
	return nil
}
