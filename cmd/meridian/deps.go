package main

import (
	_ "github.com/gogo/protobuf/proto"
	_ "github.com/golang/snappy"
	_ "github.com/grafana/dskit/kv/memberlist"
	_ "github.com/grafana/dskit/modules"
	_ "github.com/grafana/dskit/ring"
	_ "github.com/grafana/dskit/runtimeconfig"
	_ "github.com/grafana/dskit/server"
	_ "github.com/grafana/dskit/services"
	_ "github.com/grafana/dskit/tenant"
	_ "github.com/grafana/dskit/user"
	_ "github.com/grafana/dskit/middleware"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/prometheus/prompb"
	_ "github.com/prometheus/prometheus/promql"
	_ "github.com/prometheus/prometheus/promql/parser"
	_ "github.com/prometheus/prometheus/tsdb"
	_ "github.com/prometheus/prometheus/storage"
	_ "github.com/thanos-io/objstore"
	_ "github.com/thanos-io/objstore/providers/filesystem"
	_ "github.com/thanos-io/objstore/client"
	_ "google.golang.org/grpc"
	_ "go.opentelemetry.io/otel"
	_ "gopkg.in/yaml.v3"
)

func main() {}
