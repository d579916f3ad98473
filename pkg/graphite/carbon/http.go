package carbon

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	dskittenant "github.com/grafana/dskit/tenant"
)

// ServeHTTP is POST /graphite/ingest: a body of carbon plaintext lines for
// the tenant of the request (X-Scope-OrgID through the auth middleware). The
// answer is JSON: lines accepted and rejected, rejections per reason and the
// first rejected lines. The status is 200 when every line was stored, 400
// when some were rejected (the others are stored), 429 or 5xx when storage
// did not take them.
func (rv *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "carbon lines are sent with POST, not "+r.Method, http.StatusMethodNotAllowed)
		return
	}
	if _, err := dskittenant.TenantID(r.Context()); err != nil {
		http.Error(w, "no valid tenant in the request: set the X-Scope-OrgID header", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(rv.cfg.MaxHTTPBodySize)+1))
	if err != nil {
		http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > rv.cfg.MaxHTTPBodySize {
		http.Error(w, fmt.Sprintf("the body is over %d bytes; send fewer lines per request or raise -graphite.ingest.max-body-size", rv.cfg.MaxHTTPBodySize), http.StatusRequestEntityTooLarge)
		return
	}
	res := &IngestResult{Reasons: map[string]int{}, Errors: []string{}}
	b := rv.newBatch("http", r.RemoteAddr)
	b.ctx = r.Context()
	b.result = res
	rv.addLines(b, body)
	b.flush(r.Context())
	worst := b.worst
	status := http.StatusOK
	switch {
	case worst >= 500 || worst == http.StatusTooManyRequests:
		status = worst
	case res.Rejected > 0:
		status = http.StatusBadRequest
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(res)
}
