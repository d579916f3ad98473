#!/usr/bin/env bash
# Graphite benchmark (docs/benchmarks.md, section "Graphite").
#
# Builds bin/meridian and tools/graphitebench, then runs graphitebench: it
# starts a Meridian monolith with a carbon listener and a carbon-cache +
# graphite-web (Debian packages graphite-web, graphite-carbon, gunicorn) on
# free ports of 127.0.0.1, loads the same carbon plaintext into both
# (BG_SERIES series over BG_DURATION at BG_STEP, and a tree of BG_TREE
# leaves), and measures render sumSeries(bench.*.cpu) over the whole span,
# /metrics/find?query=tree.*.*, load times and resident memory. Prints a
# table and a machine-readable `BENCH_GRAPHITE ...` line.
#
# Environment (defaults in brackets):
#   BG_SERIES [1000]  BG_DURATION [24h]  BG_STEP [10s]  BG_TREE [100x1000]
#   BG_RUNS [20]  BG_BACKENDS [meridian,graphite-web]
#   BG_LOAD_TIMEOUT [2h]  BG_KEEP [0] (keep the data directories)
#   BG_SETTLE [0s] wait after loading before the timed queries
#   BG_MERIDIAN_FLAGS  extra flags for Meridian (replace graphitebench's
#                      default, which lifts the ingestion-rate and
#                      fetched-series limits)
#   MERIDIAN_BIN [bin/meridian, built here when unset]  GO [go]
#
# A quick run: BG_SERIES=100 BG_DURATION=2h BG_TREE=10x100 BG_RUNS=5 scripts/bench-graphite.sh
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}

say() { echo "bench-graphite: $*" >&2; }

missing=()
for c in carbon-cache:graphite-carbon graphite-manage:graphite-web gunicorn:gunicorn; do
  command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:}")
done
if ((${#missing[@]} > 0)); then
  say "missing Debian packages: ${missing[*]}; install them with:"
  say "  sudo apt-get update && sudo apt-get install -y graphite-web graphite-carbon gunicorn"
  exit 1
fi

if [[ -z ${MERIDIAN_BIN:-} ]]; then
  say "building bin/meridian"
  "$GO" build -o bin/meridian ./cmd/meridian
  MERIDIAN_BIN=bin/meridian
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/meridian-bench-graphite.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
"$GO" build -o "$TMP/graphitebench" ./tools/graphitebench

args=(
  -meridian-bin "$MERIDIAN_BIN"
  -series "${BG_SERIES:-1000}"
  -duration "${BG_DURATION:-24h}"
  -step "${BG_STEP:-10s}"
  -tree-shape "${BG_TREE:-100x1000}"
  -runs "${BG_RUNS:-20}"
  -backends "${BG_BACKENDS:-meridian,graphite-web}"
  -load-timeout "${BG_LOAD_TIMEOUT:-2h}"
  -settle "${BG_SETTLE:-0s}"
)
if [[ -n ${BG_MERIDIAN_FLAGS:-} ]]; then
  args+=(-meridian-flags "$BG_MERIDIAN_FLAGS")
fi
if [[ ${BG_KEEP:-0} == 1 ]]; then
  args+=(-keep)
fi
say "$TMP/graphitebench ${args[*]}"
"$TMP/graphitebench" "${args[@]}"
