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
