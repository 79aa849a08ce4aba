//! End-to-end test harness: a real kube-apiserver + etcd on loopback (hack/local-cluster.sh),
//! kubectl run as a user would, and the operator binary as a subprocess.
//!
//! Use it from a test file with `mod support;`. Every helper is bounded in time, talks to
//! 127.0.0.1 only, and fails loudly: an e2e test never skips because the cluster is missing.
//!
//! - [`cluster()`]: brings the control plane up once per test process and installs the CRD.
//! - [`kubectl`] / [`kubectl_ok`] / [`kubectl_stdin`]: run kubectl against it.
//! - [`client()`]: a `kube::Client` for the same cluster.
//! - [`TestNamespace`]: a random namespace, dumped on failure and cleaned up on drop.
//! - [`OperatorProcess`]: the operator binary watching one namespace.
//! - [`wait_for`] / [`wait_for_async`]: bounded polling.
#![allow(dead_code)]

pub mod apiserver;
pub mod batch_world;
pub mod fake;
pub mod fake_batch;
pub mod gitops;
mod http;
pub mod moto;
pub mod world;

// Not every test file uses them.
#[allow(unused_imports)]
pub use http::{free_port, http_get};

use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The CRD installed by [`cluster()`].
pub const CRD_NAME: &str = "codebuildruns.codebuild.operator.dev";
/// The batch run CRD installed by [`cluster()`] with it.
pub const BATCH_CRD_NAME: &str = "codebuildbatchruns.codebuild.operator.dev";
/// The kinds of run a test namespace may hold, as kubectl names them together.
const RUN_KINDS: &str = "codebuildruns,codebuildbatchruns";
/// The label put on every namespace the harness creates.
pub const NAMESPACE_LABEL: (&str, &str) = ("e2e", "codebuild-operator");
/// How long a single kubectl invocation may take before it is killed (see [`kubectl`]).
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);

/// The apiVersion of the operator's kinds.
pub const API_VERSION: &str = "codebuild.operator.dev/v1alpha1";

/// A CodeBuildRun manifest (JSON, which kubectl reads as well as YAML).
pub fn run_manifest(name: &str, spec: serde_json::Value) -> String {
    serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": "CodeBuildRun",
        "metadata": {"name": name},
        "spec": spec,
    })
    .to_string()
}

/// The condition `type_` of a run's status, if any.
pub fn condition<'a>(
    run: &'a codebuild_operator::api::CodeBuildRun,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    run.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// The value of the operator's marker variable (the run's uid) in a StartBuild request.
pub fn request_marker(request: &serde_json::Value) -> Option<&str> {
    request["environmentVariablesOverride"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == codebuild_operator::api::MARKER_ENV_VAR)?
        .get("value")?
        .as_str()
}

/// The repository root (where `hack/`, `crds/` and `examples/` are).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A running local control plane with the CodeBuildRun CRD installed.
#[derive(Debug)]
pub struct Cluster {
    kubeconfig: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The local control plane, started if needed (once per test process) and with the CRD
/// applied and Established. Panics, with the script's output, when it cannot be brought up.
#[track_caller]
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(Cluster::ensure) {
        Ok(cluster) => cluster,
        Err(message) => panic!("e2e: the local control plane is not usable:\n{message}"),
    }
}

impl Cluster {
    fn ensure() -> Result<Cluster, String> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let script = repo_root().join("hack/local-cluster.sh");
        let status = run_bounded(
            Command::new(&script).arg("status"),
            None,
            Duration::from_secs(30),
        )?;
        if !status.status.success() {
            // `flock` keeps two test processes from starting two control planes at once; the
            // script builds nothing when the binaries are cached.
            let lock = repo_root().join("target/local-cluster.lock");
            let _ = std::fs::create_dir_all(repo_root().join("target"));
            let mut up = Command::new("flock");
            up.arg(&lock).arg(&script).arg("up");
            let out = run_bounded(&mut up, None, Duration::from_secs(15 * 60))?;
            if !out.status.success() {
                return Err(format!(
                    "`hack/local-cluster.sh up` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let out = run_bounded(
            Command::new(&script).arg("kubeconfig"),
            None,
            Duration::from_secs(30),
        )?;
        let kubeconfig = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !out.status.success() || !kubeconfig.is_file() {
            return Err(format!(
                "`hack/local-cluster.sh kubeconfig` gave no usable file ({}): {:?}\n{}",
                out.status,
                kubeconfig,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let cluster = Cluster { kubeconfig };
        let crds = repo_root().join("crds");
        let crds = crds.to_str().expect("utf-8 path");
        for args in [
            &["apply", "--server-side", "--force-conflicts", "-f", crds][..],
            &[
                "wait",
                "--for=condition=Established",
                &format!("crd/{CRD_NAME}"),
                &format!("crd/{BATCH_CRD_NAME}"),
                "--timeout=60s",
            ][..],
        ] {
            let out = cluster.kubectl(args);
            if !out.status.success() {
                return Err(format!(
                    "`kubectl {}` failed ({}):\n{}{}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        Ok(cluster)
    }

    /// The admin kubeconfig of the local control plane.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kube client built from [`Cluster::kubeconfig`] (the rustls provider is installed).
    pub async fn client(&self) -> kube::Client {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("kube config from {}: {e}", self.kubeconfig.display()));
        kube::Client::try_from(config).expect("building a kube client")
    }

    /// Runs `kubectl ARGS` with KUBECONFIG set, killed after [`KUBECTL_TIMEOUT`].
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Like [`Cluster::kubectl`], feeding `stdin` (for `-f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.args(args).env("KUBECONFIG", &self.kubeconfig);
        run_bounded(&mut cmd, stdin, KUBECTL_TIMEOUT)
            .unwrap_or_else(|e| panic!("kubectl {}: {e}", args.join(" ")))
    }

    /// Runs kubectl and returns its stdout; panics with stdout and stderr when it fails.
    #[track_caller]
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        ok_or_panic(args, self.kubectl(args))
    }
}

/// The admin kubeconfig of the local control plane ([`cluster()`] first).
pub fn kubeconfig() -> &'static Path {
    cluster().kubeconfig()
}

/// A kube client for the local control plane ([`cluster()`] first).
pub async fn client() -> kube::Client {
    cluster().client().await
}

/// `kubectl ARGS` against the local control plane; the caller checks the exit status.
pub fn kubectl(args: &[&str]) -> Output {
    cluster().kubectl(args)
}

/// `kubectl ARGS` with `stdin` fed to it, e.g. `kubectl_stdin(&["apply", "-f", "-"], yaml)`.
pub fn kubectl_stdin(args: &[&str], stdin: &str) -> Output {
    cluster().kubectl_stdin(args, Some(stdin))
}

/// `kubectl ARGS`, panicking with stdout and stderr on failure; returns stdout.
#[track_caller]
pub fn kubectl_ok(args: &[&str]) -> String {
    cluster().kubectl_ok(args)
}

/// Stdout and stderr of a kubectl run, one string (for assertions on messages).
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn ok_or_panic(args: &[&str], out: Output) -> String {
    if !out.status.success() {
        panic!(
            "`kubectl {}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command to completion, killing it after `timeout`. Stdout and stderr are read on
/// threads so a chatty command cannot block on a full pipe.
pub fn run_bounded(
    cmd: &mut Command,
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output, String> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err = reader(Box::new(child.stderr.take().expect("piped stderr")));
    if let Some(input) = stdin {
        // Dropping the pipe at the end of this block closes the child's stdin.
        let mut pipe = child.stdin.take().expect("piped stdin");
        if let Err(e) = pipe.write_all(input.as_bytes()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("writing stdin of {cmd:?}: {e}"));
        }
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{cmd:?} did not finish within {timeout:?}"));
            }
            Err(e) => return Err(format!("waiting for {cmd:?}: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Deletes a cluster-scoped object (`kind/name`) on drop, also when the test fails.
pub struct ClusterObject(pub String);

impl Drop for ClusterObject {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", &self.0, "--ignore-not-found", "--wait=false"]);
    }
}

/// `len` random characters from `[a-z0-9]`.
pub fn random_suffix(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// A namespace of its own for one test: `{prefix}-{6 random chars}`, labelled
/// `e2e=codebuild-operator`. On drop it prints the CodeBuildRuns and Events in it when the
/// test is failing, then deletes the runs (finalizers removed, as the operator may be gone)
/// and the namespace, without waiting (this cluster has no namespace controller, so the
/// namespace stays Terminating).
#[derive(Debug)]
pub struct TestNamespace {
    name: String,
}

impl TestNamespace {
    /// Creates the namespace (and brings the cluster up first if needed).
    #[track_caller]
    pub fn new(prefix: &str) -> TestNamespace {
        let cluster = cluster();
        let name = format!("{prefix}-{}", random_suffix(6));
        let manifest = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    {}: {}\n",
            NAMESPACE_LABEL.0, NAMESPACE_LABEL.1
        );
        let args = ["create", "-f", "-"];
        ok_or_panic(&args, cluster.kubectl_stdin(&args, Some(&manifest)));
        TestNamespace { name }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runs and batch runs in this namespace as `codebuildrun.codebuild.operator.dev/NAME`
    /// (`codebuildbatchrun...` for batch runs).
    fn run_names(&self, cluster: &Cluster) -> Vec<String> {
        let out = cluster.kubectl(&["get", RUN_KINDS, "-n", &self.name, "-o", "name"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn strip_finalizers(&self, cluster: &Cluster) {
        for run in self.run_names(cluster) {
            let _ = cluster.kubectl(&[
                "patch",
                &run,
                "-n",
                &self.name,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ]);
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Never panic here: a panic during a panic aborts the test binary.
        let Some(Ok(cluster)) = CLUSTER.get() else {
            return;
        };
        let ns = self.name.as_str();
        if std::thread::panicking() {
            for args in [
                &["get", RUN_KINDS, "-n", ns, "-o", "yaml"][..],
                &["get", "events", "-n", ns, "--sort-by=.lastTimestamp"][..],
            ] {
                let out = cluster.kubectl(args);
                eprintln!(
                    "=== e2e dump: kubectl {}\n{}",
                    args.join(" "),
                    output_text(&out)
                );
            }
        }
        // Strip, delete, strip again: an operator still running may re-add its finalizer
        // before the delete, but never after (deletionTimestamp set).
        self.strip_finalizers(cluster);
        let _ = cluster.kubectl(&["delete", RUN_KINDS, "--all", "-n", ns, "--wait=false"]);
        self.strip_finalizers(cluster);
        let _ = cluster.kubectl(&["delete", "namespace", ns, "--wait=false"]);
    }
}

static OPERATOR_COUNT: AtomicUsize = AtomicUsize::new(0);

/// The operator binary, running `run --namespaces NS` against `endpoint` (a CodeBuild
/// simulator), logging to `target/e2e-logs/<ns>-operator-<n>.log`. Dropping it kills it;
/// when the test is failing the last 80 log lines are printed first.
#[derive(Debug)]
pub struct OperatorProcess {
    child: Child,
    log_path: PathBuf,
    exited: Option<ExitStatus>,
}

impl OperatorProcess {
    /// Starts `codebuild-operator run --namespaces NS --region us-east-1 --endpoint-url
    /// ENDPOINT --poll-interval 500ms --log-format text EXTRA_ARGS...` with dummy AWS
    /// credentials and CloudWatch Logs at ENDPOINT too. Later flags in `extra_args` override the defaults (clap: last wins).
    pub fn start(ns: &str, endpoint: &str, extra_args: &[&str]) -> OperatorProcess {
        Self::start_with_env(ns, endpoint, extra_args, &[])
    }

    /// Like [`OperatorProcess::start`], with extra environment variables set last (so
    /// `KUBECONFIG` may point at another identity's kubeconfig).
    pub fn start_with_env(
        ns: &str,
        endpoint: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> OperatorProcess {
        let cluster = cluster();
        let dir = repo_root().join("target/e2e-logs");
        std::fs::create_dir_all(&dir).expect("creating target/e2e-logs");
        let n = OPERATOR_COUNT.fetch_add(1, Ordering::SeqCst);
        let log_path = dir.join(format!("{ns}-operator-{n}.log"));
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let log_err = log.try_clone().expect("cloning the log file handle");
        let child = Command::new(env!("CARGO_BIN_EXE_codebuild-operator"))
            .args([
                "run",
                "--namespaces",
                ns,
                "--region",
                "us-east-1",
                "--endpoint-url",
                endpoint,
                "--poll-interval",
                "500ms",
                "--log-format",
                "text",
                // Tests run operators side by side: a free port each.
                "--metrics-address",
                "127.0.0.1:0",
            ])
            .args(extra_args)
            .env("KUBECONFIG", cluster.kubeconfig())
            .env("AWS_ACCESS_KEY_ID", "AKIDE2ETEST")
            .env("AWS_SECRET_ACCESS_KEY", "e2e-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // The simulator answers CloudWatch Logs too (the failure tail of failed builds).
            .env("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", endpoint)
            .env("RUST_LOG", "info,codebuild_operator=debug")
            // Plain text in the log file (tracing-subscriber colours by default).
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .expect("starting the codebuild-operator binary");
        OperatorProcess {
            child,
            log_path,
            exited: None,
        }
    }

    /// The operator's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.exited.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, then reap it (a crash, as far as the operator can tell).
    pub fn kill(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// SIGTERM, then wait up to 20 s for it to exit and return its exit status. Panics
    /// (after a SIGKILL, with the log's tail) when it does not exit in time.
    pub fn terminate(&mut self) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        panic!(
            "the operator (pid {}) did not exit within 20 s of SIGTERM; last log lines:\n{}",
            self.pid(),
            self.log_tail(80)
        );
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "=== e2e dump: last 80 lines of {}\n{}",
                self.log_path.display(),
                self.log_tail(80)
            );
        }
    }
}

/// Calls `probe` every `poll` until it returns `Some`, at most for `timeout`; panics naming
/// `what` on timeout.
#[track_caller]
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(poll);
    }
}

/// [`wait_for`] for async probes (sleeps with tokio, so the runtime keeps working).
pub async fn wait_for_async<T, F, Fut>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left.max(poll), probe()).await {
            Ok(Some(value)) => return value,
            Ok(None) => {}
            Err(_) => panic!("timed out after {timeout:?} waiting for {what} (probe hung)"),
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(poll).await;
    }
}

/// The example manifests, `examples/*.yaml`, sorted (the GitOps examples in subfolders are
/// not CodeBuildRuns and are left out).
pub fn example_files() -> Vec<PathBuf> {
    let dir = repo_root().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples/*.yaml");
    files
}

/// The batch run examples, `examples/batch/*.yaml`, sorted.
pub fn batch_example_files() -> Vec<PathBuf> {
    let dir = repo_root().join("examples/batch");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}
