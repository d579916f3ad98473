package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// RingMember is one instance of the ingester ring as the JSON form of
// /ring shows it. State is UNHEALTHY when the heartbeat is older than the
// ring's heartbeat timeout, whatever the stored state.
type RingMember struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	Address   string    `json:"address"`
	Zone      string    `json:"zone"`
	Tokens    []uint32  `json:"tokens"`
	Heartbeat time.Time `json:"timestamp"`
}

// Ring fetches /ring with Accept: application/json and returns its members
// by ID. Transport and HTTP errors are returned: the caller may be polling
// a process that is still starting.
func (p *Process) Ring() (map[string]RingMember, error) { return p.RingAt("/ring") }

// RingAt fetches the ring page at path (/ring, /store-gateway/ring, ...) as
// JSON and returns its members by ID.
func (p *Process) RingAt(path string) (map[string]RingMember, error) {
	req, err := http.NewRequest(http.MethodGet, p.URL()+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	body, err := p.shortRequest(req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var page struct {
		Shards []RingMember `json:"shards"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("decoding the ring JSON of %s: %w; body %.500s", p.opts.Name, err, body)
	}
	out := make(map[string]RingMember, len(page.Shards))
	for _, m := range page.Shards {
		out[m.ID] = m
	}
	return out, nil
}

// RingPage fetches /ring as a browser does and returns the HTML.
func (p *Process) RingPage() (string, error) {
	req, err := http.NewRequest(http.MethodGet, p.URL()+"/ring", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/html")
	body, err := p.shortRequest(req, http.StatusOK)
	return string(body), err
}

// ForgetRingMember posts the Forget button's form (forget=<id>) to /ring, as
// the page does, and returns the HTTP status without following the
// redirect that answers it.
func (p *Process) ForgetRingMember(id string) (int, error) {
	form := url.Values{"forget": {id}}
	req, err := http.NewRequest(http.MethodPost, p.URL()+"/ring", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 && resp.StatusCode/100 != 3 {
		return resp.StatusCode, fmt.Errorf("POST /ring forget=%s: HTTP %d: %.500s", id, resp.StatusCode, body)
	}
	return resp.StatusCode, nil
}

// MemberlistMember is one node of the gossip cluster as /memberlist shows it.
type MemberlistMember struct {
	Name  string `json:"Name"`
	Addr  string `json:"Addr"`
	Port  int    `json:"Port"`
	State int    `json:"State"` // 0 alive, 1 suspect, 2 dead, 3 left
}

// Address is the member's gossip host:port.
func (m MemberlistMember) Address() string { return net.JoinHostPort(m.Addr, strconv.Itoa(m.Port)) }

// MemberlistMembers fetches /memberlist as JSON and returns the members the
// process knows of, alive or not.
func (p *Process) MemberlistMembers() ([]MemberlistMember, error) {
	req, err := http.NewRequest(http.MethodGet, p.URL()+"/memberlist", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	body, err := p.shortRequest(req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var page struct {
		SortedMembers []MemberlistMember `json:"SortedMembers"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("decoding the memberlist JSON of %s: %w; body %.500s", p.opts.Name, err, body)
	}
	return page.SortedMembers, nil
}

// shortRequest sends req with a 10 s timeout and returns the body, or an
// error unless the status is want.
func (p *Process) shortRequest(req *http.Request, want int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	resp, err := p.http.Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return body, fmt.Errorf("%s %s: HTTP %d: %.500s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	return body, nil
}

// MemberlistAddr is the host:port the process gossips on: the last
// -memberlist.bind-port among its flags (Options.Args may override the one
// the harness chose).
func (p *Process) MemberlistAddr() string {
	port := ""
	for _, a := range p.args() {
		if v, ok := strings.CutPrefix(a, "-memberlist.bind-port="); ok {
			port = v
		}
	}
	if port == "" {
		p.tb.Fatalf("%s: the binary offers no -memberlist.bind-port flag", p.opts.Name)
	}
	return net.JoinHostPort(p.host, port)
}

// LogLines returns the lines of the process log that contain every one of
// substrs, leaving out the harness' own lines.
func (p *Process) LogLines(substrs ...string) []string {
	p.tb.Helper()
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		p.tb.Fatalf("reading the log of %s: %v", p.opts.Name, err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "==== harness") {
			continue
		}
		all := true
		for _, s := range substrs {
			if !strings.Contains(line, s) {
				all = false
				break
			}
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// TryPushRequestContext is TryPushRequest bounded by ctx; safe to call from
// any goroutine.
func (c *Client) TryPushRequestContext(ctx context.Context, wr *prompb.WriteRequest) (int, string, error) {
	raw, err := wr.Marshal()
	if err != nil {
		return 0, "", fmt.Errorf("encoding the write request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return 0, "", err
	}
	SetRemoteWriteHeaders(req.Header)
	code, body, err := c.Do(req)
	return code, string(body), err
}
