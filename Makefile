# Meridian build targets. `make help` lists them.
GO          ?= go
GOMODCACHE  := $(shell $(GO) env GOMODCACHE)
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH      ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
LDFLAGS     := -s -w -X github.com/meridianhq/meridian/pkg/util/build.Version=$(VERSION) \
               -X github.com/meridianhq/meridian/pkg/util/build.Revision=$(REVISION) \
               -X github.com/meridianhq/meridian/pkg/util/build.Branch=$(BRANCH)
PROM_VERSION := $(shell $(GO) list -m -f '{{.Version}}' github.com/prometheus/prometheus)
GOGO_DIR     := $(GOMODCACHE)/github.com/gogo/protobuf@v1.3.2
PROMPB_DIR   := $(GOMODCACHE)/github.com/prometheus/prometheus@$(PROM_VERSION)/prompb

.PHONY: help build run test test-unit test-integration bench proto lint fmt clean production

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## Build bin/meridian (static).
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/meridian ./cmd/meridian

run: build ## Run Meridian as a single process with embedded defaults (data under ./data).
	./bin/meridian -target=all

test: ## Run every test: unit, integration and compatibility (installs what they need).
	bash scripts/test.sh

test-unit: ## Unit tests only.
	$(GO) test -count=1 ./pkg/... ./cmd/...

bench: build ## Benchmarks: Go micro-benchmarks, the load generator against a monolith, bytes/sample on real scrapes.
	bash scripts/bench.sh
	bash scripts/bench-realdata.sh

production: ## Build and check production/ (manifests, mixin, k8s strict validation, promtool, config verify).
	bash scripts/production.sh

# The .proto imports come from the module cache, so proto downloads their
# modules first (a fresh machine has not built anything yet).
proto: ## Regenerate the committed protobuf code.
	$(GO) install github.com/gogo/protobuf/protoc-gen-gogofast@v1.3.2
	$(GO) mod download github.com/prometheus/prometheus github.com/gogo/protobuf
	protoc -I pkg/meridianpb -I $(PROMPB_DIR) -I $(GOGO_DIR) -I $(GOGO_DIR)/protobuf \
	  --gogofast_out=plugins=grpc,paths=source_relative,Mtypes.proto=github.com/prometheus/prometheus/prompb,Mremote.proto=github.com/prometheus/prometheus/prompb,Mgogoproto/gogo.proto=github.com/gogo/protobuf/gogoproto:pkg/meridianpb \
	  pkg/meridianpb/*.proto

lint: ## gofmt, go vet, and the import boundaries of docs/architecture.md's package map.
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || (gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'); exit 1)
	$(GO) vet ./...
	$(GO) run ./tools/importcheck

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')

clean:
	rm -rf bin
