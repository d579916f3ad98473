#!/usr/bin/env bash
# Query-frontend benchmark (docs/benchmarks.md, section "Query-frontend").
#
# Starts a monolith (bin/meridian -target=all) and a query-frontend in front
# of it, both on free ports of 127.0.0.1 with fresh data directories, then:
#   1. tools/loadgen writes BF_SERIES series (realistic labels, one tenant)
#      at BF_INTERVAL over the last BF_SPAN, as fast as it can;
#   2. tools/querydriver -dashboard loads a BF_PANELS-panel dashboard over
#      the whole span (about 500 points a panel, all panels at once, like
#      Grafana) through the frontend, twice: the first load is cold, the
#      second mostly served from the results cache;
#      The same on a second, fresh frontend with only the panels whose
#      answers carry no PromQL infos (BF_CACHEABLE_FILTER), for comparison:
#      loadgen's classic histograms make histogram_quantile report "needed
#      to be fixed for monotonicity", and such annotated answers are cached
#      with their annotations (per sub-query span) since the frontend keeps
#      them with the extent;
#   3. the frontend's own overhead: BF_QUERIES range queries over 1h with
#      "Cache-Control: no-store" through the frontend, and the same directly
#      against the monolith.
# Prints a summary and a machine-readable `BENCH_FRONTEND ...` line.
#
# Environment (defaults in brackets):
#   BF_SERIES [1000]  BF_INTERVAL [5m]  BF_SPAN [7d, in days: 7]
#   BF_LOAD_DURATION [30s]  BF_PANELS [20]  BF_QUERIES [50]
#   BF_CACHEABLE_FILTER ['^(sum|avg|topk)'] (querydriver -panel-filter)
#   BF_READY_TIMEOUT [60] (seconds)  BF_KEEP [0] (keep the temp dir)
#   BF_MERIDIAN_FLAGS  extra flags for both processes
#   BF_FRONTEND_FLAGS [-frontend.max-outstanding-requests-per-tenant=1000]
#                      extra flags for the frontend. The default queue limit
#                      of 100 is too small for the dashboard: 20 panels over
#                      7d split by day are 160 sub-queries queued at once,
#                      and the default 100 answers some panels 429.
#   MERIDIAN_BIN [bin/meridian]  GO [go]
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
GO=${GO:-go}
BIN=${MERIDIAN_BIN:-$ROOT/bin/meridian}
SERIES=${BF_SERIES:-1000}
INTERVAL=${BF_INTERVAL:-5m}
SPAN_DAYS=${BF_SPAN_DAYS:-7}
LOAD_DURATION=${BF_LOAD_DURATION:-30s}
PANELS=${BF_PANELS:-20}
QUERIES=${BF_QUERIES:-50}
READY_TIMEOUT=${BF_READY_TIMEOUT:-60}

say() { echo "bench-frontend: $*" >&2; }
die() { say "$*"; exit 1; }
MERIDIAN_EXTRA_FLAGS=${BF_MERIDIAN_FLAGS:-}
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

[[ -x $BIN ]] || die "$BIN does not exist or is not executable; run 'make build' first (or set MERIDIAN_BIN)"
command -v curl >/dev/null || die "curl is needed"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/meridian-bench-frontend.XXXXXX")
PIDS=()
cleanup() {
  local rc=$? log
  if [[ ${#PIDS[@]} -gt 0 ]]; then stop_meridian "${PIDS[@]}"; fi
  if [[ $rc -ne 0 ]]; then
    for log in "$TMP"/*.log; do
      [[ -s $log ]] || continue
      say "last lines of $log:"
      tail -n 30 "$log" >&2 || true
    done
  fi
  if [[ ${BF_KEEP:-0} == 1 || $rc -ne 0 ]]; then
    say "kept $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "building tools/loadgen and tools/querydriver"
"$GO" build -o "$TMP/bin/loadgen" ./tools/loadgen
"$GO" build -o "$TMP/bin/querydriver" ./tools/querydriver

# start NAME ARGS...: starts bin/meridian on free 127.0.0.1 ports; sets
# STARTED (pid) and BASE (URL).
start() {
  local name=$1 http grpc ml
  shift
  free_port; http=$PORT
  free_port; grpc=$PORT
  free_port; ml=$PORT
  BASE="http://127.0.0.1:$http"
  start_meridian "$TMP/$name.log" -server.http-listen-address=127.0.0.1 -server.http-listen-port="$http" \
    -server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port="$grpc" \
    -memberlist.bind-addr=127.0.0.1 -memberlist.bind-port="$ml" \
    -common.data-dir="$TMP/$name-data" "$@"
  wait_ready "$name" "$STARTED" "$BASE"
  say "$name ready at $BASE (pid $STARTED)"
}

start monolith -target=all
M=$BASE
# shellcheck disable=SC2086 # BF_FRONTEND_FLAGS is a list of flags
start frontend -target=query-frontend -frontend.downstream-url="$M" ${BF_FRONTEND_FLAGS:--frontend.max-outstanding-requests-per-tenant=1000}
FE=$BASE
# shellcheck disable=SC2086
start frontend2 -target=query-frontend -frontend.downstream-url="$M" ${BF_FRONTEND_FLAGS:--frontend.max-outstanding-requests-per-tenant=1000}
FE2=$BASE

# --- 1. data ------------------------------------------------------------------
INTERVAL_S=$(dur_s "$INTERVAL")
SPAN_S=$(( SPAN_DAYS * 86400 ))
START_MS=$(( $(now_ms) - SPAN_S * 1000 ))
LG=(-url "$M/api/v1/push" -series "$SERIES" -tenants 1 -interval "$INTERVAL" -report-every 0)
say "writing $SERIES series every $INTERVAL over the last $SPAN_DAYS days ($(( SERIES * SPAN_S / INTERVAL_S )) samples)"
"$TMP/bin/loadgen" "${LG[@]}" -once -start "$START_MS" >"$TMP/once.out"
"$TMP/bin/loadgen" "${LG[@]}" -rate 0 -duration "$LOAD_DURATION" -start $(( START_MS + INTERVAL_S * 1000 )) >"$TMP/load.out"
grep -v '^RESULT' "$TMP/load.out" >&2 || true
END_MS=$(result_field "$TMP/load.out" last_ts_ms)
ACCEPTED=$(result_field "$TMP/load.out" samples_accepted)
[[ -n $ACCEPTED && $ACCEPTED -gt 0 ]] || die "the load generator reports no accepted samples"
FIRST_MS=$(result_field "$TMP/load.out" first_ts_ms)
say "accepted $ACCEPTED samples from $FIRST_MS to $END_MS (ms)"

QD="$TMP/bin/querydriver"
# rate() needs two samples in its window: 15m holds three at 5m.
OVERHEAD_QUERY='sum by (job)(rate(http_requests_total[15m]))'
# --- 2. dashboard ---------------------------------------------------------------
say "dashboard: $PANELS panels over ${SPAN_DAYS}d, loaded twice through the frontend"
"$QD" -url "$FE/prometheus" -tenant tenant-0 -end "$END_MS" -range "$(( SPAN_DAYS * 24 ))h" -dashboard "$PANELS" -scrape-interval "$INTERVAL" -loads 2 | tee "$TMP/dashboard.out" >&2
FIRST=$(result_field "$TMP/dashboard.out" first_load_ms)
SECOND=$(result_field "$TMP/dashboard.out" second_load_ms)
SPEEDUP=$(result_field "$TMP/dashboard.out" speedup)
DPOINTS=$(result_field "$TMP/dashboard.out" points)
P50_1=$(result_field "$TMP/dashboard.out" first_panel_p50_ms)
P50_2=$(result_field "$TMP/dashboard.out" second_panel_p50_ms)
ANNOTATED=$(result_field "$TMP/dashboard.out" annotated_panels)

say "dashboard without annotated panels, on a fresh frontend"
"$QD" -url "$FE2/prometheus" -tenant tenant-0 -end "$END_MS" -range "$(( SPAN_DAYS * 24 ))h" -dashboard "$PANELS" -scrape-interval "$INTERVAL" -loads 2 \
  -panel-filter "${BF_CACHEABLE_FILTER:-^(sum|avg|topk)}" | tee "$TMP/dashboard-cacheable.out" >&2
C_FIRST=$(result_field "$TMP/dashboard-cacheable.out" first_load_ms)
C_SECOND=$(result_field "$TMP/dashboard-cacheable.out" second_load_ms)
C_SPEEDUP=$(result_field "$TMP/dashboard-cacheable.out" speedup)
C_ANNOTATED=$(result_field "$TMP/dashboard-cacheable.out" annotated_panels)

# The same dashboard straight against the monolith, for reference.
"$QD" -url "$M/prometheus" -tenant tenant-0 -end "$END_MS" -range "$(( SPAN_DAYS * 24 ))h" -dashboard "$PANELS" -scrape-interval "$INTERVAL" -loads 1 | tee "$TMP/dashboard-direct.out" >&2
DIRECT=$(result_field "$TMP/dashboard-direct.out" first_load_ms)
DIRECT_POINTS=$(result_field "$TMP/dashboard-direct.out" points)

# --- 3. overhead ----------------------------------------------------------------
say "overhead: $QUERIES range queries over 1h, through the frontend (no-store) and directly"
"$QD" -url "$FE/prometheus" -tenant tenant-0 -end "$END_MS" -range 1h -step 1m -query "$OVERHEAD_QUERY" -n "$QUERIES" -no-cache | tee "$TMP/via-frontend.out" >&2
"$QD" -url "$M/prometheus" -tenant tenant-0 -end "$END_MS" -range 1h -step 1m -query "$OVERHEAD_QUERY" -n "$QUERIES" | tee "$TMP/direct.out" >&2
FE_P50=$(result_field "$TMP/via-frontend.out" p50_ms)
D_P50=$(result_field "$TMP/direct.out" p50_ms)
FE_P99=$(result_field "$TMP/via-frontend.out" p99_ms)
D_P99=$(result_field "$TMP/direct.out" p99_ms)
OVERHEAD=$(awk -v a="$FE_P50" -v b="$D_P50" 'BEGIN { printf "%.2f", a - b }')

row() { printf '%-52s %14s\n' "$1" "$2"; }
echo
echo "Query-frontend benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores"
row "data" "$SERIES series x $INTERVAL x ${SPAN_DAYS}d"
row "dashboard panels (7d, ~500 points each)" "$PANELS"
row "dashboard first load (cold cache), ms" "$FIRST"
row "dashboard second load (warm cache), ms" "$SECOND"
row "warm speed-up (target >= 10x)" "${SPEEDUP}x"
row "median panel, first / second load, ms" "$P50_1 / $P50_2"
row "panels answered with infos/warnings (cached too)" "$ANNOTATED"
row "dashboard points (frontend / direct)" "$DPOINTS / $DIRECT_POINTS"
row "without annotated panels: first / second load, ms" "$C_FIRST / $C_SECOND"
row "without annotated panels: warm speed-up" "${C_SPEEDUP}x ($C_ANNOTATED annotated)"
row "dashboard directly against the monolith, ms" "$DIRECT"
row "1h query p50 via frontend (no-store), ms" "$FE_P50"
row "1h query p50 direct, ms" "$D_P50"
row "1h query p99 via frontend / direct, ms" "$FE_P99 / $D_P99"
row "frontend overhead per query (p50 difference), ms" "$OVERHEAD"
echo "BENCH_FRONTEND first_load_ms=$FIRST second_load_ms=$SECOND speedup=$SPEEDUP first_panel_p50_ms=$P50_1 second_panel_p50_ms=$P50_2 annotated_panels=$ANNOTATED cacheable_first_load_ms=$C_FIRST cacheable_second_load_ms=$C_SECOND cacheable_speedup=$C_SPEEDUP direct_load_ms=$DIRECT overhead_p50_ms=$OVERHEAD via_frontend_p50_ms=$FE_P50 direct_p50_ms=$D_P50 series=$SERIES panels=$PANELS"
