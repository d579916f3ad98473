package querier

import (
	"sync"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc/mem"
)

// Received chunk series are not copied out of the gRPC messages they came
// in: their chunks alias the pooled buffers gRPC received the messages into
// (meridianpb.RetainedQueryStreamResponse, RetainedStoreSeriesResponse).
// Those buffers go back to gRPC's pool, where the next received message
// overwrites them, so the rule is:
//
//   - the sub-querier (ingesterQuerier, blocksQuerier) that made a Select's
//     series keeps the buffers of the messages they were read from, and
//     frees them in its Close; the merged querier closes it
//     (querier.Close → closers → storage.MergeQuerier.Close). Prometheus'
//     storage contract is the same: a Select's series are valid until
//     Querier.Close.
//   - a call whose series are not returned (a stream that failed half way,
//     a retried store-gateway call) frees its own buffers before returning
//     its error; a result that is dropped after the call succeeded (a slow
//     ingester the replication set no longer waited for, a fetch given up
//     for a relisting or a cancelled context) is left to the garbage
//     collector: it may never free what a returned series reads.
//   - labels never alias a buffer (the decoder copies them), so labels-only
//     selects free each buffer as soon as its message is converted.
//
// Every reader of this package's queriers is done with the samples before it
// closes: the PromQL engine closes its querier when the evaluation (which
// copies samples into its own points) returned; the Graphite fetch aligns
// every series into float slices before its deferred Close (alignAll waits
// for its workers); the series and labels endpoints read labels only, which
// are copies; there is no remote read.
type retained struct {
	mu   sync.Mutex
	bufs []mem.Buffer
}

// keep adds the buffers of the series a Select returned.
func (r *retained) keep(bufs []mem.Buffer) {
	r.mu.Lock()
	r.bufs = append(r.bufs, bufs...)
	r.mu.Unlock()
}

// release frees the buffers: the querier is closed, nothing reads its
// series any more.
func (r *retained) release() {
	r.mu.Lock()
	bufs := r.bufs
	r.bufs = nil
	r.mu.Unlock()
	freeAll(bufs)
}

func freeAll(bufs []mem.Buffer) {
	for _, b := range bufs {
		if b != nil {
			b.Free()
		}
	}
}

// held is how many buffers are kept (for tests).
func (r *retained) held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bufs)
}

// receivedSeries is what one call of a Select received: series sorted by
// labels, and the buffers their chunks alias.
type receivedSeries struct {
	series []storage.Series
	bufs   []mem.Buffer
}

// add converts the chunk series of one message, whose buffer is buf (nil:
// none). With labelsOnly the buffer is freed at once: labels are copies.
func (r *receivedSeries) add(css []prompb.ChunkedSeries, buf mem.Buffer, labelsOnly bool) error {
	if buf != nil {
		if labelsOnly {
			defer buf.Free()
		} else {
			r.bufs = append(r.bufs, buf)
		}
	}
	for _, cs := range css {
		s, err := seriesFromWire(cs, labelsOnly)
		if err != nil {
			return err
		}
		r.series = append(r.series, s)
	}
	return nil
}

// discard frees the buffers of a call whose series are not returned.
func (r *receivedSeries) discard() {
	freeAll(r.bufs)
	r.bufs, r.series = nil, nil
}
