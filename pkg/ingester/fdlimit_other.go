//go:build !unix

package ingester

import "github.com/go-kit/log"

// raiseFileLimit has nothing to do where there is no RLIMIT_NOFILE.
func raiseFileLimit(log.Logger) {}
