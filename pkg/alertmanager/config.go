// Package alertmanager is the multi-tenant Alertmanager: one Prometheus
// Alertmanager (its dispatcher, inhibitor, silences, notification log and v2
// API) per tenant in one process, configured per tenant through the Cortex
// configuration API (/api/v1/alerts) and keeping its configurations and state
// in object storage (pkg/storage/bucket says where).
//
// Why one instance per tenant rather than one shared Alertmanager with a
// tenant label: every part of Alertmanager (routing tree, templates,
// receivers, silences, inhibition) is configured per tenant, and keeping them
// in separate instances makes isolation structural: tenant B's request
// reaches only tenant B's instance, which holds nothing of tenant A.
//
// State survives restarts because silences and the notification log are
// snapshotted to object storage every -alertmanager.persist-interval and
// when the process stops, and read back when a tenant's instance starts.
// Alerts themselves are not persisted: the ruler (or Prometheus) re-sends
// firing alerts on every evaluation, as with Prometheus' Alertmanager.
package alertmanager

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"
)

// Config configures the Alertmanager.
type Config struct {
	// FallbackConfigFile is the configuration of tenants that uploaded
	// none; empty means the built-in one (a receiver that drops everything).
	FallbackConfigFile string        `yaml:"fallback_config_file"`
	PollInterval       time.Duration `yaml:"poll_interval" category:"advanced"`
	PersistInterval    time.Duration `yaml:"persist_interval" category:"advanced"`
	Retention          time.Duration `yaml:"retention" category:"advanced"`
	ExternalURL        string        `yaml:"external_url"`
}

// RegisterFlags registers the Alertmanager's flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.FallbackConfigFile, "alertmanager.configs.fallback", "", "Alertmanager configuration file (the Alertmanager's own YAML) for tenants that uploaded none. Empty means a built-in one whose only receiver drops every alert.")
	f.DurationVar(&c.PollInterval, "alertmanager.configs.poll-interval", 15*time.Second, "How often to read the tenants' configurations from object storage, to pick up uploads and deletions made through other processes.")
	f.DurationVar(&c.PersistInterval, "alertmanager.persist-interval", 15*time.Minute, "How often each tenant's silences and notification log are written to object storage (they are also written when the process stops). A crash loses at most this much of them.")
	f.DurationVar(&c.Retention, "alertmanager.storage.retention", 120*time.Hour, "How long expired silences and notification log entries are kept.")
	f.StringVar(&c.ExternalURL, "alertmanager.web.external-url", "http://localhost:8080/alertmanager", "URL under which the Alertmanager is reached by its users; notifications link to it (template .ExternalURL).")
}

// Validate checks that the config makes sense.
func (c *Config) Validate() error {
	if c.PollInterval <= 0 || c.PersistInterval <= 0 {
		return errors.New("-alertmanager.configs.poll-interval and -alertmanager.persist-interval must be positive")
	}
	if c.Retention <= 0 {
		return errors.New("-alertmanager.storage.retention must be positive")
	}
	if _, err := url.Parse(c.ExternalURL); err != nil {
		return fmt.Errorf("-alertmanager.web.external-url: %w", err)
	}
	return nil
}
