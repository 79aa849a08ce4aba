#!/usr/bin/env bash
# hack/test.sh: the whole test suite, every tier.
#
#   1. cargo fmt --check and cargo clippy --all-targets -D warnings
#   2. cargo test --workspace: unit tests, the mocked-apiserver tests, the AWS adapter against
#      the simulator and moto, and the end-to-end tests against a real kube-apiserver + etcd
#      (hack/local-cluster.sh, brought up here and torn down at the end)
#   3. the simulator's conformance tests (botocore's service model, moto parity) with pytest
#
# Needs what .ci/run installs: the pinned Python packages (tests/conformance/requirements.txt)
# and the Go-built control plane binaries (hack/local-cluster.sh build, cached in ~/.cache).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n=== %s [%s]\n' "$*" "$(date +%H:%M:%S)"; }

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
