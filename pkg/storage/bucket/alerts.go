package bucket

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/thanos-io/objstore"
)

// The Alertmanager's objects live under one top-level directory, beside the
// tenants' block directories:
//
//	alerts/<tenant>/
//	├── config.yaml   the tenant's uploaded configuration (the body of POST /api/v1/alerts)
//	├── silences      snapshot of the silences (Alertmanager's silence snapshot format)
//	└── nflog         snapshot of the notification log (Alertmanager's nflog snapshot format)
//
// The directory name is reserved: ValidTenant refuses it, so no listing of
// tenants takes it for a tenant's blocks.
const (
	alertsDir                  = "alerts"
	alertmanagerConfigFilename = "config.yaml"
	alertmanagerSilencesFile   = "silences"
	alertmanagerNflogFile      = "nflog"
)

// AlertmanagerConfigName is the tenant's Alertmanager configuration.
func AlertmanagerConfigName(tenant string) string {
	return path.Join(alertsDir, tenant, alertmanagerConfigFilename)
}

// AlertmanagerSilencesName is the snapshot of the tenant's silences.
func AlertmanagerSilencesName(tenant string) string {
	return path.Join(alertsDir, tenant, alertmanagerSilencesFile)
}

// AlertmanagerNotificationLogName is the snapshot of the tenant's
// notification log.
func AlertmanagerNotificationLogName(tenant string) string {
	return path.Join(alertsDir, tenant, alertmanagerNflogFile)
}

// ListAlertmanagerConfigs returns the tenants that uploaded an Alertmanager
// configuration, with one recursive listing of alerts/, and when each was
// last written (zero when the bucket does not report it).
func ListAlertmanagerConfigs(ctx context.Context, bkt objstore.BucketReader) (map[string]time.Time, error) {
	tenants := map[string]time.Time{}
	prefix := alertsDir + objstore.DirDelim
	opts := []objstore.IterOption{objstore.WithRecursiveIter()}
	if slices.Contains(bkt.SupportedIterOptions(), objstore.UpdatedAt) {
		opts = append(opts, objstore.WithUpdatedAt())
	}
	err := bkt.IterWithAttributes(ctx, prefix, func(attrs objstore.IterObjectAttributes) error {
		tenant, file, ok := strings.Cut(strings.TrimPrefix(attrs.Name, prefix), objstore.DirDelim)
		if ok && file == alertmanagerConfigFilename && tenant != "" && tenant != "." && tenant != ".." {
			modified, _ := attrs.LastModified()
			tenants[tenant] = modified
		}
		return nil
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("list Alertmanager configurations in object storage: %w", err)
	}
	return tenants, nil
}
