#!/usr/bin/env bash
# hack/demo.sh [up|down]: the operator's main job, locally, on a fresh machine.
#
# up (default): a real kube-apiserver + etcd (hack/local-cluster.sh; builds them on first use,
# about 15 minutes), the CodeBuild simulator with a project `my-app`, the CRD, the operator,
# then examples/minimal.yaml, watched until its build Succeeded, then the same build again with
# the kubectl plugin (`kubectl codebuild start my-app --wait --logs`: its log, then its
# outcome). Everything keeps running so you can try more runs; `hack/demo.sh down` stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
STATE="$ROOT/target/demo"
SIM_BIN="$ROOT/target/debug/codebuild-sim"
OP_BIN="$ROOT/target/debug/codebuild-operator"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

stop_pid() { # pidfile
  [ -f "$1" ] || return 0
  local pid; pid="$(cat "$1")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$1"
}

down() {
  stop_pid "$STATE/operator.pid"
  stop_pid "$STATE/sim.pid"
  hack/local-cluster.sh down
  say "demo stopped"
}

up() {
  mkdir -p "$STATE"
  say "building the operator, the kubectl plugin and the simulator"
  cargo build -q -p codebuild-operator -p codebuild-sim --bins
  # kubectl finds `kubectl codebuild` as kubectl-codebuild on the PATH.
  export PATH="$ROOT/target/debug:$PATH"
  say "starting the local control plane"
  eval "$(hack/local-cluster.sh up)"
  export KUBECONFIG

  say "starting the CodeBuild simulator (project my-app; a build takes about 20 s)"
  stop_pid "$STATE/sim.pid"
  rm -f "$STATE/sim.port"
  "$SIM_BIN" --port 0 --port-file "$STATE/sim.port" --project my-app --phase-seconds 2 \
    >"$STATE/sim.log" 2>&1 &
  echo $! >"$STATE/sim.pid"
  for _ in $(seq 100); do [ -s "$STATE/sim.port" ] && break; sleep 0.1; done
  [ -s "$STATE/sim.port" ] || { cat "$STATE/sim.log"; exit 1; }
  local endpoint="http://127.0.0.1:$(cat "$STATE/sim.port")"

  say "installing the CRD"
  kubectl apply --server-side -f crds/ >/dev/null
  kubectl wait --for=condition=Established crd/codebuildruns.codebuild.operator.dev --timeout=60s >/dev/null

  say "starting the operator (logs: $STATE/operator.log)"
  stop_pid "$STATE/operator.pid"
  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true \
    "$OP_BIN" run --region us-east-1 --endpoint-url "$endpoint" \
    --logs-endpoint-url "$endpoint" --poll-interval 1s \
    >"$STATE/operator.log" 2>&1 &
  echo $! >"$STATE/operator.pid"

  say "applying examples/minimal.yaml"
  kubectl delete -f examples/minimal.yaml --ignore-not-found --wait=true >/dev/null
  kubectl apply -f examples/minimal.yaml
  kubectl get cbr my-app-build -o wide -w &
  local watch=$!
  kubectl wait --for=condition=Succeeded cbr/my-app-build --timeout=180s >/dev/null
  sleep 1
  kill "$watch" 2>/dev/null || true
  wait "$watch" 2>/dev/null || true
  echo
  kubectl get cbr my-app-build -o jsonpath='{range .status.phases[*]}{.phaseType}{"\t"}{.phaseStatus}{"\n"}{end}'
  echo
  say "Succeeded. The events of the run:"
  kubectl get events --field-selector involvedObject.name=my-app-build --sort-by=.metadata.creationTimestamp
  say "the same with the kubectl plugin: kubectl codebuild start my-app --wait --logs"
  # The plugin reads the build's log from CloudWatch Logs with the user's AWS credentials;
  # here the simulator plays CloudWatch Logs too.
  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL_CLOUDWATCH_LOGS="$endpoint" AWS_EC2_METADATA_DISABLED=true \
    kubectl codebuild start my-app --wait --logs
  cat <<MSG

Everything is still running. In this shell:
  export KUBECONFIG=$KUBECONFIG PATH=$ROOT/target/debug:\$PATH
  export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
  export AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=$endpoint    # the simulator plays CloudWatch Logs

Follow a build's log, wait for a run, rerun or stop it:
  kubectl codebuild start my-app --env CODEBUILD_SIM_FAIL_PHASE=BUILD --wait   # exits 1
  kubectl codebuild logs RUN -f          kubectl codebuild wait RUN
  kubectl codebuild rerun RUN --logs     kubectl codebuild stop RUN

Try a failing run (the simulator fails the BUILD phase when asked to):
  kubectl create -f - <<'YAML'
  apiVersion: codebuild.operator.dev/v1alpha1
  kind: CodeBuildRun
  metadata: {generateName: my-app-failing-}
  spec:
    projectName: my-app
    environmentVariablesOverride:
    - {name: CODEBUILD_SIM_FAIL_PHASE, value: BUILD}
  YAML
  kubectl get cbr -w                  # Status FAILED; conditions Succeeded=False, Stalled=True
  kubectl describe cbr                # the failing phase's message, the log's tail, the Events

Delete a run mid-build and its build is stopped:  kubectl delete cbr NAME
Clean up:  hack/demo.sh down
MSG
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
