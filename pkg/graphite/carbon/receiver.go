package carbon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/meridianhq/meridian/pkg/distributor"
)

// Writer stores decoded series with the write path's validation, limits and
// replication (the distributor's PushHandler).
type Writer interface {
	Write(ctx context.Context, req *prompb.WriteRequest, opts distributor.WriteOptions) distributor.WriteResult
}

// Receiver turns carbon lines into writes: the TCP and UDP listeners and the
// HTTP ingest endpoint share it.
type Receiver struct {
	services.Service

	cfg    Config
	writer Writer
	logger log.Logger
	now    func() time.Time
	badLog *sampledLogger

	mtx     sync.Mutex
	tcp     net.Listener
	udp     net.PacketConn
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	stopped chan struct{} // closed when the service stops

	linesReceived *prometheus.CounterVec
	linesRejected *prometheus.CounterVec
	linesStored   *prometheus.CounterVec
	connections   prometheus.Counter
	openConns     prometheus.Gauge
}

// NewReceiver creates the carbon receiver. Its service listens on the
// configured TCP and UDP addresses while it runs.
func NewReceiver(cfg Config, w Writer, logger log.Logger, reg prometheus.Registerer) *Receiver {
	f := promauto.With(reg)
	rv := &Receiver{
		cfg:     cfg,
		writer:  w,
		logger:  logger,
		now:     time.Now,
		badLog:  &sampledLogger{logger: logger, every: 5 * time.Second},
		conns:   map[net.Conn]struct{}{},
		stopped: make(chan struct{}),
		linesReceived: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_graphite_carbon_lines_received_total",
			Help: "Carbon plaintext lines received (empty lines not counted), by protocol (tcp, udp, http).",
		}, []string{"protocol"}),
		linesRejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_graphite_carbon_lines_rejected_total",
			Help: "Carbon lines not stored, by reason: a parse reason (field_count, bad_value, bad_timestamp, bad_path, bad_tag, line_too_long), rate_limited, storage_error, or the write path's error ID.",
		}, []string{"reason"}),
		linesStored: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_graphite_carbon_lines_stored_total",
			Help: "Carbon lines stored, by protocol.",
		}, []string{"protocol"}),
		connections: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_graphite_carbon_connections_total",
			Help: "Carbon TCP connections accepted.",
		}),
		openConns: f.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_graphite_carbon_open_connections",
			Help: "Carbon TCP connections open now.",
		}),
	}
	for _, r := range []string{ReasonFieldCount, ReasonBadValue, ReasonBadTimestamp, ReasonBadPath, ReasonBadTag, ReasonLineTooLong} {
		rv.linesRejected.WithLabelValues(r)
	}
	rv.Service = services.NewIdleService(rv.starting, rv.stopping)
	return rv
}

func (rv *Receiver) starting(context.Context) error {
	if a := rv.cfg.TCPListenAddress; a != "" {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("listen for carbon lines on tcp %s: %w", a, err)
		}
		rv.tcp = l
		rv.wg.Add(1)
		go rv.acceptLoop(l)
		level.Info(rv.logger).Log("msg", "carbon listener started", "protocol", "tcp", "addr", l.Addr(), "tenant", rv.cfg.Tenant)
	}
	if a := rv.cfg.UDPListenAddress; a != "" {
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			if rv.tcp != nil {
				_ = rv.tcp.Close()
			}
			return fmt.Errorf("listen for carbon lines on udp %s: %w", a, err)
		}
		rv.udp = pc
		rv.wg.Add(1)
		go rv.udpLoop(pc)
		level.Info(rv.logger).Log("msg", "carbon listener started", "protocol", "udp", "addr", pc.LocalAddr(), "tenant", rv.cfg.Tenant)
	}
	return nil
}

// stopping closes the listeners and the open connections; lines already
// read are written before the connection goroutines end.
func (rv *Receiver) stopping(error) error {
	close(rv.stopped)
	rv.mtx.Lock()
	if rv.tcp != nil {
		_ = rv.tcp.Close()
	}
	if rv.udp != nil {
		_ = rv.udp.Close()
	}
	for c := range rv.conns {
		_ = c.Close()
	}
	rv.mtx.Unlock()
	rv.wg.Wait()
	return nil
}

// TCPAddr is the address the TCP listener listens on (nil when disabled or
// not started).
func (rv *Receiver) TCPAddr() net.Addr {
	if rv.tcp == nil {
		return nil
	}
	return rv.tcp.Addr()
}

func (rv *Receiver) acceptLoop(l net.Listener) {
	defer rv.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			level.Warn(rv.logger).Log("msg", "accepting a carbon connection failed; retrying in 100ms", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		rv.mtx.Lock()
		rv.conns[c] = struct{}{}
		rv.mtx.Unlock()
		rv.connections.Inc()
		rv.openConns.Inc()
		rv.wg.Add(1)
		go func() {
			defer rv.wg.Done()
			defer func() {
				rv.mtx.Lock()
				delete(rv.conns, c)
				rv.mtx.Unlock()
				rv.openConns.Dec()
				_ = c.Close()
			}()
			rv.serveConn(c)
		}()
	}
}

// tenantContext is the context a listener's lines are written with.
func (rv *Receiver) tenantContext() context.Context {
	return user.InjectOrgID(context.Background(), rv.cfg.Tenant)
}

// serveConn reads lines until the peer closes. Lines are written in batches:
// when BatchSize lines are pending or nothing more is buffered.
func (rv *Receiver) serveConn(c net.Conn) {
	ctx := rv.tenantContext()
	r := bufio.NewReaderSize(c, 64<<10)
	b := rv.newBatch("tcp", c.RemoteAddr().String())
	for {
		line, tooLong, err := readLine(r, rv.cfg.MaxLineLength)
		if tooLong {
			b.reject(ReasonLineTooLong, fmt.Sprintf("line longer than %d bytes (-graphite.carbon.max-line-length)", rv.cfg.MaxLineLength), line)
		} else if len(line) > 0 {
			b.add(line)
		}
		if err != nil || b.full() || r.Buffered() == 0 {
			b.flush(ctx)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				level.Debug(rv.logger).Log("msg", "carbon connection ended", "remote", c.RemoteAddr(), "err", err)
			}
			return
		}
	}
}

// readLine returns the next line without its end of line. A line longer
// than max is consumed and reported as tooLong (its first bytes returned).
func readLine(r *bufio.Reader, maxLen int) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > maxLen+2 {
			if !tooLong {
				buf = append(buf, chunk[:min(len(chunk), 128)]...)
			}
			tooLong = true
		} else if !tooLong {
			buf = append(buf, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			return buf, true, err
		}
		buf = trimEOL(buf)
		if len(buf) > maxLen {
			return buf[:min(len(buf), 128)], true, err
		}
		return buf, false, err
	}
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func (rv *Receiver) udpLoop(pc net.PacketConn) {
	defer rv.wg.Done()
	ctx := rv.tenantContext()
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			level.Warn(rv.logger).Log("msg", "reading a carbon datagram failed", "err", err)
			continue
		}
		remote := ""
		if addr != nil {
			remote = addr.String()
		}
		b := rv.newBatch("udp", remote)
		b.ctx = ctx
		rv.addLines(b, buf[:n])
		b.flush(ctx)
	}
}

// addLines adds every line of data to b.
func (rv *Receiver) addLines(b *batch, data []byte) {
	for len(data) > 0 {
		i := indexByte(data, '\n')
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line, data = data[:i], data[i+1:]
		}
		line = trimEOL(line)
		switch {
		case len(line) > rv.cfg.MaxLineLength:
			b.reject(ReasonLineTooLong, fmt.Sprintf("line longer than %d bytes (-graphite.carbon.max-line-length)", rv.cfg.MaxLineLength), line[:min(len(line), 128)])
		case len(line) > 0:
			b.add(line)
		}
		if b.full() {
			b.flush(b.ctx)
		}
	}
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// IngestResult is the answer of POST /graphite/ingest.
type IngestResult struct {
	Accepted int            `json:"accepted"`
	Rejected int            `json:"rejected"`
	Reasons  map[string]int `json:"reasons"`
	// Errors are the first rejected lines: "line N: reason: message".
	Errors []string `json:"errors"`
}

// maxShownErrors is how many rejected lines an HTTP answer lists.
const maxShownErrors = 10

// batch collects parsed lines of one connection, datagram or request and
// writes them; it counts and logs what is rejected.
type batch struct {
	rv       *Receiver
	ctx      context.Context // for addLines' flushes; set by the HTTP path
	protocol string
	remote   string
	lineNo   int // lines seen, for messages

	series []prompb.TimeSeries
	lineOf []int // line number of each series

	result *IngestResult // when not nil, accumulate for the HTTP answer
	worst  int           // highest status of the writes so far
}

func (rv *Receiver) newBatch(protocol, remote string) *batch {
	return &batch{rv: rv, protocol: protocol, remote: remote}
}

func (b *batch) full() bool { return len(b.series) >= b.rv.cfg.BatchSize }

func (b *batch) add(line []byte) {
	b.lineNo++
	b.rv.linesReceived.WithLabelValues(b.protocol).Inc()
	l, lerr := ParseLine(line, b.rv.now())
	if lerr != nil {
		b.rejectParsed(lerr.Reason, lerr.Msg, line)
		return
	}
	ts := prompb.TimeSeries{
		Labels:  make([]prompb.Label, 0, l.Labels.Len()),
		Samples: []prompb.Sample{{Value: l.Value, Timestamp: l.TimestampMs}},
	}
	l.Labels.Range(func(lb labels.Label) {
		ts.Labels = append(ts.Labels, prompb.Label{Name: lb.Name, Value: lb.Value})
	})
	b.series = append(b.series, ts)
	b.lineOf = append(b.lineOf, b.lineNo)
}

// reject counts a line rejected before parsing (too long).
func (b *batch) reject(reason, msg string, line []byte) {
	b.lineNo++
	b.rv.linesReceived.WithLabelValues(b.protocol).Inc()
	b.rejectParsed(reason, msg, line)
}

func (b *batch) rejectParsed(reason, msg string, line []byte) {
	b.record(b.lineNo, reason, msg)
	b.rv.badLog.log("msg", "carbon line rejected", "reason", reason, "err", msg, "line", truncate(string(line), 256), "protocol", b.protocol, "remote", b.remote)
}

func (b *batch) record(lineNo int, reason, msg string) {
	b.rv.linesRejected.WithLabelValues(reason).Inc()
	if b.result == nil {
		return
	}
	b.result.Rejected++
	b.result.Reasons[reason]++
	if len(b.result.Errors) < maxShownErrors {
		b.result.Errors = append(b.result.Errors, fmt.Sprintf("line %d: %s: %s", lineNo, reason, msg))
	}
}

// flush writes the pending lines. A line storage rejects is counted with the
// write path's error ID; when the whole write fails, every line of it is.
func (b *batch) flush(ctx context.Context) int {
	if len(b.series) == 0 {
		return http.StatusOK
	}
	n := len(b.series)
	res := b.rv.writer.Write(ctx, &prompb.WriteRequest{Timeseries: slices.Clone(b.series)}, distributor.WriteOptions{GraphiteNames: true})
	// Carbon senders get no answer and cannot resend: when the write failed
	// as a whole (ingesters briefly unavailable), the listeners retry it.
	// HTTP clients get the status and retry themselves.
	for attempt := 0; res.Status >= 500 && b.result == nil && attempt < len(carbonRetryBackoff); attempt++ {
		select {
		case <-time.After(carbonRetryBackoff[attempt]):
		case <-b.rv.stopped:
			attempt = len(carbonRetryBackoff)
			continue
		}
		res = b.rv.writer.Write(ctx, &prompb.WriteRequest{Timeseries: slices.Clone(b.series)}, distributor.WriteOptions{GraphiteNames: true})
	}
	lineOf := b.lineOf
	b.series, b.lineOf = nil, nil
	b.worst = max(b.worst, res.Status)

	switch {
	case res.Status == http.StatusOK:
		b.stored(n)
	case res.Status == http.StatusBadRequest && len(res.Rejected) > 0:
		idx := make([]int, 0, len(res.Rejected))
		for i := range res.Rejected {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		for _, i := range idx {
			b.record(lineOf[i], res.Rejected[i], "storage rejected the line (see docs/errors.md for the ID)")
		}
		b.rv.badLog.log("msg", "carbon lines rejected by the write path", "rejected", len(res.Rejected), "lines", n, "protocol", b.protocol, "remote", b.remote, "detail", truncate(res.Message, 512))
		b.stored(n - len(res.Rejected))
	default:
		reason := ReasonStorage
		if res.Status == http.StatusTooManyRequests {
			reason = ReasonRateLimited
		}
		for _, ln := range lineOf {
			b.record(ln, reason, truncate(res.Message, 300))
		}
		level.Warn(b.rv.logger).Log("msg", "carbon lines not stored", "lines", n, "status", res.Status, "protocol", b.protocol, "remote", b.remote, "err", truncate(res.Message, 512))
	}
	return res.Status
}

func (b *batch) stored(n int) {
	if n <= 0 {
		return
	}
	b.rv.linesStored.WithLabelValues(b.protocol).Add(float64(n))
	if b.result != nil {
		b.result.Accepted += n
	}
}

// carbonRetryBackoff are the waits before the listeners retry a write that
// failed as a whole.
var carbonRetryBackoff = []time.Duration{200 * time.Millisecond, time.Second, 3 * time.Second}

// sampledLogger logs at most one line per period and says how many it
// skipped, so a sender of garbage cannot flood the log.
type sampledLogger struct {
	logger log.Logger
	every  time.Duration

	mtx        sync.Mutex
	last       time.Time
	suppressed int
}

func (s *sampledLogger) log(kv ...any) {
	s.mtx.Lock()
	now := time.Now()
	if now.Sub(s.last) < s.every {
		s.suppressed++
		s.mtx.Unlock()
		return
	}
	skipped := s.suppressed
	s.last, s.suppressed = now, 0
	s.mtx.Unlock()
	if skipped > 0 {
		kv = append(kv, "similar_messages_suppressed", skipped)
	}
	level.Warn(s.logger).Log(kv...)
}
