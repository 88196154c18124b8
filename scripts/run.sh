#!/usr/bin/env bash
# What `make run` does on a fresh Debian 12 machine, as root: installs what Lelantos
# needs, builds it, builds the base template if missing, and starts the server on
# 127.0.0.1 with its data in .lelantos/ (or $LELANTOS_DATA_DIR). Extra arguments go
# to `lelantos serve` (e.g. --domain, --listen).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ "$(id -u)" != 0 ]; then
  echo "lelantos: run as root: sandboxes need namespaces, cgroups and iptables" >&2
  exit 1
fi
bash scripts/install-deps.sh
bash scripts/install-runsc.sh
log "building lelantos"
bash scripts/build.sh
base=$(bash scripts/build-base.sh)
exec ./bin/lelantos serve --base-rootfs "$base" --runsc "$LELANTOS_CACHE_DIR/bin/runsc" --envd ./bin/envd "$@"
