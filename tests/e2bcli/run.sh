#!/usr/bin/env bash
# Runs E2B's own command-line client (npm @e2b/cli, unmodified) against a Lelantos
# server started as `make run` starts it (tests/e2e/server.sh), on its own ports,
# subnet and data directory. The CLI is configured as its users configure it for
# E2B: E2B_API_URL, E2B_API_KEY and E2B_SANDBOX_URL from the server's client.env,
# with a HOME of its own so that no ~/.e2b of the machine's user is read.
# A registry on loopback holds the image the template suite's Dockerfile starts
# from. Expects bin/ built, the test registry built (scripts/install-registry.sh)
# and LELANTOS_BASE_ROOTFS set (scripts/test.sh does all three).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/scripts/lib.sh"
cd "$here"
npm_ci_once "E2B's CLI for its suite"
export E2E_DATA_DIR=$(mktemp -d /tmp/lelantos-e2bcli.XXXXXX)
export E2E_API=127.0.0.1:${E2BCLI_API_PORT:-4000} E2E_SANDBOX=127.0.0.1:${E2BCLI_SANDBOX_PORT:-4001}
export E2E_SUBNET=${E2BCLI_SUBNET:-10.244.0.0/16} E2E_NET_PREFIX=${E2BCLI_NET_PREFIX:-lcli2}
export E2BCLI_REGISTRY=127.0.0.1:${E2BCLI_REGISTRY_PORT:-4002}
# The suites build their own template; a built-in one would only load the machine.
export E2E_SERVE_FLAGS="--builtin-templates none --private-registry $E2BCLI_REGISTRY"
export E2BCLI_HOME=$E2E_DATA_DIR/home
registry_pid=
cleanup() {
  if [ -s "$E2E_DATA_DIR/client.env" ]; then
    set -a; . "$E2E_DATA_DIR/client.env"; set +a
    # Kill whatever a failed test left running or paused.
    for id in $(curl -s -H "X-API-Key: $E2B_API_KEY" "$E2B_API_URL/v2/sandboxes?state=running,paused" | grep -o '"sandboxID":"[a-z0-9]*"' | cut -d'"' -f4); do
      curl -s -X DELETE -H "X-API-Key: $E2B_API_KEY" "$E2B_API_URL/sandboxes/$id" >/dev/null || true
    done
  fi
  bash "$repo/tests/e2e/server.sh" stop
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  unmount_under "$E2E_DATA_DIR"
  rm -rf "$E2E_DATA_DIR"
}
trap cleanup EXIT

registry="$LELANTOS_CACHE_DIR/bin/registry"
if [ ! -x "$registry" ]; then
  echo "no registry at $registry: scripts/install-registry.sh builds it" >&2
  exit 1
fi
mkdir -p "$E2E_DATA_DIR/registry" "$E2BCLI_HOME"
cat >"$E2E_DATA_DIR/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $E2E_DATA_DIR/registry/data
http:
  addr: $E2BCLI_REGISTRY
EOF
"$registry" serve "$E2E_DATA_DIR/registry/config.yml" >>"$E2E_DATA_DIR/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 200); do
  curl -sf "http://$E2BCLI_REGISTRY/v2/" >/dev/null && break
  if ! kill -0 "$registry_pid" 2>/dev/null; then
    echo "the registry exited; its log:" >&2; cat "$E2E_DATA_DIR/registry/log" >&2; exit 1
  fi
  sleep 0.1
done

bash "$repo/tests/e2e/server.sh" start
set -a; . "$E2E_DATA_DIR/client.env"; set +a
log "E2B's CLI $(node -p 'require("./node_modules/@e2b/cli/package.json").version') against the server"
# E2BCLI_TESTS narrows the run to some of the suite's files (all by default).
node --test --test-concurrency=1 ${E2BCLI_TESTS:-./*.test.mjs}
