//! The e2e [`World`] for CodeBuildBatchRuns: create, read and wait for batch runs as a
//! user would (kubectl), and read the simulator's batches by the operator's marker.

use std::collections::BTreeMap;
use std::time::Duration;

use codebuild_operator::api::{CodeBuildBatchRun, MARKER_ENV_VAR};
use kube::api::Api;
use serde_json::{Value, json};

use super::world::{POLL, World};
use super::{API_VERSION, kubectl_ok, kubectl_stdin, output_text};

/// A role the simulator's projects name as their batch service role.
pub const BATCH_ROLE: &str = "arn:aws:iam::123456789012:role/codebuild-batch";

/// The condition `type_` of a batch run's status, if any.
pub fn batch_condition<'a>(
    run: &'a CodeBuildBatchRun,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    run.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

impl World {
    /// The batch runs of the world's namespace.
    pub fn batch_runs(&self) -> Api<CodeBuildBatchRun> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    /// Creates project `name` in the simulator with batch builds enabled.
    pub fn batch_project(&self, name: &str) {
        self.state()
            .create_project_with(
                name,
                &json!({"buildBatchConfig": {"serviceRole": BATCH_ROLE}}),
            )
            .unwrap_or_else(|e| panic!("creating batch project {name}: {e:?}"));
    }

    /// `kubectl create -f -` of a CodeBuildBatchRun; returns the object's uid.
    pub async fn create_batch(&self, name: &str, spec: Value) -> String {
        let manifest = batch_manifest(name, spec);
        let out = kubectl_stdin(&["create", "-n", self.ns(), "-f", "-"], &manifest);
        assert!(
            out.status.success(),
            "kubectl create refused:\n{manifest}\n{}",
            output_text(&out)
        );
        self.get_batch(name).await.metadata.uid.expect("uid")
    }

    /// The batch run as the apiserver has it now (panics when it does not exist).
    pub async fn get_batch(&self, name: &str) -> CodeBuildBatchRun {
        self.batch_runs()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("getting cbbr/{name}: {e}"))
    }

    /// The batch run as the apiserver has it now, if it exists.
    pub async fn get_batch_opt(&self, name: &str) -> Option<CodeBuildBatchRun> {
        self.batch_runs()
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("getting cbbr/{name}: {e}"))
    }

    /// Polls the batch run until `pred` holds; returns it then.
    pub async fn wait_batch(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&CodeBuildBatchRun) -> bool,
    ) -> CodeBuildBatchRun {
        let what = format!("cbbr/{name}: {what}");
        super::wait_for_async(&what, timeout, POLL, || async {
            self.get_batch_opt(name).await.filter(|run| pred(run))
        })
        .await
    }

    /// Waits until condition `type_` of the batch run has `status`.
    pub async fn wait_batch_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        timeout: Duration,
    ) -> CodeBuildBatchRun {
        self.wait_batch(name, &format!("{type_}={status}"), timeout, |run| {
            batch_condition(run, type_).is_some_and(|c| c.status == status)
        })
        .await
    }

    /// `kubectl patch cbbr/NAME --type=merge -p PATCH`, as a user would.
    pub fn patch_batch(&self, name: &str, patch: Value) {
        kubectl_ok(&[
            "patch",
            &format!("cbbr/{name}"),
            "-n",
            self.ns(),
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
    }

    /// The simulator's batches per object uid (from the marker variable).
    pub fn batches_per_uid(&self) -> BTreeMap<String, Vec<String>> {
        let mut per_uid: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for batch in self.state().batches() {
            let uid = batch_marker(&batch).unwrap_or("<none>").to_owned();
            per_uid
                .entry(uid)
                .or_default()
                .push(batch["id"].as_str().unwrap_or_default().to_owned());
        }
        per_uid
    }

    /// The simulator's batch `id`.
    pub fn sim_batch(&self, id: &str) -> Value {
        self.state()
            .batch(id)
            .unwrap_or_else(|| panic!("the simulator has no batch {id}"))
    }
}

/// A CodeBuildBatchRun manifest (JSON, which kubectl reads as well as YAML).
pub fn batch_manifest(name: &str, spec: Value) -> String {
    json!({
        "apiVersion": API_VERSION,
        "kind": "CodeBuildBatchRun",
        "metadata": {"name": name},
        "spec": spec,
    })
    .to_string()
}

/// The value of the operator's marker variable in a simulator BuildBatch.
pub fn batch_marker(batch: &Value) -> Option<&str> {
    batch["environment"]["environmentVariables"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == MARKER_ENV_VAR)?
        .get("value")?
        .as_str()
}
