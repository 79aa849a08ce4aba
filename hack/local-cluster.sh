#!/usr/bin/env bash
# hack/local-cluster.sh build|up|down|env|status
#
# A real kube-apiserver + etcd on loopback, without containers. The binaries are built from
# the Go module proxy with `go build` and cached under ~/.cache by version, so only the first
# run on a machine pays (about 10 to 20 minutes on 2 cores). `helm` is built the same way.
#
# Needs: go (1.26), openssl, curl, python3, kubectl.
# Environment (all optional):
#   E2E_K8S_VERSION   k8s.io/kubernetes tag            (default v1.36.3)
#   E2E_ETCD_VERSION  go.etcd.io/etcd/server/v3 tag    (default v3.6.16)
#   E2E_HELM_VERSION  helm.sh/helm/v3 tag              (default v3.22.0)
#   E2E_CACHE         binary + Go caches               (default ~/.cache/codebuild-operator-k8s)
#   E2E_RUN           state dir of the running cluster (default ./target/local-cluster)
set -euo pipefail

K8S_VERSION="${E2E_K8S_VERSION:-v1.36.3}"
EV="${E2E_ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${E2E_HELM_VERSION:-v3.22.0}"
CACHE="${E2E_CACHE:-$HOME/.cache/codebuild-operator-k8s}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${E2E_RUN:-$ROOT/target/local-cluster}"
BIN="$CACHE/bin"
APISERVER="$BIN/kube-apiserver-$K8S_VERSION"
ETCD_BIN="$BIN/etcd-$EV"   # never name a variable ETCD_*: etcd reads those as flags
HELM_BIN="$BIN/helm-$HELM_VERSION"

log() { printf '[local-cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

go_env() {
  export GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gocache" GOFLAGS=-modcacherw CGO_ENABLED=0
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
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

build_apiserver() {
  if [ -x "$APISERVER" ]; then log "kube-apiserver $K8S_VERSION cached at $APISERVER"; return 0; fi
  go_env; mkdir -p "$BIN"; local w; w="$(mktemp -d)"
  log "building kube-apiserver $K8S_VERSION (cold: 10-20 min on 2 cores)"
  (
    cd "$w"
    go mod init local.test/kube-apiserver >/dev/null 2>&1
    # k8s.io/kubernetes requires every staging module at v0.0.0 and fixes that with
    # "=> ./staging/..." replaces that only apply inside its own repo (kubernetes#79384).
    # Read its go.mod from the proxy and pin each staging module to v0.<minor>.<patch>.
    gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\([^"]*\)".*/\1/p')"
    sv="v0.${K8S_VERSION#v1.}"
    n=0
    for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod"); do
      go mod edit -replace="$m=$m@$sv"; n=$((n + 1))
    done
    log "pinned $n staging modules to $sv"
    with_heartbeat "kube-apiserver (go get)" go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION"
    minor="$(cut -d. -f2 <<<"$K8S_VERSION")"; ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    done
    with_heartbeat "kube-apiserver (go build)" \
      go build -trimpath -ldflags "$ld" -o "$APISERVER.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    mv "$APISERVER.tmp" "$APISERVER"
  )
  rm -rf "$w"
  log "kube-apiserver ready: $APISERVER"
}

build_etcd() {
  if [ -x "$ETCD_BIN" ]; then log "etcd $EV cached at $ETCD_BIN"; return 0; fi
  go_env; mkdir -p "$BIN"; local w; w="$(mktemp -d)"
  log "building etcd $EV"
  (
    cd "$w"
    go mod init local.test/etcd >/dev/null 2>&1
    # The main package is the module root and its go.mod has replaces, so `go install ...@v`
    # is refused: build it as a dependency of a throwaway module instead.
    with_heartbeat "etcd (go get)" go get "go.etcd.io/etcd/server/v3@$EV"
    with_heartbeat "etcd (go build)" go build -trimpath -ldflags "-s -w" -o "$ETCD_BIN.tmp" go.etcd.io/etcd/server/v3
    mv "$ETCD_BIN.tmp" "$ETCD_BIN"
  )
  rm -rf "$w"
  log "etcd ready: $ETCD_BIN"
}

build_helm() {
  if [ -x "$HELM_BIN" ]; then log "helm $HELM_VERSION cached at $HELM_BIN"; return 0; fi
  go_env; mkdir -p "$BIN"
  log "building helm $HELM_VERSION"
  local w; w="$(mktemp -d)"
  (
    cd "$w"
    minor="$(cut -d. -f2 <<<"${HELM_VERSION#v}")"
    GOBIN="$w/bin" with_heartbeat "helm" go install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    mv "$w/bin/helm" "$HELM_BIN"
    : "$minor"
  )
  rm -rf "$w"
  log "helm ready: $HELM_BIN"
}

leaf() { # name subject extensions
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%b' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}

gen_certs() {
  mkdir -p "$RUN/pki"
  ( cd "$RUN/pki"
    [ -f admin.crt ] && exit 0
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=local-ca \
      -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.crt 2>/dev/null
    leaf apiserver /CN=kube-apiserver "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.0.0.1\n"
    leaf admin "/O=system:masters/CN=local-admin" "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub
  )
}

freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

waitfor() { # seconds pidfile log cmd...
  local t="$1" pidf="$2" logf="$3"; shift 3
  for _ in $(seq "$((t * 2))"); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$(cat "$pidf")" 2>/dev/null || { log "process died:"; tail -n 40 "$logf" >&2; return 1; }
    sleep 0.5
  done
  log "timed out waiting for: $*"; tail -n 40 "$logf" >&2; return 1
}

write_kubeconfig() { # file server
  local P="$RUN/pki"
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $2
    certificate-authority-data: $(base64 -w0 "$P/ca.crt")
users:
- name: local-admin
  user:
    client-certificate-data: $(base64 -w0 "$P/admin.crt")
    client-key-data: $(base64 -w0 "$P/admin.key")
contexts:
- name: local
  context: {cluster: local, user: local-admin}
current-context: local
KC
  chmod 600 "$1"
}

is_up() {
  [ -f "$RUN/apiserver.pid" ] && kill -0 "$(cat "$RUN/apiserver.pid")" 2>/dev/null &&
    kubectl --kubeconfig "$RUN/admin.kubeconfig" get --raw=/readyz >/dev/null 2>&1
}

up() {
  build_etcd; build_apiserver
  if is_up; then log "already up"; echo "export KUBECONFIG=$RUN/admin.kubeconfig"; return 0; fi
  down >/dev/null 2>&1 || true
  mkdir -p "$RUN"; gen_certs
  local P="$RUN/pki" ep pp ap; ep="$(freeport)"; pp="$(freeport)"; ap="$(freeport)"
  # etcd reads every ETCD_* environment variable as a flag.
  for v in $(compgen -e | grep '^ETCD_' || true); do unset "$v"; done
  local extra=() help; help="$("$ETCD_BIN" --help 2>&1 || true)"
  [[ $help == *--unsafe-no-fsync* ]] && extra+=(--unsafe-no-fsync=true)
  log "starting etcd on 127.0.0.1:$ep"
  setsid "$ETCD_BIN" --name local --data-dir "$RUN/etcd-data" --log-level warn \
    --listen-client-urls "http://127.0.0.1:$ep" --advertise-client-urls "http://127.0.0.1:$ep" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "local=http://127.0.0.1:$pp" "${extra[@]}" </dev/null >"$RUN/etcd.log" 2>&1 &
  echo $! >"$RUN/etcd.pid"
  waitfor 30 "$RUN/etcd.pid" "$RUN/etcd.log" curl -fsS "http://127.0.0.1:$ep/health"

  log "starting kube-apiserver $K8S_VERSION on 127.0.0.1:$ap"
  setsid "$APISERVER" --etcd-servers="http://127.0.0.1:$ep" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$ap" --cert-dir="$P" \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
    --client-ca-file="$P/ca.crt" --authorization-mode=RBAC \
    --service-account-issuer="https://127.0.0.1:$ap" \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --disable-admission-plugins=ServiceAccount \
    --allow-privileged=true --endpoint-reconciler-type=none </dev/null >"$RUN/apiserver.log" 2>&1 &
  echo $! >"$RUN/apiserver.pid"
  write_kubeconfig "$RUN/admin.kubeconfig" "https://127.0.0.1:$ap"
  waitfor 180 "$RUN/apiserver.pid" "$RUN/apiserver.log" \
    kubectl --kubeconfig "$RUN/admin.kubeconfig" get --raw=/readyz
  # The default namespace and RBAC bootstrap appear shortly after /readyz.
  for _ in $(seq 60); do
    kubectl --kubeconfig "$RUN/admin.kubeconfig" get namespace default >/dev/null 2>&1 && break
    sleep 0.5
  done
  log "up: export KUBECONFIG=$RUN/admin.kubeconfig"
  echo "export KUBECONFIG=$RUN/admin.kubeconfig"
}

down() {
  local c f pid
  for c in apiserver etcd; do
    f="$RUN/$c.pid"; [ -f "$f" ] || continue; pid="$(cat "$f")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true; rm -f "$f"
  done
  rm -rf "$RUN/etcd-data"
  log "down"
}

case "${1:-}" in
  build) build_etcd; build_apiserver; build_helm ;;
  build-helm) build_helm ;;
  up) up ;;
  down) down ;;
  status) if is_up; then echo up; else echo down; exit 1; fi ;;
  kubeconfig) echo "$RUN/admin.kubeconfig" ;;
  bin) # print a cached binary's path: bin apiserver|etcd|helm
    case "${2:-}" in apiserver) echo "$APISERVER" ;; etcd) echo "$ETCD_BIN" ;; helm) echo "$HELM_BIN" ;;
      *) echo "usage: $0 bin apiserver|etcd|helm" >&2; exit 2 ;; esac ;;
  *) echo "usage: $0 build|build-helm|up|down|status|kubeconfig|bin NAME" >&2; exit 2 ;;
esac
