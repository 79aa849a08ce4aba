//! The chart's alerts and dashboard (`metrics.prometheusRule`, `metrics.dashboard`):
//!
//! - every alert rule, as the chart renders it, passes `promtool check rules` and the unit
//!   tests of tests/fixtures/promtool/alerts-test.yaml (`promtool test rules`), and every
//!   alert has a case there where it fires and one where it must not;
//! - the rule values (selector, thresholds, alert labels, disabled alerts) change the rules
//!   as documented, and every variant still passes `promtool check rules`;
//! - every query of the Grafana dashboard parses (`promtool check rules` on a recording rule
//!   per query), and the ConfigMap carries the JSON unchanged with the sidecar's label;
//! - the PrometheusRule and the ConfigMap pass a server-side dry run on the local apiserver;
//! - wrong values are refused by the schema, and a `--reuse-values` upgrade from a chart
//!   without these values renders as the defaults.
//!
//! That every metric the rules and the dashboard read is one the operator exports is checked
//! against a live operator in tests/e2e_metrics.rs.
//!
//! Needs helm (`hack/local-cluster.sh bin helm`), promtool (`hack/go-tools.sh path promtool`,
//! built from the Go module proxy on first use) and, for the dry run, the local control
//! plane. Fails, never skips, when one of them is missing.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use support::{TestNamespace, kubectl_ok, kubectl_stdin, output_text, repo_root, wait_for};

const CHART: &str = "charts/codebuild-operator";
const KUBE_VERSION: &str = "1.36.0";
/// The release and namespace the unit tests' series are labelled for (alerts-test.yaml).
const RELEASE: &str = "cbo";
const NAMESPACE: &str = "ops";
const DEFAULT_SELECTOR: &str = r#"job="cbo-codebuild-operator-metrics",namespace="ops""#;
/// Every alert the chart ships.
const ALERTS: [&str; 8] = [
    "CodeBuildOperatorDown",
    "CodeBuildOperatorNotReady",
    "CodeBuildOperatorNoLeader",
    "CodeBuildOperatorReconcileErrors",
    "CodeBuildOperatorThrottled",
    "CodeBuildOperatorRunsStalled",
    "CodeBuildOperatorBuildsFailing",
    "CodeBuildOperatorTrackerSlow",
];

// ---- tools ----------------------------------------------------------------------------------

/// Runs `cmd` to the end (helm and promtool answer in seconds; a cold build of promtool by
/// hack/go-tools.sh takes minutes and prints a heartbeat).
fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn helm_bin() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let out =
            run(Command::new(repo_root().join("hack/local-cluster.sh")).args(["bin", "helm"]));
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            out.status.success() && path.is_file(),
            "no helm binary (hack/local-cluster.sh build builds it): {}",
            output_text(&out)
        );
        path
    })
}

/// promtool, built by hack/go-tools.sh when it is not cached; the test fails when it cannot
/// be built.
fn promtool() -> &'static Path {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL.get_or_init(|| {
        let out =
            run(Command::new(repo_root().join("hack/go-tools.sh")).args(["path", "promtool"]));
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            out.status.success() && path.is_file(),
            "`hack/go-tools.sh path promtool` failed ({}): it needs Go 1.26 and the Go module \
             proxy the first time.\n{}",
            out.status,
            output_text(&out)
        );
        path
    })
}

/// `promtool ARGS` in `dir`; returns its output, stdout then stderr.
#[track_caller]
fn promtool_ok(dir: &Path, args: &[&str]) -> String {
    let out = run(Command::new(promtool()).args(args).current_dir(dir));
    let text = output_text(&out);
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// `helm template` of the chart as [`RELEASE`] in [`NAMESPACE`] with `extra`.
fn template(chart: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "template",
        RELEASE,
        chart,
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ];
    args.extend_from_slice(extra);
    let root = repo_root();
    run(Command::new(helm_bin())
        .args(&args)
        .current_dir(root)
        .env("HELM_CACHE_HOME", root.join("target/helm/cache"))
        .env("HELM_CONFIG_HOME", root.join("target/helm/config"))
        .env("HELM_DATA_HOME", root.join("target/helm/data")))
}

#[track_caller]
fn render(extra: &[&str]) -> String {
    let out = template(CHART, extra);
    assert!(
        out.status.success(),
        "helm template {extra:?}:\n{}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rendered objects.
fn parse(manifests: &str) -> Vec<Value> {
    manifests
        .split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<Option<Value>>(doc).expect("YAML"))
        .collect()
}

#[track_caller]
fn the<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

/// The rules of the rendered PrometheusRule, by alert name.
fn rules_of(objects: &[Value]) -> Vec<Value> {
    the(objects, "PrometheusRule")["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn rule<'a>(rules: &'a [Value], alert: &str) -> &'a Value {
    rules
        .iter()
        .find(|r| r["alert"] == alert)
        .unwrap_or_else(|| panic!("no rule {alert}"))
}

/// A fresh directory under target/alerts.
fn scratch_dir(what: &str) -> PathBuf {
    let dir = repo_root().join(format!(
        "target/alerts/{what}-{}",
        support::random_suffix(6)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Writes the groups of the rendered PrometheusRule as a Prometheus rule file.
fn write_rule_file(objects: &[Value], path: &Path) {
    let groups = json!({"groups": the(objects, "PrometheusRule")["spec"]["groups"]});
    // JSON is YAML.
    std::fs::write(path, groups.to_string()).expect("writing the rule file");
}

// ---- the rules --------------------------------------------------------------------------------

#[test]
fn every_alert_passes_promtool_check_and_its_unit_tests() {
    let objects = parse(&render(&["--set", "metrics.prometheusRule.enabled=true"]));
    let rules = rules_of(&objects);
    let names: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(names, ALERTS, "the chart's alerts, in order");
    for r in &rules {
        let expr = r["expr"].as_str().unwrap();
        assert!(
            expr.contains(DEFAULT_SELECTOR),
            "{}: every rule selects this release's series: {expr}",
            r["alert"]
        );
        let labels = &r["labels"];
        assert!(
            ["critical", "warning"].contains(&labels["severity"].as_str().unwrap_or("")),
            "{r}"
        );
        let anchor = r["alert"].as_str().unwrap().to_lowercase();
        assert!(
            r["annotations"]["runbook_url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("docs/install.md#{anchor}")),
            "{r}"
        );
    }

    let dir = scratch_dir("unit");
    write_rule_file(&objects, &dir.join("rendered-rules.yaml"));
    let checked = promtool_ok(&dir, &["check", "rules", "rendered-rules.yaml"]);
    assert!(checked.contains("SUCCESS: 8 rules found"), "{checked}");

    let tests = repo_root().join("tests/fixtures/promtool/alerts-test.yaml");
    std::fs::copy(&tests, dir.join("alerts-test.yaml")).expect("copying the unit tests");
    let tested = promtool_ok(&dir, &["test", "rules", "alerts-test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");

    // Every alert is tested both ways: firing, and not firing.
    let tests: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&tests).unwrap()).expect("test YAML");
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .collect();
    for alert in ALERTS {
        let fires = |fires: bool| {
            cases.iter().any(|c| {
                c["alertname"] == alert
                    && c["exp_alerts"]
                        .as_array()
                        .is_some_and(|a| a.is_empty() != fires)
            })
        };
        assert!(fires(true), "{alert}: no test case where it fires");
        assert!(fires(false), "{alert}: no test case where it stays quiet");
    }
}

/// promtool must refuse the rules when they are broken: the unit test above really tests.
#[test]
fn promtool_fails_a_rule_whose_expectation_is_wrong() {
    let objects = parse(&render(&[
        "--set",
        "metrics.prometheusRule.enabled=true",
        // Twice the build failure ratio: the test case's 2/3 no longer alerts.
        // (--set passes decimals as strings, which the schema refuses: --set-json.)
        "--set-json",
        "metrics.prometheusRule.thresholds.buildFailureRatio=0.9",
    ]));
    let dir = scratch_dir("mutant");
    write_rule_file(&objects, &dir.join("rendered-rules.yaml"));
    std::fs::copy(
        repo_root().join("tests/fixtures/promtool/alerts-test.yaml"),
        dir.join("alerts-test.yaml"),
    )
    .unwrap();
    let out = run(Command::new(promtool())
        .args(["test", "rules", "alerts-test.yaml"])
        .current_dir(&dir));
    let text = output_text(&out);
    assert!(
        !out.status.success(),
        "promtool passed a wrong rule:\n{text}"
    );
    assert!(
        text.contains("CodeBuildOperatorBuildsFailing") && text.contains("FAILED"),
        "{text}"
    );
}

#[test]
fn rule_values_change_the_rules_and_every_variant_checks() {
    let objects = parse(&render(&[
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.selector=job=\"codebuild\"\\,cluster=~\"prod-.*\"",
        "--set",
        "metrics.prometheusRule.labels.release=prometheus",
        "--set",
        "metrics.prometheusRule.alertLabels.team=ci",
        // Ignored: each alert keeps its own severity.
        "--set",
        "metrics.prometheusRule.alertLabels.severity=page",
        "--set",
        "metrics.prometheusRule.disabled={CodeBuildOperatorBuildsFailing,CodeBuildOperatorNotReady}",
        "--set-json",
        "metrics.prometheusRule.thresholds.reconcileErrorRatio=0.25",
        "--set-json",
        "metrics.prometheusRule.thresholds.throttledRequestRatio=0.5",
        "--set",
        "metrics.prometheusRule.thresholds.buildFailureMinBuilds=20",
        "--set",
        "metrics.prometheusRule.thresholds.stalledRuns=3",
    ]));
    let rule_object = the(&objects, "PrometheusRule");
    assert_eq!(rule_object["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(rule_object["metadata"]["namespace"], NAMESPACE);
    let rules = rules_of(&objects);
    let names: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(!names.contains(&"CodeBuildOperatorBuildsFailing"));
    assert!(!names.contains(&"CodeBuildOperatorNotReady"));
    for r in &rules {
        assert_eq!(r["labels"]["team"], "ci", "{r}");
        assert_ne!(r["labels"]["severity"], "page", "{r}");
        let expr = r["expr"].as_str().unwrap();
        assert!(
            expr.contains(r#"job="codebuild",cluster=~"prod-.*""#),
            "{expr}"
        );
        assert!(!expr.contains("cbo-codebuild-operator"), "{expr}");
    }
    let expr = |alert: &str| rule(&rules, alert)["expr"].as_str().unwrap().to_owned();
    assert!(expr("CodeBuildOperatorReconcileErrors").ends_with("> 0.25"));
    assert!(expr("CodeBuildOperatorThrottled").ends_with("> 0.5"));
    assert!(expr("CodeBuildOperatorRunsStalled").ends_with("> 3"));
    let dir = scratch_dir("variant");
    write_rule_file(&objects, &dir.join("rules.yaml"));
    let checked = promtool_ok(&dir, &["check", "rules", "rules.yaml"]);
    assert!(checked.contains("SUCCESS: 6 rules found"), "{checked}");

    // The minimum number of builds of BuildsFailing, when it is on.
    let objects = parse(&render(&[
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.thresholds.buildFailureMinBuilds=20",
        "--set-json",
        "metrics.prometheusRule.thresholds.buildFailureRatio=0.3",
    ]));
    let failing = rule(&rules_of(&objects), "CodeBuildOperatorBuildsFailing")["expr"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(failing.contains(") > 0.3\n"), "{failing}");
    assert!(failing.ends_with(">= 20"), "{failing}");

    // Off by default: no PrometheusRule, no dashboard.
    let defaults = parse(&render(&[]));
    for kind in ["PrometheusRule", "ConfigMap"] {
        assert!(
            defaults.iter().all(|o| o["kind"] != kind),
            "a {kind} by default"
        );
    }
}

// ---- the dashboard ----------------------------------------------------------------------------

fn dashboard_file() -> String {
    std::fs::read_to_string(
        repo_root()
            .join(CHART)
            .join("dashboards/codebuild-operator.json"),
    )
    .expect("reading the dashboard")
}

/// Every query of the dashboard, with its panel's title.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL target");
            queries.push((panel["title"].as_str().unwrap().to_owned(), expr.to_owned()));
        }
    }
    queries
}

/// A query as Prometheus would see it from Grafana: the dashboard's variables replaced.
fn as_prometheus_sees_it(expr: &str) -> String {
    expr.replace("$__rate_interval", "2m").replace("$job", ".+")
}

#[test]
fn every_dashboard_query_parses_and_selects_the_job() {
    let file = dashboard_file();
    let dashboard: Value = serde_json::from_str(&file).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "codebuild-operator");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "{queries:?}");
    for (title, expr) in &queries {
        assert!(
            expr.contains(r#"job=~"$job""#),
            "{title}: every query selects the chosen job: {expr}"
        );
        if expr.contains("[") {
            assert!(expr.contains("[$__rate_interval]"), "{title}: {expr}");
        }
    }
    // The issue's panels: runs and builds, durations, start latency, CodeBuild calls and
    // throttling, reconcile errors, tracker round time, memory.
    let titles: BTreeSet<&str> = queries.iter().map(|(t, _)| t.as_str()).collect();
    for title in [
        "Runs by state",
        "Builds started and finished",
        "Build duration",
        "Start latency (creation to build id)",
        "CodeBuild calls",
        "Throttled requests",
        "Reconciles and errors",
        "Tracker round time",
        "Memory (resident)",
    ] {
        assert!(titles.contains(title), "no panel {title:?}");
    }

    // One recording rule per query: promtool parses every one.
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| json!({"record": format!("dashboard:query_{i}"), "expr": as_prometheus_sees_it(expr)}))
        .collect();
    let dir = scratch_dir("dashboard");
    std::fs::write(
        dir.join("queries.yaml"),
        json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    let checked = promtool_ok(&dir, &["check", "rules", "queries.yaml"]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{checked}"
    );
}

#[test]
fn the_dashboard_configmap_carries_the_json_with_the_sidecar_label() {
    let file = dashboard_file();
    let objects = parse(&render(&[
        "--set",
        "metrics.dashboard.enabled=true",
        "--set",
        "metrics.dashboard.annotations.grafana_folder=CI",
    ]));
    let map = the(&objects, "ConfigMap");
    assert_eq!(map["metadata"]["name"], "cbo-codebuild-operator-dashboard");
    assert_eq!(map["metadata"]["namespace"], NAMESPACE);
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(map["metadata"]["annotations"]["grafana_folder"], "CI");
    assert_eq!(
        map["data"]["codebuild-operator.json"].as_str().unwrap(),
        file.trim_end(),
        "the JSON, byte for byte (Helm templates nothing in it)"
    );

    // Another sidecar label, and the sidecar's own namespace.
    let objects = parse(&render(&[
        "--set",
        "metrics.dashboard.enabled=true",
        "--set",
        "metrics.dashboard.labels.grafana_dashboard=null",
        "--set",
        "metrics.dashboard.labels.dashboards=codebuild",
        "--set",
        "metrics.dashboard.namespace=monitoring",
    ]));
    let map = the(&objects, "ConfigMap");
    assert_eq!(map["metadata"]["namespace"], "monitoring");
    assert_eq!(map["metadata"]["labels"]["dashboards"], "codebuild");
    assert!(map["metadata"]["labels"].get("grafana_dashboard").is_none());
}

// ---- the apiserver ----------------------------------------------------------------------------

/// A PrometheusRule CRD for the dry run, written for this test: only the fields the chart
/// renders, typed as the Prometheus Operator's monitoring.coreos.com/v1 CRD types them
/// (duration patterns included), so a misspelled or mistyped field fails the strict dry run.
/// Not the Prometheus Operator's own CRD (which this repository does not vendor).
fn prometheus_rule_crd() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let duration = json!({"type": "string",
            "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"});
        let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
        let rule = json!({"type": "object", "required": ["expr"], "properties": {
            "alert": {"type": "string"},
            "record": {"type": "string"},
            "expr": {"x-kubernetes-int-or-string": true},
            "for": duration,
            "keep_firing_for": duration,
            "labels": string_map,
            "annotations": string_map,
        }});
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "prometheusrules.monitoring.coreos.com",
                         "labels": {support::NAMESPACE_LABEL.0: support::NAMESPACE_LABEL.1}},
            "spec": {
                "group": "monitoring.coreos.com",
                "scope": "Namespaced",
                "names": {"kind": "PrometheusRule", "listKind": "PrometheusRuleList",
                          "plural": "prometheusrules", "singular": "prometheusrule"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {
                    "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                        "type": "object",
                        "properties": {"groups": {"type": "array", "items": {
                            "type": "object", "required": ["name"],
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "interval": duration,
                                "rules": {"type": "array", "items": rule},
                            },
                        }}},
                    }}},
                }}],
            },
        });
        let out = kubectl_stdin(
            &["apply", "--server-side", "--force-conflicts", "--field-manager=e2e-alerts", "-f", "-"],
            &crd.to_string(),
        );
        assert!(out.status.success(), "PrometheusRule CRD: {}", output_text(&out));
        kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd/prometheusrules.monitoring.coreos.com",
            "--timeout=60s",
        ]);
    });
}

#[test]
fn the_rule_and_the_dashboard_pass_a_server_side_dry_run() {
    prometheus_rule_crd();
    let ns = TestNamespace::new("chart-alerts");
    let manifests = render(&[
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.alertLabels.team=ci",
        "--set",
        "metrics.dashboard.enabled=true",
        "--set",
        "metrics.runLabels={namespace,project}",
    ]);
    // Rendered for namespace "ops": apply into the test's namespace instead.
    let manifests = manifests.replace("namespace: ops\n", &format!("namespace: {}\n", ns.name()));
    // kubectl may need a moment to discover a kind that was just created.
    let objects = wait_for(
        "the PrometheusRule kind to be served",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let out = kubectl_stdin(
                &[
                    "apply",
                    "-n",
                    ns.name(),
                    "--dry-run=server",
                    "-o",
                    "json",
                    "-f",
                    "-",
                ],
                &manifests,
            );
            if out.status.success() {
                let list: Value = serde_json::from_slice(&out.stdout).expect("kubectl's JSON");
                return list["items"].as_array().cloned();
            }
            let text = output_text(&out);
            assert!(
                text.contains("no matches for kind"),
                "the apiserver refused the rendered chart:\n{text}"
            );
            None
        },
    );
    let rule = the(&objects, "PrometheusRule");
    assert_eq!(
        rule["spec"]["groups"][0]["rules"].as_array().map(Vec::len),
        Some(ALERTS.len())
    );
    let map = the(&objects, "ConfigMap");
    let json: Value =
        serde_json::from_str(map["data"]["codebuild-operator.json"].as_str().unwrap())
            .expect("the stored dashboard is JSON");
    assert_eq!(json["title"], "codebuild-operator");
    let deployment = the(&objects, "Deployment");
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    assert!(
        args.contains(&json!("--metrics-run-labels=namespace,project")),
        "{args:?}"
    );
    let defaults = objects_of_default_args(&render(&[]));
    assert!(
        !defaults
            .iter()
            .any(|a| a.starts_with("--metrics-run-labels")),
        "no per-run labels by default: {defaults:?}"
    );
}

fn objects_of_default_args(manifests: &str) -> Vec<String> {
    let objects = parse(manifests);
    the(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

// ---- the schema, and upgrades -----------------------------------------------------------------

#[test]
fn wrong_alert_and_dashboard_values_are_refused() {
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["--set", "metrics.runLabels={name}"],
            &["'/metrics/runLabels/0'", "value must be one of"],
        ),
        (
            &[
                "--set",
                "metrics.prometheusRule.disabled={CodeBuildOperatorNope}",
            ],
            &[
                "'/metrics/prometheusRule/disabled/0'",
                "value must be one of",
            ],
        ),
        (
            &[
                "--set",
                "metrics.prometheusRule.thresholds.reconcileErrorRatio=2",
            ],
            &[
                "'/metrics/prometheusRule/thresholds/reconcileErrorRatio'",
                "maximum",
            ],
        ),
        (
            &[
                "--set",
                "metrics.prometheusRule.thresholds.buildFailureMinBuilds=0",
            ],
            &[
                "'/metrics/prometheusRule/thresholds/buildFailureMinBuilds'",
                "minimum",
            ],
        ),
        (
            &[
                "--set-json",
                r#"metrics.prometheusRule.selector="{job=\"x\"}""#,
            ],
            &[
                "'/metrics/prometheusRule/selector'",
                "does not match pattern",
            ],
        ),
        (
            &["--set", "metrics.prometheusRule.severity=page"],
            &[
                "'/metrics/prometheusRule'",
                "additional properties 'severity' not allowed",
            ],
        ),
        (
            &["--set", "metrics.dashboard.namespace=Not_A_Namespace"],
            &["'/metrics/dashboard/namespace'", "does not match pattern"],
        ),
    ];
    for (extra, messages) in cases {
        let out = template(CHART, extra);
        let text = output_text(&out);
        assert!(!out.status.success(), "{extra:?} was accepted");
        assert!(
            text.contains("values don't meet the specifications of the schema"),
            "{extra:?}: refused by the schema, not later:\n{text}"
        );
        for message in messages {
            assert!(
                text.contains(message),
                "{extra:?}: expected {message:?} in:\n{text}"
            );
        }
    }
}

/// `helm upgrade --reuse-values` from a chart without these values keeps the old values:
/// the templates must render as if they were at their defaults (nothing), not fail.
#[test]
fn values_missing_after_a_reuse_values_upgrade_render_as_the_defaults() {
    let dir = scratch_dir("reuse");
    let copy = dir.join("codebuild-operator");
    let cp = Command::new("cp")
        .args(["-r", CHART])
        .arg(&copy)
        .current_dir(repo_root())
        .output()
        .expect("cp");
    assert!(cp.status.success(), "{}", output_text(&cp));
    let values = std::fs::read_to_string(repo_root().join(CHART).join("values.yaml")).unwrap();
    let mut values: Value = serde_saphyr::from_str(&values).expect("values.yaml parses");
    let metrics = values["metrics"].as_object_mut().expect("metrics");
    for key in ["runLabels", "prometheusRule", "dashboard"] {
        assert!(
            metrics.remove(key).is_some(),
            "values.yaml has no metrics.{key}"
        );
    }
    std::fs::write(copy.join("values.yaml"), values.to_string()).unwrap();
    let old = template(&copy.to_string_lossy(), &[]);
    assert!(old.status.success(), "{}", output_text(&old));
    assert_eq!(String::from_utf8_lossy(&old.stdout), render(&[]));
}

// ---- the PromQL name extractor of tests/e2e_metrics.rs has its own tests there. ----------------
