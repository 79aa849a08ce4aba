//! How a mirrored build reads as conditions (pure).

use super::super::conditions::Progress;
use crate::api::BuildInfo;
use crate::api::names::reason;

/// The conditions' view of `build`: succeeded, failed (reason: the build status), retried
/// automatically, or in a phase.
pub fn build_progress(build: &BuildInfo) -> Progress {
    let id = build.build_id.as_deref().unwrap_or("?");
    if build.is_final() {
        let status = build.build_status.as_deref().unwrap_or(reason::UNKNOWN);
        if build.succeeded() {
            return Progress::Succeeded {
                message: format!("build {id} succeeded"),
            };
        }
        return Progress::Failed {
            reason: status.to_owned(),
            message: failure_message(build),
        };
    }
    if build.is_finished() {
        return Progress::InProgress {
            reason: reason::AUTO_RETRY.to_owned(),
            message: format!(
                "build {id} ended {}; CodeBuild retries it automatically",
                build.build_status.as_deref().unwrap_or(reason::UNKNOWN)
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
    let status = build.build_status.as_deref().unwrap_or(reason::UNKNOWN);
    let parts: Vec<String> = build
        .phases
        .iter()
        .flatten()
        .filter_map(|phase| {
            let phase_status = phase.phase_status.as_deref()?;
            if phase_status == "SUCCEEDED" || phase_status == "IN_PROGRESS" {
                return None;
            }
            let phase_type = phase.phase_type.as_deref().unwrap_or("?");
            let contexts = phase_contexts(phase.contexts.as_deref().unwrap_or_default());
            Some(if contexts.is_empty() {
                format!("{phase_type} {phase_status}")
            } else {
                format!("{phase_type} {phase_status}: {}", contexts.join("; "))
            })
        })
        .collect();
    if parts.is_empty() {
        format!("build {id} ended {status}")
    } else {
        format!("build {id} ended {status}: {}", parts.join(" | "))
    }
}

/// A phase's contexts as `CODE: message`.
fn phase_contexts(contexts: &[crate::api::PhaseContext]) -> Vec<String> {
    contexts
        .iter()
        .filter_map(|c| match (c.status_code.as_deref(), c.message.as_deref()) {
            (Some(code), Some(msg)) if !msg.is_empty() => Some(format!("{code}: {msg}")),
            (None, Some(msg)) if !msg.is_empty() => Some(msg.to_owned()),
            (Some(code), _) => Some(code.to_owned()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AutoRetryConfig, BuildPhase, PhaseContext};

    use crate::api::sample_build as build;

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
        assert!(matches!(build_progress(&b), Progress::Succeeded { .. }));
    }

    #[test]
    fn a_build_awaiting_its_automatic_retry_is_in_progress() {
        let mut b = build("FAILED", "COMPLETED");
        b.auto_retry_config = Some(AutoRetryConfig {
            auto_retry_limit: Some(2),
            auto_retry_number: Some(0),
            ..Default::default()
        });
        assert!(matches!(
            build_progress(&b),
            Progress::InProgress { ref reason, .. } if reason == "AutoRetry"
        ));
    }
}
