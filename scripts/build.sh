#!/usr/bin/env bash
# Builds lelantos, the static envd and interpreter, and the image tool ociarchive into ./bin.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ver=$(git describe --always --dirty 2>/dev/null || echo dev)
commit=$(git rev-parse HEAD 2>/dev/null || true)
export CGO_ENABLED=0
go build -ldflags "-X main.version=$ver -X main.commit=$commit" -o bin/lelantos ./cmd/lelantos
go build -trimpath -ldflags "-s -w" -o bin/envd ./cmd/envd
go build -trimpath -ldflags "-s -w" -o bin/interpreter ./cmd/interpreter
go build -trimpath -ldflags "-s -w" -o bin/ociarchive ./cmd/ociarchive
