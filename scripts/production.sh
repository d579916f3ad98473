#!/usr/bin/env bash
# Builds and checks everything under production/:
#   1. installs jsonnet and jsonnetfmt (go-jsonnet) and tools/k8svalidate
#      into a cache directory;
#   2. jsonnetfmt --test on every .jsonnet/.libsonnet file;
#   3. the mixin: production/mixin/out/{dashboards/*.json,alerts.yaml,rules.yaml};
#   4. promtool check rules and promtool test rules (Debian's prometheus package);
#   5. every environment to production/out/<env>.yaml (a YAML stream of
#      Kubernetes objects: kubectl apply -f production/out/<env>.yaml);
#   6. k8svalidate: strict decoding with the Kubernetes Go types, and
#      cross-references (selectors, Services, ConfigMaps, probes, requests);
#   7. bin/meridian -config.verify on every ConfigMap'd configuration, with
#      the exact flags of every container, and on every tenant's overrides.
# Exits non-zero on the first failing step, saying which and why.
#
#   MERIDIAN_CACHE   cache directory (default ~/.cache/meridian); tools go to
#                    $MERIDIAN_CACHE/production/bin
#   MERIDIAN_BIN     meridian binary to verify configs with (default
#                    bin/meridian, built with `make build` when missing or
#                    older than the Go sources)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

JSONNET_VERSION=v0.22.0
cache=${MERIDIAN_CACHE:-$HOME/.cache/meridian}/production
tools="$cache/bin"
mkdir -p "$tools"
work=$(mktemp -d "${TMPDIR:-/tmp}/meridian-production.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { echo; echo "==> $*"; }
fail() { echo "production: FAILED: $*" >&2; exit 1; }

step "tools in $tools"
if [[ ! -x $tools/jsonnet || ! -x $tools/jsonnetfmt || $("$tools/jsonnet" --version 2>&1) != *"${JSONNET_VERSION}"* ]]; then
	GOBIN="$tools" go install "github.com/google/go-jsonnet/cmd/jsonnet@${JSONNET_VERSION}" "github.com/google/go-jsonnet/cmd/jsonnetfmt@${JSONNET_VERSION}" ||
		fail "go install of go-jsonnet ${JSONNET_VERSION} (needs the Go module proxy)"
fi
# Rebuilt every run; the Go build cache makes it quick when nothing changed.
(cd tools/k8svalidate && go build -o "$tools/k8svalidate" .) || fail "building tools/k8svalidate"
if [[ ! -x /usr/bin/promtool ]] && ! command -v promtool >/dev/null 2>&1; then
	echo "promtool is missing; it comes with Debian's prometheus package:" >&2
	echo "  sudo apt-get update && sudo apt-get install -y prometheus" >&2
	fail "promtool not installed"
fi
promtool=$(command -v promtool || echo /usr/bin/promtool)
"$tools/jsonnet" --version
"$promtool" --version 2>&1 | head -1

step "jsonnetfmt --test"
mapfile -t jsonnet_files < <(find production -name '*.jsonnet' -o -name '*.libsonnet' | grep -v '/out/' | sort)
((${#jsonnet_files[@]} > 0)) || fail "no jsonnet files under production/"
unformatted=()
for f in "${jsonnet_files[@]}"; do
	"$tools/jsonnetfmt" --test "$f" >/dev/null 2>&1 || unformatted+=("$f")
done
if ((${#unformatted[@]} > 0)); then
	echo "not formatted (fix with: $tools/jsonnetfmt -i FILE):" >&2
	printf '  %s\n' "${unformatted[@]}" >&2
	fail "jsonnetfmt"
fi
echo "${#jsonnet_files[@]} files formatted"

step "mixin -> production/mixin/out"
mixin=production/mixin
rm -rf "$mixin/out"
mkdir -p "$mixin/out/dashboards"
"$tools/jsonnet" -J "$mixin" -m "$mixin/out/dashboards" -e '(import "mixin.libsonnet").grafanaDashboards' >/dev/null || fail "dashboards"
"$tools/jsonnet" -J "$mixin" -S -e 'std.manifestYamlDoc((import "mixin.libsonnet").prometheusAlerts, quote_keys=false)' >"$mixin/out/alerts.yaml" || fail "alerts"
"$tools/jsonnet" -J "$mixin" -S -e 'std.manifestYamlDoc((import "mixin.libsonnet").prometheusRules, quote_keys=false)' >"$mixin/out/rules.yaml" || fail "recording rules"
ls "$mixin/out" "$mixin/out/dashboards"

step "promtool check rules / test rules"
"$promtool" check rules "$mixin/out/alerts.yaml" "$mixin/out/rules.yaml" || fail "promtool check rules"
(cd "$mixin/tests" && "$promtool" test rules ./*.yaml) || fail "promtool test rules (production/mixin/tests)"

step "environments -> production/out"
mkdir -p production/out
envs=()
for main in production/environments/*/main.jsonnet; do
	env=$(basename "$(dirname "$main")")
	envs+=("$env")
	"$tools/jsonnet" -J production/lib -y -e "(import '$main').items" >"production/out/$env.yaml" || fail "evaluating $main"
	echo "production/out/$env.yaml"
done
((${#envs[@]} > 0)) || fail "no production/environments/*/main.jsonnet"

step "Kubernetes strict validation (tools/k8svalidate)"
for env in "${envs[@]}"; do
	"$tools/k8svalidate" -extract "$work/$env" "production/out/$env.yaml" || fail "k8svalidate production/out/$env.yaml"
done

step "meridian -config.verify on every container's configuration"
bin=${MERIDIAN_BIN:-bin/meridian}
if [[ -z ${MERIDIAN_BIN:-} ]]; then
	if [[ ! -x $bin ]] || [[ -n $(find cmd pkg go.mod go.sum -newer "$bin" -print -quit) ]]; then
		echo "building $bin"
		make build >/dev/null || fail "make build"
	fi
fi
[[ -x $bin ]] || fail "$bin is not an executable"
checked=0
for env in "${envs[@]}"; do
	for argsfile in "$work/$env"/args/*.args; do
		[[ -f $argsfile ]] || fail "$env: no Meridian containers found"
		mapfile -t args <"$argsfile"
		if ! out=$("$bin" "${args[@]}" -config.verify 2>&1); then
			echo "$env/$(basename "$argsfile" .args): meridian ${args[*]} -config.verify:" >&2
			echo "$out" >&2
			fail "config of $env/$(basename "$argsfile" .args)"
		fi
		echo "$env/$(basename "$argsfile" .args): $out"
		checked=$((checked + 1))
	done
	# Each tenant's overrides, checked as the limits section of a config
	# (strict: an unknown limit or a bad value fails).
	for overrides in "$work/$env"/*/overrides.yaml; do
		[[ -f $overrides ]] || continue
		mkdir -p "$work/$env/tenants"
		"$tools/jsonnet" -S -m "$work/$env/tenants" --ext-str-file "ov=$overrides" -e '
			local o = std.parseYaml(std.extVar("ov"));
			local ov = if o == null || !std.objectHas(o, "overrides") || o.overrides == null then {} else o.overrides;
			{ [t + ".yaml"]: std.manifestYamlDoc({ limits: ov[t] }) for t in std.objectFields(ov) }' >/dev/null ||
			fail "$env: reading $overrides"
		for t in "$work/$env"/tenants/*.yaml; do
			[[ -f $t ]] || continue
			out=$("$bin" -config.file="$t" -config.verify 2>&1) || { echo "$out" >&2; fail "$env: overrides of tenant $(basename "$t" .yaml)"; }
			echo "$env: overrides of tenant $(basename "$t" .yaml): $out"
		done
	done
done
echo "$checked container configurations valid"

echo
echo "production: OK (${#envs[@]} environments: ${envs[*]}; mixin in $mixin/out)"
