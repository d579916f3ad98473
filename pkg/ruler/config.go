package ruler

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// Config configures the ruler. Per-tenant limits (rule groups, rules per
// group, minimum interval, query timeout) live in pkg/limits.
type Config struct {
	// EvaluationInterval is the interval of groups that do not set one.
	EvaluationInterval time.Duration `yaml:"evaluation_interval"`
	// PollInterval is how often the ruler re-reads the rule store and the
	// ring, besides re-syncing on every change it sees.
	PollInterval time.Duration `yaml:"poll_interval"`
	// AlertmanagerURL lists the Alertmanagers alerts are sent to.
	AlertmanagerURL flagext.StringSliceCSV `yaml:"alertmanager_url"`
	// NotificationTimeout bounds one POST to an Alertmanager.
	NotificationTimeout time.Duration `yaml:"notification_timeout" category:"advanced"`
	// NotificationQueueCapacity bounds the alerts waiting to be sent.
	NotificationQueueCapacity int `yaml:"notification_queue_capacity" category:"advanced"`
	// ExternalURL is the URL alerts link to (generatorURL, $externalURL).
	ExternalURL string `yaml:"external_url"`
	// ForGracePeriod, OutageTolerance and ResendDelay are Prometheus'
	// rules.alert.* settings.
	ForGracePeriod  time.Duration `yaml:"for_grace_period" category:"advanced"`
	OutageTolerance time.Duration `yaml:"for_outage_tolerance" category:"advanced"`
	ResendDelay     time.Duration `yaml:"resend_delay" category:"advanced"`

	Ring RingConfig `yaml:"ring"`
}

// RegisterFlags registers the flags under -ruler.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.EvaluationInterval, "ruler.evaluation-interval", time.Minute, "Evaluation interval of rule groups that do not set their own interval.")
	f.DurationVar(&c.PollInterval, "ruler.poll-interval", time.Minute, "How often the ruler re-reads every tenant's rule groups from object storage and re-checks which groups it owns. Changes made through this ruler's API and ring changes apply at once.")
	f.Var(&c.AlertmanagerURL, "ruler.alertmanager-url", "Comma-separated URLs of Alertmanagers to send alerts to (POST <url>/api/v2/alerts with the header X-Scope-OrgID: <tenant>). Empty: the built-in Alertmanager of this process when it runs the alertmanager target, else no notifications.")
	f.DurationVar(&c.NotificationTimeout, "ruler.notification-timeout", 10*time.Second, "Timeout of one request sending alerts to an Alertmanager.")
	f.IntVar(&c.NotificationQueueCapacity, "ruler.notification-queue-capacity", 10000, "Most alerts waiting to be sent to the Alertmanagers; older ones are dropped beyond it (meridian_ruler_notifications_dropped_total).")
	f.StringVar(&c.ExternalURL, "ruler.external-url", "", "URL the alerts link to as their generatorURL, and $externalURL in templates (typically Grafana's).")
	f.DurationVar(&c.ForGracePeriod, "ruler.for-grace-period", 10*time.Minute, "Minimum duration between alert and restored 'for' state. This is maintained only for alerts with configured 'for' time greater than the grace period.")
	f.DurationVar(&c.OutageTolerance, "ruler.for-outage-tolerance", time.Hour, "Longest outage of the ruler after which the 'for' state of alerts is still restored (from ALERTS_FOR_STATE).")
	f.DurationVar(&c.ResendDelay, "ruler.resend-delay", time.Minute, "Minimum time between two sends of the same firing alert to the Alertmanagers.")
	c.Ring.RegisterFlags(f)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.EvaluationInterval <= 0 {
		return fmt.Errorf("-ruler.evaluation-interval must be positive, got %s", c.EvaluationInterval)
	}
	if c.PollInterval <= 0 {
		return fmt.Errorf("-ruler.poll-interval must be positive, got %s", c.PollInterval)
	}
	for _, u := range c.AlertmanagerURL {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("-ruler.alertmanager-url: %q is not an http(s) URL with a host", u)
		}
	}
	if c.ExternalURL != "" {
		if _, err := url.Parse(c.ExternalURL); err != nil {
			return fmt.Errorf("-ruler.external-url: %w", err)
		}
	}
	if c.NotificationTimeout <= 0 || c.NotificationQueueCapacity <= 0 {
		return errors.New("-ruler.notification-timeout and -ruler.notification-queue-capacity must be positive")
	}
	if c.ForGracePeriod < 0 || c.OutageTolerance < 0 || c.ResendDelay < 0 {
		return errors.New("-ruler.for-grace-period, -ruler.for-outage-tolerance and -ruler.resend-delay must not be negative")
	}
	return nil
}

// alertmanagerURLs returns the configured URLs without a trailing slash.
func (c *Config) alertmanagerURLs() []string {
	out := make([]string, 0, len(c.AlertmanagerURL))
	for _, u := range c.AlertmanagerURL {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, strings.TrimSuffix(u, "/"))
		}
	}
	return out
}

// RingKey is the key of the ruler ring in the KV store.
const RingKey = "ruler"

const ringName = "ruler"

// RingConfig configures the ruler ring, which shards rule groups across
// rulers: each group is evaluated by exactly one healthy ruler.
type RingConfig struct {
	ringutil.Config `yaml:",inline"`
}

// RegisterFlags registers the flags under -ruler.ring.
func (c *RingConfig) RegisterFlags(f *flag.FlagSet) {
	c.Config.RegisterFlagsWithPrefix(f, "ruler.ring.", ringName, 128)
	f.Lookup("ruler.ring.heartbeat-timeout").Usage = "How long after its last heartbeat a ruler stops owning rule groups: the groups of a ruler that died move to the others after this."
}

// NewRing makes this process a member of the ruler ring. The ruler starts
// and stops it.
func NewRing(cfg RingConfig, kvCfg kv.Config, logger log.Logger, reg prometheus.Registerer) (*ringutil.Ring, error) {
	return ringutil.NewRing(ringName, RingKey, cfg.Config, kvCfg, ringutil.Options{Join: true}, logger, reg)
}
