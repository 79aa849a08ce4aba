//! One test's world for the end-to-end tests: a namespace of its own, the CodeBuild
//! simulator in-process, the operator binary watching the namespace, and the typed API of
//! its runs, with the waits and readers the tests share.

use std::collections::BTreeMap;
use std::time::Duration;

use codebuild_operator::api::{BuildInfo, CodeBuildRun, MARKER_ENV_VAR};
use codebuild_sim::{Server, SimConfig, SimState};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use super::{
    API_VERSION, OperatorProcess, TestNamespace, condition, kubectl, kubectl_ok, kubectl_stdin,
    output_text,
};

/// How often the world polls the apiserver.
pub const POLL: Duration = Duration::from_millis(250);

/// One test's world. Field order is drop order: the operator is killed first (printing its
/// log when the test fails), the namespace is cleaned up last (dumping runs and Events).
pub struct World {
    /// Kept alive for the test; killed first on drop.
    pub operator: Option<OperatorProcess>,
    pub sim: Server,
    pub runs: Api<CodeBuildRun>,
    pub client: kube::Client,
    pub ns: TestNamespace,
}

/// A simulator whose builds take 10 x 0.25 s; the time scale stays 1 so that the token
/// window (5 minutes) agrees with the operator's.
pub fn fast_sim() -> SimConfig {
    SimConfig {
        phase_seconds: 0.25,
        ..Default::default()
    }
}

impl World {
    /// A world in a new namespace `prefix-xxxxxx`, with a fast simulator holding `projects`
    /// and an operator watching the namespace.
    pub async fn start(prefix: &str, projects: &[&str]) -> World {
        World::start_with(prefix, fast_sim(), projects, &[]).await
    }

    /// A world with the simulator `config` and the operator's `extra_args`.
    pub async fn start_with(
        prefix: &str,
        config: SimConfig,
        projects: &[&str],
        extra_args: &[&str],
    ) -> World {
        let ns = TestNamespace::new(prefix);
        let sim = Server::start(config)
            .await
            .expect("starting the CodeBuild simulator");
        for project in projects {
            sim.state()
                .create_project(project)
                .unwrap_or_else(|e| panic!("creating project {project} in the simulator: {e:?}"));
        }
        let op = OperatorProcess::start(ns.name(), &sim.endpoint(), extra_args);
        let client = super::client().await;
        let runs = Api::namespaced(client.clone(), ns.name());
        World {
            operator: Some(op),
            sim,
            runs,
            client,
            ns,
        }
    }

    /// The world's namespace.
    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    /// The simulator's state.
    pub fn state(&self) -> &SimState {
        self.sim.state()
    }

    /// `kubectl create -f -` of a CodeBuildRun, as a user would; returns the object's uid.
    pub async fn create(&self, name: &str, spec: Value) -> String {
        let manifest = json!({
            "apiVersion": API_VERSION,
            "kind": "CodeBuildRun",
            "metadata": {"name": name},
            "spec": spec,
        })
        .to_string();
        let out = kubectl_stdin(&["create", "-n", self.ns(), "-f", "-"], &manifest);
        assert!(
            out.status.success(),
            "kubectl create refused:\n{manifest}\n{}",
            output_text(&out)
        );
        self.get(name).await.metadata.uid.expect("uid")
    }

    /// The run as the apiserver has it now (panics when it does not exist).
    pub async fn get(&self, name: &str) -> CodeBuildRun {
        self.runs
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("getting cbr/{name}: {e}"))
    }

    /// The run as the apiserver has it now, if it exists.
    pub async fn get_opt(&self, name: &str) -> Option<CodeBuildRun> {
        self.runs
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("getting cbr/{name}: {e}"))
    }

    /// Polls the run until `pred` holds; returns it then.
    pub async fn wait_run(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&CodeBuildRun) -> bool,
    ) -> CodeBuildRun {
        let what = format!("cbr/{name}: {what}");
        super::wait_for_async(&what, timeout, POLL, || async {
            self.get_opt(name).await.filter(|run| pred(run))
        })
        .await
    }

    /// Waits until condition `type_` has `status`.
    pub async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        timeout: Duration,
    ) -> CodeBuildRun {
        self.wait_run(name, &format!("{type_}={status}"), timeout, |run| {
            condition(run, type_).is_some_and(|c| c.status == status)
        })
        .await
    }

    /// Waits until the run has a build that CodeBuild reports IN_PROGRESS.
    pub async fn wait_running(&self, name: &str) -> CodeBuildRun {
        self.wait_run(
            name,
            "a build id and buildStatus IN_PROGRESS",
            Duration::from_secs(30),
            |run| {
                let b = build(run);
                b.build_id.is_some() && b.build_status.as_deref() == Some("IN_PROGRESS")
            },
        )
        .await
    }

    /// Waits until the object is gone from the apiserver.
    pub async fn wait_gone(&self, name: &str, timeout: Duration) {
        super::wait_for_async(
            &format!("cbr/{name} to be deleted"),
            timeout,
            POLL,
            || async { self.get_opt(name).await.is_none().then_some(()) },
        )
        .await
    }

    /// `kubectl get cbr/NAME -o json`.
    pub fn kubectl_json(&self, name: &str) -> Value {
        let text = kubectl_ok(&["get", &format!("cbr/{name}"), "-n", self.ns(), "-o", "json"]);
        serde_json::from_str(&text).expect("kubectl -o json")
    }

    /// `kubectl wait --for=condition=TYPE cbr/NAME --timeout=60s`; panics unless it exits 0.
    pub fn kubectl_wait(&self, name: &str, type_: &str) {
        let args = [
            "wait",
            &format!("--for=condition={type_}"),
            &format!("cbr/{name}"),
            "-n",
            self.ns(),
            "--timeout=60s",
        ];
        let out = kubectl(&args);
        assert!(
            out.status.success(),
            "`kubectl {}` exited {}:\n{}",
            args.join(" "),
            out.status,
            output_text(&out)
        );
    }

    /// `kubectl patch cbr/NAME --type=merge -p PATCH`, as a user would.
    pub fn patch(&self, name: &str, patch: Value) {
        kubectl_ok(&[
            "patch",
            &format!("cbr/{name}"),
            "-n",
            self.ns(),
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
    }

    /// The Events (events.k8s.io/v1) about the object called `name`.
    pub async fn events(&self, name: &str) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), self.ns());
        events
            .list(&ListParams::default())
            .await
            .expect("listing Events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding
                    .as_ref()
                    .and_then(|r| r.name.as_deref())
                    .is_some_and(|n| n == name)
            })
            .collect()
    }

    /// Waits for an Event of `type_` (Normal / Warning) and `reason` about `name`.
    pub async fn wait_event(&self, name: &str, type_: &str, reason: &str) -> Event {
        super::wait_for_async(
            &format!("a {type_} Event {reason} about cbr/{name}"),
            Duration::from_secs(20),
            POLL,
            || async {
                self.events(name).await.into_iter().find(|e| {
                    e.type_.as_deref() == Some(type_) && e.reason.as_deref() == Some(reason)
                })
            },
        )
        .await
    }

    /// The simulator's builds started for the object with `uid` (its marker variable).
    pub fn sim_builds_of(&self, uid: &str) -> Vec<Value> {
        self.state()
            .builds()
            .into_iter()
            .filter(|b| marker_of(b) == Some(uid))
            .collect()
    }

    /// The simulator's build `id`.
    pub fn sim_build(&self, id: &str) -> Value {
        self.state()
            .build(id)
            .unwrap_or_else(|| panic!("the simulator has no build {id}"))
    }

    /// How often the simulator was called with `operation`.
    pub fn calls(&self, operation: &str) -> u64 {
        self.state()
            .counters()
            .calls
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// The simulator's builds per run uid (from the marker variable).
    pub fn builds_per_uid(&self) -> BTreeMap<String, Vec<String>> {
        builds_per_uid(self.state())
    }

    /// Whether run `name` exists and its build succeeded.
    pub async fn succeeded(&self, name: &str) -> bool {
        self.get_opt(name)
            .await
            .is_some_and(|run| condition(&run, "Succeeded").is_some_and(|c| c.status == "True"))
    }

    /// Replaces the operator (killed first, if it runs) with a new one started with
    /// `extra_args`.
    pub fn restart_operator(&mut self, extra_args: &[&str]) {
        if let Some(mut old) = self.operator.take() {
            old.kill();
        }
        self.operator = Some(OperatorProcess::start(
            self.ns(),
            &self.sim.endpoint(),
            extra_args,
        ));
    }
}

/// The builds of `state` per run uid (from the marker variable).
pub fn builds_per_uid(state: &SimState) -> BTreeMap<String, Vec<String>> {
    let mut per_uid: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for build in state.builds() {
        let uid = marker_of(&build).unwrap_or("<none>").to_owned();
        per_uid
            .entry(uid)
            .or_default()
            .push(build["id"].as_str().unwrap_or_default().to_owned());
    }
    per_uid
}

/// The build a run's status records.
pub fn build(run: &CodeBuildRun) -> BuildInfo {
    run.status.clone().unwrap_or_default().build
}

/// The value of the operator's marker variable in a simulator Build.
pub fn marker_of(build: &Value) -> Option<&str> {
    build["environment"]["environmentVariables"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == MARKER_ENV_VAR)?
        .get("value")?
        .as_str()
}
