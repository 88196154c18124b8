#!/usr/bin/env bash
# Installs the npm e2b client pinned in scripts/client into
# $LELANTOS_CACHE_DIR/client, once (again only when the lock file changes), so that
# the README's quickstart runs without a project of its own: `lelantos serve
# --client-modules` writes the node_modules path into client.env as NODE_PATH.
# Prints that node_modules path on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
src="$(cd "$(dirname "$0")/client" && pwd)"
dir="$LELANTOS_CACHE_DIR/client"
if ! command -v npm >/dev/null; then
  log "npm is missing: the quickstart's node client cannot be installed (scripts/install-deps.sh installs it)"
  exit 1
fi
if [ ! -d "$dir/node_modules/e2b" ] || ! cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
  log "installing the e2b client for the quickstart into $dir"
  mkdir -p "$dir"
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
echo "$dir/node_modules"
