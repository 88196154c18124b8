#!/usr/bin/env bash
# The Kubernetes test: a real one-node Kubernetes (scripts/install-kube.sh) on this
# machine runs deploy/kubernetes unchanged, from Lelantos' image
# (scripts/build-image.sh), and the npm e2b client drives a sandbox through its
# Service. Run by `make test` after the other suites, as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
LELANTOS_KUBE_DIR=$(bash scripts/install-kube.sh)
LELANTOS_IMAGE=$(bash scripts/build-image.sh)
LELANTOS_CLIENT_MODULES=$(bash scripts/install-client.sh)
# The pods' sandbox ("pause") image, built here: no registry is reachable.
pause=$(mktemp -d)
trap 'rm -rf "$pause"' EXIT
mkdir -p "$pause/root"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$pause/root/pause" ./tests/kube/pause
./bin/ociarchive layer --out "$pause/layer.tar.gz" "$pause/root"
./bin/ociarchive image --out "$pause/pause.tar" --ref lelantos.dev/pause:1 --entrypoint /pause "$pause/layer.tar.gz"
LELANTOS_PAUSE_IMAGE=$pause/pause.tar
export LELANTOS_KUBE_DIR LELANTOS_IMAGE LELANTOS_CLIENT_MODULES LELANTOS_PAUSE_IMAGE
go test -count=1 -timeout 25m ./tests/kube/
