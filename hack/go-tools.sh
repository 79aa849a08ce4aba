#!/usr/bin/env bash
# hack/go-tools.sh build [TOOL...] | path TOOL | list
#
# Go tools the tests run, built with `go build` from the Go module proxy and cached under
# ~/.cache by version (as hack/local-cluster.sh does), so only the first run on a machine
# pays. Nothing but the Go module proxy is needed.
#
#   gitops-status  tests/gitops-status (this repo's Go module): kstatus (sigs.k8s.io/cli-utils)
#                  and Flux's CEL health checks (github.com/fluxcd/pkg/runtime/cel) judging
#                  Kubernetes objects. Cached by a hash of the module's go.mod, go.sum and
#                  sources, so an edit rebuilds it. Cold (empty caches): about 3 minutes on
#                  2 cores, 250 MB of modules and 480 MB of build cache; an edit: seconds.
#   promtool       github.com/prometheus/prometheus/cmd/promtool at PROMTOOL_VERSION.
#                  Cold: about 14 minutes on 2 cores shared with a cargo build, 1.8 GB of
#                  modules and 1.7 GB of build cache; an 88 MB binary.
#
# `path TOOL` prints the binary's path on stdout (building it first when missing); every
# log line goes to stderr. Exits non-zero, saying why, when a tool cannot be built.
#
# Needs: go 1.26 (GOTOOLCHAIN=local: the machine's own Go is used, none is downloaded),
# sha256sum, flock (util-linux; optional, keeps two concurrent callers from building twice).
# Environment (all optional):
#   E2E_PROMTOOL_VERSION  github.com/prometheus/prometheus module version (default v0.316.0,
#                         Prometheus 3.16.0; its go.mod needs Go 1.26.7)
#   E2E_CACHE             binary + Go caches (default ~/.cache/codebuild-operator-k8s)
set -euo pipefail

PROMTOOL_VERSION="${E2E_PROMTOOL_VERSION:-v0.316.0}"
CACHE="${E2E_CACHE:-$HOME/.cache/codebuild-operator-k8s}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$CACHE/bin"
GITOPS_STATUS_SRC="$ROOT/tests/gitops-status"
TOOLS="gitops-status promtool"

log() { printf '[go-tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

go_env() {
  export GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gocache" GOFLAGS=-modcacherw CGO_ENABLED=0
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
}

need_go() {
  command -v go >/dev/null 2>&1 ||
    die "go is not on PATH: the Go tools need Go 1.26 (on this project's machines: /usr/local/go/bin)"
  local v; v="$(go env GOVERSION 2>/dev/null || true)"
  case "$v" in
    go1.2[6-9]*|go1.[3-9][0-9]*) ;;
    *) die "Go ${v:-of unknown version} found; the Go tools need Go 1.26 or newer" ;;
  esac
}

# Runs a long command while printing a heartbeat, so a cold build never looks hung.
with_heartbeat() { # what cmd...
  local what="$1"; shift
  local start=$SECONDS
  ( while sleep 30; do log "$what: still building ($((SECONDS - start))s)"; done ) &
  local hb=$!
  local rc=0
  "$@" || rc=$?
  kill "$hb" 2>/dev/null || true
  wait "$hb" 2>/dev/null || true
  return "$rc"
}

# Holds an exclusive lock on $BIN/.TOOL.lock for the rest of the (sub)shell, when flock exists.
lock_tool() { # tool
  mkdir -p "$BIN"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$BIN/.$1.lock"
    flock 9
  fi
}

gitops_status_key() {
  [ -f "$GITOPS_STATUS_SRC/go.mod" ] || die "$GITOPS_STATUS_SRC/go.mod is missing"
  # The module's go.mod, go.sum and Go sources, in a fixed order: any edit gives a new key.
  (cd "$GITOPS_STATUS_SRC" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) \
    -print | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16
}

bin_path() { # tool
  case "$1" in
    gitops-status) echo "$BIN/gitops-status-$(gitops_status_key)" ;;
    promtool) echo "$BIN/promtool-$PROMTOOL_VERSION" ;;
    *) die "unknown tool '$1' (known: $TOOLS)" ;;
  esac
}

build_gitops_status() {
  local out; out="$(bin_path gitops-status)"
  if [ -x "$out" ]; then log "gitops-status cached at $out"; return 0; fi
  (
    lock_tool gitops-status
    if [ -x "$out" ]; then log "gitops-status built meanwhile at $out"; exit 0; fi
    need_go; go_env
    log "building gitops-status from $GITOPS_STATUS_SRC (cold: about 3 minutes on 2 cores)"
    local start=$SECONDS
    cd "$GITOPS_STATUS_SRC"
    # -mod=readonly: go.mod and go.sum are committed; a build never rewrites them.
    with_heartbeat "gitops-status" \
      go build -mod=readonly -trimpath -ldflags "-s -w" -o "$out.tmp.$$" . ||
      { rm -f "$out.tmp.$$"; die "building gitops-status failed (see the go output above)"; }
    mv "$out.tmp.$$" "$out"
    log "gitops-status ready in $((SECONDS - start))s: $out"
  )
}

build_promtool() {
  local out; out="$(bin_path promtool)"
  if [ -x "$out" ]; then log "promtool $PROMTOOL_VERSION cached at $out"; return 0; fi
  (
    lock_tool promtool
    if [ -x "$out" ]; then log "promtool built meanwhile at $out"; exit 0; fi
    need_go; go_env
    local w; w="$(mktemp -d)"
    trap 'rm -rf "$w"' EXIT
    # Module v0.3MM.P is Prometheus release 3.MM.P; promtool --version shows the release.
    local release="${PROMTOOL_VERSION#v}" mm
    if [[ $PROMTOOL_VERSION =~ ^v0\.3([0-9][0-9])\.([0-9]+)$ ]]; then
      mm="${BASH_REMATCH[1]}"; release="3.$((10#$mm)).${BASH_REMATCH[2]}"
    fi
    local p=github.com/prometheus/common/version
    local ld="-s -w -X $p.Version=$release -X $p.Revision=$PROMTOOL_VERSION -X $p.Branch=module"
    ld="$ld -X $p.BuildUser=hack/go-tools.sh"
    log "building promtool $PROMTOOL_VERSION (Prometheus $release; cold: 10 to 15 minutes on 2 cores)"
    local start=$SECONDS
    cd "$w"
    GOBIN="$w/bin" with_heartbeat "promtool" go install -trimpath -ldflags "$ld" \
      "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" ||
      die "building promtool $PROMTOOL_VERSION failed (see the go output above)"
    mv "$w/bin/promtool" "$out"
    log "promtool ready in $((SECONDS - start))s: $out"
  )
}

build() { # tool
  case "$1" in
    gitops-status) build_gitops_status ;;
    promtool) build_promtool ;;
    *) die "unknown tool '$1' (known: $TOOLS)" ;;
  esac
}

case "${1:-}" in
  build)
    shift
    if [ "$#" -eq 0 ]; then set -- $TOOLS; fi
    for t in "$@"; do build "$t"; done ;;
  path)
    [ "$#" -eq 2 ] || { echo "usage: $0 path TOOL (one of: $TOOLS)" >&2; exit 2; }
    p="$(bin_path "$2")"
    [ -x "$p" ] || build "$2"
    [ -x "$p" ] || die "$2 was not built at $p"
    echo "$p" ;;
  list) for t in $TOOLS; do echo "$t $(bin_path "$t")"; done ;;
  *) echo "usage: $0 build [TOOL...] | path TOOL | list   (tools: $TOOLS)" >&2; exit 2 ;;
esac
