//! End to end, what a build produced, seen from Kubernetes: the `kubectl codebuild` plugin
//! run as a user runs it (`kubectl codebuild ...` through kubectl's plugin lookup on PATH,
//! with KUBECONFIG and AWS credentials in the environment and CloudWatch Logs pointed at the
//! simulator), the failure tail and the reports in status, against a real kube-apiserver,
//! the operator binary and the CodeBuild simulator (which also plays CloudWatch Logs).
//!
//! Needs the local control plane (hack/local-cluster.sh); the harness starts it if it is
//! down and fails, never skips, when it cannot.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use codebuild_sim::{Faults, Service, SimConfig};
use serde_json::{Value, json};
use support::world::{World, build, fast_sim};
use support::{kubectl_ok, output_text, run_bounded};

const LONG: Duration = Duration::from_secs(90);

/// A world whose operator reads CloudWatch Logs from the simulator too.
async fn world(prefix: &str, config: SimConfig, projects: &[&str]) -> World {
    let endpoint_probe = codebuild_sim::Server::start(SimConfig::default())
        .await
        .unwrap();
    drop(endpoint_probe);
    let mut env = World::start_with(prefix, config, projects, &[]).await;
    let endpoint = env.sim.endpoint();
    env.restart_operator(&["--logs-endpoint-url", &endpoint]);
    env
}

/// `kubectl codebuild ARGS` as a user runs it: kubectl finds `kubectl-codebuild` on PATH.
fn plugin_command(env: &World, args: &[&str]) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-codebuild"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("kubectl");
    cmd.arg("codebuild")
        .args(args)
        .args(["-n", env.ns()])
        .env("PATH", path)
        .env("KUBECONFIG", support::kubeconfig())
        .env("AWS_ACCESS_KEY_ID", "AKIDPLUGINUSER")
        .env("AWS_SECRET_ACCESS_KEY", "plugin-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", env.sim.endpoint())
        .env_remove("AWS_PROFILE");
    cmd
}

fn plugin(env: &World, args: &[&str], timeout: Duration) -> Output {
    run_bounded(&mut plugin_command(env, args), None, timeout)
        .unwrap_or_else(|e| panic!("kubectl codebuild {}: {e}", args.join(" ")))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every line the simulator stored for build `id`, in stream order, as one text.
fn sim_log(env: &World, id: &str) -> String {
    env.state()
        .log_events(id)
        .unwrap_or_else(|| panic!("no log stream for {id}"))
        .into_iter()
        .map(|e| e.message)
        .collect()
}

/// The only run of the namespace (the plugin named it with generateName).
fn only_run(env: &World) -> String {
    let names = kubectl_ok(&["get", "cbr", "-n", env.ns(), "-o", "name"]);
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), 1, "{names:?}");
    names[0].rsplit('/').next().unwrap().to_owned()
}

/// An inline buildspec with commands in every command phase; BUILD's last is `make test`.
const BUILDSPEC: &str = "version: 0.2\nphases:\n  install:\n    commands:\n      - make deps\n  \
    pre_build:\n    commands:\n      - make lint\n  build:\n    commands:\n      - make\n      - make test\n  \
    post_build:\n    commands:\n      - make package\n";

fn env_vars(vars: &[(&str, &str)]) -> Value {
    Value::Array(
        vars.iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect(),
    )
}

// ---- start --wait --logs ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_wait_logs_prints_the_builds_lines_in_order_and_exits_0() {
    let env = world("out-start", fast_sim(), &["my-app"]).await;
    let out = plugin(&env, &["start", "my-app", "--wait", "--logs"], LONG);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let name = only_run(&env);
    let run = env.get(&name).await;
    assert!(name.starts_with("my-app-"), "{name}");
    let id = build(&run).build_id.unwrap();
    let expected = sim_log(&env, &id);
    assert!(expected.lines().count() > 20, "{expected}");
    assert_eq!(
        stdout(&out),
        expected,
        "stdout is the build's log, each line once, in order"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "codebuildrun.codebuild.operator.dev/{name} created"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("cbr/{name}: build {id} SUCCEEDED")),
        "{stderr}"
    );
    assert!(stderr.contains("BUILD"), "phases shown: {stderr}");
    // A build that succeeds without reports costs the operator no output call.
    assert_eq!(env.calls("BatchGetReports"), 0);
}

// ---- a failing run ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_exits_1_and_its_status_and_describe_hold_the_failure_tail() {
    let env = world("out-fail", fast_sim(), &["app"]).await;
    // A StartBuild JSON, as `aws codebuild start-build --cli-input-json` takes it, with flags
    // over it.
    let request = support::repo_root().join(format!("target/e2e-logs/{}-request.json", env.ns()));
    std::fs::create_dir_all(request.parent().unwrap()).unwrap();
    let body = json!({"projectName": "app", "buildspecOverride": BUILDSPEC});
    std::fs::write(&request, body.to_string()).unwrap();
    let file = request.to_str().unwrap();
    let args = [
        "start",
        "-f",
        file,
        "--env",
        "CODEBUILD_SIM_FAIL_PHASE=BUILD",
        "--wait",
    ];
    let out = plugin(&env, &args, LONG);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let summary = stdout(&out);
    let name = only_run(&env);
    let run = env.get(&name).await;
    let status = run.status.clone().unwrap();
    let tail = status.log_tail.clone().expect("status.logTail");
    let failing = "Command did not exit successfully make test exit status 2";
    assert!(
        tail.lines.iter().any(|l| l.contains(failing)),
        "the tail holds the failing command: {tail:#?}"
    );
    assert!(
        tail.lines
            .iter()
            .any(|l| l.contains("Running command make test"))
    );
    assert!(
        tail.lines.len() <= 20 && tail.lines.iter().map(|l| l.len() + 1).sum::<usize>() <= 4096
    );
    assert!(
        tail.lines
            .last()
            .unwrap()
            .contains("Phase context status code: COMMAND_EXECUTION_ERROR")
    );
    // The tail is the end of what the simulator stored up to the failure.
    let id = build(&run).build_id.unwrap();
    let stored: Vec<String> = sim_log(&env, &id).lines().map(str::to_owned).collect();
    let end = stored
        .iter()
        .position(|l| l.contains("Phase context status code: COMMAND"))
        .unwrap();
    assert_eq!(
        tail.lines,
        stored[end + 1 - tail.lines.len()..=end].to_vec()
    );
    let succeeded = support::condition(&run, "Succeeded").unwrap();
    assert!(
        succeeded.message.contains("; last log line: "),
        "{}",
        succeeded.message
    );
    assert!(
        summary.contains(failing),
        "the summary shows the tail: {summary}"
    );
    assert!(
        summary.contains("BUILD") && summary.contains("FAILED"),
        "{summary}"
    );

    let described = kubectl_ok(&["describe", &format!("cbr/{name}"), "-n", env.ns()]);
    assert!(described.contains("Log Tail:"), "{described}");
    assert!(
        described.contains(failing),
        "kubectl describe shows why: {described}"
    );
    assert_eq!(
        env.calls("GetLogEvents"),
        1,
        "one GetLogEvents for the failed build"
    );

    // A run that succeeds adds no GetLogEvents; `wait` on it exits 0.
    let ok = plugin(&env, &["start", "app", "--wait"], LONG);
    assert_eq!(ok.status.code(), Some(0), "{}", output_text(&ok));
    assert_eq!(env.calls("GetLogEvents"), 1);
    let again = plugin(&env, &["wait", &name], LONG);
    assert_eq!(again.status.code(), Some(1), "{}", output_text(&again));
}

// ---- reports ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_appear_in_status_and_in_the_wide_column() {
    let env = world("out-reports", fast_sim(), &["app"]).await;
    let reports = "unit:TEST:succeeded=40,failed=2,skipped=1,error=0,unknown=0,durationMs=1520;\
                   cov:CODE_COVERAGE:lines=812/1000,branches=120/200";
    env.create(
        "tested",
        json!({"projectName": "app",
               "environmentVariablesOverride": env_vars(&[("CODEBUILD_SIM_REPORTS", reports)])}),
    )
    .await;
    env.create("plain", json!({"projectName": "app"})).await;
    let run = env
        .wait_run("tested", "status.reports with final reports", LONG, |r| {
            r.status
                .as_ref()
                .and_then(|s| s.reports.as_ref())
                .is_some_and(|rep| {
                    rep.items.len() == 2
                        && rep
                            .items
                            .iter()
                            .all(|i| i.status.as_deref() != Some("GENERATING"))
                })
        })
        .await;
    let reports = run.status.unwrap().reports.unwrap();
    assert_eq!(reports.tests.as_deref(), Some("40/43"));
    let unit = reports
        .items
        .iter()
        .find(|r| r.type_.as_deref() == Some("TEST"))
        .unwrap();
    assert_eq!(unit.status.as_deref(), Some("FAILED"));
    let counts = unit
        .test_summary
        .as_ref()
        .unwrap()
        .status_counts
        .clone()
        .unwrap();
    assert_eq!(
        (counts["SUCCEEDED"], counts["FAILED"], counts["SKIPPED"]),
        (40, 2, 1)
    );
    let cov = reports
        .items
        .iter()
        .find(|r| r.type_.as_deref() == Some("CODE_COVERAGE"))
        .unwrap();
    let c = cov.code_coverage_summary.as_ref().unwrap();
    assert_eq!(
        (c.line_coverage_percentage, c.branch_coverage_percentage),
        (Some(81.2), Some(60.0))
    );
    let wide = kubectl_ok(&["get", "cbr/tested", "-n", env.ns(), "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("TESTS"), "{wide}");
    assert!(wide.contains("40/43"), "{wide}");
    env.wait_condition("plain", "Succeeded", "True", LONG).await;
    // Both reports of the one build in as few calls as rounds that found them GENERATING.
    let calls = env.calls("BatchGetReports");
    assert!((1..=3).contains(&calls), "BatchGetReports calls: {calls}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.calls("BatchGetReports"),
        calls,
        "settled reports are not read again"
    );
    assert_eq!(env.calls("GetLogEvents"), 0, "nothing failed: no tail");
}

// ---- logs -f through the retry chain ---------------------------------------------------------

/// `kubectl codebuild logs RUN -f` with its stdout lines timestamped as they arrive.
struct Follower {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<(String, f64)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Follower {
    fn start(env: &World, run: &str) -> Follower {
        let mut child = plugin_command(env, &["logs", run, "-f"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kubectl codebuild logs -f");
        let lines: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let at = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64();
                sink.lock().unwrap().push((line, at));
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut text);
            text
        });
        Follower {
            child,
            lines,
            reader: Some(reader),
            stderr: Some(stderr),
        }
    }

    /// Waits for the follower to exit; its exit code, lines (with arrival times) and stderr.
    fn finish(mut self, timeout: Duration) -> (Option<i32>, Vec<(String, f64)>, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("kubectl codebuild logs -f did not end within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.reader.take().unwrap().join().unwrap();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        let lines = self.lines.lock().unwrap().clone();
        (status.code(), lines, stderr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_on_an_automatically_retried_build_follows_the_chain() {
    let env = world("out-chain", fast_sim(), &["app"]).await;
    env.create(
        "retried",
        json!({"projectName": "app", "autoRetryLimitOverride": 2,
               "environmentVariablesOverride": env_vars(&[
                   ("CODEBUILD_SIM_FAIL_PHASE", "BUILD"),
                   ("CODEBUILD_SIM_SUCCEED_ON_RETRY", "2"),
                   ("CODEBUILD_SIM_PHASE_SECONDS", "0.5")])}),
    )
    .await;
    let follower = Follower::start(&env, "retried");
    let (code, lines, stderr) = follower.finish(LONG);
    assert_eq!(code, Some(0), "{stderr}");
    let run = env.get("retried").await;
    let status = run.status.unwrap();
    let mut chain: Vec<String> = status
        .retries
        .unwrap()
        .into_iter()
        .map(|r| r.build_id)
        .collect();
    chain.push(status.build.build_id.unwrap());
    assert_eq!(chain.len(), 3);
    let expected: Vec<String> = chain
        .iter()
        .flat_map(|id| {
            sim_log(&env, id)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let printed: Vec<String> = lines.into_iter().map(|(l, _)| l).collect();
    assert_eq!(
        printed, expected,
        "all three builds' lines, once each, in order"
    );
    for id in &chain[1..] {
        assert!(stderr.contains(&format!("--- build {id}")), "{stderr}");
    }
}

// ---- logs -f under throttling and 5xx --------------------------------------------------------

/// `E2E_LOGS_<name>` from the environment (to measure other settings), else `default`.
fn fraction(name: &str, default: f64) -> f64 {
    std::env::var(format!("E2E_LOGS_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Percentile `p` (0..=1) of `values`.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_under_throttling_and_5xx_prints_every_line_once_on_time_within_budget() {
    let env = world("out-faults", fast_sim(), &["app"]).await;
    env.state().set_faults(Faults {
        throttle_fraction: fraction("THROTTLE", 0.1),
        server_error_fraction: fraction("SERVER_ERROR", 0.1),
        service: Some(Service::Logs),
        seed: Some(fraction("SEED", 14.0) as u64),
        ..Default::default()
    });
    env.create(
        "chatty",
        json!({"projectName": "app", "buildspecOverride": BUILDSPEC,
               "environmentVariablesOverride": env_vars(&[
            ("CODEBUILD_SIM_PHASE_SECONDS", "4"),
            ("CODEBUILD_SIM_LOG_LINES", "60"),
            ("CODEBUILD_SIM_LOG_UNICODE", "true")])}),
    )
    .await;
    let calls_before = env.calls("GetLogEvents");
    let started = Instant::now();
    let follower = Follower::start(&env, "chatty");
    let (code, lines, stderr) = follower.finish(Duration::from_secs(120));
    let followed = started.elapsed().as_secs_f64();
    assert_eq!(code, Some(0), "{stderr}");
    let calls = env.calls("GetLogEvents") - calls_before;

    let run = env.get("chatty").await;
    let id = build(&run).build_id.unwrap();
    let stored = env.state().log_events(&id).unwrap();
    let printed: Vec<&str> = lines.iter().map(|(l, _)| l.as_str()).collect();
    let expected: Vec<&str> = stored
        .iter()
        .map(|e| e.message.trim_end_matches('\n'))
        .collect();
    assert_eq!(printed.len(), expected.len(), "every line once");
    assert_eq!(printed, expected, "in order, byte for byte");

    let mut delays: Vec<f64> = lines
        .iter()
        .zip(&stored)
        .map(|((_, at), e)| at - e.ingestion_time as f64 / 1000.0)
        .collect();
    let p50 = percentile(&mut delays, 0.5);
    let p99 = percentile(&mut delays, 0.99);
    let max = percentile(&mut delays, 1.0);
    let counters = env.state().counters();
    eprintln!(
        "logs -f under faults: {} lines, {calls} GetLogEvents in {followed:.1} s ({:.2}/s), \
         throttled {} and 5xx {} in all, delay from stored to printed p50 {p50:.2} s, \
         p99 {p99:.2} s, max {max:.2} s",
        lines.len(),
        calls as f64 / followed,
        counters.throttled,
        counters.server_errors,
    );
    assert!(
        counters.throttled + counters.server_errors > 0,
        "the faults never fired: {counters:?}"
    );
    assert!(p99 <= 2.0, "p99 delay {p99:.2} s");
    assert!(
        (calls as f64) <= followed + 3.0,
        "{calls} GetLogEvents in {followed:.1} s: more than one a second (plus the burst of 3)"
    );
}
