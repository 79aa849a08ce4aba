#!/usr/bin/env bash
# hack/test.sh: the whole test suite, every tier.
#
#   0. what a fresh machine lacks: the pinned Python packages (moto, botocore, pytest), the
#      Go-built binaries (kube-apiserver, etcd, helm, gitops-status, promtool, helm-docs;
#      built from the Go module proxy and cached under ~/.cache by version, about 30 minutes
#      the first time on 2 cores), and Lua 5.1 (Argo CD's health checks)
#   1. cargo fmt --check and cargo clippy --all-targets -D warnings
#   2. cargo test --workspace: unit tests, the mocked-apiserver tests, the AWS adapter against
#      the simulator and moto, and the end-to-end tests against a real kube-apiserver + etcd
#      (hack/local-cluster.sh, brought up here and torn down at the end)
#   3. the simulator's conformance tests (botocore's service model, moto parity) with pytest
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n=== %s [%s]\n' "$*" "$(date +%H:%M:%S)"; }

step "installing what is missing"
command -v kubectl >/dev/null || { echo "kubectl is required: install it (1.32 or newer) and run again"; exit 1; }
command -v go >/dev/null || { echo "Go 1.26 is required to build the control plane and tools: install it and run again"; exit 1; }
python3 -m pip install --quiet --disable-pip-version-check -r tests/conformance/requirements.txt
hack/local-cluster.sh build
hack/go-tools.sh build
hack/chart-readme.sh bin >/dev/null
if ! command -v lua5.1 >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq lua5.1 >/dev/null
  else
    echo "Lua 5.1 is required (Argo CD's health checks are Lua 5.1): sudo apt-get install -y lua5.1"
    exit 1
  fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "build"
cargo build --workspace --all-targets

step "local control plane (kube-apiserver + etcd)"
started_cluster=0
if ! hack/local-cluster.sh status >/dev/null 2>&1; then
  hack/local-cluster.sh up >/dev/null
  started_cluster=1
fi
cleanup() { [ "$started_cluster" = 1 ] && hack/local-cluster.sh down >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "cargo test --workspace (unit, mocked apiserver, integration, e2e)"
cargo test --workspace --no-fail-fast

step "conformance: the simulator against botocore's service model and moto"
python3 -m pytest tests/conformance -q

step "all tiers passed"
