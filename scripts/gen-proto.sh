#!/usr/bin/env bash
# Regenerates Go code from proto/ with protoc and the module's pinned plugins.
# The generated code is committed; run this after changing a .proto file.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d); trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-connect-go" connectrpc.com/connect/cmd/protoc-gen-connect-go
mapfile -t files < <(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
PATH="$bin:$PATH" protoc -I proto -I /usr/include \
  --go_out=. --go_opt=module=lelantos.dev/lelantos \
  --connect-go_out=. --connect-go_opt=module=lelantos.dev/lelantos \
  "${files[@]}"
