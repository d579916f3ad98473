// Package build holds version information stamped in at link time
// (see the Makefile's LDFLAGS) and exports it as meridian_build_info.
package build

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// Set with -ldflags "-X github.com/meridianhq/meridian/pkg/util/build.Version=...".
var (
	Version   = "0.1.0-dev"
	Revision  = "unknown"
	Branch    = "unknown"
	BuildUser = ""
	BuildDate = ""
)

// GoVersion is the Go release the binary was built with.
func GoVersion() string { return runtime.Version() }

// NewCollector returns the meridian_build_info gauge, always 1, labelled with
// the build's version, revision, branch and Go version.
func NewCollector() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meridian_build_info",
		Help: "A metric with a constant '1' value labelled by version, revision, branch and goversion from which Meridian was built.",
	}, []string{"version", "revision", "branch", "goversion"})
	g.WithLabelValues(Version, Revision, Branch, GoVersion()).Set(1)
	return g
}
