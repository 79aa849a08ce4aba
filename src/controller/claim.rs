//! The claim: what the operator writes before StartBuild, and how it lets go (pure: these
//! functions build patches and read objects; the reconcile sends them).
//!
//! A run (of either kind: a CodeBuildBatchRun is claimed the same way before
//! StartBuildBatch) is claimed in two writes, in this order:
//! 1. its status: the start attempt (token, time, Region, policy and role) and the
//!    `Starting` conditions, carrying the `resourceVersion` the decision was made on (a
//!    conflict means someone else moved first). Status is the operator's alone (tenants get
//!    no write access to `codebuildruns/status`), so the attempt a restart reads back is
//!    one the operator wrote, and kstatus reads the run as in progress from this first
//!    write on;
//! 2. the finalizer, so a delete during the start is seen and stops the build.
//!
//! Then StartBuild, then the build id in status. The finalizer is released by a JSON patch
//! that tests its index first.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::api::{CodeBuildRun, FIELD_MANAGER, FINALIZER, START_ATTEMPT_ANNOTATION};

/// Whether the run (of either kind) carries the operator's finalizer.
pub fn has_finalizer<K: Resource>(run: &Arc<K>) -> bool {
    run.finalizers().iter().any(|f| f == FINALIZER)
}

/// The merge patch that adds the finalizer, carrying the `resourceVersion` it was decided
/// on (a conflict if the object changed). None when the run has it.
pub fn finalizer_patch<K: Resource>(run: &K) -> Option<Value> {
    if run.finalizers().iter().any(|f| f == FINALIZER) {
        return None;
    }
    let mut finalizers = run.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    Some(json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": run.resource_version()}
    }))
}

/// The JSON patch that removes the operator's finalizer, testing first that it is still at
/// the index it was read at (so a concurrent change to the list fails instead of removing
/// another controller's finalizer). None when the run does not carry it.
pub fn release_patch<K: Resource>(run: &K) -> Option<Value> {
    let index = run.finalizers().iter().position(|f| f == FINALIZER)?;
    let path = format!("/metadata/finalizers/{index}");
    Some(json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]))
}

/// A start attempt in the annotation earlier versions of the operator wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyAttempt {
    /// When a StartBuild may have been sent at the earliest: the run's creation.
    pub since: Time,
    /// The field managers that wrote the annotation (from `managedFields`), when any
    /// other than the operator did. Informational only: managedFields can be written by
    /// the same users who can write the annotation.
    pub written_by_others: Vec<String>,
}

/// The legacy start-attempt annotation of `run`, when it has one and status records no
/// attempt. It is never used for its token, Region or role (any user who can create a run
/// can write it): it only makes the operator search for a build before starting one.
pub fn legacy_attempt(run: &CodeBuildRun) -> Option<LegacyAttempt> {
    let mirrored = run
        .status
        .as_ref()
        .is_some_and(|s| s.start_attempt.is_some());
    if mirrored || !run.annotations().contains_key(START_ATTEMPT_ANNOTATION) {
        return None;
    }
    let since = run
        .metadata
        .creation_timestamp
        .clone()
        .unwrap_or(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    Some(LegacyAttempt {
        since,
        written_by_others: annotation_writers(run.metadata.managed_fields.as_deref())
            .into_iter()
            .filter(|m| m != FIELD_MANAGER)
            .collect(),
    })
}

/// The managers whose `managedFields` entries own the start-attempt annotation.
fn annotation_writers(entries: Option<&[ManagedFieldsEntry]>) -> Vec<String> {
    let key = format!("f:{START_ATTEMPT_ANNOTATION}");
    let mut writers = BTreeSet::new();
    for entry in entries.unwrap_or_default() {
        let owns = entry
            .fields_v1
            .as_ref()
            .and_then(|f| f.0.pointer("/f:metadata/f:annotations"))
            .and_then(Value::as_object)
            .is_some_and(|annotations| annotations.contains_key(&key));
        if owns {
            let manager = entry.manager.clone().unwrap_or_default();
            writers.insert(manager);
        }
    }
    writers.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(metadata: Value, status: Value) -> CodeBuildRun {
        let mut m = json!({"name": "r", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                           "creationTimestamp": "2026-12-01T10:00:00Z"});
        m.as_object_mut()
            .unwrap()
            .extend(metadata.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "codebuild.operator.dev/v1alpha1", "kind": "CodeBuildRun",
            "metadata": m, "spec": {"projectName": "p"}, "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn the_finalizer_is_added_once_with_the_resource_version() {
        let r = run(json!({"finalizers": ["other/keep"]}), Value::Null);
        let patch = finalizer_patch(&r).unwrap();
        assert_eq!(
            patch["metadata"]["finalizers"],
            json!(["other/keep", FINALIZER])
        );
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        let claimed = run(json!({"finalizers": [FINALIZER]}), Value::Null);
        assert_eq!(finalizer_patch(&claimed), None);
    }

    #[test]
    fn release_tests_the_index_it_removes() {
        let r = run(json!({"finalizers": ["a/b", FINALIZER]}), Value::Null);
        assert_eq!(
            release_patch(&r).unwrap(),
            json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
        assert_eq!(release_patch(&run(json!({}), Value::Null)), None);
    }

    fn owned_by(manager: &str) -> Value {
        json!({"manager": manager, "operation": "Update", "apiVersion": "codebuild.operator.dev/v1alpha1",
               "fieldsType": "FieldsV1",
               "fieldsV1": {"f:metadata": {"f:annotations": {
                   format!("f:{START_ATTEMPT_ANNOTATION}"): {}}}}})
    }

    #[test]
    fn a_legacy_annotation_counts_only_while_status_records_no_attempt() {
        let annotated = json!({"annotations": {START_ATTEMPT_ANNOTATION: "{}"},
                               "managedFields": [owned_by(FIELD_MANAGER)]});
        let legacy = legacy_attempt(&run(annotated.clone(), Value::Null)).unwrap();
        assert_eq!(legacy.since.0.to_string(), "2026-12-01T10:00:00Z");
        assert!(legacy.written_by_others.is_empty());
        let attempt = json!({"startAttempt": {"idempotencyToken": "t",
            "time": "2026-12-01T10:00:01Z", "region": "us-east-1"}});
        assert_eq!(legacy_attempt(&run(annotated, attempt)), None);
        assert_eq!(legacy_attempt(&run(json!({}), Value::Null)), None);
    }

    #[test]
    fn a_legacy_annotation_names_who_else_wrote_it() {
        let forged = json!({"annotations": {START_ATTEMPT_ANNOTATION: "{}"},
                            "managedFields": [owned_by("kubectl-client-side-apply"), owned_by(FIELD_MANAGER)]});
        assert_eq!(
            legacy_attempt(&run(forged, Value::Null))
                .unwrap()
                .written_by_others,
            vec!["kubectl-client-side-apply".to_owned()]
        );
    }
}
