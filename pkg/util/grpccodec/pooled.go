package grpccodec

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// sizedMarshaler is a gogo-generated message that can marshal into a buffer
// it did not allocate.
type sizedMarshaler interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
}

// PooledCodec is Codec over gRPC's buffer pool: a message is marshalled into
// a pooled buffer that gRPC gives back once sent, and a received message is
// gathered into a pooled buffer that goes back as soon as it is decoded. A
// query's chunks are tens of megabytes; allocating each message twice per
// hop (gRPC's copy, then the codec's) was a large share of what a Graphite
// render made the garbage collector do. Decoding keeps the buffer only for a
// RetainingUnmarshaler; gogo-generated code copies bytes and strings out.
type PooledCodec struct{}

var _ encoding.CodecV2 = PooledCodec{}

// Name implements encoding.CodecV2.
func (PooledCodec) Name() string { return Name }

// Marshal implements encoding.CodecV2.
func (PooledCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(sizedMarshaler)
	if !ok {
		b, err := Codec{}.Marshal(v)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	size := m.Size()
	if mem.IsBelowBufferPoolingThreshold(size) {
		b := make([]byte, size)
		if err := marshalExactly(m, b); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if err := marshalExactly(m, (*buf)[:size]); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// marshalExactly marshals m into b, which is m.Size() long.
func marshalExactly(m sizedMarshaler, b []byte) error {
	n, err := m.MarshalToSizedBuffer(b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("grpc codec: %T marshalled %d bytes, its size is %d", m, n, len(b))
	}
	return nil
}

// RetainingUnmarshaler is a message that decodes from the received buffer
// without copying out of it and keeps the buffer: its owner frees it once
// nothing reads the message any more (meridianpb's Retained* responses,
// whose chunks alias the buffer).
type RetainingUnmarshaler interface {
	// UnmarshalRetained decodes the message from buf and owns buf from
	// then on, also when it fails.
	UnmarshalRetained(buf mem.Buffer) error
}

// Unmarshal implements encoding.CodecV2. A RetainingUnmarshaler gets the
// pooled buffer; any other message is decoded by copying and the buffer
// goes back at once.
func (PooledCodec) Unmarshal(data mem.BufferSlice, v any) error {
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	if r, ok := v.(RetainingUnmarshaler); ok {
		return r.UnmarshalRetained(buf)
	}
	defer buf.Free()
	return Codec{}.Unmarshal(buf.ReadOnlyData(), v)
}
