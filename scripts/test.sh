#!/usr/bin/env bash
# `make test`: everything, on a fresh Debian 12 machine as root. Installs what the
# tests need (host packages, the pinned runsc, the base template, the npm e2b
# clients), then runs the Go tests (real gVisor sandboxes, real SQLite files) and the
# end-to-end suites with the real e2b client and E2B's own CLI against servers started
# like `make run`, then the adversarial suite (tests/escape) against another such server,
# then deploy/kubernetes on a one-node Kubernetes built from the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ "$(id -u)" != 0 ]; then
  echo "lelantos: the tests need root: sandboxes use namespaces, cgroups and iptables" >&2
  exit 1
fi
bash scripts/install-deps.sh
bash scripts/install-runsc.sh
bash scripts/install-registry.sh
bash scripts/build.sh
LELANTOS_BASE_ROOTFS=$(bash scripts/build-base.sh)
export LELANTOS_BASE_ROOTFS

log "gofmt and go vet"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...

status=0
log "go test"
# install-deps.sh installed PostgreSQL: its tests must run, not skip.
LELANTOS_TEST_REQUIRE_POSTGRES=1 go test -p 2 -count=1 -timeout 30m ./... || status=1

log "end-to-end suites with the npm e2b client"
bash tests/e2e/run.sh || status=1

log "E2B's own CLI (@e2b/cli), unmodified, against another such server"
bash tests/e2bcli/run.sh || status=1

log "the adversarial suite: every trust boundary attacked through the API"
bash tests/escape/run.sh || status=1

log "deploy/kubernetes on a real one-node Kubernetes built here, with the npm e2b client"
bash tests/kube/run.sh || status=1
exit "$status"
