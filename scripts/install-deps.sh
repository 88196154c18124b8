#!/usr/bin/env bash
# Installs the Debian packages Lelantos needs on the host, once. Safe to rerun.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
pkgs=(debootstrap iptables iproute2 runc xfsprogs e2fsprogs protobuf-compiler libprotobuf-dev curl ca-certificates util-linux postgresql)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js runs the e2b client of the quickstart and the end-to-end tests; keep one
# that is already installed (the client wants 20 or newer), else take Debian's.
if ! command -v node >/dev/null; then missing+=(nodejs); fi
if ! command -v npm >/dev/null; then missing+=(npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
