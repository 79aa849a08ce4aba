//! The claim: the one metadata write that makes a run the operator's before StartBuild.
//!
//! A run is claimed with a single merge patch that adds the finalizer (so a delete during
//! the start is seen) and the start attempt as the annotation [`START_ATTEMPT_ANNOTATION`]
//! (token, time, Region, role: what a restart needs to avoid a second build). The patch
//! carries the `resourceVersion` the decision was made on, so it fails with a conflict if
//! the object changed in between. `status.startAttempt` mirrors the annotation once the
//! status is written; the annotation is read first because it is written first.
//!
//! Pure: these functions build patches and read objects; the reconcile sends them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::api::{CodeBuildRun, FINALIZER, START_ATTEMPT_ANNOTATION, StartAttempt};

/// Whether the run carries the operator's finalizer.
pub fn has_finalizer(run: &CodeBuildRun) -> bool {
    run.finalizers().iter().any(|f| f == FINALIZER)
}

/// The start attempt recorded for the run: the annotation (written before StartBuild),
/// else `status.startAttempt` (its mirror, and where runs claimed before the annotation
/// existed keep it).
///
/// An annotation that no longer parses (edited by hand) still means a StartBuild may have
/// been sent: it reads as an attempt with the run's own token (`fallback_token`) and Region
/// (`fallback_region`) at the run's creation, so the start goes on with the same token inside
/// the token's window and searches before starting past it, never straight to a second
/// build. (The role such an attempt was made with is then only known from the status mirror.)
pub fn recorded_attempt(
    run: &CodeBuildRun,
    fallback_token: &str,
    fallback_region: &str,
) -> Option<StartAttempt> {
    let mirror = run.status.as_ref().and_then(|s| s.start_attempt.clone());
    let Some(raw) = run.annotations().get(START_ATTEMPT_ANNOTATION) else {
        return mirror;
    };
    serde_json::from_str(raw).ok().or_else(|| {
        let (region, role_arn, policy) = match mirror {
            Some(a) => (a.region, a.role_arn, a.policy),
            None => (fallback_region.to_owned(), None, None),
        };
        Some(StartAttempt {
            idempotency_token: fallback_token.to_owned(),
            time: run
                .metadata
                .creation_timestamp
                .clone()
                .unwrap_or(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
            region,
            role_arn,
            policy,
        })
    })
}

/// The merge patch that claims `run`: the finalizer when it is missing, the attempt when
/// one is given, and the `resourceVersion` it was decided on (a conflict if it changed).
/// None when there is nothing to write.
pub fn claim_patch(run: &CodeBuildRun, attempt: Option<&StartAttempt>) -> Option<Value> {
    let mut metadata = serde_json::Map::new();
    if !has_finalizer(run) {
        let mut finalizers = run.finalizers().to_vec();
        finalizers.push(FINALIZER.to_owned());
        metadata.insert("finalizers".into(), json!(finalizers));
    }
    if let Some(attempt) = attempt {
        let value = serde_json::to_string(attempt).expect("a StartAttempt serializes");
        metadata.insert(
            "annotations".into(),
            json!({ START_ATTEMPT_ANNOTATION: value }),
        );
    }
    if metadata.is_empty() {
        return None;
    }
    metadata.insert("resourceVersion".into(), json!(run.resource_version()));
    Some(json!({ "metadata": metadata }))
}

/// The JSON patch that removes the operator's finalizer, testing first that it is still at
/// the index it was read at (so a concurrent change to the list fails instead of removing
/// another controller's finalizer). None when the run does not carry it.
pub fn release_patch(run: &CodeBuildRun) -> Option<Value> {
    let index = run.finalizers().iter().position(|f| f == FINALIZER)?;
    let path = format!("/metadata/finalizers/{index}");
    Some(json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]))
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

    fn attempt(token: &str, time: &str) -> StartAttempt {
        serde_json::from_value(
            json!({"idempotencyToken": token, "time": time, "region": "eu-west-1"}),
        )
        .unwrap()
    }

    #[test]
    fn a_new_run_is_claimed_with_finalizer_attempt_and_its_resource_version() {
        let r = run(json!({"finalizers": ["other/keep"]}), Value::Null);
        let a = attempt("tok", "2026-12-01T10:00:01Z");
        let patch = claim_patch(&r, Some(&a)).unwrap();
        assert_eq!(
            patch["metadata"]["finalizers"],
            json!(["other/keep", FINALIZER])
        );
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        let recorded: StartAttempt = serde_json::from_str(
            patch["metadata"]["annotations"][START_ATTEMPT_ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(recorded, a);
    }

    #[test]
    fn a_claimed_run_gets_only_what_it_lacks() {
        let r = run(json!({"finalizers": [FINALIZER]}), Value::Null);
        assert_eq!(claim_patch(&r, None), None);
        let a = attempt("tok", "2026-12-01T10:00:01Z");
        let patch = claim_patch(&r, Some(&a)).unwrap();
        assert!(patch["metadata"].get("finalizers").is_none(), "{patch}");
        let r = run(json!({}), Value::Null);
        let patch = claim_patch(&r, None).unwrap();
        assert_eq!(patch["metadata"]["finalizers"], json!([FINALIZER]));
        assert!(patch["metadata"].get("annotations").is_none(), "{patch}");
    }

    #[test]
    fn the_annotation_is_read_before_the_status_mirror() {
        let newer = attempt("tok", "2026-12-01T10:09:00Z");
        let older = json!({"startAttempt": {"idempotencyToken": "tok", "time": "2026-12-01T10:00:01Z", "region": "eu-west-1"}});
        let annotated = json!({"annotations": {
            START_ATTEMPT_ANNOTATION: serde_json::to_string(&newer).unwrap()}});
        assert_eq!(
            recorded_attempt(&run(annotated, older.clone()), "x", "us-east-1"),
            Some(newer)
        );
        assert_eq!(
            recorded_attempt(&run(json!({}), older), "x", "us-east-1"),
            Some(attempt("tok", "2026-12-01T10:00:01Z"))
        );
        assert_eq!(
            recorded_attempt(&run(json!({}), Value::Null), "x", "us-east-1"),
            None
        );
    }

    #[test]
    fn an_unreadable_annotation_still_counts_as_an_attempt_since_creation() {
        let r = run(
            json!({"annotations": {START_ATTEMPT_ANNOTATION: "edited by hand"}}),
            Value::Null,
        );
        let a = recorded_attempt(&r, "codebuild-operator-u", "us-east-1").unwrap();
        assert_eq!(a.idempotency_token, "codebuild-operator-u");
        assert_eq!(a.region, "us-east-1");
        assert_eq!(a.time.0.to_string(), "2026-12-01T10:00:00Z");
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
}
