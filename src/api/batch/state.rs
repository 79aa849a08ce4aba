//! Where a mirrored batch stands: finished, succeeded, how many of its builds are done, how
//! many retries it went through. Pure predicates on [`BuildBatchInfo`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::super::build_state::{FINAL_BUILD_STATUSES, STOPPED, SUCCEEDED};
use super::super::started::Started;
use super::{BuildBatchInfo, BuildGroup};

/// The build group CodeBuild adds to every batch for the build that reads the batchspec.
pub const DOWNLOAD_SOURCE_GROUP: &str = "DOWNLOAD_SOURCE";

/// The phase status CodeBuild gives a batch phase that a retry ended.
pub const RETRY_PHASE_STATUS: &str = "RETRY";

/// The status of a build group's build that waits for the groups it depends on.
pub const PENDING: &str = "PENDING";

impl BuildBatchInfo {
    /// Whether CodeBuild has finished with this batch (`complete`, or a final status).
    pub fn is_finished(&self) -> bool {
        self.complete == Some(true)
            || self
                .build_batch_status
                .as_deref()
                .is_some_and(|s| FINAL_BUILD_STATUSES.contains(&s))
    }

    /// Whether the batch finished and succeeded.
    pub fn succeeded(&self) -> bool {
        self.is_finished() && self.build_batch_status.as_deref() == Some(SUCCEEDED)
    }

    /// Whether the batch ended STOPPED.
    pub fn is_stopped(&self) -> bool {
        self.build_batch_status.as_deref() == Some(STOPPED)
    }

    /// How many times the batch was retried, as its phases show it: each retry ends the
    /// phase the batch was in with phase status RETRY.
    pub fn retries_seen(&self) -> usize {
        self.phases
            .iter()
            .flatten()
            .filter(|p| p.phase_status.as_deref() == Some(RETRY_PHASE_STATUS))
            .count()
    }

    /// The build groups of the batchspec's entries (the `DOWNLOAD_SOURCE` group left out).
    pub fn entry_groups(&self) -> impl Iterator<Item = &BuildGroup> {
        self.build_groups
            .iter()
            .flatten()
            .filter(|g| g.identifier.as_deref() != Some(DOWNLOAD_SOURCE_GROUP))
    }

    /// `done/total` over the entries' groups: a group is done when its current build ended.
    /// None before the batchspec was read (no entry yet).
    pub fn builds_done(&self) -> Option<String> {
        let total = self.entry_groups().count();
        if total == 0 {
            return None;
        }
        let done = self.entry_groups().filter(|g| g.ended()).count();
        Some(format!("{done}/{total}"))
    }
}

impl BuildGroup {
    /// The status of the group's current build, if it has one.
    pub fn status(&self) -> Option<&str> {
        self.current_build_summary.as_ref()?.build_status.as_deref()
    }

    /// Whether the group's current build ended (a group that never ran because a
    /// dependency failed ends STOPPED).
    pub fn ended(&self) -> bool {
        self.status()
            .is_some_and(|s| FINAL_BUILD_STATUSES.contains(&s))
    }

    /// Whether the group ended without success and the batch does not ignore it.
    pub fn failed_the_batch(&self) -> bool {
        self.ended() && self.status() != Some(SUCCEEDED) && self.ignore_failure != Some(true)
    }
}

impl Started for BuildBatchInfo {
    fn started_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    fn finished(&self) -> bool {
        self.is_finished()
    }

    /// A batch has no automatic retries: finished is done (a retry the user asks for
    /// makes it run again, and the run follows it again).
    fn done(&self) -> bool {
        self.is_finished()
    }

    fn ended_at(&self) -> Option<&Time> {
        self.end_time.as_ref()
    }
}

/// A batch `p:b` with `status` in `phase`, and groups `(identifier, status, ignore_failure)`,
/// as the tests of the crate use it.
#[cfg(test)]
pub(crate) fn sample_batch(
    status: &str,
    phase: &str,
    groups: &[(&str, &str, bool)],
) -> BuildBatchInfo {
    use super::BuildSummary;
    BuildBatchInfo {
        id: Some("p:b".into()),
        build_batch_status: Some(status.into()),
        current_phase: Some(phase.into()),
        complete: Some(status != "IN_PROGRESS"),
        build_groups: Some(
            groups
                .iter()
                .enumerate()
                .map(|(i, (id, s, ignore))| BuildGroup {
                    identifier: Some((*id).into()),
                    ignore_failure: Some(*ignore),
                    current_build_summary: Some(BuildSummary {
                        build_id: Some(format!("p:{i}")),
                        build_status: Some((*s).into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BuildBatchPhase;

    #[test]
    fn builds_done_leaves_out_the_download_source_group() {
        let b = sample_batch(
            "IN_PROGRESS",
            "IN_PROGRESS",
            &[
                ("DOWNLOAD_SOURCE", "SUCCEEDED", false),
                ("a", "SUCCEEDED", false),
                ("b", "IN_PROGRESS", false),
                ("c", "PENDING", false),
                ("d", "FAILED", true),
            ],
        );
        assert_eq!(b.builds_done().as_deref(), Some("2/4"));
        assert!(!b.is_finished());
        let failing: Vec<_> = b.entry_groups().filter(|g| g.failed_the_batch()).collect();
        assert!(failing.is_empty(), "d ignores its failure");
        assert_eq!(
            sample_batch("IN_PROGRESS", "SUBMITTED", &[]).builds_done(),
            None
        );
    }

    #[test]
    fn retries_are_counted_from_the_phases() {
        let mut b = sample_batch("IN_PROGRESS", "SUBMITTED", &[]);
        let phase = |s: &str| BuildBatchPhase {
            phase_type: Some("FAILED".into()),
            phase_status: Some(s.into()),
            ..Default::default()
        };
        b.phases = Some(vec![phase("RETRY"), phase("SUCCEEDED"), phase("RETRY")]);
        assert_eq!(b.retries_seen(), 2);
    }

    #[test]
    fn final_status_is_finished_without_complete() {
        let mut b = sample_batch("SUCCEEDED", "SUCCEEDED", &[]);
        b.complete = None;
        assert!(b.is_finished() && b.succeeded() && b.done());
        assert!(sample_batch("STOPPED", "STOPPED", &[]).is_stopped());
    }
}
