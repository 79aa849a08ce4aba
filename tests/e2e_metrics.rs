//! End to end: the metrics answer what operators ask, on a live operator (the binary, against
//! the local kube-apiserver and the in-process CodeBuild simulator), and every metric the
//! chart's alert rules, their unit tests and its Grafana dashboard read is one the operator
//! exports.
//!
//! - a build that succeeds, one that fails and one CodeBuild refuses (InvalidInput, so the
//!   run stalls), with the simulator throttling half of the BatchGetBuilds requests: build
//!   duration by status, start latency, CodeBuild calls by operation, outcome and Region with
//!   their latency, throttled requests (which the SDK retried), runs by state, reconcile
//!   errors by category, readiness, the poll interval, build_info and the process metrics;
//! - the names: every metric in the rendered PrometheusRule, in the rules' unit tests
//!   (tests/fixtures/promtool/alerts-test.yaml) and in the dashboard is in the live scrape
//!   (`up` aside, which Prometheus makes itself);
//! - the per-run labels: absent by default, `run_namespace` and `project` with
//!   `--metrics-run-labels=namespace,project`.
//!
//! Needs the local control plane and its helm (hack/local-cluster.sh); fails, never skips,
//! when they are missing.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use codebuild_sim::{Faults, Server, SimConfig};
use serde_json::{Value, json};
use support::{
    OperatorProcess, TestNamespace, free_port, http_get, kubectl_ok, kubectl_stdin, output_text,
    repo_root, run_manifest, wait_for,
};

const CHART: &str = "charts/codebuild-operator";
const PROJECT: &str = "metrics-app";
/// Made by Prometheus for every target, not by the operator.
const PROMETHEUS_OWN: [&str; 1] = ["up"];

// ---- scraping ---------------------------------------------------------------------------------

/// The value of the sample `series` (name and labels exactly as exposed), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    })
}

#[track_caller]
fn value(metrics: &str, series: &str) -> f64 {
    sample(metrics, series).unwrap_or_else(|| panic!("no sample {series} in\n{metrics}"))
}

/// Every sample name the scrape can have, from its `# TYPE` lines (so a family counts even
/// before its first sample): a counter `x` is `x_total`, a histogram `x` is `x_bucket`,
/// `x_sum` and `x_count`, a gauge `x` is `x`.
fn exported_names(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            "info" => {
                names.insert(format!("{name}_info"));
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

// ---- PromQL -------------------------------------------------------------------------------------

/// Words that are PromQL, not metric names (aggregations take their grouping before the
/// parenthesis, so they may not be followed by `(`).
const PROMQL_WORDS: [&str; 27] = [
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
];

/// The metric names a PromQL expression reads: every identifier that is not a function
/// (followed by `(`), a PromQL word, a label (inside `{...}` or a grouping list), a string,
/// a number or duration, or a Grafana variable (`$job`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_string = |i: usize| -> usize {
        let quote = chars[i];
        let mut j = i + 1;
        while j < chars.len() && chars[j] != quote {
            j += if chars[j] == '\\' && quote != '`' {
                2
            } else {
                1
            };
        }
        j + 1
    };
    let skip_to = |mut j: usize, close: char| -> usize {
        while j < chars.len() && chars[j] != close {
            j = if matches!(chars[j], '"' | '\'' | '`') {
                skip_string(j)
            } else {
                j + 1
            };
        }
        j + 1
    };
    let next_char = |mut j: usize| -> Option<char> {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        chars.get(j).copied()
    };
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(i);
        } else if c == '{' {
            i = skip_to(i, '}');
        } else if c == '[' {
            i = skip_to(i, ']');
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c == '$' || c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':'))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let grouping = [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ];
            if grouping.contains(&word.as_str()) && next_char(i) == Some('(') {
                // The label list: skip it.
                let open = (i..chars.len()).find(|&j| chars[j] == '(').unwrap_or(i);
                i = skip_to(open, ')');
            } else if c != '$'
                && next_char(i) != Some('(')
                && !PROMQL_WORDS.contains(&word.as_str())
            {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_finds_the_metrics_and_nothing_else() {
    let expr = r#"sum by (job, namespace, category) (rate(codebuild_operator_reconcile_errors_total{job="a",x=~"b{c}"}[10m]))
  / ignoring (category) group_left
sum by (job) (rate(codebuild_operator_reconciles_total{job="a"}[$__rate_interval] offset 5m)) > 0.1
or absent(up{job="cbo"}) and on() histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))
unless process_open_fds / process_max_fds > bool 1e3 and sum(other:recorded) without (pod)"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(
        names,
        [
            "codebuild_operator_reconcile_errors_total",
            "codebuild_operator_reconciles_total",
            "other:recorded",
            "process_max_fds",
            "process_open_fds",
            "up",
            "x_bucket",
        ]
    );
}

// ---- what the rules and the dashboard read ------------------------------------------------------

fn helm_bin() -> PathBuf {
    let out = Command::new(repo_root().join("hack/local-cluster.sh"))
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
}

/// Every metric read by the chart's rules (as rendered), by the series of their unit tests
/// and by the dashboard, with where it is read.
fn metrics_read_by_the_chart() -> Vec<(String, String)> {
    let root = repo_root();
    let out = Command::new(helm_bin())
        .args(["template", "m", CHART, "--kube-version", "1.36.0"])
        .args(["--set", "metrics.prometheusRule.enabled=true"])
        .current_dir(root)
        .env("HELM_CACHE_HOME", root.join("target/helm/cache"))
        .env("HELM_CONFIG_HOME", root.join("target/helm/config"))
        .env("HELM_DATA_HOME", root.join("target/helm/data"))
        .output()
        .expect("helm template");
    assert!(out.status.success(), "helm template: {}", output_text(&out));
    let mut read = Vec::new();
    for doc in String::from_utf8_lossy(&out.stdout).split("\n---") {
        let Some(object) = serde_saphyr::from_str::<Option<Value>>(doc).expect("YAML") else {
            continue;
        };
        if object["kind"] != "PrometheusRule" {
            continue;
        }
        for group in object["spec"]["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                let expr = rule["expr"].as_str().unwrap();
                for name in metric_names(expr) {
                    read.push((name, format!("alert {}", rule["alert"])));
                }
            }
        }
    }
    assert!(read.len() > 8, "the rules read metrics: {read:?}");

    let tests = std::fs::read_to_string(root.join("tests/fixtures/promtool/alerts-test.yaml"))
        .expect("reading the rules' unit tests");
    let tests: Value = serde_saphyr::from_str(&tests).expect("the unit tests are YAML");
    for test in tests["tests"].as_array().unwrap() {
        for series in test["input_series"].as_array().unwrap() {
            let series = series["series"].as_str().unwrap();
            let name: String = series
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':'))
                .collect();
            read.push((name, format!("unit test {}", test["name"])));
        }
    }

    let dashboard =
        std::fs::read_to_string(root.join(CHART).join("dashboards/codebuild-operator.json"))
            .expect("reading the dashboard");
    let dashboard: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            for name in metric_names(target["expr"].as_str().unwrap()) {
                read.push((name, format!("dashboard panel {}", panel["title"])));
            }
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["definition"].as_str() {
            // label_values(metric, label)
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.split(',').next())
                .expect("a label_values() variable");
            read.push((
                inner.trim().to_owned(),
                format!("dashboard variable {}", variable["name"]),
            ));
        }
    }
    read
}

// ---- the live operator ----------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A simulator that throttles half of the BatchGetBuilds requests (the SDK retries them).
fn throttling_simulator(rt: &tokio::runtime::Runtime) -> Server {
    rt.block_on(Server::start(SimConfig {
        projects: vec![PROJECT.into()],
        time_scale: 0.1,
        seed: Some(16),
        faults: Faults {
            throttle_fraction: 0.5,
            operation: Some("BatchGetBuilds".into()),
            ..Faults::default()
        },
        ..SimConfig::default()
    }))
    .expect("starting the CodeBuild simulator")
}

/// Creates a run whose build the simulator runs as `sim` says (its `CODEBUILD_SIM_*`
/// variables, see sim/README.md).
fn create(ns: &TestNamespace, name: &str, sim: &[(&str, &str)]) {
    let vars: Vec<Value> = sim
        .iter()
        .map(|(n, v)| json!({"name": format!("CODEBUILD_SIM_{n}"), "value": v}))
        .collect();
    let spec = json!({"projectName": PROJECT, "environmentVariablesOverride": vars});
    let out = kubectl_stdin(
        &["create", "-n", ns.name(), "-f", "-"],
        &run_manifest(name, spec),
    );
    assert!(out.status.success(), "create {name}: {}", output_text(&out));
}

#[track_caller]
fn wait_condition(ns: &TestNamespace, name: &str, condition: &str) {
    kubectl_ok(&[
        "wait",
        "-n",
        ns.name(),
        &format!("--for=condition={condition}"),
        &format!("cbr/{name}"),
        "--timeout=90s",
    ]);
}

/// Waits until a scrape satisfies `done`; returns it.
#[track_caller]
fn wait_scrape(port: u16, what: &str, done: impl Fn(&str) -> bool) -> String {
    wait_for(
        what,
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            // None until the server listens.
            let m = http_get(port, "/metrics").filter(|(s, _)| *s == 200)?.1;
            done(&m).then_some(m)
        },
    )
}

/// Waits until the scrape has `series` at `expected`; returns that scrape.
#[track_caller]
fn wait_sample(port: u16, series: &str, expected: f64) -> String {
    wait_scrape(port, &format!("{series} to be {expected}"), |m| {
        sample(m, series) == Some(expected)
    })
}

#[test]
fn live_metrics_answer_operators_questions_and_cover_every_name_the_chart_reads() {
    let ns = TestNamespace::new("metrics-e2e");
    let rt = runtime();
    let sim = throttling_simulator(&rt);
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut operator =
        OperatorProcess::start(ns.name(), &sim.endpoint(), &["--metrics-address", &address]);
    before_any_run(port);

    // 11 phases of 2 s, scaled by 0.1: the build runs about 2 s.
    create(&ns, "ok", &[("PHASE_SECONDS", "2")]);
    create(
        &ns,
        "fails",
        &[("FAIL_PHASE", "BUILD"), ("STATUS", "FAILED")],
    );
    // CodeBuild refuses the StartBuild request (InvalidInputException): the run stalls.
    create(&ns, "rejected", &[("STATUS", "SOMETIMES")]);
    wait_condition(&ns, "ok", "Succeeded");
    wait_condition(&ns, "fails", "Stalled");
    wait_condition(&ns, "rejected", "Stalled");
    let after = wait_scrape(port, "runs by state to settle", |m| {
        let runs =
            |state: &str| sample(m, &format!("codebuild_operator_runs{{state=\"{state}\"}}"));
        runs("finished") == Some(2.0)
            && runs("stalled") == Some(1.0)
            && runs("running") == Some(0.0)
            && runs("starting") == Some(0.0)
            && runs("waiting_for_policy") == Some(0.0)
    });
    builds_by_status_duration_and_start_latency(&after);
    codebuild_calls_by_operation_outcome_and_region(&after, &sim);
    process_metrics_of_the_operator(&after);
    // Nothing about the runs, without per-run labels.
    for leak in [ns.name(), PROJECT, "rejected", "AKIDE2ETEST", "e2e-secret"] {
        assert!(!after.contains(leak), "metrics mention {leak:?}:\n{after}");
    }

    // Every metric the chart reads is one the operator exports.
    let exported = exported_names(&after);
    let missing: Vec<(String, String)> = metrics_read_by_the_chart()
        .into_iter()
        .filter(|(name, _)| !exported.contains(name) && !PROMETHEUS_OWN.contains(&name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "read by the chart but not exported: {missing:?}\nexported: {exported:?}"
    );
    operator.terminate();
}

/// Ready, leading, the version and the poll interval; the build series exist at 0.
fn before_any_run(port: u16) {
    let ready = wait_sample(port, "codebuild_operator_ready", 1.0);
    assert_eq!(value(&ready, "codebuild_operator_leader"), 1.0);
    let info = format!(
        "codebuild_operator_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&ready, &info), 1.0);
    let before = wait_sample(
        port,
        "codebuild_operator_tracker_poll_interval_seconds",
        0.5,
    );
    for status in ["SUCCEEDED", "FAILED", "FAULT", "TIMED_OUT", "STOPPED"] {
        let series = format!("codebuild_operator_builds_finished_total{{status=\"{status}\"}}");
        assert_eq!(
            value(&before, &series),
            0.0,
            "{status} exists from the start"
        );
    }
    assert_eq!(
        value(&before, "codebuild_operator_builds_started_total"),
        0.0
    );
    assert_eq!(
        value(&before, "codebuild_operator_runs{state=\"running\"}"),
        0.0
    );
}

/// Two builds started (the refused run never got one), one finished per status, timed.
fn builds_by_status_duration_and_start_latency(after: &str) {
    assert_eq!(value(after, "codebuild_operator_builds_started_total"), 2.0);
    for (status, n) in [("SUCCEEDED", 1.0), ("FAILED", 1.0), ("FAULT", 0.0)] {
        let finished = format!("codebuild_operator_builds_finished_total{{status=\"{status}\"}}");
        assert_eq!(value(after, &finished), n, "{status}");
        let timed =
            format!("codebuild_operator_build_duration_seconds_count{{status=\"{status}\"}}");
        assert_eq!(value(after, &timed), n, "{status} timed");
    }
    // CodeBuild's startTime to endTime: the simulator's 2.2 s (scaled), give or take.
    let ran = value(
        after,
        "codebuild_operator_build_duration_seconds_sum{status=\"SUCCEEDED\"}",
    );
    assert!((1.5..30.0).contains(&ran), "the build ran {ran}s");
    let bucket =
        "codebuild_operator_build_duration_seconds_bucket{le=\"15.0\",status=\"SUCCEEDED\"}";
    assert_eq!(value(after, bucket), 1.0);
    // Start latency: one per started build, from creation (whole seconds).
    assert_eq!(
        value(
            after,
            "codebuild_operator_build_start_latency_seconds_count"
        ),
        2.0
    );
    let waited = value(after, "codebuild_operator_build_start_latency_seconds_sum");
    assert!(
        (0.0..120.0).contains(&waited),
        "start latency sum {waited}s"
    );
}

/// CodeBuild calls by operation, outcome and Region, timed; throttled requests as the
/// simulator counted them; the refusal as a reconcile error category.
fn codebuild_calls_by_operation_outcome_and_region(after: &str, sim: &Server) {
    let calls = |labels: &str| {
        value(
            after,
            &format!("codebuild_operator_aws_calls_total{{{labels}}}"),
        )
    };
    let start = "operation=\"StartBuild\",outcome=\"success\",region=\"us-east-1\"";
    assert_eq!(calls(start), 2.0);
    let timed = format!("codebuild_operator_aws_call_duration_seconds_count{{{start}}}");
    assert_eq!(value(after, &timed), 2.0);
    assert!(calls("operation=\"StartBuild\",outcome=\"InvalidInput\",region=\"us-east-1\"") >= 1.0);
    assert!(calls("operation=\"BatchGetBuilds\",outcome=\"success\",region=\"us-east-1\"") >= 1.0);
    // The SDK retried the throttled requests (the calls succeeded); each one is counted.
    let throttled = |op: &str| {
        sample(
            after,
            &format!(
                "codebuild_operator_aws_throttled_requests_total{{operation=\"{op}\",region=\"us-east-1\"}}"
            ),
        )
    };
    let counted = throttled("BatchGetBuilds").unwrap_or(0.0);
    let sim_throttled = sim.state().counters().throttled as f64;
    assert!(counted >= 1.0, "nothing throttled:\n{after}");
    assert!(
        (counted - sim_throttled).abs() <= 1.0,
        "the operator counted {counted} throttled requests, the simulator {sim_throttled}"
    );
    assert_eq!(
        throttled("StartBuild"),
        None,
        "only BatchGetBuilds is throttled"
    );
    let refusals = "codebuild_operator_reconcile_errors_total{category=\"InvalidInput\"}";
    assert!(value(after, refusals) >= 1.0);
}

/// The `process_*` metrics describe the operator's process.
fn process_metrics_of_the_operator(after: &str) {
    let started = value(after, "process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now && started > now - 600.0,
        "started at {started}, now {now}"
    );
    assert!(value(after, "process_resident_memory_bytes") > 1e6);
    assert!(value(after, "process_open_fds") >= 3.0);
    assert!(value(after, "process_max_fds") >= value(after, "process_open_fds"));
    assert!(value(after, "process_cpu_seconds_total") > 0.0);
    assert!(value(after, "process_threads") >= 2.0);
}

#[test]
fn per_run_labels_only_when_asked_for() {
    let ns = TestNamespace::new("metrics-labels");
    let rt = runtime();
    let sim = throttling_simulator(&rt);
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut operator = OperatorProcess::start(
        ns.name(),
        &sim.endpoint(),
        &[
            "--metrics-address",
            &address,
            "--metrics-run-labels",
            "namespace,project",
        ],
    );
    wait_sample(port, "codebuild_operator_ready", 1.0);
    create(&ns, "labelled", &[]);
    wait_condition(&ns, "labelled", "Succeeded");
    let labels = format!("run_namespace=\"{}\",project=\"{PROJECT}\"", ns.name());
    let m = wait_sample(
        port,
        &format!("codebuild_operator_runs{{state=\"finished\",{labels}}}"),
        1.0,
    );
    assert_eq!(
        value(
            &m,
            &format!("codebuild_operator_builds_started_total{{{labels}}}")
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            &format!("codebuild_operator_build_start_latency_seconds_count{{{labels}}}")
        ),
        1.0
    );
    let m = wait_sample(
        port,
        &format!("codebuild_operator_builds_finished_total{{status=\"SUCCEEDED\",{labels}}}"),
        1.0,
    );
    assert_eq!(
        value(
            &m,
            &format!(
                "codebuild_operator_build_duration_seconds_count{{status=\"SUCCEEDED\",{labels}}}"
            )
        ),
        1.0
    );
    // The CodeBuild and reconcile metrics keep their fixed labels.
    assert!(
        !m.lines()
            .any(|l| l.starts_with("codebuild_operator_aws_calls_total") && l.contains("project="))
    );
    assert!(!m.contains("labelled"), "never the run's name:\n{m}");
    operator.terminate();
}
