# Shared helpers of the benchmark scripts (scripts/bench.sh,
# scripts/bench-frontend.sh). Source it after defining say and die; it uses
# BIN (the meridian binary), READY_TIMEOUT (seconds), PIDS (array of the
# meridian processes started) and MERIDIAN_EXTRA_FLAGS (flags appended to
# every meridian process).
# shellcheck shell=bash

# dur_s converts a Go-style duration with one unit (90s, 5m, 1h, 250ms) to
# whole seconds (at least 1).
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

now_ms() { date +%s%3N; }

USED_PORTS=()
# free_port sets PORT to a TCP port on 127.0.0.1 that nothing listens on and
# that this script has not handed out yet. Call it directly, not in $(...),
# so that USED_PORTS keeps track.
free_port() {
  local p u dup
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 40000 ))
    dup=0
    for u in "${USED_PORTS[@]}"; do [[ $u == "$p" ]] && dup=1; done
    if [[ $dup == 0 ]] && ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      USED_PORTS+=("$p")
      PORT=$p
      return 0
    fi
  done
  die "found no free port on 127.0.0.1"
}

# start_meridian LOG ARGS... starts $BIN in the background with
# MERIDIAN_EXTRA_FLAGS last and sets STARTED to its pid.
STARTED=""
start_meridian() {
  local log=$1
  shift
  # shellcheck disable=SC2086 # MERIDIAN_EXTRA_FLAGS is a list of flags
  "$BIN" "$@" ${MERIDIAN_EXTRA_FLAGS:-} >"$log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}

# stop_meridian PID...: SIGTERM, up to 30 s to exit, then SIGKILL; the pids
# leave PIDS.
stop_meridian() {
  local pid keep=() p
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 60); do
    local alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.5
  done
  for pid in "$@"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    local stopped=0
    for pid in "$@"; do [[ $p == "$pid" ]] && stopped=1; done
    [[ $stopped == 0 ]] && keep+=("$p")
  done
  PIDS=("${keep[@]}")
}

# wait_ready NAME PID URL: polls URL/ready until 200 (READY_TIMEOUT).
wait_ready() {
  local name=$1 pid=$2 url=$3 code
  for _ in $(seq 1 $(( READY_TIMEOUT * 2 ))); do
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) exited before becoming ready"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/ready" || true)
    [[ $code == 200 ]] && return 0
    sleep 0.5
  done
  die "$name did not answer GET $url/ready with 200 within ${READY_TIMEOUT}s"
}
