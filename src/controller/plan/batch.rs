//! How a batch run with a batch id follows its batch (pure): mirror the tracker's
//! observation (every build group with its current build), honour a stop request, retry
//! the batch as `spec.operator.retry` asks ([`super::retry`]), and apply
//! `ttlSecondsAfterFinished` once the batch is final; and how a batch reads as conditions.

use k8s_openapi::jiff::Timestamp;

use super::super::conditions::Progress;
use super::follow::{EventSettings, Next};
use super::retry::{self, RetryStep};
use super::start::StartTiming;
use super::{Note, ttl};
use crate::api::names::{action, reason};
use crate::api::{
    BatchRunOptions, BuildBatchInfo, BuildBatchPhase, CodeBuildBatchRunStatus, RETRY_PHASE_STATUS,
    RetryAttempt, Started,
};
use crate::tracker::Observation;

/// The next step of a batch run that has a batch id.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchFollowStep {
    /// `spec.operator.stop` on a running batch: StopBuildBatch, then mirror its answer.
    Stop {
        /// The batch to stop.
        id: String,
    },
    /// CodeBuild does not know the batch (a failure: see `Error::BatchNotFound`).
    NotFound {
        /// The batch CodeBuild does not know.
        id: String,
    },
    /// The recorded batch id is not one CodeBuild can look up.
    Invalid {
        /// The id.
        id: String,
        /// Why CodeBuild cannot look it up.
        why: String,
    },
    /// A retry to make, repeat, wait for or check ([`RetryStep`], never `Idle` or `Took`).
    Retry(RetryStep),
    /// Write `status` when it differs from the current one (a no-op otherwise).
    Mirror(BatchMirror),
}

/// A status to write, and what follows.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchMirror {
    /// The next status.
    pub status: Box<CodeBuildBatchRunStatus>,
    /// How its conditions read.
    pub progress: Progress,
    /// Events to publish when the write changed something.
    pub notes: Vec<Note>,
    /// Whether the finalizer can go: the batch is final, nothing is left to stop.
    pub release: bool,
    /// What to do after the write.
    pub next: Next,
}

/// Decides how a batch run whose status records `status.id` follows it, given the tracker's
/// latest `observation` of that batch (None: not polled, as a final batch is not; what
/// status records is then the latest word). `token` is the run's StartBuildBatch token.
pub fn batch_follow_step(
    status: &CodeBuildBatchRunStatus,
    options: &BatchRunOptions,
    observation: Option<&Observation<BuildBatchInfo>>,
    token: &str,
    now: Timestamp,
    timing: &StartTiming,
    events: EventSettings,
) -> BatchFollowStep {
    let id = status.batch.id.clone().unwrap_or_default();
    let info = match observation {
        None => status.batch.clone(),
        Some(Observation::NotFound) => return BatchFollowStep::NotFound { id },
        Some(Observation::Invalid(why)) => {
            return BatchFollowStep::Invalid {
                id,
                why: why.clone(),
            };
        }
        Some(Observation::Build(info)) => info.as_ref().clone(),
    };
    if options.run_options().stop_requested() && !info.is_finished() {
        return BatchFollowStep::Stop { id };
    }
    let attempts = status.retry_attempts.as_deref().unwrap_or_default();
    let mut next = status.clone();
    match retry::retry_step(options, attempts, &info, token, now, timing) {
        RetryStep::Idle => {}
        RetryStep::Took(settled) => settle(&mut next, settled),
        other => return BatchFollowStep::Retry(other),
    }
    BatchFollowStep::Mirror(mirror(&next, &info, options, now, events))
}

/// Records `settled` in place of the attempt of the same count.
pub fn settle(status: &mut CodeBuildBatchRunStatus, settled: RetryAttempt) {
    let attempts = status.retry_attempts.get_or_insert_with(Vec::new);
    match attempts.iter_mut().find(|a| a.count == settled.count) {
        Some(a) => *a = settled,
        None => attempts.push(settled),
    }
}

/// `status` with its batch replaced by `info`, and the Events of what changed.
pub fn mirror(
    status: &CodeBuildBatchRunStatus,
    info: &BuildBatchInfo,
    options: &BatchRunOptions,
    now: Timestamp,
    events: EventSettings,
) -> BatchMirror {
    let run_options = options.run_options();
    let progress = batch_progress(info);
    let notes = announce(
        &status.batch,
        info,
        &progress,
        run_options.stop_requested(),
        events,
    );
    let mut next = status.clone();
    next.batch = info.clone();
    BatchMirror {
        status: Box::new(next),
        progress,
        notes,
        release: info.done(),
        next: ttl::after(info, &run_options, now),
    }
}

/// Events for what changed between two observations of the batch. A batch stopped because
/// `spec.operator.stop` asked for it is a Normal Event; any other end but success a Warning.
fn announce(
    before: &BuildBatchInfo,
    after: &BuildBatchInfo,
    progress: &Progress,
    stop_requested: bool,
    events: EventSettings,
) -> Vec<Note> {
    let id = after.id.as_deref().unwrap_or("?");
    let mut notes = Vec::new();
    if events.phases && after.current_phase.is_some() && after.current_phase != before.current_phase
    {
        let phase = after.current_phase.as_deref().unwrap_or("?");
        notes.push(Note::normal(
            reason::PHASE_CHANGED,
            phase,
            format!("build batch {id} entered phase {phase}"),
        ));
    }
    if after.done() && !before.done() {
        let message = progress.message().to_owned();
        let action = action::BATCH_GET_BUILD_BATCHES;
        notes.push(match progress {
            Progress::Succeeded { .. } => {
                Note::normal(reason::BUILD_BATCH_SUCCEEDED, action, message)
            }
            _ if after.is_stopped() && stop_requested => Note::normal(
                reason::BUILD_BATCH_STOPPED,
                action,
                format!("{message}, as spec.operator.stop asked"),
            ),
            _ => Note::warning(reason::BUILD_BATCH_FAILED, action, message),
        });
    }
    notes
}

/// The conditions' view of `batch`: succeeded, failed (reason: the batch status; message:
/// the groups that failed it and the failing phases' contexts), or in a phase with its
/// builds done so far.
pub fn batch_progress(batch: &BuildBatchInfo) -> Progress {
    let id = batch.id.as_deref().unwrap_or("?");
    let builds = batch
        .builds
        .as_deref()
        .map(|b| format!(", {b} builds done"))
        .unwrap_or_default();
    if batch.is_finished() {
        if batch.succeeded() {
            let ignored = group_failures(batch, true);
            let ignored = if ignored.is_empty() {
                String::new()
            } else {
                format!("; failures ignored: {}", ignored.join("; "))
            };
            return Progress::Succeeded {
                message: format!("build batch {id} succeeded{builds}{ignored}"),
            };
        }
        let status = batch
            .build_batch_status
            .as_deref()
            .unwrap_or(reason::UNKNOWN);
        return Progress::Failed {
            reason: status.to_owned(),
            message: batch_failure_message(batch),
        };
    }
    let phase = batch.current_phase.as_deref().unwrap_or("SUBMITTED");
    Progress::InProgress {
        reason: phase.to_owned(),
        message: format!("build batch {id} is in phase {phase}{builds}"),
    }
}

/// Why a batch failed: the build groups that failed it (their build and its status), then
/// the phases of its last run that did not succeed, with their contexts.
pub fn batch_failure_message(batch: &BuildBatchInfo) -> String {
    let id = batch.id.as_deref().unwrap_or("?");
    let status = batch
        .build_batch_status
        .as_deref()
        .unwrap_or(reason::UNKNOWN);
    let mut parts = group_failures(batch, false);
    parts.extend(last_run(batch).iter().filter_map(phase_failure));
    if parts.is_empty() {
        format!("build batch {id} ended {status}")
    } else {
        format!("build batch {id} ended {status}: {}", parts.join("; "))
    }
}

/// The groups whose current build ended without success, the ignored ones or the others,
/// as `group <identifier> <status> (build <id>)`.
fn group_failures(batch: &BuildBatchInfo, ignored: bool) -> Vec<String> {
    batch
        .build_groups
        .iter()
        .flatten()
        .filter(|g| {
            if ignored {
                g.ended() && g.status() != Some("SUCCEEDED") && g.ignore_failure == Some(true)
            } else {
                g.failed_the_batch()
            }
        })
        .map(|g| {
            let name = g.identifier.as_deref().unwrap_or("?");
            let status = g.status().unwrap_or(reason::UNKNOWN);
            match g
                .current_build_summary
                .as_ref()
                .and_then(|s| s.build_id.as_deref())
            {
                Some(build) => format!("group {name} {status} (build {build})"),
                None => format!("group {name} {status}"),
            }
        })
        .collect()
}

/// The phases after the last retry (all of them when there was none).
fn last_run(batch: &BuildBatchInfo) -> &[BuildBatchPhase] {
    let phases = batch.phases.as_deref().unwrap_or_default();
    match phases
        .iter()
        .rposition(|p| p.phase_status.as_deref() == Some(RETRY_PHASE_STATUS))
    {
        Some(i) => &phases[i + 1..],
        None => phases,
    }
}

/// `PHASE STATUS: CODE: message` for a phase that ended without success.
fn phase_failure(phase: &BuildBatchPhase) -> Option<String> {
    let status = phase.phase_status.as_deref()?;
    if status == "SUCCEEDED" || status == "IN_PROGRESS" {
        return None;
    }
    let phase_type = phase.phase_type.as_deref().unwrap_or("?");
    let contexts: Vec<String> = phase
        .contexts
        .iter()
        .flatten()
        .filter_map(|c| match (c.status_code.as_deref(), c.message.as_deref()) {
            (Some(code), Some(msg)) if !msg.is_empty() => Some(format!("{code}: {msg}")),
            (None, Some(msg)) if !msg.is_empty() => Some(msg.to_owned()),
            (Some(code), _) => Some(code.to_owned()),
            _ => None,
        })
        .collect();
    Some(if contexts.is_empty() {
        format!("{phase_type} {status}")
    } else {
        format!("{phase_type} {status}: {}", contexts.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BatchRetry, PhaseContext, RetryBuildBatchType, sample_batch};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::sync::Arc;
    use std::time::Duration;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    const TIMING: StartTiming = StartTiming {
        token_window: Duration::from_secs(300),
        call_timeout: Duration::from_secs(30),
        clock_skew: Duration::from_secs(15),
    };

    fn recorded(b: BuildBatchInfo) -> CodeBuildBatchRunStatus {
        CodeBuildBatchRunStatus {
            batch: b,
            ..Default::default()
        }
    }

    fn seen(b: BuildBatchInfo) -> Observation<BuildBatchInfo> {
        Observation::Build(Arc::new(b))
    }

    fn step(
        s: &CodeBuildBatchRunStatus,
        options: &BatchRunOptions,
        o: Option<&Observation<BuildBatchInfo>>,
    ) -> BatchFollowStep {
        let events = EventSettings::default();
        batch_follow_step(s, options, o, "t", at(1000), &TIMING, events)
    }

    fn mirrored(step: BatchFollowStep) -> BatchMirror {
        match step {
            BatchFollowStep::Mirror(m) => m,
            other => panic!("not a mirror: {other:?}"),
        }
    }

    #[test]
    fn a_failing_batch_names_the_group_that_failed_it() {
        let mut b = sample_batch(
            "FAILED",
            "FAILED",
            &[
                ("DOWNLOAD_SOURCE", "SUCCEEDED", false),
                ("linux", "SUCCEEDED", false),
                ("windows", "FAILED", false),
                ("flaky", "FAILED", true),
            ],
        );
        b.phases = Some(vec![BuildBatchPhase {
            phase_type: Some("IN_PROGRESS".into()),
            phase_status: Some("CLIENT_ERROR".into()),
            contexts: Some(vec![PhaseContext {
                status_code: Some("CLIENT_ERROR".into()),
                message: None,
            }]),
            ..Default::default()
        }]);
        let s = recorded(sample_batch("IN_PROGRESS", "IN_PROGRESS", &[]));
        let m = mirrored(step(&s, &BatchRunOptions::default(), Some(&seen(b))));
        assert_eq!(
            m.progress,
            Progress::Failed {
                reason: "FAILED".into(),
                message: "build batch p:b ended FAILED: group windows FAILED (build p:2); \
                          IN_PROGRESS CLIENT_ERROR: CLIENT_ERROR"
                    .into()
            }
        );
        assert!(m.release);
        assert_eq!(m.notes.len(), 1);
        assert_eq!(m.notes[0].reason, "BuildBatchFailed");
    }

    #[test]
    fn an_ignored_failure_still_succeeds_and_says_so() {
        let mut b = sample_batch(
            "SUCCEEDED",
            "SUCCEEDED",
            &[("a", "SUCCEEDED", false), ("b", "FAILED", true)],
        );
        b.builds = b.builds_done();
        let p = batch_progress(&b);
        assert_eq!(
            p,
            Progress::Succeeded {
                message: "build batch p:b succeeded, 2/2 builds done; failures ignored: \
                          group b FAILED (build p:1)"
                    .into()
            }
        );
    }

    #[test]
    fn a_running_batch_shows_its_phase_and_builds() {
        let mut b = sample_batch("IN_PROGRESS", "IN_PROGRESS", &[("a", "SUCCEEDED", false)]);
        b.builds = Some("1/3".into());
        assert_eq!(
            batch_progress(&b),
            Progress::InProgress {
                reason: "IN_PROGRESS".into(),
                message: "build batch p:b is in phase IN_PROGRESS, 1/3 builds done".into()
            }
        );
    }

    #[test]
    fn a_stop_request_stops_a_running_batch_only() {
        let opts = BatchRunOptions {
            stop: Some(true),
            ..Default::default()
        };
        let s = recorded(sample_batch("IN_PROGRESS", "IN_PROGRESS", &[]));
        let running = seen(sample_batch("IN_PROGRESS", "IN_PROGRESS", &[]));
        assert_eq!(
            step(&s, &opts, Some(&running)),
            BatchFollowStep::Stop { id: "p:b".into() }
        );
        let stopped = seen(sample_batch("STOPPED", "STOPPED", &[]));
        let m = mirrored(step(&s, &opts, Some(&stopped)));
        let end = m.notes.last().unwrap();
        assert_eq!(end.reason, "BuildBatchStopped");
        assert_eq!(end.type_, kube::runtime::events::EventType::Normal);
    }

    #[test]
    fn a_failed_batch_with_a_retry_asked_for_is_retried_then_followed_again() {
        let opts = BatchRunOptions {
            retry: Some(BatchRetry {
                count: 1,
                retry_type: RetryBuildBatchType::RetryAllBuilds,
            }),
            ..Default::default()
        };
        let failed = sample_batch("FAILED", "FAILED", &[("a", "FAILED", false)]);
        let s = recorded(failed.clone());
        // Not observed (a final batch is not polled): decided on what status records.
        match step(&s, &opts, None) {
            BatchFollowStep::Retry(RetryStep::Retry(a)) => {
                assert_eq!((a.count, a.idempotency_token.as_str()), (1, "t-retry-1"));
            }
            other => panic!("{other:?}"),
        }
        // The retry recorded, its answer lost, the batch seen running again: settled.
        let mut pending = s.clone();
        pending.retry_attempts = Some(vec![RetryAttempt {
            count: 1,
            retry_type: RetryBuildBatchType::RetryAllBuilds,
            idempotency_token: "t-retry-1".into(),
            time: Time(at(990)),
            retried: None,
            refused: None,
        }]);
        let again = seen(sample_batch("IN_PROGRESS", "SUBMITTED", &[]));
        let m = mirrored(step(&pending, &opts, Some(&again)));
        assert_eq!(
            m.status.retry_attempts.as_ref().unwrap()[0].retried,
            Some(true)
        );
        assert!(!m.release, "a running batch keeps the finalizer");
        assert_eq!(m.status.batch.current_phase.as_deref(), Some("SUBMITTED"));
    }

    #[test]
    fn unknown_and_invalid_batches_are_failures() {
        let s = recorded(sample_batch("IN_PROGRESS", "IN_PROGRESS", &[]));
        let o = BatchRunOptions::default();
        assert_eq!(
            step(&s, &o, Some(&Observation::NotFound)),
            BatchFollowStep::NotFound { id: "p:b".into() }
        );
        assert!(matches!(
            step(&s, &o, Some(&Observation::Invalid("x".into()))),
            BatchFollowStep::Invalid { .. }
        ));
    }

    #[test]
    fn the_ttl_counts_from_the_batch_end() {
        let mut b = sample_batch("SUCCEEDED", "SUCCEEDED", &[]);
        b.end_time = Some(Time(at(900)));
        let opts = BatchRunOptions {
            ttl_seconds_after_finished: Some(60),
            ..Default::default()
        };
        let m = mirrored(step(&recorded(b.clone()), &opts, None));
        assert_eq!(m.next, Next::Delete);
        let opts = BatchRunOptions {
            ttl_seconds_after_finished: Some(200),
            ..Default::default()
        };
        let m = mirrored(step(&recorded(b), &opts, None));
        assert_eq!(m.next, Next::Requeue(Duration::from_secs(101)));
    }
}
