package bucket

import (
	"context"
	"fmt"
	"path"
	"strings"

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
// configuration, with one recursive listing of alerts/.
func ListAlertmanagerConfigs(ctx context.Context, bkt objstore.BucketReader) ([]string, error) {
	var tenants []string
	prefix := alertsDir + objstore.DirDelim
	err := bkt.Iter(ctx, prefix, func(name string) error {
		tenant, file, ok := strings.Cut(strings.TrimPrefix(name, prefix), objstore.DirDelim)
		if ok && file == alertmanagerConfigFilename && tenant != "" && tenant != "." && tenant != ".." {
			tenants = append(tenants, tenant)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return nil, fmt.Errorf("list Alertmanager configurations: %w", err)
	}
	return tenants, nil
}
