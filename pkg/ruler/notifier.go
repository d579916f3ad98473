package ruler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
)

// amAlert is an alert as the Alertmanager v2 API (POST /api/v2/alerts)
// takes it.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

type batch struct {
	tenant string
	alerts []amAlert
}

// notifier sends alerts to the Alertmanagers, each tenant's with its
// X-Scope-OrgID, from one bounded queue drained by one goroutine: alerts
// are sent again every resend delay while they fire, so dropping the
// oldest when an Alertmanager is too slow loses no alert for long.
type notifier struct {
	urls    []string
	client  *http.Client
	timeout time.Duration
	logger  log.Logger

	mtx     sync.Mutex
	queue   []batch
	queued  int
	limit   int
	wake    chan struct{}
	stopped chan struct{}
	done    chan struct{}
	once    sync.Once

	sent     *prometheus.CounterVec
	errors   *prometheus.CounterVec
	dropped  prometheus.Counter
	latency  *prometheus.HistogramVec
	queueLen prometheus.GaugeFunc
}

func newNotifier(cfg Config, logger log.Logger, reg prometheus.Registerer) *notifier {
	n := &notifier{
		urls:    cfg.alertmanagerURLs(),
		client:  &http.Client{},
		timeout: cfg.NotificationTimeout,
		logger:  logger,
		limit:   cfg.NotificationQueueCapacity,
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
		sent: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_ruler_notifications_sent_total",
			Help: "Alerts sent to an Alertmanager, by Alertmanager URL.",
		}, []string{"alertmanager"}),
		errors: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_ruler_notifications_errors_total",
			Help: "Alerts that could not be sent to an Alertmanager, by Alertmanager URL.",
		}, []string{"alertmanager"}),
		dropped: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "meridian_ruler_notifications_dropped_total",
			Help: "Alerts dropped because the notification queue was full (-ruler.notification-queue-capacity).",
		}),
		latency: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meridian_ruler_notification_latency_seconds",
			Help:    "Time one request sending alerts to an Alertmanager took.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 8),
		}, []string{"alertmanager"}),
	}
	// Both counters exist from the start, so an operator's rate() of the
	// errors reads 0 rather than nothing until the first failure.
	for _, u := range n.urls {
		n.sent.WithLabelValues(redacted(u))
		n.errors.WithLabelValues(redacted(u))
	}
	n.queueLen = promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meridian_ruler_notifications_queue_length",
		Help: "Alerts waiting to be sent to the Alertmanagers.",
	}, func() float64 {
		n.mtx.Lock()
		defer n.mtx.Unlock()
		return float64(n.queued)
	})
	return n
}

func (n *notifier) start() {
	go n.loop()
}

// stop sends what is queued (each request within the timeout) and returns.
func (n *notifier) stop() {
	n.once.Do(func() { close(n.stopped) })
	<-n.done
}

// notifyFunc is the tenant's rules.NotifyFunc: it queues the alerts that
// fire or were resolved, as Prometheus sends them.
func (n *notifier) notifyFunc(tenant, externalURL string) rules.NotifyFunc {
	return func(_ context.Context, expr string, alerts ...*rules.Alert) {
		if len(n.urls) == 0 {
			return
		}
		out := make([]amAlert, 0, len(alerts))
		for _, a := range alerts {
			if a.State == rules.StatePending {
				continue
			}
			am := amAlert{
				Labels:       labels2map(a.Labels),
				Annotations:  labels2map(a.Annotations),
				StartsAt:     a.FiredAt,
				GeneratorURL: generatorURL(externalURL, expr),
			}
			if !a.ResolvedAt.IsZero() {
				am.EndsAt = a.ResolvedAt
			} else {
				am.EndsAt = a.ValidUntil
			}
			out = append(out, am)
		}
		if len(out) > 0 {
			n.enqueue(batch{tenant: tenant, alerts: out})
		}
	}
}

func generatorURL(externalURL, expr string) string {
	return externalURL + "/graph?g0.expr=" + url.QueryEscape(expr) + "&g0.tab=1"
}

func labels2map(ls labels.Labels) map[string]string {
	m := make(map[string]string, ls.Len())
	ls.Range(func(l labels.Label) { m[l.Name] = l.Value })
	return m
}

func (n *notifier) enqueue(b batch) {
	n.mtx.Lock()
	n.queue = append(n.queue, b)
	n.queued += len(b.alerts)
	for n.queued > n.limit && len(n.queue) > 1 {
		n.dropped.Add(float64(len(n.queue[0].alerts)))
		n.queued -= len(n.queue[0].alerts)
		n.queue = n.queue[1:]
	}
	n.mtx.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) loop() {
	defer close(n.done)
	for {
		n.mtx.Lock()
		q := n.queue
		n.queue, n.queued = nil, 0
		n.mtx.Unlock()
		for _, b := range q {
			n.send(b)
		}
		select {
		case <-n.wake:
		case <-n.stopped:
			n.mtx.Lock()
			q := n.queue
			n.queue, n.queued = nil, 0
			n.mtx.Unlock()
			for _, b := range q {
				n.send(b)
			}
			return
		}
	}
}

// send posts the tenant's alerts to every Alertmanager.
func (n *notifier) send(b batch) {
	body, err := json.Marshal(b.alerts)
	if err != nil {
		level.Error(n.logger).Log("msg", "encode alerts", "tenant", b.tenant, "err", err)
		return
	}
	for _, u := range n.urls {
		start := time.Now()
		err := n.post(u, b.tenant, body)
		shown := redacted(u)
		n.latency.WithLabelValues(shown).Observe(time.Since(start).Seconds())
		if err != nil {
			n.errors.WithLabelValues(shown).Add(float64(len(b.alerts)))
			level.Warn(n.logger).Log("msg", "send alerts to the Alertmanager; they are sent again at the next resend delay while they fire", "tenant", b.tenant, "alertmanager", shown, "alerts", len(b.alerts), "err", err)
			continue
		}
		n.sent.WithLabelValues(shown).Add(float64(len(b.alerts)))
	}
}

// redacted is an Alertmanager URL as metrics and logs show it: a password
// in it (https://user:pass@host) must not reach either.
func redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL // Config.Validate refused unparsable URLs.
	}
	return u.Redacted()
}

func (n *notifier) post(base, tenant string, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(user.OrgIDHeaderName, tenant)
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s: %s", req.URL, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
