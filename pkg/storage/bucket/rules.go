package bucket

import (
	"context"
	"encoding/base64"
	"fmt"
	"path"
	"strings"

	"github.com/thanos-io/objstore"
)

// The ruler keeps each tenant's rule groups under one reserved top-level
// directory, one object per group (docs/ruler.md):
//
//	rules/<tenant>/<base64url(namespace)>/<base64url(group)>
//
// Namespace and group names are any UTF-8 a user chose (Grafana uses
// folder names with spaces and slashes); URL-safe base64 keeps each one a
// single path element that every object store accepts.
const rulesDir = "rules"

var ruleNameEncoding = base64.RawURLEncoding

// RulesPrefix is the prefix of every tenant's rule groups, ending in "/".
func RulesPrefix() string { return rulesDir + objstore.DirDelim }

// RulesTenantPrefix is the prefix of the tenant's rule groups, ending in "/".
func RulesTenantPrefix(tenant string) string {
	return path.Join(rulesDir, tenant) + objstore.DirDelim
}

// RuleNamespacePrefix is the prefix of the groups of one namespace of the
// tenant, ending in "/".
func RuleNamespacePrefix(tenant, namespace string) string {
	return path.Join(rulesDir, tenant, ruleNameEncoding.EncodeToString([]byte(namespace))) + objstore.DirDelim
}

// RuleGroupName is the object holding one rule group of the tenant.
func RuleGroupName(tenant, namespace, group string) string {
	return RuleNamespacePrefix(tenant, namespace) + ruleNameEncoding.EncodeToString([]byte(group))
}

// RuleGroupKey names one rule group of a tenant.
type RuleGroupKey struct {
	Namespace, Group string
}

// parseRuleGroupName is the inverse of RuleGroupName within the tenant's
// prefix: rest is "<namespace>/<group>", both encoded.
func parseRuleGroupName(rest string) (RuleGroupKey, bool) {
	ns, group, ok := strings.Cut(rest, objstore.DirDelim)
	if !ok || strings.Contains(group, objstore.DirDelim) {
		return RuleGroupKey{}, false
	}
	n, err1 := ruleNameEncoding.DecodeString(ns)
	g, err2 := ruleNameEncoding.DecodeString(group)
	if err1 != nil || err2 != nil {
		return RuleGroupKey{}, false
	}
	return RuleGroupKey{Namespace: string(n), Group: string(g)}, true
}

// ListRuleTenants returns the tenants that have rule groups.
func ListRuleTenants(ctx context.Context, bkt objstore.BucketReader) ([]string, error) {
	var tenants []string
	err := bkt.Iter(ctx, RulesPrefix(), func(name string) error {
		t, ok := strings.CutSuffix(strings.TrimPrefix(name, RulesPrefix()), objstore.DirDelim)
		if ok && t != "" && t != "." && t != ".." {
			tenants = append(tenants, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the tenants with rule groups in object storage: %w", err)
	}
	return tenants, nil
}

// ListRuleGroups lists the tenant's rule groups, in one recursive listing
// of its prefix; namespace, when not empty, restricts it to one namespace.
func ListRuleGroups(ctx context.Context, bkt objstore.BucketReader, tenant, namespace string) ([]RuleGroupKey, error) {
	prefix := RulesTenantPrefix(tenant)
	dir := prefix
	if namespace != "" {
		dir = RuleNamespacePrefix(tenant, namespace)
	}
	var keys []RuleGroupKey
	err := bkt.Iter(ctx, dir, func(name string) error {
		if k, ok := parseRuleGroupName(strings.TrimPrefix(name, prefix)); ok {
			keys = append(keys, k)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return nil, fmt.Errorf("list the rule groups of tenant %s: %w", tenant, err)
	}
	return keys, nil
}
