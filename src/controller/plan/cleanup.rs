//! What a deleted run's cleanup does before the finalizer is released (pure).

use k8s_openapi::jiff::Timestamp;

use crate::api::{OnDelete, RunOptions, RunStatus, Started};
use crate::tracker::Observation;

/// The cleanup of a deleted run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CleanupStep {
    /// Nothing to stop (no build, a finished one, or `onDelete: LeaveRunning`): release.
    Release,
    /// StopBuild, then release.
    Stop {
        /// The build to stop.
        id: String,
    },
    /// An attempt without a build id may have started a build: find it by its marker
    /// (started at or after `since`), stop it if it runs ([`to_stop`]), then release.
    SearchThenStop {
        /// The earliest time the build may have been started.
        since: Timestamp,
    },
}

/// Decides the cleanup of a deleted run (or batch run: "build" reads "batch" throughout).
/// `legacy_since`: see `plan::start_step`.
pub fn cleanup_step<S: RunStatus>(
    status: &S,
    options: &RunOptions,
    observation: Option<&Observation<S::Started>>,
    legacy_since: Option<Timestamp>,
) -> CleanupStep {
    if options.on_delete() == OnDelete::LeaveRunning {
        return CleanupStep::Release;
    }
    if let Some(id) = status.started().started_id() {
        let running = match observation {
            Some(Observation::Build(info)) => !info.finished(),
            Some(Observation::NotFound | Observation::Invalid(_)) => false,
            None => !status.started().finished(),
        };
        return if running {
            CleanupStep::Stop { id: id.to_owned() }
        } else {
            CleanupStep::Release
        };
    }
    match status.start_attempt().map(|a| a.time.0).or(legacy_since) {
        Some(since) => CleanupStep::SearchThenStop { since },
        None => CleanupStep::Release,
    }
}

/// The build (or batch) to stop after a search: the one found, if it still runs.
pub fn to_stop<T: Started>(found: Option<&T>) -> Option<String> {
    found
        .filter(|b| !b.finished())
        .and_then(|b| b.started_id().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::StartAttempt;
    use crate::api::{BuildInfo, CodeBuildRunStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::sync::Arc;

    fn running(id: &str) -> BuildInfo {
        BuildInfo {
            build_id: Some(id.into()),
            build_status: Some("IN_PROGRESS".into()),
            ..Default::default()
        }
    }

    fn status(build: BuildInfo) -> CodeBuildRunStatus {
        CodeBuildRunStatus {
            build,
            ..Default::default()
        }
    }

    #[test]
    fn a_running_build_is_stopped_unless_left_running() {
        let s = status(running("p:1"));
        let stop = CleanupStep::Stop { id: "p:1".into() };
        assert_eq!(cleanup_step(&s, &RunOptions::default(), None, None), stop);
        let leave = RunOptions {
            on_delete: Some(OnDelete::LeaveRunning),
            ..Default::default()
        };
        assert_eq!(cleanup_step(&s, &leave, None, None), CleanupStep::Release);
    }

    #[test]
    fn the_latest_observation_decides_whether_it_still_runs() {
        let s = status(running("p:1"));
        let mut done = running("p:1");
        done.build_status = Some("SUCCEEDED".into());
        let o = Observation::Build(Arc::new(done));
        let opts = RunOptions::default();
        assert_eq!(
            cleanup_step(&s, &opts, Some(&o), None),
            CleanupStep::Release
        );
        assert_eq!(
            cleanup_step(&s, &opts, Some(&Observation::NotFound), None),
            CleanupStep::Release
        );
    }

    #[test]
    fn an_attempt_without_a_build_id_is_searched() {
        let t = Timestamp::from_second(100).unwrap();
        let s = CodeBuildRunStatus {
            start_attempt: Some(StartAttempt {
                idempotency_token: "t".into(),
                time: Time(t),
                first_time: None,
                region: "us-east-1".into(),
                role_arn: None,
                policy: None,
            }),
            ..Default::default()
        };
        let opts = RunOptions::default();
        assert_eq!(
            cleanup_step(&s, &opts, None, None),
            CleanupStep::SearchThenStop { since: t }
        );
        assert_eq!(
            cleanup_step(&CodeBuildRunStatus::default(), &opts, None, Some(t)),
            CleanupStep::SearchThenStop { since: t }
        );
        assert_eq!(
            cleanup_step(&CodeBuildRunStatus::default(), &opts, None, None),
            CleanupStep::Release
        );
        assert_eq!(to_stop(Some(&running("p:9"))), Some("p:9".into()));
        assert_eq!(to_stop::<BuildInfo>(None), None);
    }
}
