// Package carbon is Graphite's write side in the distributor: the carbon
// plaintext TCP and UDP listeners, POST /graphite/ingest and the line
// parser. Lines become series through the path mapping (package mapping)
// and are stored by the distributor's write path.
package carbon

import (
	"errors"
	"flag"
	"fmt"
	"net"

	dskittenant "github.com/grafana/dskit/tenant"
)

// Config configures carbon plaintext ingestion.
type Config struct {
	TCPListenAddress string `yaml:"tcp_listen_address"`
	UDPListenAddress string `yaml:"udp_listen_address"`
	Tenant           string `yaml:"tenant"`
	MaxLineLength    int    `yaml:"max_line_length" category:"advanced"`
	BatchSize        int    `yaml:"batch_size" category:"advanced"`
	MaxHTTPBodySize  int    `yaml:"max_http_body_size" category:"advanced"`
}

// RegisterFlags registers the carbon flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.TCPListenAddress, "graphite.carbon.tcp-listen-address", ":2003", "host:port the distributor accepts carbon plaintext lines on over TCP. Empty disables the TCP listener.")
	f.StringVar(&c.UDPListenAddress, "graphite.carbon.udp-listen-address", "", "host:port the distributor accepts carbon plaintext lines on over UDP (one or more lines per datagram). Empty (the default) disables the UDP listener.")
	f.StringVar(&c.Tenant, "graphite.carbon.tenant", "anonymous", "Tenant that owns every line received by the carbon TCP and UDP listeners (carbon has no way to say who sends). Run one distributor per tenant, or use POST /graphite/ingest with X-Scope-OrgID, to ingest for several tenants.")
	f.IntVar(&c.MaxLineLength, "graphite.carbon.max-line-length", 64<<10, "Longest carbon line accepted, in bytes; longer lines are rejected (line_too_long) and the connection goes on.")
	f.IntVar(&c.BatchSize, "graphite.carbon.batch-size", 5000, "Most carbon lines sent to storage in one write. A connection's lines are also written as soon as it has no more data buffered.")
	f.IntVar(&c.MaxHTTPBodySize, "graphite.ingest.max-body-size", 10<<20, "Largest body of POST /graphite/ingest, in bytes.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	for _, a := range []struct{ name, addr string }{{"tcp_listen_address", c.TCPListenAddress}, {"udp_listen_address", c.UDPListenAddress}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("graphite carbon %s %q is not host:port: %w", a.name, a.addr, err)
		}
	}
	if err := dskittenant.ValidTenantID(c.Tenant); err != nil {
		return fmt.Errorf("graphite carbon tenant %q: %w", c.Tenant, err)
	}
	if c.MaxLineLength < 64 || c.BatchSize <= 0 || c.MaxHTTPBodySize <= 0 {
		return errors.New("graphite carbon max_line_length must be at least 64, batch_size and max_http_body_size positive")
	}
	return nil
}
