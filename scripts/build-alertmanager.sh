#!/usr/bin/env bash
# Builds Prometheus' Alertmanager at the version in go.mod, the one
# integration/ruler_test.go sends the ruler's alerts to. It is built in a
# scratch module so its dependencies never touch Meridian's go.mod. The binary
# is cached and reused; the last line printed is its path.
#
#   MERIDIAN_CACHE   cache directory (default: $HOME/.cache/meridian)
set -euo pipefail

module=github.com/prometheus/alertmanager
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(awk -v m="$module" '$1 == m { print $2; exit }' "$root/go.mod")
[[ -n $version ]] || { echo "build-alertmanager: $module is not in go.mod" >&2; exit 1; }

command -v go >/dev/null 2>&1 || { echo "build-alertmanager: 'go' is not on PATH" >&2; exit 1; }

cache_root=${MERIDIAN_CACHE:-$HOME/.cache/meridian}
dir="$cache_root/alertmanager-$version"
bin="$dir/alertmanager"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
scratch="$dir/src"
rm -rf "$scratch"
mkdir -p "$scratch"
cd "$scratch"

echo "build-alertmanager: building alertmanager $version in $scratch (takes a few minutes)" >&2
go mod init meridian.local/alertmanager >/dev/null 2>&1
go get "$module/cmd/alertmanager@$version" >&2
# The module as published lacks the web UI's built assets (ui/app/dist),
# which ui/web.go embeds: build from a copy with a placeholder page (the
# tests use the API only).
src=$(go list -m -f '{{.Dir}}' "$module")
cp -r "$src" "$scratch/alertmanager-src"
chmod -R u+w "$scratch/alertmanager-src"
mkdir -p "$scratch/alertmanager-src/ui/app/dist"
echo '<!doctype html><title>Alertmanager</title>' > "$scratch/alertmanager-src/ui/app/dist/index.html"
go mod edit -replace "$module=./alertmanager-src"
go build -o "$bin.tmp" "$module/cmd/alertmanager" >&2
mv "$bin.tmp" "$bin"
echo "build-alertmanager: built $bin" >&2
echo "$bin"
