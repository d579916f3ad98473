# Shared steps of the scripts that build a test dependency from the Go
# module proxy (build-reference-prometheus.sh, build-versitygw.sh,
# build-alertmanager.sh): each builds in a scratch module of its own, so the
# tool's dependencies never touch Meridian's go.mod, and caches the binary
# under $MERIDIAN_CACHE (default $HOME/.cache/meridian).
# shellcheck shell=bash

# toolcache_begin NAME CACHEDIR BINARY: sets tool_bin to the cached binary's
# path. If it is built already, prints that path and exits the script;
# otherwise makes an empty scratch module (tool_scratch) and cds into it.
toolcache_begin() {
	tool_name=$1
	command -v go >/dev/null 2>&1 || { echo "$tool_name: 'go' is not on PATH" >&2; exit 1; }
	local dir="${MERIDIAN_CACHE:-$HOME/.cache/meridian}/$2"
	tool_bin="$dir/$3"
	if [[ -x "$tool_bin" ]]; then
		echo "$tool_bin"
		exit 0
	fi
	tool_scratch="$dir/src"
	rm -rf "$tool_scratch"
	mkdir -p "$tool_scratch"
	cd "$tool_scratch"
	echo "$tool_name: building in $tool_scratch (takes a few minutes)" >&2
	go mod init "meridian.local/$2" >/dev/null 2>&1
}

# toolcache_build PACKAGE: builds PACKAGE in the scratch module into the
# cache and prints the binary's path (the scripts' last line).
toolcache_build() {
	go build -o "$tool_bin.tmp" "$1" >&2
	mv "$tool_bin.tmp" "$tool_bin"
	echo "$tool_name: built $tool_bin" >&2
	echo "$tool_bin"
}
