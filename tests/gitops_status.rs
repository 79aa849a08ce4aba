//! How GitOps tools judge a CodeBuildRun at every stage of its life, computed by the tools'
//! own Go code, not by a re-implementation:
//!
//! - kstatus: `sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute` (Flux's default health
//!   check, Helm 4 `--wait`, cli-utils);
//! - Flux's CEL health checks: the `spec.healthCheckExprs` of gitops/flux/kustomization.yaml,
//!   evaluated by `github.com/fluxcd/pkg/runtime/cel` through the status reader
//!   kustomize-controller uses.
//!
//! Both run in `gitops-status` (tests/gitops-status, a Go module), built and located through
//! `hack/go-tools.sh path gitops-status` (cached under ~/.cache by a hash of its sources).
//! The fixtures in tests/fixtures/gitops-status are one run at each stage, with the
//! conditions the operator writes (checked here against src/controller/conditions.rs).
//!
//! Also a smoke test of `promtool` (`hack/go-tools.sh path promtool`).
//!
//! Needs Go 1.26 and the Go module proxy the first time (hack/go-tools.sh; .ci/run builds
//! both tools first). Fails, never skips, when a tool cannot be built.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use codebuild_operator::api::CodeBuildRun;
use codebuild_operator::controller::conditions::{Progress, conditions};
use codebuild_operator::controller::plan;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};
use support::gitops::{flux_kustomization, gitops_status, go_tool, run_tool};

fn fixtures() -> PathBuf {
    support::repo_root().join("tests/fixtures/gitops-status")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the operator has written at a stage (src/controller/conditions.rs `Progress`).
#[derive(Clone, Copy)]
enum Wrote {
    /// No status at all yet.
    Nothing,
    InProgress(&'static str, &'static str),
    Succeeded(&'static str),
    Failed(&'static str, &'static str),
}

impl Wrote {
    fn progress(self) -> Option<Progress> {
        match self {
            Wrote::Nothing => None,
            Wrote::InProgress(reason, message) => Some(Progress::InProgress {
                reason: reason.into(),
                message: message.into(),
            }),
            Wrote::Succeeded(message) => Some(Progress::Succeeded {
                message: message.into(),
            }),
            Wrote::Failed(reason, message) => Some(Progress::Failed {
                reason: reason.into(),
                message: message.into(),
            }),
        }
    }
}

/// One stage of a run, and how each tool judges it.
struct Stage {
    fixture: &'static str,
    wrote: Wrote,
    /// kstatus: status and message.
    kstatus: (&'static str, &'static str),
    /// Flux with gitops/flux/kustomization.yaml: status, and a part of its error (or "").
    flux: (&'static str, &'static str),
}

const IN_BUILD: &str = "build my-app:7d3c2b1a-4e5f-4a6b-8c7d-9e0f1a2b3c4d is in phase BUILD";
const SUCCEEDED: &str = "build my-app:7d3c2b1a-4e5f-4a6b-8c7d-9e0f1a2b3c4d succeeded";
const FAILED: &str = "build my-app:7d3c2b1a-4e5f-4a6b-8c7d-9e0f1a2b3c4d ended FAILED: BUILD \
                      FAILED: COMMAND_EXECUTION_ERROR: Error while executing command: make \
                      test. Reason: exit status 2";
const STOPPED: &str =
    "build my-app:7d3c2b1a-4e5f-4a6b-8c7d-9e0f1a2b3c4d ended STOPPED: BUILD STOPPED";
const DENIED: &str = "no CodeBuildRunPolicy lets namespace \"ci\" start project \"my-app\" in \
                      region \"us-east-1\" (policies for this namespace: team-a)";
const NOT_FOUND: &str = "starting the build: ResourceNotFoundException: Project cannot be found: \
                         arn:aws:codebuild:us-east-1:123456789012:project/my-app (retrying)";
const NOT_FOUND_STALLED: &str = "starting the build: ResourceNotFoundException: Project cannot \
                                 be found: arn:aws:codebuild:us-east-1:123456789012:project/\
                                 my-app (still failing after 15m; retrying)";
/// What Flux's CEL evaluator says of an object without `status`: CEL's has() cannot test a
/// top-level field, so every expression that reads status fails to evaluate.
const NO_STATUS: &str = "no such attribute(s): status.conditions";

const STAGES: &[Stage] = &[
    // DIFFERENT: kstatus reads an object without conditions as Current ("assumed done"), so
    // a Kustomization relying on kstatus alone passes before any build started: nothing the
    // operator writes can cover the time before its first write. The CRD defaults `status`
    // to `{}`, so Flux's CEL check reads it (`!has(status.conditions)`) as InProgress.
    Stage {
        fixture: "01-created.yaml",
        wrote: Wrote::Nothing,
        kstatus: ("Current", "Resource is current"),
        flux: ("InProgress", ""),
    },
    // The claim's first write carries the Starting conditions: in progress for both.
    Stage {
        fixture: "02-claimed.yaml",
        wrote: Wrote::InProgress("Starting", "starting a build of project my-app"),
        kstatus: ("InProgress", "starting a build of project my-app"),
        flux: ("InProgress", ""),
    },
    Stage {
        fixture: "03-starting.yaml",
        wrote: Wrote::InProgress("Starting", "starting a build of project my-app"),
        kstatus: ("InProgress", "starting a build of project my-app"),
        flux: ("InProgress", ""),
    },
    Stage {
        fixture: "04-in-progress.yaml",
        wrote: Wrote::InProgress("BUILD", IN_BUILD),
        kstatus: ("InProgress", IN_BUILD),
        flux: ("InProgress", ""),
    },
    Stage {
        fixture: "05-succeeded.yaml",
        wrote: Wrote::Succeeded(SUCCEEDED),
        kstatus: ("Current", "Resource is Ready"),
        flux: ("Current", ""),
    },
    Stage {
        fixture: "06-failed.yaml",
        wrote: Wrote::Failed("FAILED", FAILED),
        kstatus: ("Failed", FAILED),
        flux: ("Failed", ""),
    },
    // A requested stop is written as a failure (Stalled=True, reason STOPPED): both tools
    // fail the sync, which is what a GitOps pipeline waiting for the build should do.
    Stage {
        fixture: "07-stopped.yaml",
        wrote: Wrote::Failed("STOPPED", STOPPED),
        kstatus: ("Failed", STOPPED),
        flux: ("Failed", ""),
    },
    Stage {
        fixture: "08-policy-denied.yaml",
        wrote: Wrote::Failed("PolicyDenied", DENIED),
        kstatus: ("Failed", DENIED),
        flux: ("Failed", ""),
    },
    Stage {
        fixture: "09-project-not-found-retrying.yaml",
        wrote: Wrote::InProgress("ProjectNotFound", NOT_FOUND),
        kstatus: ("InProgress", NOT_FOUND),
        flux: ("InProgress", ""),
    },
    Stage {
        fixture: "10-project-not-found-stalled.yaml",
        wrote: Wrote::Failed("ProjectNotFound", NOT_FOUND_STALLED),
        kstatus: ("Failed", NOT_FOUND_STALLED),
        flux: ("Failed", ""),
    },
    // DIFFERENT in name only: kstatus has its own Terminating; Flux reads the generation the
    // deletion bumped (2, status for 1) as InProgress before any expression runs. Neither is
    // Current, so neither passes a health check while the operator stops the build.
    Stage {
        fixture: "11-deleting.yaml",
        wrote: Wrote::InProgress("BUILD", IN_BUILD),
        kstatus: ("Terminating", "Resource scheduled for deletion"),
        flux: ("InProgress", ""),
    },
    // The succeeded conditions are for generation 1: both read the run as InProgress until
    // the operator writes status for generation 2 (without that rule they would say Current).
    Stage {
        fixture: "12-generation-behind.yaml",
        wrote: Wrote::Succeeded(SUCCEEDED),
        kstatus: (
            "InProgress",
            "CodeBuildRun generation is 2, but latest observed generation is 1",
        ),
        flux: ("InProgress", ""),
    },
];

fn fixture_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(fixtures())
        .expect("reading tests/fixtures/gitops-status")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    files
}

fn fixture_paths() -> Vec<String> {
    STAGES
        .iter()
        .map(|s| fixtures().join(s.fixture).to_string_lossy().into_owned())
        .collect()
}

#[test]
fn kstatus_and_flux_cel_judge_every_stage_of_a_run_as_expected() {
    let paths = fixture_paths();
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let lines = gitops_status(&args, None);
    assert_eq!(
        lines.len(),
        STAGES.len(),
        "one line per fixture: {lines:#?}"
    );

    let mut failures = Vec::new();
    let mut table = String::from("fixture | kstatus | Flux CEL\n");
    for (stage, line) in STAGES.iter().zip(&lines) {
        assert_eq!(line["kind"], "CodeBuildRun", "{}", stage.fixture);
        let kstatus = (
            line["kstatus"]["status"].as_str().unwrap_or("?"),
            line["kstatus"]["message"].as_str().unwrap_or("?"),
        );
        let flux = &line["flux"];
        let flux_status = flux["status"].as_str().unwrap_or("?");
        let flux_error = flux["error"].as_str().unwrap_or("");
        table.push_str(&format!(
            "{} | {} | {}{}\n",
            stage.fixture,
            kstatus.0,
            flux_status,
            if flux_error.is_empty() {
                ""
            } else {
                " (error)"
            }
        ));
        if kstatus != stage.kstatus {
            failures.push(format!(
                "{}: kstatus gave {kstatus:?}, expected {:?}",
                stage.fixture, stage.kstatus
            ));
        }
        if line["kstatus"].get("error").is_some() {
            failures.push(format!(
                "{}: kstatus error {}",
                stage.fixture, line["kstatus"]
            ));
        }
        let (want_status, want_error) = stage.flux;
        let error_ok = if want_error.is_empty() {
            flux_error.is_empty()
        } else {
            flux_error.contains(want_error)
        };
        if flux_status != want_status || !error_ok {
            failures.push(format!(
                "{}: Flux gave {flux}, expected {want_status:?} with error containing {want_error:?}",
                stage.fixture
            ));
        }
        // The CodeBuildRun entry judged it, not Flux's kstatus fallback.
        assert_eq!(flux["via"], "healthCheckExprs", "{}: {flux}", stage.fixture);
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let mut covered: Vec<String> = STAGES.iter().map(|s| s.fixture.to_owned()).collect();
    covered.sort();
    assert_eq!(fixture_files(), covered, "every fixture has an expectation");
}

/// The fixtures hold what the operator writes: each status is a CodeBuildRunStatus, its four
/// conditions are exactly `conditions()` of the stage's Progress (all but
/// lastTransitionTime), and a mirrored build reads as that Progress (`plan::build_progress`).
#[test]
fn fixtures_carry_the_conditions_the_operator_writes() {
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    for stage in STAGES {
        let path = fixtures().join(stage.fixture);
        let run: CodeBuildRun = serde_saphyr::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{}: not a CodeBuildRun: {e}", path.display()));
        let Some(progress) = stage.wrote.progress() else {
            let conditions = run.status.as_ref().map(|s| s.conditions.len());
            assert!(
                conditions.unwrap_or(0) == 0,
                "{}: has conditions",
                stage.fixture
            );
            continue;
        };
        let status = run
            .status
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no status", stage.fixture));
        let expected = conditions(&progress, status.observed_generation, &[], &now);
        let shape = |c: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition| {
            (
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
                c.observed_generation,
            )
        };
        let mut got: Vec<_> = status.conditions.iter().map(shape).collect();
        let mut want: Vec<_> = expected.iter().map(shape).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{}: conditions", stage.fixture);
        if status.build.build_id.is_some() {
            assert_eq!(
                plan::build_progress(&status.build),
                progress,
                "{}: the mirrored build reads otherwise",
                stage.fixture
            );
        }
    }
}

/// `has(metadata.deletionTimestamp)` in the inProgress expression: a deleting run whose
/// status is current for its generation (so Flux's own generation rule does not decide)
/// and whose conditions say Succeeded is still not Current.
#[test]
fn flux_cel_reads_a_deleting_run_as_in_progress_even_when_its_status_is_current() {
    let mut run = yaml(&fixtures().join("05-succeeded.yaml"));
    run["metadata"]["deletionTimestamp"] = json!("2026-11-24T10:10:00Z");
    let lines = gitops_status(&[], Some(&run.to_string()));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["kstatus"]["status"], "Terminating", "{}", lines[0]);
    assert_eq!(lines[0]["flux"]["status"], "InProgress", "{}", lines[0]);
}

/// Why the CRD defaults `status` to `{}`: without any `status` (a CRD from before that
/// default), Flux's CEL check cannot evaluate at all (CEL's has() cannot test a top-level
/// field): Flux reports the run Unknown with an error and waits, instead of InProgress.
#[test]
fn flux_cel_cannot_read_a_run_without_any_status() {
    let mut run = yaml(&fixtures().join("01-created.yaml"));
    run.as_object_mut().unwrap().remove("status");
    let lines = gitops_status(&[], Some(&run.to_string()));
    assert_eq!(lines[0]["kstatus"]["status"], "Current", "{}", lines[0]);
    assert_eq!(lines[0]["flux"]["status"], "Unknown", "{}", lines[0]);
    let error = lines[0]["flux"]["error"].as_str().unwrap_or_default();
    assert!(error.contains(NO_STATUS), "{}", lines[0]);
}

/// The tool reads a List, a stream of JSON objects and YAML files alike.
#[test]
fn gitops_status_reads_a_list_a_json_stream_and_yaml_alike() {
    let paths = fixture_paths();
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let from_yaml = gitops_status(&args, None);
    let objects: Vec<Value> = STAGES
        .iter()
        .map(|s| yaml(&fixtures().join(s.fixture)))
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string();
    let stream: String = objects.iter().map(|o| format!("{o}\n")).collect();
    assert_eq!(
        gitops_status(&[], Some(&list)),
        from_yaml,
        "a List on stdin"
    );
    assert_eq!(
        gitops_status(&["-"], Some(&stream)),
        from_yaml,
        "a JSON stream"
    );
}

#[test]
fn gitops_status_refuses_a_kustomization_without_a_codebuildrun_entry() {
    let tool = go_tool("gitops-status");
    let out = run_tool(
        Command::new(&tool)
            .arg("--flux-kustomization")
            .arg(support::repo_root().join("examples/gitops/flux-kustomization.yaml")),
        Some(""),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "no kustomize.toolkit.fluxcd.io/v1 Kustomization with a healthCheckExprs entry"
        ),
        "{stderr}"
    );
}

/// The example is a Flux v1 Kustomization with the documented expression keys, and it
/// names the GitRepository of examples/gitops/flux-kustomization.yaml.
#[test]
fn flux_example_is_a_v1_kustomization_in_the_documented_form() {
    let docs: Vec<Value> = serde_saphyr::from_multiple(&read(&flux_kustomization()))
        .unwrap_or_else(|e| panic!("gitops/flux/kustomization.yaml: {e}"));
    assert_eq!(docs.len(), 1);
    let k = &docs[0];
    assert_eq!(k["apiVersion"], "kustomize.toolkit.fluxcd.io/v1");
    assert_eq!(k["kind"], "Kustomization");
    assert_eq!(
        k["spec"]["wait"], true,
        "healthCheckExprs apply to health-checked objects"
    );
    let exprs = k["spec"]["healthCheckExprs"]
        .as_array()
        .expect("healthCheckExprs");
    assert_eq!(exprs.len(), 1);
    let entry = exprs[0].as_object().expect("an entry");
    let mut keys: Vec<&str> = entry.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["apiVersion", "current", "failed", "inProgress", "kind"]
    );
    assert_eq!(entry["apiVersion"], "codebuild.operator.dev/v1alpha1");
    assert_eq!(entry["kind"], "CodeBuildRun");

    let examples: Vec<Value> = serde_saphyr::from_multiple(&read(
        &support::repo_root().join("examples/gitops/flux-kustomization.yaml"),
    ))
    .expect("examples/gitops/flux-kustomization.yaml");
    let source = &k["spec"]["sourceRef"];
    assert!(
        examples
            .iter()
            .any(|d| d["kind"] == source["kind"] && d["metadata"]["name"] == source["name"]),
        "sourceRef {source} is not in examples/gitops/flux-kustomization.yaml"
    );
    let readme = read(&support::repo_root().join("gitops/flux/README.md"));
    assert!(readme.contains("examples/gitops/flux-kustomization.yaml"));
}

#[test]
fn promtool_builds_and_checks_rules() {
    let promtool = go_tool("promtool");
    let version = run_tool(Command::new(&promtool).arg("--version"), None);
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(version.status.success(), "promtool --version: {text}");
    assert!(text.starts_with("promtool, version 3."), "{text}");

    let dir = support::repo_root().join("tests/fixtures/promtool");
    let ok = run_tool(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(dir.join("minimal-rules.yaml")),
        None,
    );
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success() && out.contains("SUCCESS: 1 rules found"),
        "promtool check rules minimal-rules.yaml ({}):\n{out}{}",
        ok.status,
        String::from_utf8_lossy(&ok.stderr)
    );

    let bad = run_tool(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(dir.join("invalid-rules.yaml")),
        None,
    );
    assert!(
        !bad.status.success(),
        "promtool accepted invalid-rules.yaml:\n{}",
        String::from_utf8_lossy(&bad.stdout)
    );
}
