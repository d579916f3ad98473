package meridianpb

import (
	"fmt"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// WireChunk is a chunk's wire form, its bytes shared, not copied: the
// caller keeps them unchanged until the message is sent.
func WireChunk(mint, maxt int64, enc chunkenc.Encoding, data []byte) (prompb.Chunk, error) {
	out := prompb.Chunk{MinTimeMs: mint, MaxTimeMs: maxt, Data: data}
	switch enc {
	case chunkenc.EncXOR:
		out.Type = prompb.Chunk_XOR
	case chunkenc.EncHistogram:
		out.Type = prompb.Chunk_HISTOGRAM
	case chunkenc.EncFloatHistogram:
		out.Type = prompb.Chunk_FLOAT_HISTOGRAM
	default:
		return out, fmt.Errorf("chunk of unsupported encoding %s", enc)
	}
	return out, nil
}
