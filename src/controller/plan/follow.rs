//! How a run with a build id follows its build (pure): mirror the tracker's observation,
//! follow CodeBuild's automatic retries, honour a stop request, and apply
//! `ttlSecondsAfterFinished` once the build is final.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::super::conditions::Progress;
use super::{Note, build_progress};
use crate::api::names::{action, reason};
use crate::api::{BuildInfo, CodeBuildRunStatus, RunOptions};
use crate::convert::retried_build;
use crate::tracker::Observation;

/// The next step of a run that has a build id.
#[derive(Clone, Debug, PartialEq)]
pub enum FollowStep {
    /// `spec.operator.stop` on a running build: StopBuild, then [`mirror`] its answer.
    Stop {
        /// The build to stop.
        id: String,
    },
    /// CodeBuild does not know the build (a failure: see `Error::BuildNotFound`).
    NotFound {
        /// The build CodeBuild does not know.
        id: String,
    },
    /// The recorded build id is not one CodeBuild can look up (see `Error::InvalidBuildId`).
    Invalid {
        /// The id.
        id: String,
        /// Why CodeBuild cannot look it up.
        why: String,
    },
    /// Write `status` when it differs from the current one (a no-op otherwise).
    Mirror(Mirror),
}

/// A status to write, and what follows.
#[derive(Clone, Debug, PartialEq)]
pub struct Mirror {
    /// The next status.
    pub status: Box<CodeBuildRunStatus>,
    /// How its conditions read.
    pub progress: Progress,
    /// Events to publish when the write changed something.
    pub notes: Vec<Note>,
    /// The build status, when the build became final with this write (counted once).
    pub newly_final: Option<String>,
    /// Whether the finalizer can go: the build is final, nothing is left to stop.
    pub release: bool,
    /// What to do after the write.
    pub next: Next,
}

/// Which Events the operator publishes besides the start, the end and every failure or
/// warning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventSettings {
    /// One `PhaseChanged` Event per phase (off by default: the phases are in status, and
    /// each Event is an apiserver write).
    pub phases: bool,
}

/// What a reconcile does once its writes are done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing until the object or its build changes.
    AwaitChange,
    /// Look again after this long (a TTL that has not elapsed yet).
    Requeue(Duration),
    /// `ttlSecondsAfterFinished` elapsed: delete the run.
    Delete,
}

/// Decides how a run whose status records `status.build` follows it, given the tracker's
/// latest `observation` of that build (None: not polled yet).
pub fn follow_step(
    status: &CodeBuildRunStatus,
    options: &RunOptions,
    observation: Option<&Observation>,
    now: Timestamp,
    events: EventSettings,
) -> FollowStep {
    let id = status.build.build_id.clone().unwrap_or_default();
    let info = match observation {
        // Not polled yet: a stop asked for now is carried out on what status records (no
        // later observation would bring this run back if its build does not change).
        None if options.stop_requested() && !status.build.is_finished() => {
            return FollowStep::Stop { id };
        }
        None => return FollowStep::Mirror(unchanged(status, options, now)),
        Some(Observation::NotFound) => return FollowStep::NotFound { id },
        Some(Observation::Invalid(why)) => {
            return FollowStep::Invalid {
                id,
                why: why.clone(),
            };
        }
        Some(Observation::Build(info)) => info,
    };
    if let Some(next_id) = info.next_auto_retry() {
        return FollowStep::Mirror(auto_retry(status, info, next_id));
    }
    if options.stop_requested() && !info.is_finished() {
        return FollowStep::Stop { id };
    }
    FollowStep::Mirror(mirror(status, info, options, now, events))
}

/// The status as recorded, with its conditions (nothing new is known about the build).
fn unchanged(status: &CodeBuildRunStatus, options: &RunOptions, now: Timestamp) -> Mirror {
    Mirror {
        status: Box::new(status.clone()),
        progress: build_progress(&status.build),
        notes: Vec::new(),
        newly_final: None,
        release: status.build.is_final(),
        next: after(&status.build, options, now),
    }
}

/// `status` with its build replaced by `info`, and the Events of what changed.
pub fn mirror(
    status: &CodeBuildRunStatus,
    info: &BuildInfo,
    options: &RunOptions,
    now: Timestamp,
    events: EventSettings,
) -> Mirror {
    let progress = build_progress(info);
    let notes = announce(
        &status.build,
        info,
        &progress,
        options.stop_requested(),
        events,
    );
    let newly_final = (info.is_final() && !status.build.is_final())
        .then(|| info.build_status.clone().unwrap_or_default());
    let mut next = status.clone();
    next.build = info.clone();
    Mirror {
        status: Box::new(next),
        progress,
        notes,
        newly_final,
        release: info.is_final(),
        next: after(info, options, now),
    }
}

/// `build` ended and CodeBuild retries it as `next_id`: the chain grows by one, and the
/// run follows the new build.
fn auto_retry(status: &CodeBuildRunStatus, info: &BuildInfo, next_id: &str) -> Mirror {
    let old_id = info.build_id.as_deref().unwrap_or("?");
    let mut next = status.clone();
    next.retries
        .get_or_insert_with(Vec::new)
        .push(retried_build(info));
    next.build = BuildInfo {
        build_id: Some(next_id.to_owned()),
        ..Default::default()
    };
    let message = format!(
        "build {old_id} ended {}; CodeBuild retries it as build {next_id}",
        info.build_status.as_deref().unwrap_or(reason::UNKNOWN)
    );
    Mirror {
        status: Box::new(next),
        notes: vec![Note::normal(
            reason::AUTO_RETRY,
            action::BATCH_GET_BUILDS,
            message.clone(),
        )],
        progress: Progress::InProgress {
            reason: reason::AUTO_RETRY.to_owned(),
            message,
        },
        newly_final: None,
        release: false,
        next: Next::AwaitChange,
    }
}

/// Events for what changed between two observations of the build. A build stopped because
/// `spec.operator.stop` asked for it is a Normal Event; any other end but success a Warning.
fn announce(
    before: &BuildInfo,
    after: &BuildInfo,
    progress: &Progress,
    stop_requested: bool,
    events: EventSettings,
) -> Vec<Note> {
    let id = after.build_id.as_deref().unwrap_or("?");
    let mut notes = Vec::new();
    if events.phases && after.current_phase.is_some() && after.current_phase != before.current_phase
    {
        let phase = after.current_phase.as_deref().unwrap_or("?");
        // The phase is the action: the Recorder folds Events of the same type, reason and
        // action into one series that keeps the first note.
        notes.push(Note::normal(
            reason::PHASE_CHANGED,
            phase,
            format!("build {id} entered phase {phase}"),
        ));
    }
    if after.is_final() && !before.is_final() {
        let message = progress.message().to_owned();
        notes.push(match progress {
            Progress::Succeeded { .. } => {
                Note::normal(reason::BUILD_SUCCEEDED, action::BATCH_GET_BUILDS, message)
            }
            _ if after.is_stopped() && stop_requested => Note::normal(
                reason::BUILD_STOPPED,
                action::BATCH_GET_BUILDS,
                format!("{message}, as spec.operator.stop asked"),
            ),
            _ => Note::warning(reason::BUILD_FAILED, action::BATCH_GET_BUILDS, message),
        });
    }
    notes
}

/// What follows a write of `build`: the TTL once it is final.
fn after(build: &BuildInfo, options: &RunOptions, now: Timestamp) -> Next {
    match ttl_remaining(build, options, now) {
        Some(left) if left.is_zero() => Next::Delete,
        Some(left) => Next::Requeue(left + Duration::from_secs(1)),
        None => Next::AwaitChange,
    }
}

/// How long until a finished run may be deleted under `ttlSecondsAfterFinished`; zero when
/// due, None when no TTL applies (no TTL, or no end time yet).
pub fn ttl_remaining(build: &BuildInfo, options: &RunOptions, now: Timestamp) -> Option<Duration> {
    super::ttl::ttl_left(build, options, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AutoRetryConfig;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::sync::Arc;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    use crate::api::sample_build as build;

    fn recorded(b: BuildInfo) -> CodeBuildRunStatus {
        CodeBuildRunStatus {
            build: b,
            ..Default::default()
        }
    }

    fn seen(b: BuildInfo) -> Observation {
        Observation::Build(Arc::new(b))
    }

    const PHASES: EventSettings = EventSettings { phases: true };

    fn mirrored(step: FollowStep) -> Mirror {
        match step {
            FollowStep::Mirror(m) => m,
            other => panic!("not a mirror: {other:?}"),
        }
    }

    #[test]
    fn a_new_phase_is_mirrored_and_announced() {
        let s = recorded(build("IN_PROGRESS", "SUBMITTED"));
        let o = seen(build("IN_PROGRESS", "BUILD"));
        let m = mirrored(follow_step(
            &s,
            &RunOptions::default(),
            Some(&o),
            at(0),
            PHASES,
        ));
        assert!(!m.release, "a running build keeps the finalizer");
        assert_eq!(m.status.build.current_phase.as_deref(), Some("BUILD"));
        assert_eq!(m.notes.len(), 1);
        assert_eq!(m.notes[0].reason, "PhaseChanged");
        assert_eq!(m.notes[0].action, "BUILD");
        assert_eq!(m.next, Next::AwaitChange);
        assert_eq!(m.newly_final, None);
    }

    #[test]
    fn phase_events_only_when_asked_for() {
        let s = recorded(build("IN_PROGRESS", "SUBMITTED"));
        let o = seen(build("IN_PROGRESS", "BUILD"));
        let quiet = EventSettings::default();
        let m = mirrored(follow_step(
            &s,
            &RunOptions::default(),
            Some(&o),
            at(0),
            quiet,
        ));
        assert!(m.notes.is_empty(), "{:?}", m.notes);
        let done = seen(build("SUCCEEDED", "COMPLETED"));
        let m = mirrored(follow_step(
            &s,
            &RunOptions::default(),
            Some(&done),
            at(0),
            quiet,
        ));
        let reasons: Vec<&str> = m.notes.iter().map(|n| n.reason).collect();
        assert_eq!(reasons, ["BuildSucceeded"], "the end is always announced");
    }

    #[test]
    fn nothing_observed_yet_keeps_the_recorded_build() {
        let s = recorded(build("IN_PROGRESS", "BUILD"));
        let m = mirrored(follow_step(&s, &RunOptions::default(), None, at(0), PHASES));
        assert_eq!(*m.status, s);
        assert!(m.notes.is_empty());
    }

    #[test]
    fn a_final_build_is_announced_once_and_counted() {
        let s = recorded(build("IN_PROGRESS", "BUILD"));
        let o = seen(build("FAILED", "COMPLETED"));
        let m = mirrored(follow_step(
            &s,
            &RunOptions::default(),
            Some(&o),
            at(0),
            PHASES,
        ));
        assert_eq!(m.newly_final.as_deref(), Some("FAILED"));
        assert_eq!(m.notes[1].reason, "BuildFailed");
        assert_eq!(m.notes[1].type_, kube::runtime::events::EventType::Warning);
        assert!(m.release, "nothing left to stop: the finalizer goes");
        let again = mirrored(follow_step(
            &m.status,
            &RunOptions::default(),
            Some(&o),
            at(0),
            PHASES,
        ));
        assert_eq!(again.newly_final, None);
        assert!(again.notes.is_empty());
        assert!(again.release);
    }

    #[test]
    fn a_requested_stop_ends_with_a_normal_event() {
        use kube::runtime::events::EventType;
        let s = recorded(build("IN_PROGRESS", "BUILD"));
        let o = seen(build("STOPPED", "COMPLETED"));
        let requested = RunOptions {
            stop: Some(true),
            ..Default::default()
        };
        let m = mirrored(follow_step(&s, &requested, Some(&o), at(0), PHASES));
        let end = m.notes.last().unwrap();
        assert_eq!((end.reason, end.type_), ("BuildStopped", EventType::Normal));
        let m = mirrored(follow_step(
            &s,
            &RunOptions::default(),
            Some(&o),
            at(0),
            PHASES,
        ));
        let end = m.notes.last().unwrap();
        assert_eq!((end.reason, end.type_), ("BuildFailed", EventType::Warning));
    }

    #[test]
    fn a_stop_request_stops_a_running_build_only() {
        let opts = RunOptions {
            stop: Some(true),
            ..Default::default()
        };
        let s = recorded(build("IN_PROGRESS", "BUILD"));
        assert_eq!(
            follow_step(
                &s,
                &opts,
                Some(&seen(build("IN_PROGRESS", "BUILD"))),
                at(0),
                PHASES
            ),
            FollowStep::Stop { id: "p:1".into() }
        );
        let done = seen(build("SUCCEEDED", "COMPLETED"));
        assert!(matches!(
            follow_step(&s, &opts, Some(&done), at(0), PHASES),
            FollowStep::Mirror(_)
        ));
    }

    #[test]
    fn a_stop_asked_before_the_tracker_polled_the_build_is_carried_out() {
        let opts = RunOptions {
            stop: Some(true),
            ..Default::default()
        };
        let s = recorded(build("IN_PROGRESS", "SUBMITTED"));
        assert_eq!(
            follow_step(&s, &opts, None, at(0), PHASES),
            FollowStep::Stop { id: "p:1".into() }
        );
        let done = recorded(build("SUCCEEDED", "COMPLETED"));
        assert!(matches!(
            follow_step(&done, &opts, None, at(0), PHASES),
            FollowStep::Mirror(_)
        ));
    }

    #[test]
    fn an_unknown_build_is_a_failure() {
        let s = recorded(build("IN_PROGRESS", "BUILD"));
        assert_eq!(
            follow_step(
                &s,
                &RunOptions::default(),
                Some(&Observation::NotFound),
                at(0),
                PHASES,
            ),
            FollowStep::NotFound { id: "p:1".into() }
        );
    }

    #[test]
    fn the_auto_retry_chain_grows_and_the_run_follows_the_new_build() {
        let s = recorded(build("IN_PROGRESS", "BUILD"));
        let mut failed = build("FAILED", "COMPLETED");
        failed.auto_retry_config = Some(AutoRetryConfig {
            auto_retry_limit: Some(1),
            auto_retry_number: Some(0),
            next_auto_retry: Some("p:2".into()),
            previous_auto_retry: None,
        });
        let m = mirrored(follow_step(
            &s,
            &RunOptions::default(),
            Some(&seen(failed)),
            at(0),
            PHASES,
        ));
        assert_eq!(m.status.build.build_id.as_deref(), Some("p:2"));
        let retries = m.status.retries.as_ref().unwrap();
        assert_eq!(retries[0].build_id, "p:1");
        assert_eq!(m.notes[0].reason, "AutoRetry");
        assert!(
            matches!(m.progress, Progress::InProgress { ref reason, .. } if reason == "AutoRetry")
        );
    }

    #[test]
    fn ttl_counts_from_end_time() {
        let mut b = build("SUCCEEDED", "COMPLETED");
        b.end_time = Some(Time(at(1000)));
        let opts = RunOptions {
            ttl_seconds_after_finished: Some(60),
            ..Default::default()
        };
        assert_eq!(
            ttl_remaining(&b, &opts, at(1030)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(ttl_remaining(&b, &opts, at(2000)), Some(Duration::ZERO));
        assert_eq!(ttl_remaining(&b, &RunOptions::default(), at(2000)), None);
        let running = build("IN_PROGRESS", "BUILD");
        assert_eq!(ttl_remaining(&running, &opts, at(2000)), None);
        let s = recorded(b.clone());
        let m = mirrored(follow_step(&s, &opts, None, at(1030), PHASES));
        assert_eq!(m.next, Next::Requeue(Duration::from_secs(31)));
        let m = mirrored(follow_step(&s, &opts, None, at(2000), PHASES));
        assert_eq!(m.next, Next::Delete);
    }
}
