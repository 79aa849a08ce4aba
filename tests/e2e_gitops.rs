//! End to end, as GitOps tools see a run: at every stage of its life, live objects from the
//! real apiserver, moved by the operator binary and the CodeBuild simulator, judged by the
//! tools' own code (kstatus from sigs.k8s.io/cli-utils, and Flux's CEL health checks with
//! gitops/flux/kustomization.yaml; see tests/support/gitops.rs). The rule: from the
//! operator's first write on, a run is never Current before its build succeeded, and a run
//! that cannot go on says so (Failed) instead of leaving the tool waiting.
//!
//! Also: the finalizer is released once nothing is left to stop, and a requested stop is a
//! Normal Event.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use codebuild_sim::{Faults, SimConfig};
use serde_json::{Value, json};
use support::gitops::judge;
use support::world::World;
use support::{ClusterObject, condition, kubectl_ok, kubectl_stdin, output_text};

const FINALIZER: &str = "codebuild.operator.dev/stop-build";
/// A finalizer of the test's own, to keep a deleted run in Terminating while it is judged.
const HOLD: &str = "e2e.codebuild.operator.dev/hold";
/// The grace period before a start that keeps failing shows as Stalled, for this test.
const STALL_AFTER: &str = "3s";

/// A world whose operator enforces a policy letting this namespace start `app` and `later`
/// (not `other`), with a short stall grace period; the operator is not running yet.
async fn world() -> (World, ClusterObject) {
    let config = SimConfig {
        phase_seconds: 0.4,
        ..SimConfig::default()
    };
    let args = ["--enforce-policies", "--stall-after", STALL_AFTER];
    let mut world = World::start_with("gitops", config, &["app"], &args).await;
    if let Some(mut operator) = world.operator.take() {
        operator.kill();
    }
    let name = format!("gitops-{}", world.ns());
    let policy = json!({
        "apiVersion": support::API_VERSION, "kind": "CodeBuildRunPolicy",
        "metadata": {"name": name},
        "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": world.ns()}},
                 "projects": ["app", "later"],
                 "overrides": {"allowed": ["environmentVariablesOverride"]}},
    });
    let out = kubectl_stdin(&["apply", "-f", "-"], &policy.to_string());
    assert!(out.status.success(), "{}", output_text(&out));
    (world, ClusterObject(format!("codebuildrunpolicy/{name}")))
}

fn spec(project: &str, env: &[(&str, &str)]) -> Value {
    let vars: Vec<Value> = env
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v}))
        .collect();
    json!({"projectName": project, "environmentVariablesOverride": vars})
}

/// kstatus and Flux on the run as the apiserver has it now.
fn judged(world: &World, name: &str) -> (String, String) {
    judge(&world.kubectl_json(name))
}

#[track_caller]
fn assert_judged(world: &World, name: &str, kstatus: &str, flux: &str) {
    let object = world.kubectl_json(name);
    let got = judge(&object);
    assert_eq!(
        (got.0.as_str(), got.1.as_str()),
        (kstatus, flux),
        "cbr/{name}: (kstatus, Flux); the object: {object:#}"
    );
}

/// Waits until the run's condition `type_` is `status` with `reason`.
async fn wait_reason(world: &World, name: &str, type_: &str, status: &str, reason: &str) {
    world
        .wait_run(
            name,
            &format!("{type_}={status} ({reason})"),
            Duration::from_secs(60),
            |run| condition(run, type_).is_some_and(|c| c.status == status && c.reason == reason),
        )
        .await;
}

/// Every version of run `name` from now until its build id is written, judged: none may be
/// Current for either tool. Returns the kstatus results seen.
fn judge_every_version_until_the_build_id(world: &World, name: &str) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_versions = BTreeSet::new();
    let mut results = BTreeSet::new();
    loop {
        let object = world.kubectl_json(name);
        let version = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if seen_versions.insert(version) && !object["status"]["conditions"].is_null() {
            let (kstatus, flux) = judge(&object);
            assert_ne!(
                kstatus, "Current",
                "kstatus read a starting run as done: {object:#}"
            );
            assert_ne!(
                flux, "Current",
                "Flux read a starting run as done: {object:#}"
            );
            results.insert(kstatus);
        }
        if object["status"]["buildId"].is_string() {
            return results;
        }
        assert!(
            Instant::now() < deadline,
            "no build id within 60 s: {object:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finalizers(world: &World, name: &str) -> Value {
    world.kubectl_json(name)["metadata"]["finalizers"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitops_tools_read_every_stage_truthfully() {
    let (mut world, _policy) = world().await;

    // Created while the operator is down: kstatus cannot tell (Current); Flux's CEL waits.
    world.create("early", spec("app", &[])).await;
    assert_judged(&world, "early", "Current", "InProgress");

    // Claimed and starting, StartBuild slow: never Current, from the first write on.
    world.state().set_faults(Faults {
        response_latency_ms: 1500,
        operation: Some("StartBuild".into()),
        ..Faults::default()
    });
    world.restart_operator(&["--enforce-policies", "--stall-after", STALL_AFTER]);
    let seen = judge_every_version_until_the_build_id(&world, "early");
    assert!(seen.contains("InProgress"), "{seen:?}");
    world.state().set_faults(Faults::default());
    world
        .wait_condition("early", "Succeeded", "True", Duration::from_secs(60))
        .await;
    assert_judged(&world, "early", "Current", "Current");
    assert_eq!(
        finalizers(&world, "early"),
        Value::Null,
        "released once final"
    );

    // In progress, then stopped on request (a Normal Event), failed.
    world
        .create(
            "stopped",
            spec("app", &[("CODEBUILD_SIM_PHASE_SECONDS", "60")]),
        )
        .await;
    world.wait_running("stopped").await;
    assert_judged(&world, "stopped", "InProgress", "InProgress");
    assert_eq!(
        finalizers(&world, "stopped"),
        json!([FINALIZER]),
        "kept while running"
    );
    world.patch("stopped", json!({"spec": {"operator": {"stop": true}}}));
    wait_reason(&world, "stopped", "Stalled", "True", "STOPPED").await;
    assert_judged(&world, "stopped", "Failed", "Failed");
    let event = world.wait_event("stopped", "Normal", "BuildStopped").await;
    assert!(
        event
            .note
            .unwrap_or_default()
            .contains("spec.operator.stop")
    );
    assert!(
        world
            .events("stopped")
            .await
            .iter()
            .all(|e| e.reason.as_deref() != Some("BuildFailed"))
    );

    // A failed build.
    world
        .create(
            "failing",
            spec("app", &[("CODEBUILD_SIM_FAIL_PHASE", "BUILD")]),
        )
        .await;
    wait_reason(&world, "failing", "Stalled", "True", "FAILED").await;
    assert_judged(&world, "failing", "Failed", "Failed");
    assert_eq!(
        finalizers(&world, "failing"),
        Value::Null,
        "released once final"
    );

    // Refused by policy: never claimed.
    world.create("refused", spec("other", &[])).await;
    wait_reason(&world, "refused", "Stalled", "True", "PolicyDenied").await;
    assert_judged(&world, "refused", "Failed", "Failed");
    assert_eq!(finalizers(&world, "refused"), Value::Null);

    // The project does not exist yet: in progress, stalled after the grace period, and in
    // progress again by itself once the project exists, then done.
    world.create("later", spec("later", &[])).await;
    wait_reason(&world, "later", "Reconciling", "True", "ProjectNotFound").await;
    assert_judged(&world, "later", "InProgress", "InProgress");
    wait_reason(&world, "later", "Stalled", "True", "ProjectNotFound").await;
    assert_judged(&world, "later", "Failed", "Failed");
    let stalled = world.get("later").await;
    let message = condition(&stalled, "Stalled").unwrap().message.clone();
    assert!(message.contains("still failing after"), "{message}");
    world
        .state()
        .create_project("later")
        .expect("creating the project");
    world
        .wait_condition("later", "Succeeded", "True", Duration::from_secs(90))
        .await;
    assert_judged(&world, "later", "Current", "Current");

    // Being deleted (held by a finalizer of the test's own once the operator let go).
    world
        .create(
            "deleting",
            spec("app", &[("CODEBUILD_SIM_PHASE_SECONDS", "60")]),
        )
        .await;
    world.wait_running("deleting").await;
    world.patch(
        "deleting",
        json!({"metadata": {"finalizers": [FINALIZER, HOLD]}}),
    );
    kubectl_ok(&["delete", "cbr/deleting", "-n", world.ns(), "--wait=false"]);
    world
        .wait_run(
            "deleting",
            "the operator to let go",
            Duration::from_secs(30),
            |run| run.metadata.finalizers.as_deref() == Some(&[HOLD.to_owned()][..]),
        )
        .await;
    let (kstatus, flux) = judged(&world, "deleting");
    assert_eq!(
        (kstatus.as_str(), flux.as_str()),
        ("Terminating", "InProgress")
    );
    world.patch("deleting", json!({"metadata": {"finalizers": null}}));
    world.wait_gone("deleting", Duration::from_secs(30)).await;
}

/// The command docs/install.md documents for releasing the finalizers of running runs when
/// the operator is gone for good (the block after `<!-- release-finalizers -->`).
fn documented_release_command() -> String {
    let doc = std::fs::read_to_string(support::repo_root().join("docs/install.md"))
        .expect("reading docs/install.md");
    let block = doc
        .split("<!-- release-finalizers -->")
        .nth(1)
        .expect("docs/install.md marks the command with <!-- release-finalizers -->");
    let command = block
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a sh block after the marker");
    command.trim().to_owned()
}

/// The operator is gone for good (stopped, its chart uninstalled): deleting its runs (as
/// deleting their namespace would; this control plane has no namespace controller to do
/// it) finishes at once for finished, refused and cancelled runs, and only runs whose build
/// still runs wait, until the documented command releases them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_operator_only_running_runs_wait_and_one_command_releases_them() {
    let (mut world, _policy) = world().await;
    world.restart_operator(&["--enforce-policies", "--stall-after", STALL_AFTER]);
    world.create("finished", spec("app", &[])).await;
    world.create("refused", spec("other", &[])).await;
    let cancelled = json!({"projectName": "app", "operator": {"stop": true}});
    world.create("cancelled", cancelled).await;
    world
        .create(
            "running",
            spec("app", &[("CODEBUILD_SIM_PHASE_SECONDS", "60")]),
        )
        .await;
    world
        .wait_condition("finished", "Succeeded", "True", Duration::from_secs(60))
        .await;
    wait_reason(&world, "refused", "Stalled", "True", "PolicyDenied").await;
    wait_reason(&world, "cancelled", "Stalled", "True", "STOPPED").await;
    world.wait_running("running").await;
    // A run Flux manages, with a TTL: Flux would recreate it after the TTL deleted it.
    let flux_run = json!({
        "apiVersion": support::API_VERSION, "kind": "CodeBuildRun",
        "metadata": {"name": "flux-ttl", "labels": {"kustomize.toolkit.fluxcd.io/name": "builds"}},
        "spec": {"projectName": "app", "operator": {"ttlSecondsAfterFinished": 3600}},
    });
    let out = kubectl_stdin(
        &["create", "-n", world.ns(), "-f", "-"],
        &flux_run.to_string(),
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let warning = world
        .wait_event("flux-ttl", "Warning", "TTLUnderGitOps")
        .await;
    assert!(
        warning.note.unwrap_or_default().contains("Flux manages it"),
        "the Event explains the recreate loop"
    );
    for name in ["finished", "flux-ttl"] {
        let done = |run: &codebuild_operator::api::CodeBuildRun| {
            run.metadata
                .finalizers
                .as_deref()
                .unwrap_or_default()
                .is_empty()
                && condition(run, "Succeeded").is_some_and(|c| c.status == "True")
        };
        let what = "Succeeded, its finalizer released";
        world
            .wait_run(name, what, Duration::from_secs(60), done)
            .await;
    }
    if let Some(mut operator) = world.operator.take() {
        operator.kill();
    }

    kubectl_ok(&["delete", "cbr", "--all", "-n", world.ns(), "--wait=false"]);
    for name in ["finished", "refused", "cancelled", "flux-ttl"] {
        world.wait_gone(name, Duration::from_secs(30)).await;
    }
    let running = world.get("running").await;
    assert!(running.metadata.deletion_timestamp.is_some());
    assert_eq!(
        running.metadata.finalizers.as_deref(),
        Some(&[FINALIZER.to_owned()][..])
    );

    // The documented command, limited to this namespace (other tests run alongside).
    let command = documented_release_command();
    assert!(command.contains("get codebuildruns -A "), "{command}");
    let scoped = command.replace(" -A ", &format!(" -n {} ", world.ns()));
    let out = std::process::Command::new("sh")
        .args(["-c", &scoped])
        .env("KUBECONFIG", support::kubeconfig())
        .output()
        .expect("running the documented command");
    assert!(out.status.success(), "{scoped}\n{}", output_text(&out));
    world.wait_gone("running", Duration::from_secs(30)).await;
}
