#!/usr/bin/env bash
# Builds, once, the parts of a one-node Kubernetes that the Kubernetes test runs:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy and
# kubelet from k8s.io/kubernetes, and containerd with its runc shim and ctr, all
# from the Go module proxy at pinned versions. They land in
# $LELANTOS_CACHE_DIR/kube/<versions>/bin; prints that directory. Debian gives the
# rest (runc, the CNI plugins, conntrack). A cold build takes about 15 minutes on
# 2 cores and grows the Go caches by about 7 GB.
#
# k8s.io/kubernetes cannot be installed with `go install` (its go.mod replaces its
# staging modules with local paths), so each part is built from a throwaway module
# that requires it and points every staging module at its published release.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
CONTAINERD_VERSION=v2.4.2
dir="$LELANTOS_CACHE_DIR/kube/k8s-$KUBE_VERSION-etcd-$ETCD_VERSION-containerd-$CONTAINERD_VERSION"
parts=(etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet containerd containerd-shim-runc-v2 ctr)
pkgs=(containernetworking-plugins conntrack)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi
done_all=1
for p in "${parts[@]}"; do [ -x "$dir/bin/$p" ] || done_all=0; done
if [ "$done_all" = 1 ]; then
  echo "$dir"
  exit 0
fi
log "building Kubernetes $KUBE_VERSION, etcd $ETCD_VERSION and containerd $CONTAINERD_VERSION (about 15 minutes, once)"
mkdir -p "$dir"
work=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOWORK=off

# Kubernetes and etcd: the staging modules are the ones its go.mod replaces with ./staging.
mkdir -p "$work/k8s/etcd" "$work/out"
kmod=$(cd "$work/k8s" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
staging=$(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$kmod" | sort -u)
minor=${KUBE_VERSION#v1.}
{
  echo "module lelantos.dev/kubebuild"
  echo "go 1.26"
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  for m in $staging; do echo "replace $m => $m v0.$minor"; done
  for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet; do echo "tool k8s.io/kubernetes/cmd/$c"; done
} >"$work/k8s/go.mod"
cat >"$work/k8s/etcd/main.go" <<'GO'
// Command etcd runs etcd's server as its own release binary does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
(
  cd "$work/k8s"
  go mod tidy >/dev/null 2>&1 || go mod tidy
  ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
  with_progress "building Kubernetes" 800 go build -trimpath -ldflags "$ld" -o "$work/out/" \
    ./etcd $(printf 'k8s.io/kubernetes/cmd/%s ' kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet)
)

# containerd in its own module, so its dependencies do not meet Kubernetes'.
mkdir -p "$work/containerd"
{
  echo "module lelantos.dev/containerdbuild"
  echo "go 1.26"
  echo "require github.com/containerd/containerd/v2 $CONTAINERD_VERSION"
  for c in containerd containerd-shim-runc-v2 ctr; do echo "tool github.com/containerd/containerd/v2/cmd/$c"; done
} >"$work/containerd/go.mod"
(
  cd "$work/containerd"
  go mod tidy >/dev/null 2>&1 || go mod tidy
  with_progress "building containerd" 200 go build -trimpath -tags "no_btrfs no_devmapper no_zfs no_aufs" -ldflags "-s -w" \
    -o "$work/out/" $(printf 'github.com/containerd/containerd/v2/cmd/%s ' containerd containerd-shim-runc-v2 ctr)
)
mkdir -p "$dir/bin"
for p in "${parts[@]}"; do mv "$work/out/$p" "$dir/bin/$p"; done
echo "$dir"
