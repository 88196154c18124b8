#!/usr/bin/env bash
# Runs the adversarial suite against a Lelantos server started as `make run`
# starts it (tests/e2e/server.sh), with every runtime class enabled, on its own
# ports, subnet and data directory, with a second team's key for the attacker.
# Expects bin/ built and LELANTOS_BASE_ROOTFS set (scripts/test.sh does both).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/scripts/lib.sh"
cd "$here"
npm_ci_once "the e2b client for the adversarial suite"
export E2E_DATA_DIR=$(mktemp -d /tmp/lelantos-escape.XXXXXX)
export E2E_API=127.0.0.1:${ESCAPE_API_PORT:-3900} E2E_SANDBOX=127.0.0.1:${ESCAPE_SANDBOX_PORT:-3901}
export E2E_SUBNET=${ESCAPE_SUBNET:-10.235.0.0/16} E2E_NET_PREFIX=lesc
export ESCAPE_DATA_DIR=$E2E_DATA_DIR ESCAPE_CLASSES=gvisor,runc
# The node's agent is also served over TCP with mutual TLS, on every host address,
# for the attacks on it; a second CA stands for anyone else's certificates.
export ESCAPE_AGENT=127.0.0.1:${ESCAPE_AGENT_PORT:-3902}
export ESCAPE_AGENT_TLS_DIR=$E2E_DATA_DIR/cluster-tls ESCAPE_STRANGER_TLS_DIR=$E2E_DATA_DIR/stranger-tls
"$repo/bin/lelantos" certs init "$ESCAPE_AGENT_TLS_DIR" --hosts 127.0.0.1 >/dev/null
"$repo/bin/lelantos" certs init "$ESCAPE_STRANGER_TLS_DIR" --hosts 127.0.0.1 >/dev/null
# The attacks need no built-in template; building one would only load the machine.
# So is the cluster endpoint nodes report to and fetch trees and images from.
export ESCAPE_CLUSTER=127.0.0.1:${ESCAPE_CLUSTER_PORT:-3903}
export E2E_SERVE_FLAGS="--builtin-templates none --agent-listen 0.0.0.0:${ESCAPE_AGENT_PORT:-3902} --agent-tls-dir $ESCAPE_AGENT_TLS_DIR
  --cluster-listen 0.0.0.0:${ESCAPE_CLUSTER_PORT:-3903} --cluster-tls-dir $ESCAPE_AGENT_TLS_DIR"
cleanup() {
  bash "$repo/tests/e2e/server.sh" stop
  unmount_under "$E2E_DATA_DIR"
  rm -rf "$E2E_DATA_DIR"
}
trap cleanup EXIT
bash "$repo/tests/e2e/server.sh" start
set -a; . "$E2E_DATA_DIR/client.env"; set +a
ESCAPE_KEY_B=$("$repo/bin/lelantos" keys create attacker --team attackers --data-dir "$E2E_DATA_DIR" | grep -o 'e2b_[0-9a-f]*' | tail -1)
export ESCAPE_KEY_B
log "adversarial suite (runtime classes $ESCAPE_CLASSES)"
node --test --test-concurrency=1 ./*.test.mjs
