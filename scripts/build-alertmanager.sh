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

# shellcheck source=scripts/toolcache.sh
source "$root/scripts/toolcache.sh"
toolcache_begin build-alertmanager "alertmanager-$version" alertmanager
scratch=$tool_scratch
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
toolcache_build "$module/cmd/alertmanager"
