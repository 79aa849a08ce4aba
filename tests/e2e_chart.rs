//! End to end: the Helm chart, its RBAC, the metrics and health server, and leader election,
//! against the local control plane (hack/local-cluster.sh) and the in-process CodeBuild
//! simulator. helm and kubectl run as a user runs them; the operator binary runs out of
//! cluster (this control plane runs no pods), as the chart's ServiceAccount where RBAC is
//! the point.
//!
//! Needs the local control plane and its helm (`hack/local-cluster.sh bin helm`); fails,
//! never skips, when they are missing.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use codebuild_sim::{Server, SimConfig};
use support::{
    ClusterObject, OperatorProcess, TestNamespace, free_port, http_get, kubectl, kubectl_ok,
    output_text, wait_for,
};

const CHART: &str = "charts/codebuild-operator";
/// The Kubernetes version `helm template` renders for (the local control plane's minor).
const KUBE_VERSION: &str = "1.36.0";
const PROJECT: &str = "demo";

// ---- helpers -----------------------------------------------------------------------------

fn helm_bin() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let out = Command::new(support::repo_root().join("hack/local-cluster.sh"))
            .args(["bin", "helm"])
            .output()
            .expect("running hack/local-cluster.sh bin helm");
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            out.status.success() && path.is_file(),
            "no helm binary (hack/local-cluster.sh build builds it): {}",
            output_text(&out)
        );
        path
    })
}

/// `helm ARGS` against the local control plane (run from the repository root).
fn helm(args: &[&str]) -> Output {
    Command::new(helm_bin())
        .args(args)
        .current_dir(support::repo_root())
        .env("KUBECONFIG", support::kubeconfig())
        .env(
            "HELM_CACHE_HOME",
            support::repo_root().join("target/helm/cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            support::repo_root().join("target/helm/config"),
        )
        .env(
            "HELM_DATA_HOME",
            support::repo_root().join("target/helm/data"),
        )
        .output()
        .unwrap_or_else(|e| panic!("helm {}: {e}", args.join(" ")))
}

#[track_caller]
fn helm_ok(args: &[&str]) -> String {
    let out = helm(args);
    assert!(
        out.status.success(),
        "`helm {}` failed:\n{}",
        args.join(" "),
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm template` of the chart into `ns` with `extra` flags.
fn template(release: &str, ns: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "template",
        release,
        CHART,
        "--namespace",
        ns,
        "--kube-version",
        KUBE_VERSION,
    ];
    args.extend_from_slice(extra);
    helm(&args)
}

/// Uninstalls a Helm release on drop (its ClusterRole and binding are cluster-scoped).
struct Release {
    name: String,
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let out = helm(&[
            "uninstall",
            &self.name,
            "-n",
            &self.namespace,
            "--wait=false",
        ]);
        if !out.status.success() {
            eprintln!("helm uninstall {}: {}", self.name, output_text(&out));
        }
    }
}

/// The value of the sample `series` (name with labels, exactly as exposed), 0 if absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

#[track_caller]
fn scrape(port: u16) -> String {
    match http_get(port, "/metrics") {
        Some((200, body)) => body,
        other => panic!("GET /metrics on port {port}: {other:?}"),
    }
}

/// Waits until `path` answers `status`.
#[track_caller]
fn wait_status(port: u16, path: &str, status: u16) -> String {
    wait_for(
        &format!("GET {path} on port {port} to answer {status}"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            http_get(port, path)
                .filter(|(s, _)| *s == status)
                .map(|(_, b)| b)
        },
    )
}

fn simulator(rt: &tokio::runtime::Runtime) -> Server {
    rt.block_on(Server::start(SimConfig {
        projects: vec![PROJECT.into()],
        time_scale: 0.1,
        ..Default::default()
    }))
    .expect("starting the CodeBuild simulator")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn create_run(ns: &TestNamespace, name: &str) {
    let manifest = format!(
        "apiVersion: codebuild.operator.dev/v1alpha1\nkind: CodeBuildRun\nmetadata:\n  name: {name}\nspec:\n  projectName: {PROJECT}\n"
    );
    let out = support::kubectl_stdin(&["create", "-n", ns.name(), "-f", "-"], &manifest);
    assert!(out.status.success(), "create {name}: {}", output_text(&out));
}

#[track_caller]
fn wait_succeeded(ns: &TestNamespace, name: &str, timeout: &str) {
    kubectl_ok(&[
        "wait",
        "-n",
        ns.name(),
        "--for=condition=Succeeded",
        &format!("cbr/{name}"),
        &format!("--timeout={timeout}"),
    ]);
}

/// A kubeconfig for the local control plane as `user` with a bearer `token`, or pointed at
/// `server` instead of the real apiserver.
fn write_kubeconfig(path: &Path, server: Option<&str>, token: &str) {
    let jsonpath = |p: &str| {
        kubectl_ok(&[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            &format!("jsonpath={p}"),
        ])
    };
    let real_server = jsonpath("{.clusters[0].cluster.server}");
    let ca = jsonpath("{.clusters[0].cluster.certificate-authority-data}");
    assert!(!ca.is_empty(), "the admin kubeconfig has no CA data");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: local\n  context: {{cluster: local, user: sa}}\ncurrent-context: local\n",
        server.unwrap_or(&real_server)
    );
    std::fs::create_dir_all(path.parent().expect("a parent directory"))
        .expect("creating the kubeconfig directory");
    std::fs::write(path, config).expect("writing a kubeconfig");
}

/// The operator binary authenticated only by a token of the chart's ServiceAccount
/// `fullname` in `ns`, serving metrics on `metrics_port`, with `extra` flags.
fn operator_as_service_account(
    ns: &str,
    fullname: &str,
    sim: &Server,
    metrics_port: u16,
    extra: &[&str],
) -> OperatorProcess {
    let token = kubectl_ok(&["create", "token", fullname, "-n", ns, "--duration=1h"]);
    let kubeconfig = log_dir().join(format!("{ns}-sa.kubeconfig"));
    write_kubeconfig(&kubeconfig, None, token.trim());
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    let metrics_address = format!("127.0.0.1:{metrics_port}");
    let mut args = vec!["--metrics-address", &metrics_address];
    args.extend_from_slice(extra);
    OperatorProcess::start_with_env(
        ns,
        &sim.endpoint(),
        &args,
        &[("KUBECONFIG", &kubeconfig), ("POD_NAMESPACE", ns)],
    )
}

fn log_dir() -> PathBuf {
    let dir = support::repo_root().join("target/e2e-logs");
    std::fs::create_dir_all(&dir).expect("creating target/e2e-logs");
    dir
}

// ---- the chart, rendered -----------------------------------------------------------------

#[test]
fn chart_lints_and_renders_manifests_the_apiserver_accepts() {
    let ns = TestNamespace::new("chart-render");
    helm_ok(&["lint", CHART, "--kube-version", KUBE_VERSION]);
    helm_ok(&[
        "lint",
        CHART,
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "replicas=3",
        "--set",
        "metrics.serviceMonitor.enabled=true",
    ]);

    let namespaced = format!("watchNamespaces={{{}}}", ns.name());
    let cases: [(&str, Vec<&str>); 2] = [
        ("default values", vec![]),
        (
            "namespaced, 2 replicas, no ServiceMonitor",
            vec![
                "--set",
                &namespaced,
                "--set",
                "replicas=2",
                "--set",
                "metrics.serviceMonitor.enabled=false",
                "--set",
                "region=eu-west-1",
                "--set",
                "logFormat=text",
                "--set",
                "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/cbo",
            ],
        ),
    ];
    for (what, extra) in cases {
        let out = template("render", ns.name(), &extra);
        assert!(out.status.success(), "{what}: {}", output_text(&out));
        let manifests = String::from_utf8_lossy(&out.stdout).into_owned();
        let apply = support::kubectl_stdin(
            &["apply", "-n", ns.name(), "--dry-run=server", "-f", "-"],
            &manifests,
        );
        assert!(
            apply.status.success(),
            "{what}: the apiserver refused the rendered chart:\n{}\n{manifests}",
            output_text(&apply)
        );
        let kinds = |kind: &str| manifests.matches(&format!("\nkind: {kind}\n")).count();
        if extra.is_empty() {
            assert_eq!(kinds("ClusterRole"), 1, "{what}");
            assert_eq!(kinds("Role"), 0, "{what}: no lease Role with one replica");
            assert_eq!(kinds("PodDisruptionBudget"), 0, "{what}");
            assert!(manifests.contains("--leader-election=false"), "{what}");
        } else {
            assert_eq!(kinds("ClusterRole"), 0, "{what}: nothing cluster-wide");
            assert_eq!(kinds("ClusterRoleBinding"), 0, "{what}");
            assert_eq!(kinds("Role"), 2, "{what}: runs role + lease role");
            assert_eq!(kinds("PodDisruptionBudget"), 1, "{what}");
            assert_eq!(kinds("ServiceMonitor"), 0, "{what}");
            assert!(manifests.contains("--leader-election=true"), "{what}");
            assert!(
                manifests.contains(&format!("--namespaces={}", ns.name())),
                "{what}"
            );
            assert!(manifests.contains("eks.amazonaws.com/role-arn"), "{what}");
        }
        for needle in [
            "runAsNonRoot: true",
            "runAsUser: 65532",
            "readOnlyRootFilesystem: true",
            "allowPrivilegeEscalation: false",
            "type: RuntimeDefault",
            "path: /healthz",
            "path: /readyz",
            "fieldPath: metadata.name",
            "fieldPath: metadata.namespace",
        ] {
            assert!(manifests.contains(needle), "{what}: missing {needle:?}");
        }
        assert!(!manifests.contains("secrets"), "{what}: no rule on secrets");
    }
}

#[test]
fn chart_refuses_wrong_values_with_clear_messages() {
    let cases: [(&[&str], &str); 6] = [
        (&["--set", "replicas=0"], "/replicas"),
        (&["--set", "logFormat=xml"], "'json', 'text'"),
        (&["--set", "pollInterval=soon"], "/pollInterval"),
        (
            &["--set", "watchNamespaces={Bad_Name}"],
            "/watchNamespaces/0",
        ),
        (&["--set", "region=Europe"], "/region"),
        (
            &[
                "--set",
                "replicas=2",
                "--set",
                "leaderElection.enabled=false",
            ],
            "would let every replica start builds",
        ),
    ];
    for (extra, message) in cases {
        let out = template("bad", "default", extra);
        let text = output_text(&out);
        assert!(!out.status.success(), "{extra:?} should be refused");
        assert!(
            text.contains(message),
            "{extra:?}: expected {message:?} in:\n{text}"
        );
    }
}

// ---- installed: RBAC as the chart's ServiceAccount ------------------------------------------

#[test]
fn operator_as_the_charts_service_account_takes_a_run_to_succeeded() {
    let ns = TestNamespace::new("chart-rbac");
    let release = Release {
        name: format!("cbo-{}", support::random_suffix(5)),
        namespace: ns.name().to_owned(),
    };
    // Leader election forced on with one replica, so the Lease rules are exercised too.
    let notes = helm_ok(&[
        "install",
        &release.name,
        CHART,
        "-n",
        ns.name(),
        "--set",
        "leaderElection.enabled=true",
        "--set",
        "region=us-east-1",
    ]);
    for next_step in [
        "kubectl get cbr",
        "codebuild:StartBuild",
        "eks.amazonaws.com/role-arn",
    ] {
        assert!(
            notes.contains(next_step),
            "NOTES lack {next_step:?}:\n{notes}"
        );
    }
    let fullname = format!("{}-codebuild-operator", release.name);
    let lease = format!("{fullname}-leader");
    let subject = format!("system:serviceaccount:{}:{fullname}", ns.name());

    // What the ServiceAccount may and may not do.
    let can = |args: &[&str]| -> bool {
        let mut full = vec!["auth", "can-i"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--as", &subject]);
        let out = kubectl(&full);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    let n = ns.name();
    for allowed in [
        &["list", "codebuildruns.codebuild.operator.dev", "-n", n][..],
        &["watch", "codebuildruns.codebuild.operator.dev", "-A"][..],
        &["patch", "codebuildruns.codebuild.operator.dev", "-n", n][..],
        &["delete", "codebuildruns.codebuild.operator.dev", "-n", n][..],
        &[
            "patch",
            "codebuildruns.codebuild.operator.dev",
            "--subresource=status",
            "-n",
            n,
        ][..],
        &[
            "update",
            "codebuildruns.codebuild.operator.dev",
            "--subresource=finalizers",
            "-n",
            n,
        ][..],
        &["list", "codebuildbatchruns.codebuild.operator.dev", "-n", n][..],
        &["watch", "codebuildbatchruns.codebuild.operator.dev", "-A"][..],
        &[
            "patch",
            "codebuildbatchruns.codebuild.operator.dev",
            "-n",
            n,
        ][..],
        &[
            "delete",
            "codebuildbatchruns.codebuild.operator.dev",
            "-n",
            n,
        ][..],
        &[
            "patch",
            "codebuildbatchruns.codebuild.operator.dev",
            "--subresource=status",
            "-n",
            n,
        ][..],
        &[
            "update",
            "codebuildbatchruns.codebuild.operator.dev",
            "--subresource=finalizers",
            "-n",
            n,
        ][..],
        &["create", "events.events.k8s.io", "-n", n][..],
        &["patch", "events.events.k8s.io", "-n", n][..],
        &["create", "leases.coordination.k8s.io", "-n", n][..],
        &[
            "patch",
            &format!("leases.coordination.k8s.io/{lease}"),
            "-n",
            n,
        ][..],
        // A standby watches its Lease (by name) to take it once released.
        &[
            "watch",
            &format!("leases.coordination.k8s.io/{lease}"),
            "-n",
            n,
        ][..],
    ] {
        assert!(can(allowed), "{subject} should be allowed: {allowed:?}");
    }
    for denied in [
        &["get", "secrets", "-n", n][..],
        &["list", "secrets", "-A"][..],
        &["get", "configmaps", "-n", n][..],
        &["create", "deployments.apps", "-n", n][..],
        &["delete", "deployments.apps", "-n", n][..],
        &["create", "pods", "-n", n][..],
        &["create", "codebuildruns.codebuild.operator.dev", "-n", n][..],
        &["update", "codebuildruns.codebuild.operator.dev", "-n", n][..],
        &[
            "create",
            "codebuildbatchruns.codebuild.operator.dev",
            "-n",
            n,
        ][..],
        &[
            "update",
            "codebuildbatchruns.codebuild.operator.dev",
            "-n",
            n,
        ][..],
        &["create", "events", "-n", n][..],
        &[
            "patch",
            "leases.coordination.k8s.io/someone-elses-lease",
            "-n",
            n,
        ][..],
        &["create", "leases.coordination.k8s.io", "-n", "default"][..],
        &["watch", "leases.coordination.k8s.io", "-n", n][..],
        &["delete", "namespaces"][..],
        &["create", "clusterrolebindings.rbac.authorization.k8s.io"][..],
    ] {
        assert!(!can(denied), "{subject} should be denied: {denied:?}");
    }

    // The operator, authenticated only by the ServiceAccount's token.
    let rt = runtime();
    let sim = simulator(&rt);
    let port = free_port();
    let mut operator = operator_as_service_account(
        n,
        &fullname,
        &sim,
        port,
        &[
            "--leader-election",
            "--lease-name",
            &lease,
            "--lease-namespace",
            n,
        ],
    );
    wait_status(port, "/readyz", 200);
    create_run(&ns, "rbac-run");
    wait_succeeded(&ns, "rbac-run", "90s");
    let holder = kubectl_ok(&[
        "get",
        &format!("lease/{lease}"),
        "-n",
        n,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.is_empty(), "the operator should hold the lease");
    let reasons = kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        n,
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        reasons.contains("BuildStarted"),
        "Events published: {reasons}"
    );
    let log = operator.log();
    assert!(!log.contains("forbidden"), "a call was forbidden:\n{log}");
    assert!(operator.is_running(), "the operator exited:\n{log}");
    // Policies are off by default, and the operator says what that means.
    assert!(
        log.contains("CodeBuildRunPolicies are not enforced"),
        "no startup warning:\n{log}"
    );
    assert_eq!(sim.state().starts().len(), 1, "exactly one StartBuild");
    operator.terminate();
}

// ---- metrics and health ----------------------------------------------------------------------

#[test]
fn metrics_move_as_a_run_progresses_and_probes_answer() {
    let ns = TestNamespace::new("metrics");
    let rt = runtime();
    let sim = simulator(&rt);
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut operator =
        OperatorProcess::start(ns.name(), &sim.endpoint(), &["--metrics-address", &address]);
    wait_status(port, "/healthz", 200);
    let ready = wait_status(port, "/readyz", 200);
    assert_eq!(ready.trim(), "ok");

    let before = scrape(port);
    assert_eq!(
        sample(&before, "codebuild_operator_builds_started_total"),
        0.0
    );
    assert_eq!(sample(&before, "codebuild_operator_leader"), 1.0);

    create_run(&ns, "metrics-run");
    let started = wait_for(
        "builds_started_total to reach 1",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let m = scrape(port);
            (sample(&m, "codebuild_operator_builds_started_total") == 1.0).then_some(m)
        },
    );
    assert_eq!(
        sample(
            &started,
            "codebuild_operator_aws_calls_total{operation=\"StartBuild\",outcome=\"success\",region=\"us-east-1\"}"
        ),
        1.0
    );
    wait_succeeded(&ns, "metrics-run", "90s");
    let after = wait_for(
        "builds_finished_total{SUCCEEDED} to reach 1",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let m = scrape(port);
            (sample(
                &m,
                "codebuild_operator_builds_finished_total{status=\"SUCCEEDED\"}",
            ) == 1.0)
                .then_some(m)
        },
    );
    let at_least = |series: &str, min: f64| {
        let v = sample(&after, series);
        assert!(v >= min, "{series} = {v}, expected >= {min}\n{after}");
    };
    at_least(
        "codebuild_operator_reconciles_total{outcome=\"success\"}",
        3.0,
    );
    at_least("codebuild_operator_reconcile_duration_seconds_count", 3.0);
    at_least(
        "codebuild_operator_aws_calls_total{operation=\"BatchGetBuilds\",outcome=\"success\",region=\"us-east-1\"}",
        1.0,
    );
    at_least(
        "codebuild_operator_tracker_round_duration_seconds_count",
        1.0,
    );
    at_least("codebuild_operator_tracker_round_builds_sum", 1.0);
    assert_eq!(sample(&after, "codebuild_operator_builds_in_flight"), 0.0);
    assert_eq!(
        sample(&after, "codebuild_operator_builds_started_total"),
        1.0,
        "one run, one build"
    );
    // Labels come from fixed sets only: no object names, namespaces or credentials.
    for leak in [
        "metrics-run",
        ns.name(),
        "e2e-secret",
        "AKIDE2ETEST",
        PROJECT,
    ] {
        assert!(!after.contains(leak), "metrics mention {leak:?}:\n{after}");
    }
    assert!(after.trim_end().ends_with("# EOF"));
    operator.terminate();
}

#[test]
fn readyz_is_503_while_the_apiserver_is_unreachable() {
    let ns = TestNamespace::new("readyz");
    // A port nothing listens on: every apiserver call fails to connect.
    let closed = format!("https://127.0.0.1:{}", free_port());
    let kubeconfig = log_dir().join(format!("{}-closed.kubeconfig", ns.name()));
    write_kubeconfig(&kubeconfig, Some(&closed), "unused");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    let mut operator = OperatorProcess::start_with_env(
        ns.name(),
        "http://127.0.0.1:9",
        &["--metrics-address", &address],
        &[("KUBECONFIG", &kubeconfig)],
    );
    wait_status(port, "/healthz", 200);
    let body = wait_status(port, "/readyz", 503);
    assert!(body.contains("CodeBuildRun API"), "readyz says: {body}");
    // Still alive and still not ready a little later: it retries, it does not give up.
    std::thread::sleep(Duration::from_secs(2));
    assert!(operator.is_running(), "{}", operator.log());
    assert_eq!(http_get(port, "/readyz").map(|(s, _)| s), Some(503));
    assert!(
        operator.log().contains("cannot reach the Kubernetes API"),
        "{}",
        operator.log()
    );
    let status = operator.terminate();
    assert!(
        status.success(),
        "SIGTERM during startup exits cleanly: {status}"
    );
}

// ---- leader election -------------------------------------------------------------------------

#[test]
fn leader_election_one_replica_reconciles_and_the_standby_takes_over() {
    let ns = TestNamespace::new("leader");
    let rt = runtime();
    let sim = simulator(&rt);
    let lease = format!("e2e-{}", support::random_suffix(6));
    let ports = [free_port(), free_port()];
    let start = |port: u16, pod: &str| {
        let address = format!("127.0.0.1:{port}");
        OperatorProcess::start_with_env(
            ns.name(),
            &sim.endpoint(),
            &[
                "--metrics-address",
                &address,
                "--leader-election",
                "--lease-name",
                &lease,
                "--lease-namespace",
                ns.name(),
            ],
            &[("POD_NAME", pod)],
        )
    };
    let mut operators = [start(ports[0], "replica-a"), start(ports[1], "replica-b")];
    for port in ports {
        wait_status(port, "/readyz", 200);
    }
    let leader = wait_for(
        "one replica to lead",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let leading: Vec<usize> = (0..2)
                .filter(|i| sample(&scrape(ports[*i]), "codebuild_operator_leader") == 1.0)
                .collect();
            (leading.len() == 1).then(|| leading[0])
        },
    );
    let standby = 1 - leader;
    let holder = kubectl_ok(&[
        "get",
        &format!("lease/{lease}"),
        "-n",
        ns.name(),
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(holder, ["replica-a", "replica-b"][leader]);

    create_run(&ns, "first");
    wait_succeeded(&ns, "first", "90s");
    let standby_metrics = scrape(ports[standby]);
    assert_eq!(
        sample(
            &standby_metrics,
            "codebuild_operator_reconciles_total{outcome=\"success\"}"
        ),
        0.0,
        "the standby must not reconcile"
    );
    assert_eq!(
        sample(
            &standby_metrics,
            "codebuild_operator_aws_calls_total{operation=\"BatchGetBuilds\",outcome=\"success\",region=\"us-east-1\"}"
        ),
        0.0,
        "the standby must not poll"
    );
    assert!(operators[standby].log().contains("standby"));
    assert!(
        !operators[standby]
            .log()
            .contains("acquired the leader lease")
    );
    assert!(
        operators[leader]
            .log()
            .contains("acquired the leader lease")
    );
    assert_eq!(sim.state().starts().len(), 1);

    // A crash: the lease is not released, so the standby takes over once it expires: within
    // the lease duration (15 s) and a poll of its own.
    let crashed = std::time::Instant::now();
    operators[leader].kill();
    let took = wait_for(
        "the standby to lead",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            (sample(&scrape(ports[standby]), "codebuild_operator_leader") == 1.0)
                .then(|| crashed.elapsed())
        },
    );
    println!("SIGKILL of the leader to the standby leading: {took:?}");
    assert!(took <= Duration::from_secs(15 + 2), "took {took:?}");
    create_run(&ns, "second");
    wait_succeeded(&ns, "second", "90s");
    assert!(
        operators[standby]
            .log()
            .contains("acquired the leader lease")
    );
    assert!(operators[standby].is_running());
    assert_eq!(
        sim.state().starts().len(),
        2,
        "the first run was not started again"
    );
    let status = operators[standby].terminate();
    assert!(status.success(), "{status}");
    // A graceful stop releases the lease.
    let holder = kubectl_ok(&[
        "get",
        &format!("lease/{lease}"),
        "-n",
        ns.name(),
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(
        holder.is_empty(),
        "lease still held by {holder:?} after SIGTERM"
    );
}

#[test]
fn a_leader_that_loses_its_lease_exits_non_zero_at_once() {
    let ns = TestNamespace::new("lease-lost");
    let rt = runtime();
    let sim = simulator(&rt);
    let lease = format!("e2e-{}", support::random_suffix(6));
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut operator = OperatorProcess::start_with_env(
        ns.name(),
        &sim.endpoint(),
        &[
            "--metrics-address",
            &address,
            "--leader-election=true",
            "--lease-name",
            &lease,
            "--lease-namespace",
            ns.name(),
        ],
        &[("POD_NAME", "the-leader")],
    );
    wait_status(port, "/readyz", 200);
    wait_for(
        "the only replica to lead",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || (sample(&scrape(port), "codebuild_operator_leader") == 1.0).then_some(()),
    );
    // Another holder takes the Lease over (as after a partition the leader did not notice).
    let now = String::from_utf8(
        Command::new("date")
            .args(["-u", "+%Y-%m-%dT%H:%M:%S.000000Z"])
            .output()
            .expect("date")
            .stdout,
    )
    .expect("utf-8");
    let patch = format!(
        r#"{{"spec":{{"holderIdentity":"intruder","renewTime":"{}","leaseDurationSeconds":3600}}}}"#,
        now.trim()
    );
    kubectl_ok(&[
        "patch",
        &format!("lease/{lease}"),
        "-n",
        ns.name(),
        "--type=merge",
        "-p",
        &patch,
    ]);
    // It notices at its next renewal (at most LEASE_DURATION - LEASE_GRACE = 7 s later).
    wait_for(
        "the deposed leader to exit",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || (!operator.is_running()).then_some(()),
    );
    let status = operator.terminate();
    assert_eq!(
        status.code(),
        Some(codebuild_operator::leader::LOST_LEASE_EXIT_CODE),
        "{}",
        operator.log()
    );
    assert!(operator.log().contains("lost the leader lease"));
}

#[test]
fn namespaced_install_runs_a_build_with_nothing_cluster_wide() {
    let ns = TestNamespace::new("chart-nsmode");
    let release = Release {
        name: format!("cbn-{}", support::random_suffix(5)),
        namespace: ns.name().to_owned(),
    };
    let n = ns.name();
    helm_ok(&[
        "install",
        &release.name,
        CHART,
        "-n",
        n,
        "--set",
        &format!("watchNamespaces={{{n}}}"),
    ]);
    let fullname = format!("{}-codebuild-operator", release.name);
    let subject = format!("system:serviceaccount:{n}:{fullname}");
    let can = |args: &[&str]| {
        let mut full = vec!["auth", "can-i"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--as", &subject]);
        String::from_utf8_lossy(&kubectl(&full).stdout).trim() == "yes"
    };
    assert!(can(&[
        "watch",
        "codebuildruns.codebuild.operator.dev",
        "-n",
        n
    ]));
    assert!(!can(&[
        "list",
        "codebuildruns.codebuild.operator.dev",
        "-A"
    ]));
    assert!(!can(&[
        "list",
        "codebuildruns.codebuild.operator.dev",
        "-n",
        "default"
    ]));
    assert!(
        !can(&["create", "leases.coordination.k8s.io", "-n", n]),
        "no Lease rules without leader election"
    );

    let rt = runtime();
    let sim = simulator(&rt);
    let port = free_port();
    let mut operator = operator_as_service_account(n, &fullname, &sim, port, &[]);
    wait_status(port, "/readyz", 200);
    create_run(&ns, "ns-run");
    wait_succeeded(&ns, "ns-run", "90s");
    let log = operator.log();
    assert!(!log.contains("forbidden"), "a call was forbidden:\n{log}");
    let status = operator.terminate();
    assert!(status.success(), "{status}");
}

// ---- tenancy -------------------------------------------------------------------------------

/// policy.enforce=true: the chart's RBAC lets the operator (as its ServiceAccount) read
/// policies and namespaces and keep its ValidatingAdmissionPolicy, which the chart binds;
/// `kubectl apply` of a run no policy allows is refused with the operator's message, and an
/// allowed run still goes to Succeeded.
#[test]
fn policy_enforcement_with_the_charts_rbac_and_admission_policy() {
    let ns = TestNamespace::new("chart-policy");
    let n = ns.name();
    let release = Release {
        name: format!("cbp-{}", support::random_suffix(5)),
        namespace: n.to_owned(),
    };
    // The binding matches only the watched namespace, so other tests are never affected.
    helm_ok(&[
        "install",
        &release.name,
        CHART,
        "-n",
        n,
        "--set",
        &format!("watchNamespaces={{{n}}}"),
        "--set",
        "policy.enforce=true",
        "--set",
        "region=us-east-1",
    ]);
    let fullname = format!("{}-codebuild-operator", release.name);
    let vap = format!("{fullname}-policy");
    let _vap_guard = ClusterObject(format!("validatingadmissionpolicy/{vap}"));
    let subject = format!("system:serviceaccount:{n}:{fullname}");
    let can = |args: &[&str]| {
        let mut full = vec!["auth", "can-i"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--as", &subject]);
        String::from_utf8_lossy(&kubectl(&full).stdout).trim() == "yes"
    };
    for allowed in [
        &["list", "codebuildrunpolicies.codebuild.operator.dev"][..],
        &["watch", "codebuildrunpolicies.codebuild.operator.dev"][..],
        &["list", "namespaces"][..],
        &["watch", "namespaces"][..],
        &[
            "patch",
            "codebuildrunpolicies.codebuild.operator.dev",
            "--subresource=status",
        ][..],
        &[
            "patch",
            &format!("validatingadmissionpolicies.admissionregistration.k8s.io/{vap}"),
        ][..],
    ] {
        assert!(can(allowed), "{subject} should be allowed: {allowed:?}");
    }
    for denied in [
        &["create", "codebuildrunpolicies.codebuild.operator.dev"][..],
        &["patch", "namespaces"][..],
        &[
            "patch",
            "validatingadmissionpolicies.admissionregistration.k8s.io/someone-elses",
        ][..],
        &[
            "delete",
            "validatingadmissionpolicies.admissionregistration.k8s.io",
        ][..],
        // The chart owns the admission policy: the operator creates none (one it created
        // would outlive `helm uninstall`).
        &[
            "create",
            "validatingadmissionpolicies.admissionregistration.k8s.io",
        ][..],
        &[
            "create",
            "validatingadmissionpolicybindings.admissionregistration.k8s.io",
        ][..],
        &["list", "secrets", "-A"][..],
    ] {
        assert!(!can(denied), "{subject} should be denied: {denied:?}");
    }
    let binding = kubectl_ok(&[
        "get",
        &format!("validatingadmissionpolicybinding/{vap}"),
        "-o",
        "jsonpath={.spec.policyName} {.spec.validationActions}",
    ]);
    assert_eq!(binding, format!("{vap} [\"Deny\"]"));
    let owner = kubectl_ok(&[
        "get",
        &format!("validatingadmissionpolicy/{vap}"),
        "-o",
        "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}",
    ]);
    assert_eq!(owner, "Helm", "the chart owns the admission policy");

    // A policy for this namespace only (by its name label), for the simulator's project.
    let policy = format!("chart-{}", support::random_suffix(6));
    let _policy_guard = ClusterObject(format!("codebuildrunpolicy/{policy}"));
    let manifest = format!(
        "apiVersion: codebuild.operator.dev/v1alpha1\nkind: CodeBuildRunPolicy\nmetadata:\n  name: {policy}\nspec:\n  namespaceSelector:\n    matchLabels:\n      kubernetes.io/metadata.name: {n}\n  projects: [{PROJECT}]\n"
    );
    let out = support::kubectl_stdin(&["apply", "-f", "-"], &manifest);
    assert!(out.status.success(), "policy: {}", output_text(&out));

    // The operator, authenticated only by the ServiceAccount's token, flags as the chart sets.
    let rt = runtime();
    let sim = simulator(&rt);
    let port = free_port();
    let mut operator = operator_as_service_account(
        n,
        &fullname,
        &sim,
        port,
        &["--enforce-policies", "--admission-policy", &vap],
    );
    wait_status(port, "/readyz", 200);
    // The operator wrote the admission policy; once it is in force, a run the policy does not
    // allow is refused at `kubectl apply`, with the operator's wording.
    let refused = format!(
        "apiVersion: codebuild.operator.dev/v1alpha1\nkind: CodeBuildRun\nmetadata:\n  name: refused\nspec:\n  projectName: {PROJECT}\n  buildspecOverride: 'version: 0.2'\n"
    );
    let expected = format!(
        "namespace \"{n}\" may not use these overrides for project \"{PROJECT}\" in region \
         \"us-east-1\": policy \"{policy}\" does not allow buildspecOverride"
    );
    let stderr = wait_for(
        "the admission policy to refuse the run",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            // A server-side dry run: every try is a CREATE (once created, an unchanged run's
            // UPDATEs are let through by design).
            let out = support::kubectl_stdin(
                &["create", "--dry-run=server", "-n", n, "-f", "-"],
                &refused,
            );
            let text = output_text(&out);
            (!out.status.success() && text.contains("ValidatingAdmissionPolicy")).then_some(text)
        },
    );
    assert!(stderr.contains(&expected), "kubectl said:\n{stderr}");
    create_run(&ns, "allowed");
    wait_succeeded(&ns, "allowed", "90s");
    let log = operator.log();
    assert!(!log.contains("forbidden"), "a call was forbidden:\n{log}");
    assert!(log.contains("admission policy written"), "{log}");
    assert_eq!(sim.state().starts().len(), 1, "exactly one StartBuild");
    operator.terminate();
    // The operator kept the rules of the chart's object, and its labels: an upgrade keeps
    // the rules (looked up), and `helm uninstall` removes the object.
    let rules = kubectl_ok(&[
        "get",
        &format!("validatingadmissionpolicy/{vap}"),
        "-o",
        "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by} {.spec.validations[0].expression}",
    ]);
    assert!(
        rules.starts_with("Helm !variables.requestChanged"),
        "{rules}"
    );
    helm_ok(&["upgrade", &release.name, CHART, "-n", n, "--reuse-values"]);
    let after = kubectl_ok(&[
        "get",
        &format!("validatingadmissionpolicy/{vap}"),
        "-o",
        "jsonpath={.spec.validations[0].expression}",
    ]);
    assert!(
        after.starts_with("!variables.requestChanged"),
        "an upgrade kept the rules: {after}"
    );
    helm_ok(&["uninstall", &release.name, "-n", n, "--wait"]);
    let gone = kubectl(&["get", &format!("validatingadmissionpolicy/{vap}")]);
    assert!(
        !gone.status.success(),
        "the admission policy outlived helm uninstall"
    );
}

/// A rolling update costs no more than a normal reconcile delay: SIGTERM releases the
/// lease, and the standby (watching the Lease) takes it at once instead of waiting for it
/// to expire, so a run created meanwhile gets its build id within seconds.
#[test]
fn a_standby_takes_a_released_lease_at_once() {
    let ns = TestNamespace::new("handover");
    let rt = runtime();
    let sim = simulator(&rt);
    let lease = format!("e2e-{}", support::random_suffix(6));
    let ports = [free_port(), free_port()];
    let start = |port: u16, pod: &str| {
        let address = format!("127.0.0.1:{port}");
        OperatorProcess::start_with_env(
            ns.name(),
            &sim.endpoint(),
            &[
                "--metrics-address",
                &address,
                "--leader-election",
                "--lease-name",
                &lease,
                "--lease-namespace",
                ns.name(),
            ],
            &[("POD_NAME", pod)],
        )
    };
    let mut operators = [start(ports[0], "replica-a"), start(ports[1], "replica-b")];
    for port in ports {
        wait_status(port, "/readyz", 200);
    }
    let leader = wait_for(
        "one replica to lead",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let leading: Vec<usize> = (0..2)
                .filter(|i| sample(&scrape(ports[*i]), "codebuild_operator_leader") == 1.0)
                .collect();
            (leading.len() == 1).then(|| leading[0])
        },
    );
    let standby = 1 - leader;
    let sigterm = std::time::Instant::now();
    let status = operators[leader].terminate();
    assert!(status.success(), "{status}");
    create_run(&ns, "during-handover");
    let took = wait_for(
        "a build id after the handover",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let id = kubectl_ok(&[
                "get",
                "cbr/during-handover",
                "-n",
                ns.name(),
                "-o",
                "jsonpath={.status.buildId}",
            ]);
            (!id.is_empty()).then(|| sigterm.elapsed())
        },
    );
    assert!(
        operators[standby]
            .log()
            .contains("acquired the leader lease"),
        "{}",
        operators[standby].log_tail(30)
    );
    println!("SIGTERM of the leader to the build id of a run created meanwhile: {took:?}");
    // The lease lasts 15 s: waiting for it to expire would take more than 10 s.
    assert!(
        took <= Duration::from_secs(2),
        "handover took {took:?}:\n{}",
        operators[standby].log_tail(30)
    );
}
