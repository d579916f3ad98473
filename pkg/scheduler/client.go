package scheduler

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/tenant"
	"github.com/meridianhq/meridian/pkg/util/grpccodec"
)

// Client enqueues requests to a remote query-scheduler.
type Client struct {
	addr string
	conn *grpc.ClientConn
	c    meridianpb.QueryQueueClient
}

// NewClient connects (lazily) to the query-scheduler at addr (host:port).
func NewClient(addr string) (*Client, error) {
	unary, stream := tenant.GRPCClientInterceptors()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.PooledCodec{})),
		grpc.WithChainUnaryInterceptor(unary),
		grpc.WithChainStreamInterceptor(stream),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to query-scheduler %s: %w", addr, err)
	}
	return &Client{addr: addr, conn: conn, c: meridianpb.NewQueryQueueClient(conn)}, nil
}

// Do enqueues req for the tenant of ctx (which must be tenant) and waits for
// the answer. The queue's errors come back as the package's sentinels.
func (c *Client) Do(ctx context.Context, _ string, req *meridianpb.HTTPRequest, maxOutstanding, maxQueriers int) (*meridianpb.HTTPResponse, error) {
	resp, err := c.c.Enqueue(ctx, &meridianpb.EnqueueRequest{Request: req, MaxOutstanding: int32(maxOutstanding), MaxQueriers: int32(maxQueriers)})
	if err == nil {
		return resp, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.ResourceExhausted:
		return nil, ErrTooManyOutstanding
	case codes.Aborted:
		return nil, fmt.Errorf("%w (%s)", ErrQuerierGone, st.Message())
	}
	return nil, fmt.Errorf("enqueue to query-scheduler %s: %w", c.addr, errors.New(st.Message()))
}

// Close closes the connection.
func (c *Client) Close() { _ = c.conn.Close() }
