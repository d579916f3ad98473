// Package grpccodec is a gRPC codec that marshals gogo-generated messages
// with their own generated Marshal/Unmarshal methods. gRPC's default codec
// would route them through protobuf-go's slow reflection-based legacy path.
package grpccodec

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// Name is the codec's content-subtype; it replaces "proto" per call/server
// through grpc.ForceCodec / grpc.ForceServerCodec, never globally.
const Name = "proto"

type gogoMessage interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// Codec implements encoding.Codec.
type Codec struct{}

var _ encoding.Codec = Codec{}

func (Codec) Name() string { return Name }

func (Codec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(gogoMessage); ok {
		return m.Marshal()
	}
	if m, ok := v.(proto.Message); ok {
		return proto.Marshal(m)
	}
	if m, ok := v.(protoadapt.MessageV1); ok {
		return proto.Marshal(protoadapt.MessageV2Of(m))
	}
	return nil, fmt.Errorf("grpc codec: cannot marshal %T", v)
}

func (Codec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(gogoMessage); ok {
		return m.Unmarshal(data)
	}
	if m, ok := v.(proto.Message); ok {
		return proto.Unmarshal(data, m)
	}
	if m, ok := v.(protoadapt.MessageV1); ok {
		return proto.Unmarshal(data, protoadapt.MessageV2Of(m))
	}
	return fmt.Errorf("grpc codec: cannot unmarshal into %T", v)
}
