// Command meridian runs Meridian: one binary, -target picks the modules.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/go-kit/log/level"

	"github.com/meridianhq/meridian/pkg/meridian"
	"github.com/meridianhq/meridian/pkg/tenant"
	"github.com/meridianhq/meridian/pkg/util/build"
	"github.com/meridianhq/meridian/pkg/util/logging"
	"github.com/meridianhq/meridian/pkg/util/tracing"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var (
		cfg          meridian.Config
		fs           = flag.NewFlagSet("meridian", flag.ContinueOnError)
		printVersion bool
		verifyOnly   bool
		hashToken    string
		gcPercent    int
	)
	fs.BoolVar(&printVersion, "version", false, "Print the version and exit.")
	fs.BoolVar(&verifyOnly, "config.verify", false, "Parse and validate the configuration, print any error, and exit.")
	fs.StringVar(&hashToken, "auth.hash-token", "", "Print the hash of this token for the credentials file and exit.")
	fs.IntVar(&gcPercent, "runtime.gc-percent", 50, "Go garbage collector target percentage (GOGC) unless the GOGC environment variable is set. Lower trades CPU for memory; the ingester's head is long-lived, so the Go default of 100 mostly buys idle heap.")
	cfg.RegisterFlags(fs, logging.Stderr())

	if err := meridian.ParseArgs(fs, args, &cfg); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	switch {
	case printVersion:
		fmt.Printf("meridian version %s (revision %s, branch %s, %s)\n", build.Version, build.Revision, build.Branch, build.GoVersion())
		return 0
	case hashToken != "":
		h, err := tenant.HashToken(hashToken)
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			return 1
		}
		fmt.Println(h)
		return 0
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	if verifyOnly {
		fmt.Println("config is valid")
		return 0
	}

	logger := logging.New(cfg.Server.LogLevel, cfg.Server.LogFormat)
	if os.Getenv("GOGC") == "" && gcPercent > 0 {
		debug.SetGCPercent(gcPercent)
	}
	start := time.Now()
	shutdownTracing, err := tracing.Setup(context.Background(), "meridian")
	if err != nil {
		level.Error(logger).Log("msg", "setting up tracing", "err", err)
		return 1
	}
	defer shutdownTracing()

	m, err := meridian.New(cfg, logger, logging.Slog(logger))
	if err != nil {
		level.Error(logger).Log("msg", "initialising", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	level.Info(logger).Log("msg", "starting meridian", "version", build.Version, "targets", cfg.Target.String())
	if err := m.Run(ctx); err != nil {
		level.Error(logger).Log("msg", "meridian stopped with an error", "err", err, "uptime", time.Since(start))
		return 1
	}
	level.Info(logger).Log("msg", "meridian stopped", "uptime", time.Since(start))
	return 0
}
