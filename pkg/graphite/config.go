// Package graphite holds the configuration of Meridian's Graphite support,
// which is split by side:
//
//   - carbon: ingestion in the distributor (TCP, UDP and POST
//     /graphite/ingest);
//   - api: the /graphite read endpoints of the querier (render, find, tags)
//     and its storage fetcher;
//   - render: render parameters, answer formats and the query-frontend's
//     part format, shared by the API and the query-frontend;
//   - mapping: how paths and tags are stored as labels, shared by both sides;
//   - parser and functions: the target parser and the function library.
//
// The write side (carbon) and the read side (api, render, functions) do not
// import each other.
package graphite

import (
	"flag"

	"github.com/meridianhq/meridian/pkg/graphite/carbon"
)

// Config configures the Graphite component.
type Config struct {
	Carbon carbon.Config `yaml:"carbon"`
}

// RegisterFlags registers the Graphite flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Carbon.RegisterFlags(f)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	return c.Carbon.Validate()
}
