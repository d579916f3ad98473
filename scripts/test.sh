#!/usr/bin/env bash
# The test command (`make test`): formatting and vet, unit tests, the
# reference Prometheus, then integration and compatibility tests against the
# real binary. Every step prints a header and its duration; the summary lists
# each step and ends with a line "N passed, M failed".
#
#   SKIP_INTEGRATION=1   skip the reference Prometheus and integration tests
#   MERIDIAN_CACHE       cache for the reference Prometheus, versitygw and Alertmanager (default ~/.cache/meridian)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

work=$(mktemp -d "${TMPDIR:-/tmp}/meridian-test.XXXXXX")
logs="$work/logs"
mkdir -p "$logs"

step_names=()
step_results=()
step_times=()
failed=0

# run_step NAME FUNCTION: runs FUNCTION with a header, records pass/fail and
# duration. Step functions check their commands explicitly (set -e does not
# apply inside a function called as an if condition).
run_step() {
	local name=$1 fn=$2 t0 t1 status
	echo
	echo "==> [$((${#step_names[@]} + 1))] $name"
	t0=$(date +%s)
	if "$fn"; then status=pass; else status=FAIL; failed=1; fi
	t1=$(date +%s)
	step_names+=("$name")
	step_results+=("$status")
	step_times+=("$((t1 - t0))s")
	echo "<== $name: $status in $((t1 - t0))s"
}

skip_step() {
	echo
	echo "==> [$((${#step_names[@]} + 1))] $1"
	echo "    skipped: $2"
	step_names+=("$1")
	step_results+=("skipped")
	step_times+=("-")
}

# go_test LOG ARGS...: runs go test -v, keeps the whole output in LOG and
# shows everything but the per-test RUN/PASS chatter.
go_test() {
	local log=$1
	shift
	local rc=0
	go test -v "$@" >"$log" 2>&1 || rc=$?
	grep -vE '^[[:space:]]*(=== (RUN|PAUSE|CONT|NAME)|--- (PASS|SKIP)|PASS$)' "$log" || true
	return "$rc"
}

step_toolchain() {
	if ! command -v go >/dev/null 2>&1; then
		echo "'go' is not on PATH: install Go $(sed -n 's/^go //p' go.mod) or newer." >&2
		return 1
	fi
	go version || return 1
	if ! command -v git >/dev/null 2>&1; then
		echo "note: git is missing; the file lists for gofmt come from find instead." >&2
	fi
}

go_files() {
	if command -v git >/dev/null 2>&1 && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files --cached --others --exclude-standard -- '*.go'
	else
		find . -name '*.go' -not -path './.git/*'
	fi | grep -v '\.pb\.go$' | while read -r f; do [[ -f $f ]] && echo "$f"; done
}

step_lint() {
	local files unformatted rc=0
	mapfile -t files < <(go_files)
	if ((${#files[@]} > 0)); then
		unformatted=$(gofmt -l "${files[@]}") || rc=1
		if [[ -n "$unformatted" ]]; then
			echo "gofmt would change these files (run 'make fmt'):" >&2
			echo "$unformatted" >&2
			rc=1
		fi
	fi
	if ((rc == 0)); then echo "gofmt: ${#files[@]} files formatted"; fi
	if go vet ./...; then
		echo "go vet: clean"
	else
		rc=1
	fi
	# Import boundaries: docs/architecture.md's package map is the rule.
	go run ./tools/importcheck || rc=1
	return "$rc"
}

# The committed .pb.go files must be what `make proto` generates from the
# .proto files. Generation runs in a copy of the tree, so this never changes
# the working tree.
step_proto() {
	local copy="$work/proto-check"
	mkdir -p "$copy/pkg"
	cp Makefile go.mod go.sum "$copy/" || return 1
	cp -r pkg/meridianpb "$copy/pkg/" || return 1
	(cd "$copy" && PATH="$(go env GOPATH)/bin:$PATH" make proto) || return 1
	if ! diff -r pkg/meridianpb "$copy/pkg/meridianpb"; then
		echo "pkg/meridianpb: the generated code is out of date; run 'make proto' and commit the result." >&2
		return 1
	fi
	echo "generated protobuf code is current"
}

unit_patterns() {
	local d
	for d in pkg cmd tools; do
		[[ -d $d ]] && echo "./$d/..."
	done
	return 0
}

step_unit() {
	local patterns
	mapfile -t patterns < <(unit_patterns)
	if ((${#patterns[@]} == 0)); then
		echo "no unit test packages"
		return 0
	fi
	go_test "$logs/unit.log" -count=1 "${patterns[@]}"
}

step_production() { bash scripts/production.sh; }

refprom=""
step_refprom() {
	local out
	out=$(scripts/build-reference-prometheus.sh) || return 1
	refprom=$(echo "$out" | tail -n1)
	echo "reference Prometheus: $refprom"
	[[ -x $refprom ]]
}

versitygw=""
step_versitygw() {
	local out
	out=$(scripts/build-versitygw.sh) || return 1
	versitygw=$(echo "$out" | tail -n1)
	echo "versitygw: $versitygw"
	[[ -x $versitygw ]]
}

alertmanager=""
step_alertmanager() {
	local out
	out=$(scripts/build-alertmanager.sh) || return 1
	alertmanager=$(echo "$out" | tail -n1)
	echo "alertmanager: $alertmanager"
	[[ -x $alertmanager ]]
}

step_integration() {
	local bin="$work/meridian"
	echo "building $bin"
	go build -o "$bin" ./cmd/meridian || return 1
	(
		export MERIDIAN_BIN="$bin"
		if [[ -n $refprom ]]; then
			export MERIDIAN_REF_PROMETHEUS="$refprom"
		fi
		if [[ -n $versitygw ]]; then
			export MERIDIAN_VERSITYGW="$versitygw"
		fi
		if [[ -n $alertmanager ]]; then
			export MERIDIAN_ALERTMANAGER="$alertmanager"
		fi
		go_test "$logs/integration.log" -count=1 -p 1 -parallel 2 -timeout 30m ./integration/...
	)
}

# Debian packages the tests use: Debian's Prometheus (an older remote-write
# client, integration/debianprom_test.go), protoc (the proto freshness
# check), and graphite-web, carbon and gunicorn (the Graphite compatibility
# test, integration/graphite_compat_test.go, and scripts/bench-graphite.sh).
# Each entry is PACKAGE:PROBE, the probe being an absolute path or a command
# on PATH. Installed with apt-get when running as root; otherwise the exact
# command is printed and the run fails.
debian_packages=(
	prometheus:/usr/bin/prometheus
	protobuf-compiler:protoc
	graphite-web:graphite-manage
	graphite-carbon:carbon-cache
	gunicorn:gunicorn
	memcached:/usr/bin/memcached
	redis-server:/usr/bin/redis-server
)
step_packages() {
	local missing=() entry pkg probe
	for entry in "${debian_packages[@]}"; do
		pkg=${entry%%:*}
		probe=${entry#*:}
		if [[ $probe == /* ]]; then [[ -x $probe ]] && continue; else command -v "$probe" >/dev/null 2>&1 && continue; fi
		missing+=("$pkg")
	done
	if ((${#missing[@]} == 0)); then
		echo "Debian packages present: ${debian_packages[*]%%:*}"
		return 0
	fi
	if [[ $(id -u) != 0 ]]; then
		echo "missing Debian packages: ${missing[*]}; install them with:" >&2
		echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
		return 1
	fi
	echo "installing Debian packages: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$logs/apt.txt" 2>&1 || { tail -20 "$logs/apt.txt" >&2; return 1; }
}

run_step "toolchain" step_toolchain
if [[ ${SKIP_INTEGRATION:-} == 1 ]]; then
	skip_step "Debian packages" "SKIP_INTEGRATION=1"
else
	run_step "Debian packages" step_packages
fi
if command -v protoc >/dev/null 2>&1 && compgen -G "pkg/meridianpb/*.proto" >/dev/null && grep -q '^proto:' Makefile 2>/dev/null; then
	run_step "protobuf code is current" step_proto
elif ! command -v protoc >/dev/null 2>&1; then
	skip_step "protobuf code is current" "protoc is not installed (Debian: apt-get install protobuf-compiler)"
else
	skip_step "protobuf code is current" "no .proto files or no 'proto' make target"
fi
run_step "gofmt, go vet, imports" step_lint
run_step "unit tests" step_unit
if [[ ${SKIP_INTEGRATION:-} == 1 ]]; then
	skip_step "production manifests and mixin" "SKIP_INTEGRATION=1"
	skip_step "reference Prometheus" "SKIP_INTEGRATION=1"
	skip_step "versitygw (S3 server)" "SKIP_INTEGRATION=1"
	skip_step "Alertmanager" "SKIP_INTEGRATION=1"
	skip_step "integration tests" "SKIP_INTEGRATION=1"
else
	run_step "production manifests and mixin" step_production
	run_step "reference Prometheus" step_refprom
	run_step "versitygw (S3 server)" step_versitygw
	run_step "Alertmanager" step_alertmanager
	run_step "integration tests" step_integration
fi

passed=0
failed_tests=0
for log in "$logs"/*.log; do
	[[ -f $log ]] || continue
	p=$(grep -cE '^[[:space:]]*--- PASS' "$log" || true)
	f=$(grep -cE '^[[:space:]]*--- FAIL' "$log" || true)
	b=$(grep -cE '^FAIL[[:space:]].*\[(build|setup) failed\]' "$log" || true)
	passed=$((passed + p))
	failed_tests=$((failed_tests + f + b))
done

echo
echo "==> summary"
for i in "${!step_names[@]}"; do
	printf '  %-28s %-8s %s\n' "${step_names[$i]}" "${step_results[$i]}" "${step_times[$i]}"
done
if ((failed)); then
	echo "  logs kept in $logs"
else
	rm -rf "$work"
fi
echo "$passed passed, $failed_tests failed"
if ((failed || failed_tests > 0)); then
	exit 1
fi
