package alertmanager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	apiv2 "github.com/prometheus/alertmanager/api/v2"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/marker"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// alertGCInterval is how often resolved alerts leave the in-memory store,
// as Alertmanager's default.
const alertGCInterval = 30 * time.Minute

// instance is one tenant's Alertmanager. Its long-lived parts (alerts,
// silences, notification log, API) are built once; apply swaps the parts a
// configuration decides (routes, receivers, inhibitor, dispatcher), as
// Alertmanager itself does on reload.
type instance struct {
	tenant   string
	bkt      objstore.Bucket
	logger   *slog.Logger
	reg      *prometheus.Registry
	maxAlert func() int

	nflog           *nflog.Log
	silences        *silence.Silences
	silencer        *silence.Silencer
	alerts          *mem.Alerts
	groupMarker     marker.GroupMarker
	pipelineBuilder *notify.PipelineBuilder
	dispatchMetrics *dispatch.DispatcherMetrics
	api             *apiv2.API
	startTime       time.Time

	// alertCount counts the alerts held, for the max-alerts limit.
	alertCount atomic.Int64

	mu         sync.Mutex // serializes apply, persist and stop
	dispatcher atomic.Pointer[dispatch.Dispatcher]
	inhibitor  atomic.Pointer[inhibit.Inhibitor]
	applied    []byte // the configuration in force, as stored
	uploaded   bool   // the configuration in force is the tenant's, not the fallback
	stopped    bool

	stopc chan struct{}
	done  chan struct{}
}

// newInstance starts a tenant's Alertmanager with the silences and
// notification log last written to object storage. It runs no
// configuration until apply.
func newInstance(ctx context.Context, tenant string, bkt objstore.Bucket, retention, persistInterval time.Duration, maxSilences, maxAlerts func() int, logger *slog.Logger) (*instance, error) {
	in := &instance{
		tenant:      tenant,
		bkt:         bkt,
		logger:      logger,
		reg:         prometheus.NewRegistry(),
		maxAlert:    maxAlerts,
		groupMarker: marker.NewGroupMarker(),
		startTime:   time.Now(),
		stopc:       make(chan struct{}),
		done:        make(chan struct{}),
	}
	rec := eventrecorder.NopRecorder()
	flags := featurecontrol.NoopFlags{}

	nflogSnap, err := in.readState(ctx, bucket.AlertmanagerNotificationLogName(tenant))
	if err != nil {
		return nil, err
	}
	nopts := nflog.Options{Retention: retention, Logger: logger.With("component", "nflog"), Metrics: in.reg}
	if nflogSnap != nil {
		nopts.SnapshotReader = bytes.NewReader(nflogSnap)
	}
	if in.nflog, err = nflog.New(nopts); err != nil {
		return nil, fmt.Errorf("restore the notification log of tenant %s: %w", tenant, err)
	}

	silSnap, err := in.readState(ctx, bucket.AlertmanagerSilencesName(tenant))
	if err != nil {
		return nil, err
	}
	sopts := silence.Options{
		Retention:     retention,
		Limits:        silence.Limits{MaxSilences: maxSilences},
		Logger:        logger.With("component", "silences"),
		Metrics:       in.reg,
		EventRecorder: rec,
	}
	if silSnap != nil {
		sopts.SnapshotReader = bytes.NewReader(silSnap)
	}
	if in.silences, err = silence.New(sopts); err != nil {
		return nil, fmt.Errorf("restore the silences of tenant %s: %w", tenant, err)
	}
	in.silencer = silence.NewSilencer(in.silences, logger, rec)

	in.alerts, err = mem.NewAlerts(context.Background(), alertGCInterval, 0, alertCounter{Silencer: in.silencer, in: in}, logger, rec, in.reg, flags)
	if err != nil {
		return nil, fmt.Errorf("create the alert store of tenant %s: %w", tenant, err)
	}
	in.api, err = apiv2.NewAPI(in.alerts, in.groups, in.groupMarker.Muted, in.silences, nil, logger.With("component", "api"), in.reg)
	if err != nil {
		in.alerts.Close()
		return nil, fmt.Errorf("create the API of tenant %s: %w", tenant, err)
	}
	in.pipelineBuilder = notify.NewPipelineBuilder(in.reg, flags, rec)
	in.dispatchMetrics = dispatch.NewDispatcherMetrics(false, in.reg, flags)
	go in.maintain(persistInterval)
	return in, nil
}

func (in *instance) readState(ctx context.Context, name string) ([]byte, error) {
	r, err := in.bkt.Get(ctx, name)
	if in.bkt.IsObjNotFoundErr(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

func (in *instance) groups(ctx context.Context, routeFilter func(*dispatch.Route) bool, alertFilter func(*types.Alert, time.Time) bool) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
	d := in.dispatcher.Load()
	if d == nil {
		return dispatch.AlertGroups{}, map[model.Fingerprint][]string{}, nil
	}
	return d.Groups(ctx, routeFilter, alertFilter)
}

// apply runs a configuration: it builds the receivers, then replaces the
// inhibitor and dispatcher (aggregation groups restart; the notification
// log keeps a re-sent notification from being sent twice).
func (in *instance) apply(bc *builtConfig, uploaded bool) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return errors.New("the tenant's Alertmanager is stopping")
	}
	if uploaded == in.uploaded && bytes.Equal(bc.raw, in.applied) {
		return nil
	}
	conf := bc.conf
	routes := dispatch.NewRoute(conf.Route, nil)
	active := map[string]struct{}{}
	routes.Walk(func(r *dispatch.Route) { active[r.RouteOpts.Receiver] = struct{}{} })
	receivers := make(map[string][]notify.Integration, len(active))
	for _, rcv := range conf.Receivers {
		if _, ok := active[rcv.Name]; !ok {
			continue
		}
		integrations, err := receiver.BuildReceiverIntegrations(rcv, bc.tmpl, in.logger)
		if err != nil {
			return fmt.Errorf("build receiver %q: %w", rcv.Name, err)
		}
		receivers[rcv.Name] = integrations
	}
	intervals := make(map[string][]timeinterval.TimeInterval, len(conf.MuteTimeIntervals)+len(conf.TimeIntervals))
	for _, ti := range conf.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range conf.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}

	if old := in.inhibitor.Load(); old != nil {
		old.Stop()
	}
	if old := in.dispatcher.Load(); old != nil {
		old.Stop()
	}
	rec := eventrecorder.NopRecorder()
	inhibitor := inhibit.NewInhibitor(in.alerts, conf.InhibitRules, in.logger, rec)
	noWait := func() time.Duration { return 0 }
	pipeline := in.pipelineBuilder.New(receivers, noWait, inhibitor, in.silencer, timeinterval.NewIntervener(intervals), in.groupMarker, in.nflog, nil)
	in.api.Update(conf, func(ctx context.Context, labels model.LabelSet) {
		inhibitor.Mutes(ctx, labels)
		in.silencer.Mutes(ctx, labels)
	})
	timeout := func(d time.Duration) time.Duration { return max(d, notify.MinTimeout) }
	d := dispatch.NewDispatcher(in.alerts, routes, pipeline, in.groupMarker, timeout, 30*time.Second, nil, in.logger, rec, in.dispatchMetrics, bc.tmpl)

	go inhibitor.Run()
	inhibitor.WaitForLoading()
	in.inhibitor.Store(inhibitor)
	go d.Run(in.startTime)
	d.WaitForLoading()
	in.dispatcher.Store(d)
	in.applied, in.uploaded = bc.raw, uploaded
	return nil
}

// isUploaded reports whether the tenant's own configuration runs.
func (in *instance) isUploaded() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.uploaded
}

// maintain garbage-collects and persists the state every interval.
func (in *instance) maintain(interval time.Duration) {
	defer close(in.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-in.stopc:
			return
		case <-t.C:
			if err := in.persist(context.Background()); err != nil {
				in.logger.Warn("persisting the Alertmanager state failed; will retry at the next interval", "err", err)
			}
		}
	}
}

// persist writes the silences and the notification log to object storage.
func (in *instance) persist(ctx context.Context) error {
	if _, err := in.silences.GC(); err != nil {
		return fmt.Errorf("garbage-collect silences: %w", err)
	}
	if _, err := in.nflog.GC(); err != nil {
		return fmt.Errorf("garbage-collect the notification log: %w", err)
	}
	for _, s := range []struct {
		name string
		snap func(io.Writer) (int64, error)
	}{
		{bucket.AlertmanagerSilencesName(in.tenant), in.silences.Snapshot},
		{bucket.AlertmanagerNotificationLogName(in.tenant), in.nflog.Snapshot},
	} {
		var buf bytes.Buffer
		if _, err := s.snap(&buf); err != nil {
			return fmt.Errorf("snapshot %s: %w", s.name, err)
		}
		if err := in.bkt.Upload(ctx, s.name, &buf); err != nil {
			return fmt.Errorf("upload %s: %w", s.name, err)
		}
	}
	return nil
}

// stop stops notifying and writes the state a last time.
func (in *instance) stop(ctx context.Context) error {
	in.mu.Lock()
	if in.stopped {
		in.mu.Unlock()
		return nil
	}
	in.stopped = true
	in.mu.Unlock()
	close(in.stopc)
	<-in.done
	if i := in.inhibitor.Load(); i != nil {
		i.Stop()
	}
	if d := in.dispatcher.Load(); d != nil {
		d.Stop()
	}
	in.alerts.Close()
	return in.persist(ctx)
}

// handler serves the tenant's Alertmanager v2 API (paths /api/v2/...).
func (in *instance) handler() http.Handler { return in.api.Handler }

// alertCounter keeps instance.alertCount and refuses alerts over the
// limit that the HTTP check let through in a race; the silencer keeps its
// own bookkeeping.
type alertCounter struct {
	*silence.Silencer
	in *instance
}

func (c alertCounter) PreStore(a *types.Alert, existing bool) error {
	if max := c.in.maxAlert(); !existing && max > 0 && c.in.alertCount.Load() >= int64(max) {
		return fmt.Errorf("%s: tenant %s holds %d alerts, the limit alertmanager_max_alerts_count", errIDTooManyAlerts, c.in.tenant, max)
	}
	return c.Silencer.PreStore(a, existing)
}

func (c alertCounter) PostStore(a *types.Alert, existing bool) {
	if !existing {
		c.in.alertCount.Add(1)
	}
	c.Silencer.PostStore(a, existing)
}

func (c alertCounter) PostDelete(a *types.Alert) {
	c.in.alertCount.Add(-1)
	c.Silencer.PostDelete(a)
}
