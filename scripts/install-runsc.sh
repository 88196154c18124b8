#!/usr/bin/env bash
# Builds gVisor's runsc from the Go module proxy at the pinned version, once.
# The binary lands in $LELANTOS_CACHE_DIR/bin/runsc-$RUNSC_VERSION; runsc is a link to it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin="$LELANTOS_CACHE_DIR/bin"
target="$bin/runsc-$RUNSC_VERSION"
if [ ! -x "$target" ]; then
  log "building runsc $RUNSC_VERSION from the Go module proxy (about 5 minutes, once)"
  mkdir -p "$bin"
  tmp=$(mktemp -d "$bin/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN="$tmp" with_progress "building runsc" 300 go install "gvisor.dev/gvisor/runsc@$RUNSC_VERSION"
  mv "$tmp/runsc" "$target"
fi
ln -sfn "$(basename "$target")" "$bin/runsc"
