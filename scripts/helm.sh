#!/usr/bin/env bash
# Builds the pinned helm from the Go module proxy with the machine's Go, into
# .cache/helm-$HELM_VERSION/bin/helm, and prints that path. Does nothing but
# print it when the binary is there already. No release tarball is downloaded:
# only Go modules are fetched.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.21.4
K8S_MAJOR=1
K8S_MINOR=36
CACHE=$PWD/.cache
BIN_DIR=$CACHE/helm-$HELM_VERSION/bin
HELM=$BIN_DIR/helm

if [[ -x $HELM ]]; then
  echo "$HELM"
  exit 0
fi

command -v go >/dev/null || {
  echo "scripts/helm.sh: go is not on PATH; helm $HELM_VERSION is built from the Go module proxy with it" >&2
  exit 2
}

echo "scripts/helm.sh: building helm $HELM_VERSION with $(go version | cut -d' ' -f3) (a few minutes on 2 cores)" >&2
started=$(date +%s)
# The version and the default Kubernetes version (that of helm's client-go,
# v0.36) are stamped in, as helm's own Makefile does for its releases;
# otherwise `helm template` assumes Kubernetes 1.20.
LDFLAGS="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  LDFLAGS+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=$K8S_MAJOR"
  LDFLAGS+=" -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$K8S_MINOR"
done
GOFLAGS=-mod=mod GOBIN=$BIN_DIR GOPATH=$CACHE/go GOCACHE=$CACHE/go-build CGO_ENABLED=0 \
  go install -ldflags "$LDFLAGS" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
echo "scripts/helm.sh: built in $(( $(date +%s) - started )) s" >&2
echo "$HELM"
