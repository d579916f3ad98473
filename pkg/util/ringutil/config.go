package ringutil

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
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
