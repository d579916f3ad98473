package meridianpb

// A hand-written decoder for the two messages that carry chunk series to
// the querier (QueryStreamResponse from the ingesters, StoreSeriesResponse
// from the store-gateways). It decodes what the generated Unmarshal decodes,
// with two differences that matter at tens of megabytes per query:
//
//   - Chunk.Data aliases the input instead of being copied: the caller keeps
//     the input alive for as long as the chunks are read (see
//     RetainedQueryStreamResponse and RetainedStoreSeriesResponse);
//   - every slice is allocated once at its final size (a first pass counts
//     series, labels and chunks): one array of chunks and one of labels per
//     message, carved into each series' sub-slices, instead of growing each
//     series' slices by append.
//
// Label names and values are copied (into one string per message, of which
// each name and value is a substring): labels outlive the input.

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/mem"
)

var (
	errVarintOverflow = errors.New("varint longer than 10 bytes")
	errNegativeLength = errors.New("negative length")
)

// wire types of the protobuf encoding.
const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireFixed32    = 5
)

// varint reads the varint at b[i:] and returns it and the index after it.
func varint(b []byte, i int) (uint64, int, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, i, errVarintOverflow
		}
		if i >= len(b) {
			return 0, i, io.ErrUnexpectedEOF
		}
		c := b[i]
		i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i, nil
		}
	}
}

// tag reads the key of the field at b[i:].
func tag(b []byte, i int) (num int32, wt int, next int, err error) {
	k, next, err := varint(b, i)
	if err != nil {
		return 0, 0, next, err
	}
	num, wt = int32(k>>3), int(k&7)
	if wt == wireEndGroup {
		return 0, 0, next, errors.New("end-group tag outside a group")
	}
	if num <= 0 {
		return 0, 0, next, fmt.Errorf("illegal field number %d", num)
	}
	return num, wt, next, nil
}

// payload reads the length at b[i:] of a length-delimited field and returns
// where its payload starts and ends.
func payload(b []byte, i int) (start, end int, err error) {
	n, start, err := varint(b, i)
	if err != nil {
		return 0, 0, err
	}
	l := int(n)
	if l < 0 {
		return 0, 0, errNegativeLength
	}
	end = start + l
	if end < 0 {
		return 0, 0, errNegativeLength
	}
	if end > len(b) {
		return 0, 0, io.ErrUnexpectedEOF
	}
	return start, end, nil
}

// skip returns the index after the field whose key is at b[i:], a field
// the message does not know; groups are skipped whole.
func skip(b []byte, i int) (int, error) {
	depth := 0
	for i < len(b) {
		k, next, err := varint(b, i)
		if err != nil {
			return 0, err
		}
		i = next
		switch k & 7 {
		case wireVarint:
			if _, i, err = varint(b, i); err != nil {
				return 0, err
			}
		case wireFixed64:
			i += 8
		case wireBytes:
			n, next, err := varint(b, i)
			if err != nil {
				return 0, err
			}
			if int(n) < 0 {
				return 0, errNegativeLength
			}
			i = next + int(n)
		case wireStartGroup:
			depth++
		case wireEndGroup:
			if depth == 0 {
				return 0, errors.New("end-group tag outside a group")
			}
			depth--
		case wireFixed32:
			i += 4
		default:
			return 0, fmt.Errorf("illegal wire type %d", k&7)
		}
		if i < 0 {
			return 0, errNegativeLength
		}
		if depth == 0 {
			if i > len(b) {
				return 0, io.ErrUnexpectedEOF
			}
			return i, nil
		}
	}
	return 0, io.ErrUnexpectedEOF
}

func wrongWireType(field string, wt int) error {
	want := wireBytes
	switch field {
	case "min_time_ms", "max_time_ms", "type":
		want = wireVarint
	}
	return fmt.Errorf("field %s has wire type %d, want %d", field, wt, want)
}

// countSeries counts the labels and chunks of the ChunkedSeries in b, and
// the bytes of its labels' encoding (a bound on their names and values).
func countSeries(b []byte) (labels, chunks, labelBytes int, err error) {
	for i := 0; i < len(b); {
		pre := i
		num, wt, next, err := tag(b, i)
		if err != nil {
			return 0, 0, 0, err
		}
		switch num {
		case 1, 2:
			if wt != wireBytes {
				return 0, 0, 0, wrongWireType(map[int32]string{1: "labels", 2: "chunks"}[num], wt)
			}
			start, end, err := payload(b, next)
			if err != nil {
				return 0, 0, 0, err
			}
			if num == 1 {
				labels++
				labelBytes += end - start
			} else {
				chunks++
			}
			i = end
		default:
			if i, err = skip(b, pre); err != nil {
				return 0, 0, 0, err
			}
		}
	}
	return labels, chunks, labelBytes, nil
}

// seriesCount is what the first pass counted in one series.
type seriesCount struct{ labels, chunks int }

// arena is the memory of one message's series, allocated at its final size.
type arena struct {
	labels []prompb.Label
	chunks []prompb.Chunk
	// strs holds the names and values of all labels; each is a substring of
	// what it accumulated. Written bytes never change, so a substring stays
	// valid whatever is written after it.
	strs strings.Builder
}

// take cuts the next n elements off *free, capacity n so that an append
// cannot write into the next series' part.
func take[T any](free *[]T, n int) []T {
	if n == 0 {
		return nil
	}
	s := (*free)[:n:n]
	*free = (*free)[n:]
	return s
}

// str copies p into the arena's strings.
func (a *arena) str(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	a.strs.Write(p)
	s := a.strs.String()
	return s[len(s)-len(p):]
}

// decodeSeries decodes the ChunkedSeries in b, whose labels and chunks the
// first pass counted.
func (a *arena) decodeSeries(b []byte, n seriesCount, cs *prompb.ChunkedSeries) error {
	cs.Labels, cs.Chunks = take(&a.labels, n.labels), take(&a.chunks, n.chunks)
	li, ci := 0, 0
	for i := 0; i < len(b); {
		pre := i
		num, _, next, err := tag(b, i)
		if err != nil {
			return err
		}
		switch num {
		case 1, 2: // wire types checked by countSeries
			start, end, err := payload(b, next)
			if err != nil {
				return err
			}
			if num == 1 {
				if err := a.decodeLabel(b[start:end], &cs.Labels[li]); err != nil {
					return fmt.Errorf("label %d: %w", li, err)
				}
				li++
			} else {
				if err := decodeChunk(b[start:end:end], &cs.Chunks[ci]); err != nil {
					return fmt.Errorf("chunk %d: %w", ci, err)
				}
				ci++
			}
			i = end
		default:
			if i, err = unknown(b, pre, &cs.XXX_unrecognized); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *arena) decodeLabel(b []byte, l *prompb.Label) error {
	// The last occurrence of a field wins; only it is copied.
	var name, value []byte
	for i := 0; i < len(b); {
		pre := i
		num, wt, next, err := tag(b, i)
		if err != nil {
			return err
		}
		switch num {
		case 1, 2:
			if wt != wireBytes {
				return wrongWireType(map[int32]string{1: "name", 2: "value"}[num], wt)
			}
			start, end, err := payload(b, next)
			if err != nil {
				return err
			}
			if num == 1 {
				name = b[start:end]
			} else {
				value = b[start:end]
			}
			i = end
		default:
			if i, err = unknown(b, pre, &l.XXX_unrecognized); err != nil {
				return err
			}
		}
	}
	l.Name, l.Value = a.str(name), a.str(value)
	return nil
}

// unknown skips the field at pre and keeps its bytes in dst, as the
// generated code keeps fields it does not know.
func unknown(b []byte, pre int, dst *[]byte) (int, error) {
	i, err := skip(b, pre)
	if err != nil {
		return 0, err
	}
	*dst = append(*dst, b[pre:i]...)
	return i, nil
}

// decodeChunk decodes the Chunk in b; its Data aliases b.
func decodeChunk(b []byte, c *prompb.Chunk) error {
	for i := 0; i < len(b); {
		pre := i
		num, wt, next, err := tag(b, i)
		if err != nil {
			return err
		}
		switch num {
		case 1, 2, 3:
			if wt != wireVarint {
				return wrongWireType(map[int32]string{1: "min_time_ms", 2: "max_time_ms", 3: "type"}[num], wt)
			}
			v, end, err := varint(b, next)
			if err != nil {
				return err
			}
			switch num {
			case 1:
				c.MinTimeMs = int64(v)
			case 2:
				c.MaxTimeMs = int64(v)
			default:
				c.Type = prompb.Chunk_Encoding(v)
			}
			i = end
		case 4:
			if wt != wireBytes {
				return wrongWireType("data", wt)
			}
			start, end, err := payload(b, next)
			if err != nil {
				return err
			}
			// Capacity cut at the end: an append to Data must not write
			// over the next field.
			c.Data = b[start:end:end]
			i = end
		default:
			if i, err = unknown(b, pre, &c.XXX_unrecognized); err != nil {
				return err
			}
		}
	}
	return nil
}

// decodeChunkSeriesMessage decodes the fields of a QueryStreamResponse or,
// with blocks set, a StoreSeriesResponse (field 2, queried_blocks).
func decodeChunkSeriesMessage(b []byte, series *[]prompb.ChunkedSeries, blocks *[]string, unrecognized *[]byte) error {
	// First pass: count, and check the message's own structure.
	var (
		counts                       []seriesCount
		nLabels, nChunks, labelBytes int
	)
	for i := 0; i < len(b); {
		pre := i
		num, wt, next, err := tag(b, i)
		if err != nil {
			return fmt.Errorf("field at byte %d: %w", pre, err)
		}
		switch {
		case num == 1 || (num == 2 && blocks != nil):
			if wt != wireBytes {
				return wrongWireType(map[int32]string{1: "series", 2: "queried_blocks"}[num], wt)
			}
			start, end, err := payload(b, next)
			if err != nil {
				return fmt.Errorf("field at byte %d: %w", pre, err)
			}
			if num == 1 {
				nl, nc, lb, err := countSeries(b[start:end])
				if err != nil {
					return fmt.Errorf("series %d: %w", len(counts), err)
				}
				counts = append(counts, seriesCount{labels: nl, chunks: nc})
				nLabels += nl
				nChunks += nc
				labelBytes += lb
			}
			i = end
		default:
			if i, err = skip(b, pre); err != nil {
				return fmt.Errorf("field at byte %d: %w", pre, err)
			}
		}
	}

	// Second pass: decode into memory of the final size.
	var a arena
	if len(counts) > 0 {
		*series = make([]prompb.ChunkedSeries, len(counts))
	}
	if nLabels > 0 {
		a.labels = make([]prompb.Label, nLabels)
	}
	if nChunks > 0 {
		a.chunks = make([]prompb.Chunk, nChunks)
	}
	a.strs.Grow(labelBytes)
	k := 0
	for i := 0; i < len(b); {
		pre := i
		num, _, next, _ := tag(b, i) // checked by the first pass
		switch {
		case num == 1 || (num == 2 && blocks != nil):
			start, end, _ := payload(b, next)
			if num == 1 {
				if err := a.decodeSeries(b[start:end], counts[k], &(*series)[k]); err != nil {
					return fmt.Errorf("series %d: %w", k, err)
				}
				k++
			} else {
				*blocks = append(*blocks, string(b[start:end]))
			}
			i = end
		default:
			i, _ = unknown(b, pre, unrecognized) // checked by the first pass
		}
	}
	return nil
}

// UnmarshalNoCopy decodes b like Unmarshal, except that m is reset first
// and the chunks' Data alias b: b must not change while they are read.
func (m *QueryStreamResponse) UnmarshalNoCopy(b []byte) error {
	*m = QueryStreamResponse{}
	if err := decodeChunkSeriesMessage(b, &m.Series, nil, &m.XXX_unrecognized); err != nil {
		*m = QueryStreamResponse{}
		return fmt.Errorf("decode QueryStreamResponse: %w", err)
	}
	return nil
}

// UnmarshalNoCopy decodes b like Unmarshal, except that m is reset first
// and the chunks' Data alias b: b must not change while they are read.
func (m *StoreSeriesResponse) UnmarshalNoCopy(b []byte) error {
	*m = StoreSeriesResponse{}
	if err := decodeChunkSeriesMessage(b, &m.Series, &m.QueriedBlocks, &m.XXX_unrecognized); err != nil {
		*m = StoreSeriesResponse{}
		return fmt.Errorf("decode StoreSeriesResponse: %w", err)
	}
	return nil
}

// retainedBuffer is the received buffer a message's chunks alias.
type retainedBuffer struct{ buf mem.Buffer }

// TakeBuffer returns the buffer the message's chunks alias; the caller
// frees it once they are no longer read (a nil buffer needs no freeing).
// The message can receive again after it.
func (r *retainedBuffer) TakeBuffer() mem.Buffer {
	b := r.buf
	r.buf = nil
	return b
}

func (r *retainedBuffer) keep(buf mem.Buffer, decode func([]byte) error) error {
	if r.buf != nil {
		buf.Free()
		return errors.New("a received message still holds the buffer of the previous one: take it first")
	}
	if err := decode(buf.ReadOnlyData()); err != nil {
		buf.Free()
		return err
	}
	r.buf = buf
	return nil
}

// RetainedQueryStreamResponse is a QueryStreamResponse received without
// copying its chunks: their Data alias the buffer gRPC received the message
// in, which the message owns until TakeBuffer hands it over (receiving
// again before that is an error). The pooled gRPC
// codec (pkg/util/grpccodec) recognises it by UnmarshalRetained. Receive it
// with RecvMsg on the stream.
type RetainedQueryStreamResponse struct {
	QueryStreamResponse
	retainedBuffer
}

// UnmarshalRetained decodes the message from buf and keeps buf, also on
// error (buf is freed then).
func (r *RetainedQueryStreamResponse) UnmarshalRetained(buf mem.Buffer) error {
	return r.keep(buf, r.QueryStreamResponse.UnmarshalNoCopy)
}

// RetainedStoreSeriesResponse is RetainedQueryStreamResponse for the
// store-gateway's StoreSeriesResponse.
type RetainedStoreSeriesResponse struct {
	StoreSeriesResponse
	retainedBuffer
}

// UnmarshalRetained decodes the message from buf and keeps buf, also on
// error (buf is freed then).
func (r *RetainedStoreSeriesResponse) UnmarshalRetained(buf mem.Buffer) error {
	return r.keep(buf, r.StoreSeriesResponse.UnmarshalNoCopy)
}
