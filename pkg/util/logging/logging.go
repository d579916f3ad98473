// Package logging builds the process logger. Meridian logs through go-kit
// log everywhere (dskit's choice); Prometheus' TSDB wants *slog.Logger, so
// Slog adapts the same go-kit logger rather than starting a second pipeline.
package logging

import (
	"context"
	"log/slog"
	"os"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	dslog "github.com/grafana/dskit/log"
)

// New returns a go-kit logger writing logfmt or json to stderr at the level.
func New(lvl dslog.Level, format string) log.Logger {
	return dslog.NewGoKitWithLevel(lvl, format)
}

// Slog returns a *slog.Logger whose records go to the go-kit logger.
func Slog(l log.Logger) *slog.Logger {
	return slog.New(&gokitHandler{logger: l})
}

type gokitHandler struct {
	logger log.Logger
	attrs  []any
	group  string
}

func (h *gokitHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *gokitHandler) Handle(_ context.Context, r slog.Record) error {
	kvs := make([]any, 0, len(h.attrs)+2*r.NumAttrs()+2)
	kvs = append(kvs, h.attrs...)
	kvs = append(kvs, "msg", r.Message)
	r.Attrs(func(a slog.Attr) bool {
		kvs = append(kvs, h.key(a.Key), a.Value.String())
		return true
	})
	var l log.Logger
	switch {
	case r.Level >= slog.LevelError:
		l = level.Error(h.logger)
	case r.Level >= slog.LevelWarn:
		l = level.Warn(h.logger)
	case r.Level >= slog.LevelInfo:
		l = level.Info(h.logger)
	default:
		l = level.Debug(h.logger)
	}
	return l.Log(kvs...)
}

func (h *gokitHandler) key(k string) string {
	if h.group == "" {
		return k
	}
	return h.group + "." + k
}

func (h *gokitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &gokitHandler{logger: h.logger, group: h.group, attrs: append([]any{}, h.attrs...)}
	for _, a := range as {
		n.attrs = append(n.attrs, h.key(a.Key), a.Value.String())
	}
	return n
}

func (h *gokitHandler) WithGroup(name string) slog.Handler {
	g := name
	if h.group != "" {
		g = h.group + "." + name
	}
	return &gokitHandler{logger: h.logger, attrs: h.attrs, group: g}
}

// Stderr is a plain logfmt logger for use before configuration is parsed.
func Stderr() log.Logger {
	return log.NewLogfmtLogger(log.NewSyncWriter(os.Stderr))
}
