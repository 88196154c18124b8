#!/usr/bin/env bash
# Runs the end-to-end suites with the real npm e2b client (every version in
# E2B_NPM_VERSIONS) against a Lelantos server started as `make run` starts it.
# Expects bin/ built and LELANTOS_BASE_ROOTFS set (scripts/test.sh does both).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib.sh"
cd "$here"
npm_ci_once "the e2b test clients"
export E2E_DATA_DIR=$(mktemp -d /tmp/lelantos-e2e.XXXXXX)
export E2E_API=127.0.0.1:${E2E_API_PORT:-3100} E2E_SANDBOX=127.0.0.1:${E2E_SANDBOX_PORT:-3101}
export E2E_SUBNET=${E2E_SUBNET:-10.234.0.0/16}
export LELANTOS_E2E_SERVER="bash $here/server.sh"
cleanup() {
  if [ -s "$E2E_DATA_DIR/client.env" ]; then
    set -a; . "$E2E_DATA_DIR/client.env"; set +a
    # Kill whatever a failed test left running.
    for id in $(curl -s -H "X-API-Key: $E2B_API_KEY" "$E2B_API_URL/v2/sandboxes?state=running,paused" | grep -o '"sandboxID":"[a-z0-9]*"' | cut -d'"' -f4); do
      curl -s -X DELETE -H "X-API-Key: $E2B_API_KEY" "$E2B_API_URL/sandboxes/$id" >/dev/null || true
    done
  fi
  bash "$here/server.sh" stop
  unmount_under "$E2E_DATA_DIR"
  rm -rf "$E2E_DATA_DIR"
}
trap cleanup EXIT
bash "$here/server.sh" start
set -a; . "$E2E_DATA_DIR/client.env"; set +a
status=0
# The newest client runs every suite; older ones the control-plane suite, where
# their create and connect paths differ.
# The code interpreter's suite goes last: its template builds in the background from
# the server's start, while the other suites run.
suites="$(ls ./*.test.mjs | grep -v '/codeinterpreter\.test\.mjs$' | tr '\n' ' ')"
if [ -f ./codeinterpreter.test.mjs ]; then suites="$suites ./codeinterpreter.test.mjs"; fi
for v in $E2B_NPM_VERSIONS; do
  log "e2e suites with e2b@$v: $suites"
  E2B_PACKAGE="e2b-$v" node --test --test-concurrency=1 $suites || status=1
  suites=./controlplane.test.mjs
done
exit $status
