#!/usr/bin/env bash
# Builds the reference Prometheus used by integration/promcompat_test.go: the
# same github.com/prometheus/prometheus version as Meridian's go.mod, so both
# run the same PromQL engine. The binary is cached and reused; the last line
# printed is its path.
#
#   MERIDIAN_CACHE   cache directory (default: $HOME/.cache/meridian)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

version=$(go list -m -f '{{.Version}}' github.com/prometheus/prometheus)
if [[ -z "$version" ]]; then
	echo "build-reference-prometheus: could not read the prometheus version from go.mod" >&2
	exit 1
fi

# shellcheck source=scripts/toolcache.sh
source "$repo_root/scripts/toolcache.sh"
toolcache_begin build-reference-prometheus "refprom-$version" prometheus

# Prometheus' own go.mod may carry replace directives; they do not apply to a
# dependent module, so copy them over.
modfile=$(go mod download -json "github.com/prometheus/prometheus@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
if [[ -n "$modfile" && -f "$modfile" ]]; then
	# Single-line replaces: "replace a => b v".
	{ grep -E '^replace[[:space:]]+[^(]' "$modfile" || true; } | sed -E 's/^replace[[:space:]]+//' | sed -E 's://.*$::' | while read -r line; do
		old=$(echo "$line" | sed -E 's/[[:space:]]*=>.*//' | tr -s ' \t' '@')
		new=$(echo "$line" | sed -E 's/.*=>[[:space:]]*//' | tr -s ' \t' '@')
		go mod edit -replace "$old=$new"
	done
	# Block replaces: "replace ( ... )".
	awk '/^replace[[:space:]]*\(/{inblock=1; next} inblock && /^\)/{inblock=0} inblock' "$modfile" | sed -E 's://.*$::' | { grep -v '^[[:space:]]*$' || true; } | while read -r line; do
		old=$(echo "$line" | sed -E 's/[[:space:]]*=>.*//' | tr -s ' \t' '@')
		new=$(echo "$line" | sed -E 's/.*=>[[:space:]]*//' | tr -s ' \t' '@')
		go mod edit -replace "$old=$new"
	done
	# Match the Go language version Prometheus asks for.
	gover=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$modfile" | head -n1)
	if [[ -n "$gover" ]]; then
		go mod edit -go="$gover"
	fi
fi

go get "github.com/prometheus/prometheus/cmd/prometheus@$version" >&2
toolcache_build github.com/prometheus/prometheus/cmd/prometheus
