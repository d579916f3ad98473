package grpccodec

import (
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"

	"github.com/meridianhq/meridian/pkg/meridianpb"
)

// TestPooledCodecRoundTrip: a message survives marshal and unmarshal through
// pooled buffers, and the decoded message does not share memory with the
// received buffer (which gRPC reuses once Unmarshal returns).
func TestPooledCodecRoundTrip(t *testing.T) {
	in := &meridianpb.QueryStreamResponse{Series: []prompb.ChunkedSeries{{
		Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "api"}},
		Chunks: []prompb.Chunk{{MinTimeMs: 1, MaxTimeMs: 2, Type: prompb.Chunk_XOR, Data: []byte("chunk-bytes")}},
	}}}
	var c PooledCodec
	wire, err := c.Marshal(in)
	require.NoError(t, err)
	plain, err := in.Marshal()
	require.NoError(t, err)
	require.Equal(t, plain, wire.Materialize(), "the same bytes as the message's own Marshal")

	// What gRPC hands to Unmarshal: the received bytes in a buffer of its own.
	recv := append([]byte(nil), plain...)
	var out meridianpb.QueryStreamResponse
	require.NoError(t, c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(recv)}, &out))
	wire.Free()
	for i := range recv {
		recv[i] = 0xff // the received buffer is reused for another message
	}
	require.Equal(t, in.String(), out.String())

	// An empty message is empty on the wire.
	empty, err := c.Marshal(&meridianpb.QueryStreamResponse{})
	require.NoError(t, err)
	require.Zero(t, empty.Len())

	// A message larger than the pooling threshold goes through a pooled
	// buffer and still marshals to the same bytes.
	in.Series[0].Chunks[0].Data = make([]byte, 64<<10)
	big, err := c.Marshal(in)
	require.NoError(t, err)
	plain, err = in.Marshal()
	require.NoError(t, err)
	require.Equal(t, plain, big.Materialize())
	big.Free()
}

// countingPool is a buffer pool that counts what comes back to it.
type countingPool struct{ puts int }

func (p *countingPool) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (p *countingPool) Put(*[]byte)       { p.puts++ }

// TestPooledCodecRetains: a RetainingUnmarshaler keeps the received buffer
// after gRPC let go of it, its chunks aliasing it, until it is freed; any
// other message gives it back when decoded.
func TestPooledCodecRetains(t *testing.T) {
	in := &meridianpb.QueryStreamResponse{Series: []prompb.ChunkedSeries{{
		Labels: []prompb.Label{{Name: "__name__", Value: "up"}},
		Chunks: []prompb.Chunk{{MinTimeMs: 1, MaxTimeMs: 2, Type: prompb.Chunk_XOR, Data: make([]byte, 8<<10)}},
	}}}
	in.Series[0].Chunks[0].Data[0] = 42
	plain, err := in.Marshal()
	require.NoError(t, err)
	received := func(pool *countingPool) mem.BufferSlice {
		b := append([]byte(nil), plain...) // above the pooling threshold
		return mem.BufferSlice{mem.NewBuffer(&b, pool)}
	}
	var c PooledCodec

	pool := &countingPool{}
	data := received(pool)
	var out meridianpb.RetainedQueryStreamResponse
	require.NoError(t, c.Unmarshal(data, &out))
	data.Free() // what gRPC does after Unmarshal
	require.Zero(t, pool.puts, "the message holds the buffer")
	require.Equal(t, in.String(), out.String())
	buf := out.TakeBuffer()
	require.NotNil(t, buf)
	require.Equal(t, byte(42), out.Series[0].Chunks[0].Data[0])
	raw, chunk := buf.ReadOnlyData(), out.Series[0].Chunks[0].Data
	require.Same(t, &raw[len(raw)-1], &chunk[len(chunk)-1], "the chunk, last on the wire, aliases the buffer")
	buf.Free()
	require.Equal(t, 1, pool.puts)

	// The message receives again once its buffer was taken; malformed
	// input fails and gives the buffer back.
	pool = &countingPool{}
	bad := append([]byte(nil), plain[:len(plain)-1]...)
	bad = append(bad, make([]byte, 2048)...)
	data = mem.BufferSlice{mem.NewBuffer(&bad, pool)}
	err = c.Unmarshal(data, &out)
	require.Error(t, err)
	data.Free()
	require.Equal(t, 1, pool.puts)
	require.Nil(t, out.TakeBuffer())

	// Other messages copy and give the buffer back at once.
	pool = &countingPool{}
	data = received(pool)
	var plainOut meridianpb.QueryStreamResponse
	require.NoError(t, c.Unmarshal(data, &plainOut))
	data.Free()
	require.Equal(t, 1, pool.puts)
	require.Equal(t, in.String(), plainOut.String())
}
