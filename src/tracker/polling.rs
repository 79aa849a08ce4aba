//! The polling set, derived from the watched runs (pure): every run with a recorded build
//! that is not final, with the target its calls go to. Nothing registers or forgets builds:
//! after a restart, a leader change or a status edit, the set is what the runs say.

use kube::runtime::reflector::ObjectRef;

use crate::api::{BuildInfo, CodeBuildRun};
use crate::codebuild::Target;

/// A build the tracker follows for a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracked {
    /// The build's id.
    pub id: String,
    /// Where and as whom it is polled.
    pub target: Target,
    /// The run to reconcile when it changes.
    pub owner: ObjectRef<CodeBuildRun>,
    /// The build as the run's status records it (the first observation: a build that has
    /// not changed since triggers nothing).
    pub recorded: BuildInfo,
}

/// Whether `id` has the form of a CodeBuild build id, `<project>:<uuid>` (a project name of
/// up to 255 letters, digits, `-` and `_`; then letters, digits and `-`). Ids of any other form
/// are never sent: BatchGetBuilds would refuse the whole call as InvalidInputException.
pub fn well_formed_build_id(id: &str) -> bool {
    let Some((project, uuid)) = id.split_once(':') else {
        return false;
    };
    let project_ok = (1..=255).contains(&project.len())
        && project.starts_with(|c: char| c.is_ascii_alphanumeric())
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let uuid_ok = (1..=64).contains(&uuid.len())
        && uuid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    project_ok && uuid_ok
}

/// The build `run` needs followed, if any.
pub fn tracked(run: &CodeBuildRun, default_region: &str) -> Option<Tracked> {
    let status = run.status.as_ref()?;
    let id = status.build.build_id.clone()?;
    if status.build.is_final() {
        return None;
    }
    Some(Tracked {
        id,
        target: Target::for_run(run, default_region),
        owner: ObjectRef::from_obj(run),
        recorded: status.build.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn run(status: Value) -> CodeBuildRun {
        serde_json::from_value(json!({
            "apiVersion": "codebuild.operator.dev/v1alpha1", "kind": "CodeBuildRun",
            "metadata": {"name": "r", "namespace": "team-a"},
            "spec": {"projectName": "p", "operator": {"region": "eu-west-1"}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_running_build_is_polled_where_its_attempt_was_made() {
        let t = tracked(
            &run(json!({"buildId": "p:1", "buildStatus": "IN_PROGRESS",
                "startAttempt": {"idempotencyToken": "t", "time": "2026-01-01T00:00:00Z",
                    "region": "eu-west-1", "roleArn": "arn:aws:iam::1:role/a"}})),
            "us-east-1",
        )
        .unwrap();
        assert_eq!(t.id, "p:1");
        assert_eq!(t.target.region, "eu-west-1");
        let role = t.target.role.unwrap();
        assert_eq!(role.role_arn, "arn:aws:iam::1:role/a");
        assert_eq!(role.namespace, "team-a");
        assert_eq!(t.owner, ObjectRef::new("r").within("team-a"));
    }

    #[test]
    fn without_an_attempt_the_runs_region_and_the_operators_identity() {
        let t = tracked(&run(json!({"buildId": "p:1"})), "us-east-1").unwrap();
        assert_eq!(t.target, Target::region("eu-west-1"));
    }

    #[test]
    fn build_ids_of_the_service_form_only() {
        for ok in ["my-app:7d3c2b1a-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "p_1:abc"] {
            assert!(well_formed_build_id(ok), "{ok}");
        }
        for bad in ["", "nocolon", ":x", "p:", "p:a b", "-p:x", "p:x:y", "p/1:x"] {
            assert!(!well_formed_build_id(bad), "{bad}");
        }
    }

    #[test]
    fn final_builds_and_runs_without_a_build_are_not_polled() {
        assert_eq!(tracked(&run(Value::Null), "us-east-1"), None);
        assert_eq!(
            tracked(&run(json!({"startAttempt": null})), "us-east-1"),
            None
        );
        assert_eq!(
            tracked(
                &run(json!({"buildId": "p:1", "buildStatus": "SUCCEEDED"})),
                "us-east-1"
            ),
            None
        );
    }
}
