#!/usr/bin/env bash
# Bytes per sample in shipped blocks on real scrape data (`make bench` runs
# it after scripts/bench.sh). The load generator's values are deliberately
# high-entropy; this measures what real metrics cost instead: a reference
# Prometheus (scripts/build-reference-prometheus.sh) scrapes itself and
# Meridian every second and remote-writes everything to a monolith; after
# BENCH_REAL_DURATION the head is flushed and the shipped blocks' chunk
# bytes are divided by the samples their meta.json records.
#
#   BENCH_REAL_DURATION [150] seconds of scraping (≥ 120 fills whole chunks)
#   MERIDIAN_BIN [bin/meridian]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${MERIDIAN_BIN:-$ROOT/bin/meridian}
DURATION=${BENCH_REAL_DURATION:-150}
say() { echo "bench-realdata: $*" >&2; }
[[ -x $BIN ]] || { say "$BIN is missing: run 'make build' (make bench does)"; exit 1; }
PROM=$(scripts/build-reference-prometheus.sh | tail -n1)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/meridian-realdata.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ ${BENCH_KEEP:-0} == 1 ]] && say "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
HTTP=$(port); GRPC=$(port); PPORT=$(port)
"$BIN" -target=all -server.http-listen-address=127.0.0.1 -server.http-listen-port="$HTTP" \
  -server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port="$GRPC" \
  -common.data-dir="$TMP/data" >"$TMP/meridian.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$HTTP/ready" >/dev/null && break
  sleep 0.5
done
curl -sf "http://127.0.0.1:$HTTP/ready" >/dev/null || { say "meridian not ready"; tail -20 "$TMP/meridian.log"; exit 1; }

cat >"$TMP/prometheus.yml" <<YAML
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ['127.0.0.1:$PPORT']}]
  - job_name: meridian
    static_configs: [{targets: ['127.0.0.1:$HTTP']}]
remote_write:
  - url: http://127.0.0.1:$HTTP/api/v1/push
    headers: {X-Scope-OrgID: real}
    queue_config: {batch_send_deadline: 1s}
YAML
"$PROM" --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prom" \
  --web.listen-address="127.0.0.1:$PPORT" >"$TMP/prometheus.log" 2>&1 &
pids+=($!)
say "scraping for ${DURATION}s (Prometheus on :$PPORT, Meridian on :$HTTP)"
sleep "$DURATION"
kill -9 "${pids[1]}" 2>/dev/null || true
wait "${pids[1]}" 2>/dev/null || true
sleep 2
curl -sf -X POST "http://127.0.0.1:$HTTP/ingester/flush?wait=true" >/dev/null || { say "flush failed"; tail -20 "$TMP/meridian.log"; exit 1; }

samples=0; chunks=0; series=0
for meta in "$TMP"/data/bucket/real/*/meta.json; do
  [[ -f $meta ]] || continue
  d=$(dirname "$meta")
  samples=$(( samples + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"]["numSamples"])' "$meta") ))
  series=$(( series + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"]["numSeries"])' "$meta") ))
  chunks=$(( chunks + $(du -sb "$d/chunks" | cut -f1) ))
done
(( samples > 0 )) || { say "no shipped samples found"; exit 1; }
bps=$(awk -v c="$chunks" -v s="$samples" 'BEGIN { printf "%.3f", c / s }')
echo "real scrape data: $series series, $samples samples, $chunks chunk bytes => $bps bytes per sample"
echo "BENCH mode=realdata bytes_per_sample=$bps samples=$samples series=$series chunk_bytes=$chunks"
