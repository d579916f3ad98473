//go:build unix

package ingester

import (
	"syscall"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// fdsPerOpenTenant is what an open tenant TSDB holds: its WAL segment, its
// head chunks directory, and its head chunk file (written and mapped).
// A tenant closed as idle holds none.
const fdsPerOpenTenant = 4

// raiseFileLimit raises the soft limit on open files to the hard limit
// (Go does it at start since 1.19; this covers a runtime that did not)
// and logs both, with how many open tenants they allow.
func raiseFileLimit(logger log.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		level.Warn(logger).Log("msg", "reading the open files limit", "err", err)
		return
	}
	raised := false
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			level.Warn(logger).Log("msg", "raising the soft open files limit to the hard limit; raise it before starting (ulimit -n, LimitNOFILE=)", "soft", lim.Cur, "hard", lim.Max, "err", err)
		} else {
			lim, raised = want, true
		}
	}
	level.Info(logger).Log("msg", "open files limit", "soft", lim.Cur, "hard", lim.Max, "raised_soft_to_hard", raised,
		"fds_per_open_tenant", fdsPerOpenTenant, "open_tenants_within_limit", lim.Cur/fdsPerOpenTenant,
		"hint", "tenants closed as idle (-ingester.close-idle-tsdb-timeout) hold no file")
}
