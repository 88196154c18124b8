#!/usr/bin/env bash
# What `make run` does on a fresh Debian 12 machine, as root: installs what Lelantos
# needs, builds it, builds the base template if missing, installs the e2b client for
# the quickstart, and starts the server on 127.0.0.1 with its data in .lelantos/ (or
# $LELANTOS_DATA_DIR). Extra arguments go to `lelantos serve` (e.g. --domain,
# --listen). Each long step says what it does and how long it has taken.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ "$(id -u)" != 0 ]; then
  echo "lelantos: run as root: sandboxes need namespaces, cgroups and iptables" >&2
  exit 1
fi
started=$(date +%s)
log "step 1/4: host packages"
bash scripts/install-deps.sh
# The base template (network and disk bound) builds while runsc and Lelantos
# compile (CPU bound).
log "step 2/4: the base template's root filesystem, runsc and Lelantos"
basefile=$(mktemp)
trap 'rm -f "$basefile"' EXIT
bash scripts/build-base.sh >"$basefile" &
basepid=$!
bash scripts/install-runsc.sh
log "building lelantos"
with_progress "building lelantos" 60 bash scripts/build.sh
if ! wait "$basepid"; then
  log "building the base template failed (see above)"
  exit 1
fi
base=$(cat "$basefile")
rm -f "$basefile"
log "step 3/4: the e2b client for the quickstart"
modules=$(bash scripts/install-client.sh)
log "step 4/4: starting the server (set up in $(($(date +%s) - started)) s)"
exec ./bin/lelantos serve --base-rootfs "$base" --runsc "$LELANTOS_CACHE_DIR/bin/runsc" --envd ./bin/envd \
  --client-modules "$modules" "$@"
