#!/usr/bin/env bash
# Meridian benchmarks (`make bench`; docs/benchmarks.md explains the figures).
#
# 1. Go micro-benchmarks of ./pkg/... (BENCH_QUICK=1: one iteration each).
# 2. A monolith (bin/meridian, built by `make bench`) on free loopback ports
#    with a fresh data directory, driven by tools/loadgen and
#    tools/querydriver:
#      - RSS before and after creating the series, and after the load
#      - the load: as fast as possible for BENCH_DURATION; CPU time of the
#        meridian process during it (from /proc/<pid>/stat)
#      - range-query latency
#      - POST /ingester/flush, then the size of the chunks/ files shipped to
#        <data-dir>/bucket divided by the samples accepted
# 3. A summary table and a machine-readable `BENCH ...` line.
#
# Environment (defaults in brackets):
#   BENCH_SERIES [100000]  BENCH_TENANTS [1]  BENCH_DURATION [60s]
#   BENCH_INTERVAL [10s]   BENCH_BATCH [2000] BENCH_CONCURRENCY [4]
#   BENCH_QUERIES [50]     BENCH_QUERY_RANGE [1h]  BENCH_QUERY [loadgen default]
#   BENCH_QUICK [0]        BENCH_SKIP_MICRO [0]    BENCH_KEEP [0] (keep the temp dir)
#   BENCH_READY_TIMEOUT [60] BENCH_FLUSH_TIMEOUT [180] (seconds)
#   BENCH_MERIDIAN_FLAGS   extra flags for bin/meridian
#   MERIDIAN_BIN [bin/meridian]  GO [go]
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
GO=${GO:-go}
BIN=${MERIDIAN_BIN:-$ROOT/bin/meridian}
SERIES=${BENCH_SERIES:-100000}
TENANTS=${BENCH_TENANTS:-1}
DURATION=${BENCH_DURATION:-60s}
INTERVAL=${BENCH_INTERVAL:-10s}
BATCH=${BENCH_BATCH:-2000}
CONCURRENCY=${BENCH_CONCURRENCY:-4}
QUERIES=${BENCH_QUERIES:-50}
QUERY_RANGE=${BENCH_QUERY_RANGE:-1h}
QUICK=${BENCH_QUICK:-0}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-60}
FLUSH_TIMEOUT=${BENCH_FLUSH_TIMEOUT:-180}

say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 1; }

# dur_s converts a Go-style duration with one unit (90s, 5m, 1h, 250ms) to whole seconds (at least 1).
dur_s() {
  local d=$1
  case $d in
    *ms) echo $(( (${d%ms} + 999) / 1000 )) ;;
    *s) echo "${d%s}" ;;
    *m) echo $(( ${d%m} * 60 )) ;;
    *h) echo $(( ${d%h} * 3600 )) ;;
    *[!0-9]*) die "cannot read the duration '$d' (use e.g. 60s, 5m, 1h)" ;;
    *) echo "$d" ;;
  esac
}

# result_field FILE KEY prints KEY's value from the last RESULT line of FILE.
result_field() {
  awk -v k="$2" '$1 == "RESULT" { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) v = kv[2] } } END { print v }' "$1"
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "found no free port on 127.0.0.1"
}

rss_bytes() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
# cpu_ticks prints utime+stime of a process in clock ticks (fields 14 and 15
# of /proc/<pid>/stat, counted after the parenthesised command name).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

now_ms() { date +%s%3N; }

# --- 1. micro-benchmarks --------------------------------------------------
if [[ ${BENCH_SKIP_MICRO:-0} != 1 ]]; then
  bench_flags=(-run='^$' -bench=. -benchmem)
  [[ $QUICK == 1 ]] && bench_flags+=(-benchtime=1x)
  say "Go micro-benchmarks: $GO test ${bench_flags[*]} ./pkg/..."
  "$GO" test "${bench_flags[@]}" ./pkg/...
fi

# --- 2. the monolith under load ---------------------------------------------
[[ -x $BIN ]] || die "$BIN does not exist or is not executable; 'make bench' builds it (or run 'make build' first)"
[[ -r /proc/self/status ]] || die "/proc is needed to read RSS and CPU time (Linux only)"
command -v curl >/dev/null || die "curl is needed"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/meridian-bench.XXXXXX")
PID=""
cleanup() {
  local rc=$?
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -s $TMP/meridian.log ]]; then
    say "last lines of the meridian log ($TMP/meridian.log):"
    tail -n 40 "$TMP/meridian.log" >&2 || true
  fi
  if [[ ${BENCH_KEEP:-0} == 1 || $rc -ne 0 ]]; then
    say "kept $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT

say "building tools/loadgen and tools/querydriver"
"$GO" build -o "$TMP/bin/loadgen" ./tools/loadgen
"$GO" build -o "$TMP/bin/querydriver" ./tools/querydriver

HTTP_PORT=$(free_port)
GRPC_PORT=$(free_port)
while [[ $GRPC_PORT == "$HTTP_PORT" ]]; do GRPC_PORT=$(free_port); done
BASE="http://127.0.0.1:$HTTP_PORT"
DATA="$TMP/data"

say "starting $BIN (HTTP $HTTP_PORT, gRPC $GRPC_PORT, data $DATA)"
# shellcheck disable=SC2086 # BENCH_MERIDIAN_FLAGS is a list of flags
"$BIN" -target=all \
  -server.http-listen-address=127.0.0.1 -server.http-listen-port="$HTTP_PORT" \
  -server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port="$GRPC_PORT" \
  -common.data-dir="$DATA" ${BENCH_MERIDIAN_FLAGS:-} >"$TMP/meridian.log" 2>&1 &
PID=$!

ready=0
for _ in $(seq 1 $(( READY_TIMEOUT * 2 ))); do
  kill -0 "$PID" 2>/dev/null || die "meridian exited before becoming ready"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/ready" || true)
  if [[ $code == 200 ]]; then ready=1; break; fi
  sleep 0.5
done
[[ $ready == 1 ]] || die "meridian did not answer GET /ready with 200 within ${READY_TIMEOUT}s"
say "meridian is ready (pid $PID)"
sleep 2
RSS_BEFORE=$(rss_bytes "$PID")

INTERVAL_S=$(dur_s "$INTERVAL")
DURATION_S=$(dur_s "$DURATION")
# The load runs as fast as possible, so its sample time runs ahead of the
# clock: start far enough in the past for 2M samples/s to fit before now
# (the load generator waits for the clock if it gets there).
STEPS=$(( (2000000 * DURATION_S + SERIES - 1) / SERIES + 2 ))
START_MS=$(( $(now_ms) - STEPS * INTERVAL_S * 1000 ))

common=(-url "$BASE/api/v1/push" -series "$SERIES" -tenants "$TENANTS" -interval "$INTERVAL"
  -batch "$BATCH" -concurrency "$CONCURRENCY")

say "creating $SERIES series (one sample each)"
"$TMP/bin/loadgen" "${common[@]}" -once -start "$START_MS" | tee "$TMP/once.out"
sleep 2
RSS_SERIES=$(rss_bytes "$PID")

say "load: as fast as possible for $DURATION"
CPU_BEFORE=$(cpu_ticks "$PID")
# shellcheck disable=SC2086 # BENCH_LOADGEN_FLAGS is a list of flags
"$TMP/bin/loadgen" "${common[@]}" -rate 0 -duration "$DURATION" \
  -start $(( START_MS + INTERVAL_S * 1000 )) ${BENCH_LOADGEN_FLAGS:-} | tee "$TMP/load.out"
CPU_AFTER=$(cpu_ticks "$PID")
sleep 2
RSS_AFTER=$(rss_bytes "$PID")

ONCE_ACCEPTED=$(result_field "$TMP/once.out" samples_accepted)
RATE=$(result_field "$TMP/load.out" samples_per_sec)
ACCEPTED=$(result_field "$TMP/load.out" samples_accepted)
LOAD_ERRORS=$(result_field "$TMP/load.out" errors)
LOAD_P99=$(result_field "$TMP/load.out" p99_ms)
LAST_TS=$(result_field "$TMP/load.out" last_ts_ms)
[[ -n $ACCEPTED && $ACCEPTED -gt 0 ]] || die "the load generator reports no accepted samples"

say "queries: $QUERIES range queries over $QUERY_RANGE ending at the last sample"
qflags=(-url "$BASE/prometheus" -tenant tenant-0 -end "$LAST_TS" -range "$QUERY_RANGE" -n "$QUERIES")
[[ -n ${BENCH_QUERY:-} ]] && qflags+=(-query "$BENCH_QUERY")
QUERY_P99="failed"
if "$TMP/bin/querydriver" "${qflags[@]}" | tee "$TMP/query.out"; then
  QUERY_P99=$(result_field "$TMP/query.out" p99_ms)
else
  say "the query driver failed; going on without query latency"
fi

say "flushing: POST /ingester/flush"
code=$(curl -s -o "$TMP/flush.out" -w '%{http_code}' --max-time 60 -X POST "$BASE/ingester/flush" || true)
[[ $code == 2* ]] || say "POST /ingester/flush answered '$code': $(head -c 300 "$TMP/flush.out" 2>/dev/null || true)"

# Blocks are shipped with meta.json last. Wait until some exist and neither
# their number nor the chunk bytes change between two looks.
chunk_bytes() {
  { find "$DATA/bucket" -type f -path '*/chunks/*' -printf '%s\n' 2>/dev/null || true; } | awk '{ s += $1 } END { print s + 0 }'
}
block_count() {
  { find "$DATA/bucket" -type f -name meta.json 2>/dev/null || true; } | awk 'END { print NR }'
}
prev_blocks=-1 prev_bytes=-1 shipped=0
deadline=$(( $(date +%s) + FLUSH_TIMEOUT ))
while (( $(date +%s) < deadline )); do
  blocks=$(block_count) bytes=$(chunk_bytes)
  if (( blocks > 0 && blocks == prev_blocks && bytes == prev_bytes )); then shipped=1; break; fi
  prev_blocks=$blocks prev_bytes=$bytes
  sleep 3
done
CHUNK_BYTES=$(chunk_bytes)
BLOCKS=$(block_count)
if [[ $shipped == 1 ]]; then
  say "$BLOCKS block(s) shipped, $CHUNK_BYTES bytes of chunks"
else
  say "no stable set of shipped blocks under $DATA/bucket within ${FLUSH_TIMEOUT}s ($BLOCKS meta.json, $CHUNK_BYTES chunk bytes)"
fi

say "stopping meridian"
kill -TERM "$PID" 2>/dev/null || true
for _ in $(seq 1 60); do kill -0 "$PID" 2>/dev/null || break; sleep 0.5; done
kill -KILL "$PID" 2>/dev/null || true
wait "$PID" 2>/dev/null || true
PID=""

# --- 3. summary -----------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
TOTAL_ACCEPTED=$(( ACCEPTED + ${ONCE_ACCEPTED:-0} ))
CPU_PER_M=$(awk -v a="$CPU_BEFORE" -v b="$CPU_AFTER" -v hz="$CLK_TCK" -v n="$ACCEPTED" 'BEGIN { printf "%.2f", (b - a) / hz / (n / 1e6) }')
RSS_PER_SERIES=$(awk -v a="$RSS_BEFORE" -v b="$RSS_AFTER" -v n="$SERIES" 'BEGIN { printf "%.0f", (b - a) / n }')
RSS_PER_SERIES_ONLY=$(awk -v a="$RSS_BEFORE" -v b="$RSS_SERIES" -v n="$SERIES" 'BEGIN { printf "%.0f", (b - a) / n }')
if [[ $shipped == 1 && $CHUNK_BYTES -gt 0 ]]; then
  BYTES_PER_SAMPLE=$(awk -v c="$CHUNK_BYTES" -v n="$TOTAL_ACCEPTED" 'BEGIN { printf "%.3f", c / n }')
else
  BYTES_PER_SAMPLE="n/a"
fi
SAMPLES_PER_SERIES=$(( TOTAL_ACCEPTED / SERIES ))

row() { printf '%-46s %14s   %s\n' "$1" "$2" "$3"; }
echo
echo "Meridian benchmark: $SERIES active series, $TENANTS tenant(s), load $DURATION, interval $INTERVAL"
row "figure" "measured" "target (anchors)"
row "samples/s accepted" "$RATE" ">= 400000 (Cortex 340k, VictoriaMetrics 1.1M)"
row "CPU-seconds per million samples" "$CPU_PER_M" "(Cortex 5.5, VictoriaMetrics 1.4)"
row "RSS bytes per active series (after load)" "$RSS_PER_SERIES" "<= 3072 (Cortex 6.4 KB, VictoriaMetrics 2.5 KB)"
row "RSS bytes per series (series only)" "$RSS_PER_SERIES_ONLY" "(one sample per series)"
row "bytes per sample in shipped blocks" "$BYTES_PER_SAMPLE" "<= 1.5"
row "query p99 (ms)" "$QUERY_P99" ""
row "remote-write p99 (ms)" "$LOAD_P99" ""
row "failed write requests" "$LOAD_ERRORS" "0"
row "samples per series written" "$SAMPLES_PER_SERIES" ""
echo "BENCH samples_per_sec=$RATE cpu_s_per_million=$CPU_PER_M rss_bytes_per_series=$RSS_PER_SERIES rss_bytes_per_series_only=$RSS_PER_SERIES_ONLY bytes_per_sample=$BYTES_PER_SAMPLE query_p99_ms=$QUERY_P99 write_p99_ms=$LOAD_P99 write_errors=$LOAD_ERRORS samples_accepted=$TOTAL_ACCEPTED chunk_bytes=$CHUNK_BYTES blocks=$BLOCKS series=$SERIES tenants=$TENANTS"
