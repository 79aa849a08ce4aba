//! What to do next with a run: pure functions of the object and the observed build.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::conditions::{Progress, STALLED};
use crate::api::{BuildInfo, CodeBuildRunStatus, RunOptions};
use crate::policy::POLICY_DENIED;

/// Build statuses after which CodeBuild does no more work on a build.
const TERMINAL: &[&str] = &["SUCCEEDED", "FAILED", "FAULT", "TIMED_OUT", "STOPPED"];

/// The next step of a run that has no build id yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartStep {
    /// Nothing recorded: write the attempt (token, time) to status, then call StartBuild.
    RecordAndStart,
    /// An attempt inside the token's window: call StartBuild again with the same token. If
    /// the first call did start a build, CodeBuild returns that build.
    RetryWithToken,
    /// An attempt past the window (the same token would start a second build): find the
    /// build by its marker variable before anything is started.
    SearchThenStart,
    /// A stop was requested before a build was recorded: never start one.
    Cancelled,
    /// A permanent error was recorded for this generation: wait for the object to change.
    WaitForChange,
}

/// Decides how a run without a build id proceeds.
pub fn start_step(
    status: &CodeBuildRunStatus,
    options: &RunOptions,
    generation: Option<i64>,
    now: Timestamp,
    token_window: Duration,
) -> StartStep {
    if options.stop_requested() {
        return StartStep::Cancelled;
    }
    // A policy refusal is decided again on every reconcile: a policy or a namespace label
    // can change without the run changing.
    let stalled_here = status.conditions.iter().any(|c| {
        c.type_ == STALLED
            && c.status == "True"
            && c.observed_generation == generation
            && c.reason != POLICY_DENIED
    });
    if stalled_here {
        return StartStep::WaitForChange;
    }
    match &status.start_attempt {
        None => StartStep::RecordAndStart,
        Some(attempt) => {
            let age = now.duration_since(attempt.time.0);
            // A clock step backwards makes the age negative: still inside the window.
            let age = Duration::try_from(age).unwrap_or(Duration::ZERO);
            if age < token_window {
                StartStep::RetryWithToken
            } else {
                StartStep::SearchThenStart
            }
        }
    }
}

/// The idempotency token of a run: the spec's own, else one derived from the object's uid,
/// so every StartBuild for one object carries the same token.
pub fn idempotency_token(spec_token: Option<&str>, uid: &str) -> String {
    match spec_token {
        Some(token) if !token.is_empty() => token.to_owned(),
        _ => format!("codebuild-operator-{uid}"),
    }
}

/// Whether CodeBuild has finished with the build.
pub fn is_finished(build: &BuildInfo) -> bool {
    build.build_complete == Some(true)
        || build
            .build_status
            .as_deref()
            .is_some_and(|s| TERMINAL.contains(&s))
}

/// Whether a finished build will be followed by an automatic retry CodeBuild has not
/// named yet (retries left, no `nextAutoRetry`): keep watching it.
pub fn awaiting_auto_retry(build: &BuildInfo) -> bool {
    let failed = build
        .build_status
        .as_deref()
        .is_some_and(|s| s != "SUCCEEDED" && s != "STOPPED");
    let retries_left = build.auto_retry_config.as_ref().is_some_and(|c| {
        c.next_auto_retry.is_none()
            && c.auto_retry_number.unwrap_or(0) < c.auto_retry_limit.unwrap_or(0)
    });
    is_finished(build) && failed && retries_left
}

/// The id of the build CodeBuild started to retry `build`, once `build` has finished.
pub fn next_auto_retry(build: &BuildInfo) -> Option<&str> {
    if !is_finished(build) {
        return None;
    }
    build.auto_retry_config.as_ref()?.next_auto_retry.as_deref()
}

/// Whether the run is done: its (last) build finished and no retry is coming.
pub fn is_final(build: &BuildInfo) -> bool {
    is_finished(build) && next_auto_retry(build).is_none() && !awaiting_auto_retry(build)
}

/// How a mirrored build reads as conditions.
pub fn build_progress(build: &BuildInfo) -> Progress {
    let id = build.build_id.as_deref().unwrap_or("?");
    if is_final(build) {
        let status = build.build_status.as_deref().unwrap_or("UNKNOWN");
        if status == "SUCCEEDED" {
            return Progress::Succeeded {
                message: format!("build {id} succeeded"),
            };
        }
        return Progress::Failed {
            reason: status.to_owned(),
            message: failure_message(build),
        };
    }
    if is_finished(build) {
        return Progress::InProgress {
            reason: "AutoRetry".to_owned(),
            message: format!(
                "build {id} ended {}; CodeBuild retries it automatically",
                build.build_status.as_deref().unwrap_or("UNKNOWN")
            ),
        };
    }
    let phase = build.current_phase.as_deref().unwrap_or("SUBMITTED");
    Progress::InProgress {
        reason: phase.to_owned(),
        message: format!("build {id} is in phase {phase}"),
    }
}

/// Why a build failed: the contexts of the phases that did not succeed, in order.
pub fn failure_message(build: &BuildInfo) -> String {
    let id = build.build_id.as_deref().unwrap_or("?");
    let status = build.build_status.as_deref().unwrap_or("UNKNOWN");
    let mut parts = Vec::new();
    for phase in build.phases.iter().flatten() {
        let Some(phase_status) = phase.phase_status.as_deref() else {
            continue;
        };
        if phase_status == "SUCCEEDED" || phase_status == "IN_PROGRESS" {
            continue;
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
        if contexts.is_empty() {
            parts.push(format!("{phase_type} {phase_status}"));
        } else {
            parts.push(format!(
                "{phase_type} {phase_status}: {}",
                contexts.join("; ")
            ));
        }
    }
    if parts.is_empty() {
        format!("build {id} ended {status}")
    } else {
        format!("build {id} ended {status}: {}", parts.join(" | "))
    }
}

/// How long until a finished run may be deleted under `ttlSecondsAfterFinished`; zero when
/// due, None when no TTL applies (no TTL, or no end time yet).
pub fn ttl_remaining(build: &BuildInfo, options: &RunOptions, now: Timestamp) -> Option<Duration> {
    let ttl = options.ttl_seconds_after_finished?;
    if !is_final(build) {
        return None;
    }
    let end = build.end_time.as_ref()?.0;
    let due = end.as_second().saturating_add(ttl.max(0));
    let left = due.saturating_sub(now.as_second());
    Some(Duration::from_secs(left.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AutoRetryConfig, BuildPhase, PhaseContext, StartAttempt};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn attempt_at(secs: i64) -> CodeBuildRunStatus {
        CodeBuildRunStatus {
            start_attempt: Some(StartAttempt {
                idempotency_token: "t".into(),
                time: Time(at(secs)),
                region: "us-east-1".into(),
                role_arn: None,
                policy: None,
            }),
            ..Default::default()
        }
    }

    const WINDOW: Duration = Duration::from_secs(300);

    #[test]
    fn fresh_run_records_an_attempt_first() {
        let s = CodeBuildRunStatus::default();
        assert_eq!(
            start_step(&s, &RunOptions::default(), Some(1), at(0), WINDOW),
            StartStep::RecordAndStart
        );
    }

    #[test]
    fn attempt_inside_window_retries_with_the_same_token() {
        let s = attempt_at(1000);
        assert_eq!(
            start_step(&s, &RunOptions::default(), Some(1), at(1299), WINDOW),
            StartStep::RetryWithToken
        );
        // A clock that went backwards is still inside the window.
        assert_eq!(
            start_step(&s, &RunOptions::default(), Some(1), at(900), WINDOW),
            StartStep::RetryWithToken
        );
    }

    #[test]
    fn attempt_past_window_searches_before_starting() {
        let s = attempt_at(1000);
        assert_eq!(
            start_step(&s, &RunOptions::default(), Some(1), at(1300), WINDOW),
            StartStep::SearchThenStart
        );
    }

    #[test]
    fn stop_before_start_never_starts() {
        let opts = RunOptions {
            stop: Some(true),
            ..Default::default()
        };
        assert_eq!(
            start_step(&attempt_at(0), &opts, Some(1), at(1), WINDOW),
            StartStep::Cancelled
        );
        assert_eq!(
            start_step(
                &CodeBuildRunStatus::default(),
                &opts,
                Some(1),
                at(1),
                WINDOW
            ),
            StartStep::Cancelled
        );
    }

    #[test]
    fn permanent_error_waits_for_a_new_generation() {
        let mut s = attempt_at(0);
        s.conditions.push(Condition {
            type_: STALLED.into(),
            status: "True".into(),
            reason: "InvalidInput".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(at(0)),
        });
        assert_eq!(
            start_step(&s, &RunOptions::default(), Some(1), at(1), WINDOW),
            StartStep::WaitForChange
        );
        assert_eq!(
            start_step(&s, &RunOptions::default(), Some(2), at(1), WINDOW),
            StartStep::RetryWithToken
        );
    }

    #[test]
    fn token_prefers_the_spec() {
        assert_eq!(idempotency_token(Some("mine"), "uid-1"), "mine");
        assert_eq!(idempotency_token(None, "uid-1"), "codebuild-operator-uid-1");
        assert_eq!(
            idempotency_token(Some(""), "uid-1"),
            "codebuild-operator-uid-1"
        );
    }

    fn build(status: &str, phase: &str) -> BuildInfo {
        BuildInfo {
            build_id: Some("p:1".into()),
            build_status: Some(status.into()),
            current_phase: Some(phase.into()),
            build_complete: Some(status != "IN_PROGRESS"),
            ..Default::default()
        }
    }

    #[test]
    fn running_build_reports_its_phase() {
        assert_eq!(
            build_progress(&build("IN_PROGRESS", "PRE_BUILD")),
            Progress::InProgress {
                reason: "PRE_BUILD".into(),
                message: "build p:1 is in phase PRE_BUILD".into()
            }
        );
    }

    #[test]
    fn failed_build_names_the_failing_phase() {
        let mut b = build("FAILED", "COMPLETED");
        b.phases = Some(vec![
            BuildPhase {
                phase_type: Some("INSTALL".into()),
                phase_status: Some("SUCCEEDED".into()),
                ..Default::default()
            },
            BuildPhase {
                phase_type: Some("BUILD".into()),
                phase_status: Some("FAILED".into()),
                contexts: Some(vec![PhaseContext {
                    status_code: Some("COMMAND_EXECUTION_ERROR".into()),
                    message: Some("exit status 2".into()),
                }]),
                ..Default::default()
            },
        ]);
        assert_eq!(
            build_progress(&b),
            Progress::Failed {
                reason: "FAILED".into(),
                message:
                    "build p:1 ended FAILED: BUILD FAILED: COMMAND_EXECUTION_ERROR: exit status 2"
                        .into()
            }
        );
    }

    #[test]
    fn terminal_status_counts_as_finished_without_build_complete() {
        // moto never sets buildComplete; the status alone must end the run.
        let mut b = build("SUCCEEDED", "COMPLETED");
        b.build_complete = Some(false);
        assert!(is_final(&b));
        assert!(matches!(build_progress(&b), Progress::Succeeded { .. }));
    }

    #[test]
    fn auto_retry_chain_is_followed() {
        let mut b = build("FAILED", "COMPLETED");
        b.auto_retry_config = Some(AutoRetryConfig {
            auto_retry_limit: Some(2),
            auto_retry_number: Some(0),
            next_auto_retry: Some("p:2".into()),
            previous_auto_retry: None,
        });
        assert_eq!(next_auto_retry(&b), Some("p:2"));
        assert!(!is_final(&b));
        b.auto_retry_config.as_mut().unwrap().next_auto_retry = None;
        assert!(awaiting_auto_retry(&b));
        assert!(matches!(build_progress(&b), Progress::InProgress { .. }));
        b.auto_retry_config.as_mut().unwrap().auto_retry_number = Some(2);
        assert!(is_final(&b));
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
    }
}
