package ringutil

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/netutil"
)

// Config is this process' membership of one ring. Components embed it
// inline under their own YAML key and register its flags under their own
// prefix, so every ring has the same settings with the same meaning.
type Config struct {
	HeartbeatPeriod  time.Duration `yaml:"heartbeat_period" category:"advanced"`
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout" category:"advanced"`
	NumTokens        int           `yaml:"num_tokens" category:"advanced"`
	InstanceID       string        `yaml:"instance_id" category:"advanced"`
	// InstanceAddr empty means the address derived from the ingester's
	// (see meridian.Config.ApplyDerivedDefaults), else the first private
	// address of the network interfaces.
	InstanceAddr string `yaml:"instance_addr" category:"advanced"`
	// InstancePort 0 means the gRPC listen port.
	InstancePort int `yaml:"instance_port" category:"advanced"`
}

// RegisterFlagsWithPrefix registers the flags as <prefix>heartbeat-period
// and so on. component names the members in the help ("compactor");
// numTokens is the default token count.
func (c *Config) RegisterFlagsWithPrefix(f *flag.FlagSet, prefix, component string, numTokens int) {
	hostname, _ := os.Hostname()
	f.DurationVar(&c.HeartbeatPeriod, prefix+"heartbeat-period", 15*time.Second, fmt.Sprintf("How often this %s updates its heartbeat in the %s ring.", component, component))
	f.DurationVar(&c.HeartbeatTimeout, prefix+"heartbeat-timeout", time.Minute, fmt.Sprintf("How long after its last heartbeat a %s counts as unhealthy in the %s ring. Members unhealthy for 10 timeouts are removed from the ring.", component, component))
	f.IntVar(&c.NumTokens, prefix+"num-tokens", numTokens, fmt.Sprintf("Tokens this %s owns in the %s ring.", component, component))
	f.StringVar(&c.InstanceID, prefix+"instance-id", hostname, fmt.Sprintf("ID of this %s in the %s ring; unique in the cluster.", component, component))
	f.StringVar(&c.InstanceAddr, prefix+"instance-addr", "", fmt.Sprintf("Address this %s advertises in the %s ring. Empty means the ingester's address setting, else the first private address of the network interfaces.", component, component))
	f.IntVar(&c.InstancePort, prefix+"instance-port", 0, fmt.Sprintf("Port this %s advertises in the %s ring. 0 means the gRPC listen port.", component, component))
}

// Validate checks the configuration. Callers wrap the error with the
// ring's name.
func (c *Config) Validate() error {
	if c.HeartbeatPeriod <= 0 {
		return fmt.Errorf("heartbeat_period must be positive, got %s", c.HeartbeatPeriod)
	}
	if c.HeartbeatTimeout <= c.HeartbeatPeriod {
		return fmt.Errorf("heartbeat_timeout (%s) must be longer than heartbeat_period (%s)", c.HeartbeatTimeout, c.HeartbeatPeriod)
	}
	if c.NumTokens < 1 {
		return fmt.Errorf("num_tokens must be positive, got %d", c.NumTokens)
	}
	if c.InstanceID == "" {
		return errors.New("instance_id must not be empty")
	}
	if c.InstancePort < 0 || c.InstancePort > 65535 {
		return fmt.Errorf("instance_port must be a port number, got %d", c.InstancePort)
	}
	return nil
}

// LifecycleConfig is what a member that holds data needs beyond Config:
// the ingester ring's. Such a member joins in steps (PENDING, then JOINING
// while its tokens are observed, then ACTIVE), can keep its tokens across
// restarts, declares a zone, and may stay in the ring while it restarts.
// Members run without one register ACTIVE at once and leave when stopped.
type LifecycleConfig struct {
	Zone           string `yaml:"availability_zone"`
	TokensFilePath string `yaml:"tokens_file_path"`
	// JoinAfter is how long a new member stays PENDING, without tokens,
	// before it picks them.
	JoinAfter time.Duration `yaml:"join_after" category:"advanced"`
	// ObservePeriod > 0 keeps a member JOINING for this long after it
	// picked its tokens, and again until none of them was taken by another
	// member picking at the same time (gossip can only tell after a while).
	ObservePeriod time.Duration `yaml:"observe_period" category:"advanced"`
	// MinReadyDuration is how long a member is ACTIVE before it reports
	// ready, so rollouts give the other processes time to see it.
	MinReadyDuration time.Duration `yaml:"min_ready_duration" category:"advanced"`
	// FinalSleep is a pause at the end of stopping, before leaving the ring,
	// so the last metrics get scraped.
	FinalSleep           time.Duration `yaml:"final_sleep" category:"advanced"`
	UnregisterOnShutdown bool          `yaml:"unregister_on_shutdown" category:"advanced"`
	// InterfaceNames are searched, in order, for the address to advertise
	// when Config.InstanceAddr is empty.
	InterfaceNames []string `yaml:"interface_names" doc:"default=[<private network interfaces>]"`
	EnableInet6    bool     `yaml:"enable_inet6" category:"advanced"`
}

// RegisterFlagsWithPrefix registers the flags as <prefix>join-after and so
// on, except the interface names (<prefix>lifecycler.interface) and
// <prefix>enable-inet6: the names the ingester has always had.
func (c *LifecycleConfig) RegisterFlagsWithPrefix(f *flag.FlagSet, prefix, component string, logger log.Logger) {
	f.StringVar(&c.Zone, prefix+"availability-zone", "", fmt.Sprintf("Availability zone of this %s; with zone awareness, the replicas of each key are in different zones.", component))
	f.StringVar(&c.TokensFilePath, prefix+"tokens-file-path", "", fmt.Sprintf("File where this %s keeps its ring tokens, so that it rejoins with them after a restart. Empty: new random tokens at each join.", component))
	f.DurationVar(&c.JoinAfter, prefix+"join-after", 0, fmt.Sprintf("How long this %s stays PENDING at start-up in the ring, without tokens, before it picks them (at its first heartbeat after this).", component))
	f.DurationVar(&c.ObservePeriod, prefix+"observe-period", 0, fmt.Sprintf("How long this %s stays JOINING after picking its tokens, and again until no other member took any of them, before it goes ACTIVE; checked at heartbeats. Useful with memberlist, where concurrent joins can pick the same tokens. 0: ACTIVE at once.", component))
	f.DurationVar(&c.MinReadyDuration, prefix+"min-ready-duration", 15*time.Second, fmt.Sprintf("How long this %s is ACTIVE in the ring before /ready answers 200, so a rollout gives the other processes time to see it.", component))
	f.DurationVar(&c.FinalSleep, prefix+"final-sleep", 0, fmt.Sprintf("Pause at the end of this %s's shutdown, before it leaves the ring, so its last metrics get scraped.", component))
	f.BoolVar(&c.UnregisterOnShutdown, prefix+"unregister-on-shutdown", true, fmt.Sprintf("Remove this %s from the ring on a clean shutdown. false keeps its entry, LEAVING, and its tokens until it comes back (rolling restarts with stable IDs).", component))
	c.InterfaceNames = netutil.PrivateNetworkInterfacesWithFallback([]string{"eth0", "en0"}, logger)
	f.Var((*flagext.StringSlice)(&c.InterfaceNames), prefix+"lifecycler.interface", fmt.Sprintf("Network interface to read the address this %s advertises in the ring from, when no address is set; repeat for several, the first that has one wins.", component))
	f.BoolVar(&c.EnableInet6, prefix+"enable-inet6", false, "Also consider IPv6 addresses of the interfaces when looking for the address to advertise in the ring.")
}

// Validate checks the configuration. Callers wrap the error with the
// ring's name.
func (c *LifecycleConfig) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"join_after", c.JoinAfter}, {"observe_period", c.ObservePeriod}, {"min_ready_duration", c.MinReadyDuration}, {"final_sleep", c.FinalSleep}} {
		if d.v < 0 {
			return fmt.Errorf("%s must not be negative, got %s", d.name, d.v)
		}
	}
	return nil
}
