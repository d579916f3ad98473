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
#      - open file descriptors and goroutines after the load; RSS per tenant
#      - kill -9 and restart on the same data directory: seconds until
#        /ready answers 200 and until the last tenant's series and latest
#        samples answer as they did before the kill
#      - POST /ingester/flush, then the size of the chunks/ files shipped to
#        <data-dir>/bucket divided by the samples accepted
# 3. A summary table and a machine-readable `BENCH ...` line.
#
# BENCH_MODE=cluster runs step 2 against a cluster instead: 1 distributor,
# BENCH_INGESTERS ingesters (replication factor 3, zones z1..z3 in turn) and
# 1 querier, each its own process on its own loopback address (127.0.0.11...,
# .20, .30), formed over memberlist, every tenant with
# ingestion_tenant_shard_size BENCH_SHARD_SIZE; CPU is summed over all
# processes and RSS over the ingesters, and it prints how many tenants each
# ingester holds (meridian_ingester_tenants). BENCH_MODE=both runs the
# monolith, then the cluster, and prints the cluster/monolith ratios.
#
# Environment (defaults in brackets):
#   BENCH_SERIES [100000]  BENCH_TENANTS [1]  BENCH_DURATION [60s]
#   BENCH_INTERVAL [10s]   BENCH_BATCH [2000] BENCH_CONCURRENCY [4]
#   BENCH_QUERIES [50]     BENCH_QUERY_RANGE [1h]  BENCH_QUERY [loadgen default]
#   BENCH_QUICK [0]        BENCH_SKIP_MICRO [0]    BENCH_KEEP [0] (keep the temp dir)
#   BENCH_READY_TIMEOUT [60] BENCH_FLUSH_TIMEOUT [180] (seconds)
#   BENCH_MODE [monolith]  monolith | cluster | both
#   BENCH_INGESTERS [3] BENCH_SHARD_SIZE [0] (cluster: ingesters, tenant shard size; 0 = all)
#   BENCH_MERIDIAN_FLAGS   extra flags for bin/meridian (every process)
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
MODE=${BENCH_MODE:-monolith}

say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 1; }
MERIDIAN_EXTRA_FLAGS=${BENCH_MERIDIAN_FLAGS:-}
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rss_bytes() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
# cpu_ticks prints utime+stime of a process in clock ticks (fields 14 and 15
# of /proc/<pid>/stat, counted after the parenthesised command name).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# port_in_use HOST PORT: something listens on HOST:PORT (TCP, or UDP when ss
# is available; memberlist needs both).
port_in_use() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
  if command -v ss >/dev/null; then
    ss -Hlnu 2>/dev/null | awk -v a="$1:$2" -v b="0.0.0.0:$2" -v c="*:$2" '$4 == a || $4 == b || $4 == c { f = 1 } END { exit !f }' && return 0
  fi
  return 1
}

# pick_port HOST PREFERRED [EXCLUDED...] prints PREFERRED if it is free on
# HOST and none of EXCLUDED, else a free random port.
pick_port() {
  local host=$1 p=$2 x ok
  shift 2
  for _ in $(seq 1 200); do
    ok=1
    for x in "$@"; do [[ $p == "$x" ]] && ok=0; done
    if [[ $ok == 1 ]] && ! port_in_use "$host" "$p"; then
      echo "$p"
      return 0
    fi
    p=$(( 20000 + RANDOM % 40000 ))
  done
  die "found no free port on $host"
}

case $MODE in
  monolith | cluster | both) ;;
  *) die "BENCH_MODE must be monolith, cluster or both, not '$MODE'" ;;
esac

# --- 1. micro-benchmarks --------------------------------------------------
if [[ ${BENCH_SKIP_MICRO:-0} != 1 ]]; then
  bench_flags=(-run='^$' -bench=. -benchmem)
  [[ $QUICK == 1 ]] && bench_flags+=(-benchtime=1x)
  say "Go micro-benchmarks: $GO test ${bench_flags[*]} ./pkg/..."
  "$GO" test "${bench_flags[@]}" ./pkg/...
fi

# --- 2. Meridian under load ---------------------------------------------------
[[ -x $BIN ]] || die "$BIN does not exist or is not executable; 'make bench' builds it (or run 'make build' first)"
[[ -r /proc/self/status ]] || die "/proc is needed to read RSS and CPU time (Linux only)"
command -v curl >/dev/null || die "curl is needed"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/meridian-bench.XXXXXX")
PIDS=()   # every meridian process started and not yet stopped
TOOLS=()  # the load generator or query driver running, and its output's tail
cleanup() {
  local rc=$? pid log
  for pid in "${TOOLS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [[ $rc -ne 0 ]]; then
    for log in "$TMP"/*.log "$TMP"/*/*.log; do
      [[ -s $log ]] || continue
      say "last lines of $log:"
      tail -n 40 "$log" >&2 || true
    done
  fi
  if [[ ${BENCH_KEEP:-0} == 1 || $rc -ne 0 ]]; then
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

# run_tool OUT CMD...: runs CMD with its stdout in OUT and shown as it
# comes. CMD runs in the background and the script waits for it, so that a
# signal runs the traps at once rather than after the tool has finished.
run_tool() {
  local out=$1 rc=0
  shift
  : >"$out"
  "$@" >"$out" &
  local tool=$!
  tail -n +1 -f --pid="$tool" "$out" &
  local tailer=$!
  TOOLS=("$tool" "$tailer")
  wait "$tool" || rc=$?
  wait "$tailer" || true
  TOOLS=()
  return "$rc"
}

rss_sum() { local s=0 p; for p in "$@"; do s=$(( s + $(rss_bytes "$p") )); done; echo "$s"; }
cpu_ticks_sum() { local s=0 p; for p in "$@"; do s=$(( s + $(cpu_ticks "$p") )); done; echo "$s"; }

INTERVAL_S=$(dur_s "$INTERVAL")
DURATION_S=$(dur_s "$DURATION")
CLK_TCK=$(getconf CLK_TCK)

# plan_load sets START_MS: the load runs as fast as possible, so its sample
# time runs ahead of the clock: start far enough in the past for 2M
# samples/s to fit before now (the load generator waits for the clock if it
# gets there).
plan_load() {
  local steps=$(( (2000000 * DURATION_S + SERIES - 1) / SERIES + 2 ))
  START_MS=$(( $(now_ms) - steps * INTERVAL_S * 1000 ))
}

loadgen_common() {
  LG_COMMON=(-url "$1/api/v1/push" -series "$SERIES" -tenants "$TENANTS" -interval "$INTERVAL"
    -batch "$BATCH" -concurrency "$CONCURRENCY")
}

run_once() { # DIR
  say "creating $SERIES series (one sample each)"
  run_tool "$1/once.out" "$TMP/bin/loadgen" "${LG_COMMON[@]}" -once -start "$START_MS"
}

run_load() { # DIR
  say "load: as fast as possible for $DURATION"
  # shellcheck disable=SC2086 # BENCH_LOADGEN_FLAGS is a list of flags
  run_tool "$1/load.out" "$TMP/bin/loadgen" "${LG_COMMON[@]}" -rate 0 -duration "$DURATION" \
    -start $(( START_MS + INTERVAL_S * 1000 )) ${BENCH_LOADGEN_FLAGS:-}
}

# run_queries DIR BASE sets QUERY_P99.
run_queries() {
  local dir=$1 base=$2 last_ts
  last_ts=$(result_field "$dir/load.out" last_ts_ms)
  say "queries: $QUERIES range queries over $QUERY_RANGE ending at the last sample ($base)"
  local qflags=(-url "$base/prometheus" -tenant tenant-0 -end "$last_ts" -range "$QUERY_RANGE" -n "$QUERIES")
  [[ -n ${BENCH_QUERY:-} ]] && qflags+=(-query "$BENCH_QUERY")
  QUERY_P99="failed"
  if run_tool "$dir/query.out" "$TMP/bin/querydriver" "${qflags[@]}"; then
    QUERY_P99=$(result_field "$dir/query.out" p99_ms)
  else
    say "the query driver failed; going on without query latency"
  fi
}

row() { printf '%-46s %14s   %s\n' "$1" "$2" "$3"; }

open_fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# goroutines URL prints go_goroutines from URL/metrics.
goroutines() { curl -s --max-time 5 "$1/metrics" | awk '$1 == "go_goroutines" { print $2 }'; }

# latest_seen URL TENANT TIME_S prints how many series TENANT has a sample
# for in the 5 minutes before TIME_S (an instant query), or nothing.
latest_seen() {
  curl -s --max-time 5 -H "X-Scope-OrgID: $2" --data-urlencode 'query=count({__name__=~".+"})' \
    --data-urlencode "time=$3" "$1/prometheus/api/v1/query" 2>/dev/null |
    grep -o '"value":\[[^]]*\]' | sed 's/.*,"\(.*\)"\]/\1/' || true
}
# series_seen URL TENANT START_S END_S prints how many series TENANT has
# between START_S and END_S (the series API).
series_seen() {
  { curl -s --max-time 30 -H "X-Scope-OrgID: $2" --data-urlencode 'match[]={__name__=~".+"}' \
    --data-urlencode "start=$3" --data-urlencode "end=$4" "$1/prometheus/api/v1/series" 2>/dev/null || true; } |
    grep -o '"__name__"' | wc -l
}

# --- 2a. the monolith ---------------------------------------------------------
bench_monolith() {
  local dir=$TMP/monolith
  mkdir -p "$dir"
  local http_port grpc_port base data pid
  free_port; http_port=$PORT
  free_port; grpc_port=$PORT
  base="http://127.0.0.1:$http_port"
  data="$dir/data"
  local mflags=(-target=all
    -server.http-listen-address=127.0.0.1 -server.http-listen-port="$http_port"
    -server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port="$grpc_port"
    -common.data-dir="$data")

  say "monolith: starting $BIN -target=all (HTTP $http_port, gRPC $grpc_port, data $data)"
  start_meridian "$dir/meridian.log" "${mflags[@]}"
  pid=$STARTED
  wait_ready meridian "$pid" "$base"
  say "meridian is ready (pid $pid)"
  sleep 2
  local rss_before rss_series rss_after cpu_before cpu_after
  rss_before=$(rss_bytes "$pid")

  plan_load
  loadgen_common "$base"
  run_once "$dir"
  sleep 2
  rss_series=$(rss_bytes "$pid")

  cpu_before=$(cpu_ticks "$pid")
  run_load "$dir"
  cpu_after=$(cpu_ticks "$pid")
  sleep 2
  rss_after=$(rss_bytes "$pid")

  local once_accepted accepted
  once_accepted=$(result_field "$dir/once.out" samples_accepted)
  M_RATE=$(result_field "$dir/load.out" samples_per_sec)
  accepted=$(result_field "$dir/load.out" samples_accepted)
  M_ERRORS=$(result_field "$dir/load.out" errors)
  M_WRITE_P99=$(result_field "$dir/load.out" p99_ms)
  [[ -n $accepted && $accepted -gt 0 ]] || die "the load generator reports no accepted samples"

  M_FDS=$(open_fds "$pid")
  M_GOROUTINES=$(goroutines "$base")

  run_queries "$dir" "$base"
  M_QUERY_P99=$QUERY_P99

  # Crash and restart on the same data: time until /ready answers 200 and
  # until the last tenant's data answers as it did before the crash (its
  # series, and its latest samples): the WAL was replayed.
  local last_tenant=tenant-$(( TENANTS - 1 )) first_s last_s want_series want_latest seen="" latest=""
  first_s=$(( START_MS / 1000 ))
  last_s=$(( $(result_field "$dir/load.out" last_ts_ms) / 1000 ))
  want_series=$(series_seen "$base" "$last_tenant" "$first_s" "$last_s")
  want_latest=$(latest_seen "$base" "$last_tenant" "$last_s")
  [[ $want_series -gt 0 && -n $want_latest ]] || die "before the restart, $last_tenant shows no data (series: $want_series, latest: '$want_latest')"
  say "kill -9 meridian (pid $pid) and restart it on the same data directory"
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  stop_meridian "$pid"
  local restart_start restart_ready="" restart_query=""
  restart_start=$(now_ms)
  start_meridian "$dir/meridian-restart.log" "${mflags[@]}"
  pid=$STARTED
  while (( $(now_ms) - restart_start < READY_TIMEOUT * 1000 )); do
    kill -0 "$pid" 2>/dev/null || die "meridian exited while restarting (see $dir/meridian-restart.log)"
    if [[ -z $restart_ready ]] && [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/ready" || true) == 200 ]]; then
      restart_ready=$(( $(now_ms) - restart_start ))
    fi
    if [[ -n $restart_ready ]]; then
      seen=$(series_seen "$base" "$last_tenant" "$first_s" "$last_s")
      latest=$(latest_seen "$base" "$last_tenant" "$last_s")
      if [[ $seen == "$want_series" && $latest == "$want_latest" ]]; then restart_query=$(( $(now_ms) - restart_start )); break; fi
    fi
    sleep 0.2
  done
  [[ -n $restart_query ]] || die "after the restart, $last_tenant did not answer as before the crash within ${READY_TIMEOUT}s: $seen series (before: $want_series), $latest with a recent sample (before: $want_latest); ready after ${restart_ready:-never} ms"
  M_RESTART_READY_S=$(awk -v ms="$restart_ready" 'BEGIN { printf "%.1f", ms / 1000 }')
  M_RESTART_QUERY_S=$(awk -v ms="$restart_query" 'BEGIN { printf "%.1f", ms / 1000 }')
  M_RESTART_FDS=$(open_fds "$pid")
  say "restarted: ready after ${M_RESTART_READY_S}s, $last_tenant's $want_series series ($want_latest with a recent sample) queryable as before after ${M_RESTART_QUERY_S}s"

  # wait=true answers once every tenant is flushed and shipped: with
  # thousands of tenants a pause between two shipped blocks can outlast the
  # stability check below.
  say "flushing: POST /ingester/flush?wait=true"
  local code
  code=$(curl -s -o "$dir/flush.out" -w '%{http_code}' --max-time "$FLUSH_TIMEOUT" -X POST "$base/ingester/flush?wait=true" || true)
  [[ $code == 2* ]] || say "POST /ingester/flush answered '$code': $(head -c 300 "$dir/flush.out" 2>/dev/null || true)"

  # Blocks are shipped with meta.json last. Wait until some exist and neither
  # their number nor the chunk bytes change between two looks.
  chunk_bytes() {
    { find "$data/bucket" -type f -path '*/chunks/*' -printf '%s\n' 2>/dev/null || true; } | awk '{ s += $1 } END { print s + 0 }'
  }
  block_count() {
    { find "$data/bucket" -type f -name meta.json 2>/dev/null || true; } | awk 'END { print NR }'
  }
  local prev_blocks=-1 prev_bytes=-1 shipped=0 deadline blocks bytes
  deadline=$(( $(date +%s) + FLUSH_TIMEOUT ))
  while (( $(date +%s) < deadline )); do
    blocks=$(block_count) bytes=$(chunk_bytes)
    if (( blocks > 0 && blocks == prev_blocks && bytes == prev_bytes )); then shipped=1; break; fi
    prev_blocks=$blocks prev_bytes=$bytes
    sleep 3
  done
  local chunk_bytes_total block_total
  chunk_bytes_total=$(chunk_bytes)
  block_total=$(block_count)
  if [[ $shipped == 1 ]]; then
    say "$block_total block(s) shipped, $chunk_bytes_total bytes of chunks"
  else
    say "no stable set of shipped blocks under $data/bucket within ${FLUSH_TIMEOUT}s ($block_total meta.json, $chunk_bytes_total chunk bytes)"
  fi

  say "stopping meridian"
  stop_meridian "$pid"

  local total_accepted rss_per_series_only bytes_per_sample
  total_accepted=$(( accepted + ${once_accepted:-0} ))
  M_CPU_PER_M=$(awk -v a="$cpu_before" -v b="$cpu_after" -v hz="$CLK_TCK" -v n="$accepted" 'BEGIN { printf "%.2f", (b - a) / hz / (n / 1e6) }')
  M_RSS_PER_SERIES=$(awk -v a="$rss_before" -v b="$rss_after" -v n="$SERIES" 'BEGIN { printf "%.0f", (b - a) / n }')
  M_RSS_PER_TENANT=$(awk -v a="$rss_before" -v b="$rss_after" -v n="$TENANTS" 'BEGIN { printf "%.0f", (b - a) / n }')
  rss_per_series_only=$(awk -v a="$rss_before" -v b="$rss_series" -v n="$SERIES" 'BEGIN { printf "%.0f", (b - a) / n }')
  if [[ $shipped == 1 && $chunk_bytes_total -gt 0 ]]; then
    bytes_per_sample=$(awk -v c="$chunk_bytes_total" -v n="$total_accepted" 'BEGIN { printf "%.3f", c / n }')
  else
    bytes_per_sample="n/a"
  fi

  echo
  echo "Meridian benchmark (monolith): $SERIES active series, $TENANTS tenant(s), load $DURATION, interval $INTERVAL"
  row "figure" "measured" "target (anchors)"
  row "samples/s accepted" "$M_RATE" ">= 400000 (Cortex 340k, VictoriaMetrics 1.1M)"
  row "CPU-seconds per million samples" "$M_CPU_PER_M" "(Cortex 5.5, VictoriaMetrics 1.4)"
  row "RSS bytes per active series (after load)" "$M_RSS_PER_SERIES" "<= 3072 (Cortex 6.4 KB, VictoriaMetrics 2.5 KB)"
  row "RSS bytes per series (series only)" "$rss_per_series_only" "(one sample per series)"
  row "RSS bytes per tenant (after load)" "$M_RSS_PER_TENANT" "(RSS growth / tenants)"
  row "open file descriptors (after load)" "$M_FDS" "(/proc/PID/fd)"
  row "goroutines (after load)" "$M_GOROUTINES" "(go_goroutines)"
  row "restart after kill -9: ready (s)" "$M_RESTART_READY_S" "<= 60 (/ready answers 200)"
  row "restart after kill -9: data queryable (s)" "$M_RESTART_QUERY_S" "(last tenant answers as before the kill)"
  row "bytes per sample in shipped blocks" "$bytes_per_sample" "<= 1.5"
  row "query p99 (ms)" "$M_QUERY_P99" ""
  row "remote-write p99 (ms)" "$M_WRITE_P99" ""
  row "failed write requests" "$M_ERRORS" "0"
  row "samples per series written" "$(( total_accepted / SERIES ))" ""
  echo "BENCH samples_per_sec=$M_RATE cpu_s_per_million=$M_CPU_PER_M rss_bytes_per_series=$M_RSS_PER_SERIES rss_bytes_per_series_only=$rss_per_series_only bytes_per_sample=$bytes_per_sample query_p99_ms=$M_QUERY_P99 write_p99_ms=$M_WRITE_P99 write_errors=$M_ERRORS samples_accepted=$total_accepted chunk_bytes=$chunk_bytes_total blocks=$block_total series=$SERIES tenants=$TENANTS rss_bytes_per_tenant=$M_RSS_PER_TENANT open_fds=$M_FDS goroutines=$M_GOROUTINES restart_ready_s=$M_RESTART_READY_S restart_query_s=$M_RESTART_QUERY_S restart_open_fds=$M_RESTART_FDS mode=monolith"
}

# --- 2b. the cluster ----------------------------------------------------------
# ring_active URL prints how many ACTIVE members the /ring JSON of URL lists.
ring_active() {
  curl -s --max-time 2 -H 'Accept: application/json' "$1/ring" 2>/dev/null |
    grep -o '"state": *"ACTIVE"' | wc -l || true
}

# ingester_tenants URL prints the ingester's meridian_ingester_tenants.
ingester_tenants() {
  curl -s --max-time 5 "$1/metrics" 2>/dev/null |
    awk '$1 == "meridian_ingester_tenants" { printf "%d", $2; found = 1 } END { if (!found) printf "0" }'
}

bench_cluster() {
  local dir=$TMP/cluster
  mkdir -p "$dir/bucket"
  local n_ing=${BENCH_INGESTERS:-3} shard=${BENCH_SHARD_SIZE:-0}
  [[ $n_ing =~ ^[0-9]+$ ]] && (( n_ing >= 3 && n_ing <= 9 )) || die "BENCH_INGESTERS must be 3 to 9 (RF 3 in 3 zones), not '$n_ing'"
  [[ $shard =~ ^[0-9]+$ ]] || die "BENCH_SHARD_SIZE must be a whole number (0: every ingester), not '$shard'"
  local ing_hosts=() dist_host=127.0.0.20 q_host=127.0.0.30
  for i in $(seq 1 "$n_ing"); do ing_hosts+=("127.0.0.$((10 + i))"); done
  local label="meridian-bench-$$" i h
  # Preferred ports 8080 (HTTP), 9095 (gRPC), 7946 (memberlist) on every
  # address; another free port on an address where one is taken.
  declare -A http grpc gossip
  for h in "${ing_hosts[@]}" "$dist_host" "$q_host"; do
    http[$h]=$(pick_port "$h" 8080)
    grpc[$h]=$(pick_port "$h" 9095 "${http[$h]}")
    gossip[$h]=$(pick_port "$h" 7946 "${http[$h]}" "${grpc[$h]}")
  done
  local seed="${ing_hosts[0]}:${gossip[${ing_hosts[0]}]}"
  local ring=(-ingester.distributor.replication-factor=3 -ingester.distributor.zone-awareness-enabled=true
    -memberlist.cluster-label="$label" -blocks-storage.filesystem.dir="$dir/bucket"
    -distributor.ingestion-tenant-shard-size="$shard")
  # proc_flags HOST: the address flags of the process on HOST; every process
  # but the seed joins the seed.
  proc_flags() {
    PF=(-memberlist.bind-addr="$1" -memberlist.bind-port="${gossip[$1]}"
      -server.http-listen-address="$1" -server.http-listen-port="${http[$1]}"
      -server.grpc-listen-address="$1" -server.grpc-listen-port="${grpc[$1]}")
    [[ "$1:${gossip[$1]}" == "$seed" ]] || PF+=(-memberlist.join="$seed")
  }

  local ing_pids=() all_pids=() names=() ing_urls=()
  for i in $(seq 1 "$n_ing"); do
    h=${ing_hosts[$((i - 1))]}
    local zone="z$(( (i - 1) % 3 + 1 ))"
    proc_flags "$h"
    say "cluster: starting ingester ing-$i (zone $zone) on $h (HTTP ${http[$h]}, gRPC ${grpc[$h]}, gossip ${gossip[$h]})"
    ing_urls+=("http://$h:${http[$h]}")
    start_meridian "$dir/ing$i.log" -target=ingester "${ring[@]}" "${PF[@]}" \
      -ingester.availability-zone="$zone" -ingester.lifecycler.ID="ing-$i" -common.data-dir="$dir/ing$i" \
      -ingester.flush-on-shutdown=false
    ing_pids+=("$STARTED") all_pids+=("$STARTED") names+=("ing-$i@http://$h:${http[$h]}")
    if [[ $i == 1 ]]; then
      # Let the seed listen before the others try to join it.
      for _ in $(seq 1 $(( READY_TIMEOUT * 4 ))); do
        kill -0 "$STARTED" 2>/dev/null || die "ingester ing-1 exited at start-up"
        port_in_use "$h" "${gossip[$h]}" && break
        sleep 0.25
      done
    fi
  done
  proc_flags "$dist_host"
  say "cluster: starting the distributor on $dist_host (HTTP ${http[$dist_host]})"
  start_meridian "$dir/distributor.log" -target=distributor "${ring[@]}" "${PF[@]}" -common.data-dir="$dir/dist"
  local dist_pid=$STARTED
  all_pids+=("$STARTED") names+=("distributor@http://$dist_host:${http[$dist_host]}")
  proc_flags "$q_host"
  say "cluster: starting the querier on $q_host (HTTP ${http[$q_host]})"
  start_meridian "$dir/querier.log" -target=querier "${ring[@]}" "${PF[@]}" -common.data-dir="$dir/q"
  all_pids+=("$STARTED") names+=("querier@http://$q_host:${http[$q_host]}")

  local base="http://$dist_host:${http[$dist_host]}" qbase="http://$q_host:${http[$q_host]}"
  for i in "${!all_pids[@]}"; do
    wait_ready "${names[$i]%%@*}" "${all_pids[$i]}" "${names[$i]#*@}"
  done
  # The distributor needs every ingester ACTIVE in its view of the ring,
  # or RF 3 writes may be refused and tenants land on fewer ingesters.
  local n=0
  for _ in $(seq 1 $(( READY_TIMEOUT * 2 ))); do
    n=$(ring_active "$base")
    (( n >= n_ing )) && break
    sleep 0.5
  done
  (( n >= n_ing )) || die "the distributor's ring shows $n ACTIVE ingesters, not $n_ing, after ${READY_TIMEOUT}s"
  say "cluster is ready (pids ${all_pids[*]}; distributor sees $n ACTIVE ingesters)"
  sleep 2
  local rss_before rss_series rss_after cpu_before cpu_after
  rss_before=$(rss_sum "${ing_pids[@]}")

  plan_load
  loadgen_common "$base"
  run_once "$dir"
  sleep 2
  rss_series=$(rss_sum "${ing_pids[@]}")

  cpu_before=$(cpu_ticks_sum "${all_pids[@]}")
  local cpu_ing_before cpu_dist_before
  cpu_ing_before=$(cpu_ticks_sum "${ing_pids[@]}")
  cpu_dist_before=$(cpu_ticks "$dist_pid")
  run_load "$dir"
  cpu_after=$(cpu_ticks_sum "${all_pids[@]}")
  local cpu_ing_after cpu_dist_after
  cpu_ing_after=$(cpu_ticks_sum "${ing_pids[@]}")
  cpu_dist_after=$(cpu_ticks "$dist_pid")
  sleep 2
  rss_after=$(rss_sum "${ing_pids[@]}")

  local accepted
  C_RATE=$(result_field "$dir/load.out" samples_per_sec)
  accepted=$(result_field "$dir/load.out" samples_accepted)
  C_ERRORS=$(result_field "$dir/load.out" errors)
  C_WRITE_P99=$(result_field "$dir/load.out" p99_ms)
  [[ -n $accepted && $accepted -gt 0 ]] || die "the load generator reports no accepted samples from the distributor"

  run_queries "$dir" "$qbase"
  C_QUERY_P99=$QUERY_P99

  # Tenants per ingester: with shard size S of N ingesters, about
  # TENANTS × S ÷ N (every tenant when S is 0 or at least N).
  local tpi=() t tenants_sum=0
  for h in "${ing_urls[@]}"; do
    t=$(ingester_tenants "$h")
    tpi+=("$t")
    tenants_sum=$(( tenants_sum + t ))
  done
  local tenants_list tenants_avg
  tenants_list=$(IFS=,; echo "${tpi[*]}")
  tenants_avg=$(awk -v s="$tenants_sum" -v n="$n_ing" 'BEGIN { printf "%.1f", s / n }')

  # No flush: the shipped-block size is the monolith's times 3 (one block
  # per replica, nothing compacts them), so the ingesters run with
  # -ingester.flush-on-shutdown=false and stop without shipping.
  say "stopping the cluster"
  stop_meridian "${all_pids[@]}"

  local cpu_ing_per_m cpu_dist_per_m rss_per_copy rss_per_series_only
  C_CPU_PER_M=$(awk -v a="$cpu_before" -v b="$cpu_after" -v hz="$CLK_TCK" -v n="$accepted" 'BEGIN { printf "%.2f", (b - a) / hz / (n / 1e6) }')
  cpu_ing_per_m=$(awk -v a="$cpu_ing_before" -v b="$cpu_ing_after" -v hz="$CLK_TCK" -v n="$accepted" 'BEGIN { printf "%.2f", (b - a) / hz / (n / 1e6) }')
  cpu_dist_per_m=$(awk -v a="$cpu_dist_before" -v b="$cpu_dist_after" -v hz="$CLK_TCK" -v n="$accepted" 'BEGIN { printf "%.2f", (b - a) / hz / (n / 1e6) }')
  C_RSS_PER_SERIES=$(awk -v a="$rss_before" -v b="$rss_after" -v n="$SERIES" 'BEGIN { printf "%.0f", (b - a) / n }')
  rss_per_copy=$(awk -v a="$rss_before" -v b="$rss_after" -v n="$SERIES" 'BEGIN { printf "%.0f", (b - a) / n / 3 }')
  rss_per_series_only=$(awk -v a="$rss_before" -v b="$rss_series" -v n="$SERIES" 'BEGIN { printf "%.0f", (b - a) / n }')

  echo
  echo "Meridian benchmark (cluster: 1 distributor, $n_ing ingesters RF 3 in zones z1-z3, tenant shard size $shard, 1 querier): $SERIES active series, $TENANTS tenant(s), load $DURATION, interval $INTERVAL"
  row "figure" "measured" "note"
  row "samples/s accepted (by the distributor)" "$C_RATE" "each stored 3 times"
  row "CPU-seconds per million samples" "$C_CPU_PER_M" "all $(( n_ing + 2 )) processes"
  row "  of which the $n_ing ingesters" "$cpu_ing_per_m" ""
  row "  of which the distributor" "$cpu_dist_per_m" ""
  row "ingester RSS bytes per active series" "$C_RSS_PER_SERIES" "$n_ing ingesters summed, after load"
  row "  per stored copy" "$rss_per_copy" "the same ÷ 3"
  row "ingester RSS bytes per series (series only)" "$rss_per_series_only" "$n_ing ingesters, one sample per series"
  row "tenants per ingester (mean)" "$tenants_avg" "of $TENANTS; per ingester: $tenants_list"
  row "query p99 (ms)" "$C_QUERY_P99" "querier"
  row "remote-write p99 (ms)" "$C_WRITE_P99" "distributor"
  row "failed write requests" "$C_ERRORS" "0"
  echo "BENCH mode=cluster samples_per_sec=$C_RATE cpu_s_per_million=$C_CPU_PER_M cpu_s_per_million_ingesters=$cpu_ing_per_m cpu_s_per_million_distributor=$cpu_dist_per_m rss_bytes_per_series=$C_RSS_PER_SERIES rss_bytes_per_series_copy=$rss_per_copy rss_bytes_per_series_only=$rss_per_series_only query_p99_ms=$C_QUERY_P99 write_p99_ms=$C_WRITE_P99 write_errors=$C_ERRORS samples_accepted=$accepted series=$SERIES tenants=$TENANTS replication_factor=3 ingesters=$n_ing shard_size=$shard tenants_per_ingester=$tenants_avg tenants_per_ingester_list=$tenants_list"
}

# --- 3. run -------------------------------------------------------------------
case $MODE in
  monolith) bench_monolith ;;
  cluster) bench_cluster ;;
  both)
    bench_monolith
    bench_cluster
    ratio() { awk -v c="$1" -v m="$2" 'BEGIN { if (m + 0 > 0 && c != "" && c != "failed") printf "%.2f", c / m; else print "n/a" }'; }
    echo
    echo "Cluster (RF 3) against monolith (RF 1), same run:"
    row "cluster RF3 / monolith RF1 throughput ratio" "$(ratio "$C_RATE" "$M_RATE")" "samples/s accepted: $C_RATE / $M_RATE"
    row "cluster / monolith CPU-per-sample ratio" "$(ratio "$C_CPU_PER_M" "$M_CPU_PER_M")" "CPU-s per million: $C_CPU_PER_M / $M_CPU_PER_M"
    row "cluster / monolith RSS-per-series ratio" "$(ratio "$C_RSS_PER_SERIES" "$M_RSS_PER_SERIES")" "$C_RSS_PER_SERIES / $M_RSS_PER_SERIES"
    row "cluster / monolith query p99 ratio" "$(ratio "$C_QUERY_P99" "$M_QUERY_P99")" "$C_QUERY_P99 / $M_QUERY_P99 ms"
    echo "BENCH mode=ratio throughput_ratio=$(ratio "$C_RATE" "$M_RATE") cpu_per_sample_ratio=$(ratio "$C_CPU_PER_M" "$M_CPU_PER_M") rss_per_series_ratio=$(ratio "$C_RSS_PER_SERIES" "$M_RSS_PER_SERIES")"
    ;;
esac
