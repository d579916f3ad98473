package meridianpb

import (
	"math"
	"math/rand"
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

// encoder writes random encodings of the chunk series messages: fields in
// any order, repeated scalars (the last wins), unknown fields of every wire
// type (groups nested) between known ones, empty series, zero-length and
// absent data, every chunk type and out-of-range ones.
type encoder struct{ rng *rand.Rand }

func (e encoder) unknown(b []byte, firstFree protowire.Number) []byte {
	num := firstFree + protowire.Number(e.rng.Intn(40))
	switch e.rng.Intn(5) {
	case 0:
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), e.rng.Uint64()>>uint(e.rng.Intn(64)))
	case 1:
		return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), e.rng.Uint64())
	case 2:
		return protowire.AppendFixed32(protowire.AppendTag(b, num, protowire.Fixed32Type), e.rng.Uint32())
	case 3:
		p := make([]byte, e.rng.Intn(20))
		e.rng.Read(p)
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), p)
	default:
		b = protowire.AppendTag(b, num, protowire.StartGroupType)
		for n := e.rng.Intn(3); n > 0; n-- {
			b = e.unknown(b, 1)
		}
		return protowire.AppendTag(b, num, protowire.EndGroupType)
	}
}

// fields appends the fields in a random order, with unknown ones between.
func (e encoder) fields(b []byte, firstFree protowire.Number, fields [][]byte) []byte {
	e.rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	for _, f := range fields {
		if e.rng.Intn(8) == 0 {
			b = e.unknown(b, firstFree)
		}
		b = append(b, f...)
	}
	if e.rng.Intn(8) == 0 {
		b = e.unknown(b, firstFree)
	}
	return b
}

// message keeps the order of the repeated fields (it is the order of the
// decoded slice) and shuffles the scalars in between.
func (e encoder) message(firstFree protowire.Number, repeated [][]byte, scalars [][]byte) []byte {
	var b []byte
	for len(repeated) > 0 || len(scalars) > 0 {
		if len(scalars) > 0 && (len(repeated) == 0 || e.rng.Intn(2) == 0) {
			k := e.rng.Intn(len(scalars))
			b = e.fields(b, firstFree, [][]byte{scalars[k]})
			scalars = append(scalars[:k], scalars[k+1:]...)
			continue
		}
		b = e.fields(b, firstFree, [][]byte{repeated[0]})
		repeated = repeated[1:]
	}
	if e.rng.Intn(8) == 0 {
		b = e.unknown(b, firstFree)
	}
	return b
}

func (e encoder) varintField(num protowire.Number) []byte {
	var v uint64
	switch e.rng.Intn(4) {
	case 0:
		v = uint64(e.rng.Int63n(3_000_000_000_000))
	case 1:
		v = uint64(-e.rng.Int63n(1000) - 1) // negative int64: ten bytes
	case 2:
		v = uint64(e.rng.Intn(5)) // chunk types, one unknown
	default:
		v = e.rng.Uint64()
	}
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func (e encoder) bytesField(num protowire.Number, p []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), p)
}

func (e encoder) chunk() []byte {
	var scalars [][]byte
	for num := protowire.Number(1); num <= 3; num++ {
		for n := e.rng.Intn(3); n > 0; n-- { // absent, once or repeated
			scalars = append(scalars, e.varintField(num))
		}
	}
	for n := e.rng.Intn(3); n > 0; n-- {
		data := make([]byte, []int{0, 1, 17, 300}[e.rng.Intn(4)])
		e.rng.Read(data)
		scalars = append(scalars, e.bytesField(4, data))
	}
	return e.message(5, nil, scalars)
}

func (e encoder) label() []byte {
	var scalars [][]byte
	for num := protowire.Number(1); num <= 2; num++ {
		for n := e.rng.Intn(3); n > 0; n-- {
			s := []string{"", "__name__", "job", "a.b.c", "ü", string(make([]byte, 130))}[e.rng.Intn(6)]
			scalars = append(scalars, e.bytesField(num, []byte(s)))
		}
	}
	return e.message(3, nil, scalars)
}

func (e encoder) series() []byte {
	var labels, chunks [][]byte
	for n := e.rng.Intn(4); n > 0; n-- {
		labels = append(labels, e.bytesField(1, e.label()))
	}
	for n := []int{0, 1, 3, 20}[e.rng.Intn(4)]; n > 0; n-- {
		chunks = append(chunks, e.bytesField(2, e.chunk()))
	}
	// Labels and chunks decode into separate slices: interleave them, each
	// in its order.
	var repeated [][]byte
	for len(labels) > 0 || len(chunks) > 0 {
		if len(labels) > 0 && (len(chunks) == 0 || e.rng.Intn(2) == 0) {
			repeated, labels = append(repeated, labels[0]), labels[1:]
		} else {
			repeated, chunks = append(repeated, chunks[0]), chunks[1:]
		}
	}
	return e.message(3, repeated, nil)
}

// response encodes a QueryStreamResponse or, with blocks, a
// StoreSeriesResponse.
func (e encoder) response(blocks bool) []byte {
	var repeated [][]byte
	for n := []int{0, 1, 2, 10}[e.rng.Intn(4)]; n > 0; n-- {
		repeated = append(repeated, e.bytesField(1, e.series()))
	}
	firstFree := protowire.Number(2)
	if blocks {
		firstFree = 3
		for n := e.rng.Intn(3); n > 0; n-- {
			repeated = append(repeated, e.bytesField(2, []byte([]string{"", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}[e.rng.Intn(2)])))
		}
	}
	return e.message(firstFree, repeated, nil)
}

// requireSameDecoding decodes b with the generated Unmarshal and with
// UnmarshalNoCopy: both fail, or both decode the same message. It returns
// whether b decoded.
func requireSameDecoding(t testing.TB, b []byte) bool {
	t.Helper()
	var want, got QueryStreamResponse
	wantErr := want.Unmarshal(b)
	gotErr := got.UnmarshalNoCopy(b)
	require.Equal(t, wantErr == nil, gotErr == nil, "QueryStreamResponse: generated %v, no-copy %v", wantErr, gotErr)
	if wantErr == nil {
		require.Equal(t, want, got)
		requireAliases(t, b, got.Series)
	}
	var wantS, gotS StoreSeriesResponse
	wantSErr := wantS.Unmarshal(b)
	gotSErr := gotS.UnmarshalNoCopy(b)
	require.Equal(t, wantSErr == nil, gotSErr == nil, "StoreSeriesResponse: generated %v, no-copy %v", wantSErr, gotSErr)
	if wantSErr == nil {
		require.Equal(t, wantS, gotS)
		requireAliases(t, b, gotS.Series)
	}
	return wantErr == nil && wantSErr == nil
}

// requireAliases checks that every chunk's data lies within b and that each
// series' slices are exactly as long as their capacity.
func requireAliases(t testing.TB, b []byte, series []prompb.ChunkedSeries) {
	t.Helper()
	for _, s := range series {
		require.Equal(t, len(s.Labels), cap(s.Labels))
		require.Equal(t, len(s.Chunks), cap(s.Chunks))
		for _, c := range s.Chunks {
			if len(c.Data) == 0 {
				continue
			}
			require.Equal(t, len(c.Data), cap(c.Data), "data capacity ends with it")
			base, p := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(&c.Data[0]))
			inside := p >= base && p < base+uintptr(len(b))
			require.True(t, inside, "chunk data aliases the input")
		}
	}
}

// TestUnmarshalNoCopyMatchesGenerated: random well-formed encodings decode
// to what the generated Unmarshal decodes, chunk data aliasing the input;
// cut or corrupted ones fail in both or decode the same in both.
func TestUnmarshalNoCopyMatchesGenerated(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	e := encoder{rng}
	decoded := 0
	for round := 0; round < 3000; round++ {
		b := e.response(round%2 == 1)
		require.True(t, requireSameDecoding(t, b) || round%2 == 0, "round %d: a well-formed StoreSeriesResponse decodes", round)
		if round%2 == 1 {
			decoded++
		}
		if len(b) == 0 {
			continue
		}
		// Cut it short, or change one byte.
		requireSameDecoding(t, b[:rng.Intn(len(b))])
		c := append([]byte(nil), b...)
		c[rng.Intn(len(c))] = byte(rng.Intn(256))
		requireSameDecoding(t, c)
	}
	require.Equal(t, 1500, decoded)
}

// TestUnmarshalNoCopyRoundTrip: a message marshalled by the generated code
// decodes back to itself, labels copied out of the input.
func TestUnmarshalNoCopyRoundTrip(t *testing.T) {
	in := StoreSeriesResponse{
		Series: []prompb.ChunkedSeries{
			{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "api"}},
				Chunks: []prompb.Chunk{
					{MinTimeMs: -5, MaxTimeMs: 10, Type: prompb.Chunk_XOR, Data: []byte{1, 2, 3}},
					{MinTimeMs: 11, MaxTimeMs: math.MaxInt64, Type: prompb.Chunk_FLOAT_HISTOGRAM, Data: []byte{}},
				}},
			{}, // empty series
			{Labels: []prompb.Label{{Name: "a", Value: ""}}, Chunks: []prompb.Chunk{{Type: prompb.Chunk_HISTOGRAM, Data: []byte{9}}}},
		},
		QueriedBlocks: []string{"b1", "b2"},
	}
	b, err := in.Marshal()
	require.NoError(t, err)
	var out StoreSeriesResponse
	require.NoError(t, out.UnmarshalNoCopy(b))
	var want StoreSeriesResponse
	require.NoError(t, want.Unmarshal(b))
	require.Equal(t, want, out)
	require.Equal(t, in.String(), out.String())

	for i := range b {
		b[i] = 0xff // the input is reused: labels and blocks must not change
	}
	require.Equal(t, "up", out.Series[0].Labels[0].Value)
	require.Equal(t, "job", out.Series[0].Labels[1].Name)
	require.Equal(t, []string{"b1", "b2"}, out.QueriedBlocks)
	require.Equal(t, []byte{0xff, 0xff, 0xff}, out.Series[0].Chunks[0].Data, "chunk data aliases the input")
}

// TestUnmarshalNoCopyErrors: malformed input fails with an error that says
// which message and where.
func TestUnmarshalNoCopyErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"cut length":           {0x0a, 0x05, 0x12},
		"wrong wire type":      {0x08, 0x01},
		"field zero":           {0x00, 0x01},
		"end group":            {0x0c},
		"varint overflow":      append([]byte{0x08 | 0x10}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"bad chunk data":       {0x0a, 0x04, 0x12, 0x02, 0x22, 0x05},
		"unterminated group":   {0x0a, 0x02, 0x1b, 0x08},
		"negative length":      append([]byte{0x0a}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"chunk with bad type":  {0x0a, 0x04, 0x12, 0x02, 0x1a, 0x80},
		"label name is varint": {0x0a, 0x04, 0x0a, 0x02, 0x08, 0x01},
	} {
		var m QueryStreamResponse
		err := m.UnmarshalNoCopy(b)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), "decode QueryStreamResponse", name)
		require.Empty(t, m.Series, name)
		require.Error(t, new(QueryStreamResponse).Unmarshal(b), "%s: the generated code refuses it too", name)
	}
}

// FuzzUnmarshalNoCopy: for any input, UnmarshalNoCopy fails exactly when the
// generated Unmarshal fails and otherwise decodes the same message.
//
//	go test ./pkg/meridianpb -run XXX -fuzz FuzzUnmarshalNoCopy -fuzztime 60s -fuzzminimizetime 100x
func FuzzUnmarshalNoCopy(f *testing.F) {
	e := encoder{rand.New(rand.NewSource(2))}
	for i := 0; i < 30; i++ {
		f.Add(e.response(i%2 == 0))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		requireSameDecoding(t, b)
	})
}
