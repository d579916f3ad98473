package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/user"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/scheduler"
)

const (
	// maxBackoff caps the wait between retries.
	maxBackoff = time.Second
	// minBackoff is the wait before the first retry.
	minBackoff = 10 * time.Millisecond
	// statusClientClosedRequest is nginx's code for a client that went away,
	// which Prometheus also uses for canceled queries.
	statusClientClosedRequest = 499
)

// answer is an HTTP answer: from downstream, forwarded as it came, or made
// by the frontend.
type answer struct {
	status int
	header http.Header
	body   []byte
	// msg is the message of an error answer the frontend made itself;
	// empty for answers from downstream.
	msg string
}

// errorAnswer is a Prometheus-style error answer made by the frontend.
func errorAnswer(status int, errorType, msg string) *answer {
	b, _ := json.Marshal(apiResponse{Status: "error", ErrorType: errorType, Error: msg})
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return &answer{status: status, header: h, body: b, msg: msg}
}

// plainErrorAnswer is an error answer in plain text, as the Graphite API
// answers errors (http.Error).
func plainErrorAnswer(status int, msg string) *answer {
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	return &answer{status: status, header: h, body: []byte(msg + "\n"), msg: msg}
}

// downstreamRequest is one request the frontend sends to a querier.
type downstreamRequest struct {
	tenant string
	method string
	path   string
	form   url.Values
	// auth is the client's Authorization header, passed on so that
	// queriers that check credentials accept the request.
	auth string
	// maxOutstanding and maxQueriers are the tenant's queue limits when
	// queriers pull.
	maxOutstanding, maxQueriers int
}

// roundTrip sends req downstream, retrying 5xx answers and transport errors
// up to MaxRetries times. It returns the last answer.
func (f *Frontend) roundTrip(ctx context.Context, req downstreamRequest) *answer {
	var last *answer
	backoff := minBackoff
	for attempt := 0; attempt <= f.cfg.MaxRetries; attempt++ {
		if attempt > 0 {
			f.retries.Inc()
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return canceledAnswer(ctx)
			case <-t.C:
			}
			backoff = min(2*backoff, maxBackoff)
		}
		ans, err := f.send(ctx, req)
		if ctx.Err() != nil {
			if clientGone(ctx) {
				f.canceled.WithLabelValues("in_flight").Inc()
			}
			return canceledAnswer(ctx)
		}
		if err != nil {
			level.Warn(f.logger).Log("msg", "downstream request failed; retrying if attempts are left", "tenant", req.tenant, "path", req.path, "attempt", attempt+1, "err", err)
			switch {
			case errors.Is(err, scheduler.ErrQuerierGone):
				f.queriersGone.Inc()
				last = errorAnswer(http.StatusBadGateway, "unavailable", fmt.Sprintf(
					"%s: the querier running this query died or disconnected before answering, %d time(s) in a row; the query may crash queriers (a query of death), so it is not retried further (-frontend.max-retries=%d) (%s)",
					ErrIDQueryOfDeath, attempt+1, f.cfg.MaxRetries, err))
			case f.downstream != nil:
				last = errorAnswer(http.StatusBadGateway, "unavailable", fmt.Sprintf("query-frontend could not reach the querier at %s: %v", f.cfg.DownstreamURL, err))
			default:
				last = errorAnswer(http.StatusBadGateway, "unavailable", fmt.Sprintf("query-frontend could not run the query on a querier: %v", err))
			}
			continue
		}
		if ans.status < 500 {
			return ans
		}
		level.Warn(f.logger).Log("msg", "downstream answered 5xx; retrying if attempts are left", "tenant", req.tenant, "path", req.path, "attempt", attempt+1, "status", ans.status)
		last = ans
	}
	return last
}

func canceledAnswer(ctx context.Context) *answer {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errorAnswer(http.StatusServiceUnavailable, "timeout", "query timed out in the query-frontend: "+context.Cause(ctx).Error())
	}
	return errorAnswer(statusClientClosedRequest, "canceled", "query canceled: "+context.Cause(ctx).Error())
}

// send makes one attempt.
func (f *Frontend) send(ctx context.Context, req downstreamRequest) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.DownstreamTimeout)
	defer cancel()
	if f.exec != nil {
		return f.sendPulled(ctx, req)
	}
	u := *f.downstream
	u.Path = strings.TrimSuffix(u.Path, "/") + req.path
	var body io.Reader
	enc := req.form.Encode()
	if req.method == http.MethodGet {
		u.RawQuery = enc
	} else {
		body = strings.NewReader(enc)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	hr.Header.Set(user.OrgIDHeaderName, req.tenant)
	if req.auth != "" {
		hr.Header.Set("Authorization", req.auth)
	}
	start := time.Now()
	resp, err := f.client.Do(hr)
	if err != nil {
		f.downstreamDuration.WithLabelValues("error").Observe(time.Since(start).Seconds())
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	f.downstreamDuration.WithLabelValues(strconv.Itoa(resp.StatusCode)).Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	h := resp.Header.Clone()
	for _, k := range []string{"Content-Length", "Content-Encoding", "Connection", "Transfer-Encoding"} {
		h.Del(k)
	}
	return &answer{status: resp.StatusCode, header: h, body: b}, nil
}

// sendPulled makes one attempt through the queue the queriers pull from.
func (f *Frontend) sendPulled(ctx context.Context, req downstreamRequest) (*answer, error) {
	hr := &meridianpb.HTTPRequest{Method: req.method, Url: req.path}
	enc := req.form.Encode()
	h := http.Header{}
	if req.method == http.MethodGet {
		hr.Url += "?" + enc
	} else {
		hr.Body = []byte(enc)
		h.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	h.Set(user.OrgIDHeaderName, req.tenant)
	if req.auth != "" {
		h.Set("Authorization", req.auth)
	}
	for k, vs := range h {
		hr.Headers = append(hr.Headers, &meridianpb.HTTPHeader{Key: k, Values: vs})
	}
	start := time.Now()
	resp, err := f.exec.Do(ctx, req.tenant, hr, req.maxOutstanding, req.maxQueriers)
	if err != nil {
		f.downstreamDuration.WithLabelValues("error").Observe(time.Since(start).Seconds())
		if errors.Is(err, scheduler.ErrTooManyOutstanding) {
			f.rejected.WithLabelValues("too_many_outstanding").Inc()
			return tooManyOutstanding(req.tenant, req.maxOutstanding), nil
		}
		return nil, err
	}
	f.downstreamDuration.WithLabelValues(strconv.Itoa(int(resp.Code))).Observe(time.Since(start).Seconds())
	ah := http.Header{}
	for _, hh := range resp.Headers {
		ah[hh.Key] = hh.Values
	}
	for _, k := range []string{"Content-Length", "Content-Encoding", "Connection", "Transfer-Encoding"} {
		ah.Del(k)
	}
	return &answer{status: int(resp.Code), header: ah, body: resp.Body}, nil
}
