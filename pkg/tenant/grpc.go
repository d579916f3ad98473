package tenant

import (
	"context"
	"strings"

	"github.com/grafana/dskit/middleware"
	"github.com/grafana/dskit/user"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// healthServicePrefix is the gRPC health-checking service, which carries no
// tenant and is always let through.
const healthServicePrefix = "/grpc.health.v1.Health/"

// GRPCServerInterceptors return interceptors that read the tenant from the
// gRPC metadata (x-scope-orgid) into the context, using dskit's
// ServerUserHeaderInterceptor and StreamServerUserHeaderInterceptor, and
// reject a call whose tenant ID is invalid. A call without a tenant is
// rejected too, except for the gRPC health service and the full method names
// (such as "/meridianpb.Ingester/Ring") listed in noTenantMethods.
func GRPCServerInterceptors(noTenantMethods ...string) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	skip := make(map[string]struct{}, len(noTenantMethods))
	for _, m := range noTenantMethods {
		skip[m] = struct{}{}
	}
	exempt := func(method string) bool {
		if strings.HasPrefix(method, healthServicePrefix) {
			return true
		}
		_, ok := skip[method]
		return ok
	}

	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if exempt(info.FullMethod) {
			return handler(ctx, req)
		}
		called := false
		resp, err := middleware.ServerUserHeaderInterceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			called = true
			if err := validateContextTenant(ctx); err != nil {
				return nil, err
			}
			return handler(ctx, req)
		})
		if !called {
			return nil, errNoGRPCTenant
		}
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if exempt(info.FullMethod) {
			return handler(srv, ss)
		}
		called := false
		err := middleware.StreamServerUserHeaderInterceptor(srv, ss, info, func(srv any, ss grpc.ServerStream) error {
			called = true
			if err := validateContextTenant(ss.Context()); err != nil {
				return err
			}
			return handler(srv, ss)
		})
		if !called {
			return errNoGRPCTenant
		}
		return err
	}
	return unary, stream
}

var errNoGRPCTenant = status.Error(codes.Unauthenticated, "no tenant in the gRPC metadata: the caller must put exactly one tenant in x-scope-orgid (use tenant.GRPCClientInterceptors)")

func validateContextTenant(ctx context.Context) error {
	id, err := user.ExtractOrgID(ctx)
	if err != nil {
		return errNoGRPCTenant
	}
	if err := ValidateID(id); err != nil {
		return status.Errorf(codes.Unauthenticated, "invalid tenant ID %q: %v", id, err)
	}
	return nil
}

// GRPCClientInterceptors return interceptors that copy the tenant from the
// context into the gRPC metadata of each call (dskit's
// ClientUserHeaderInterceptor and StreamClientUserHeaderInterceptor). A call
// whose context has no tenant fails, so use them only on connections whose
// calls all belong to a tenant.
func GRPCClientInterceptors() (grpc.UnaryClientInterceptor, grpc.StreamClientInterceptor) {
	return middleware.ClientUserHeaderInterceptor, middleware.StreamClientUserHeaderInterceptor
}
