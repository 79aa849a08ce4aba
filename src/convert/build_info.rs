//! The SDK's `Build` -> the mirrored part of status.
//!
//! Only locations, links, identifiers and outcomes are mirrored (the failure tail is read
//! from CloudWatch Logs separately, by `output::tail`): never log contents here, and
//! never the build's environment (its variables may hold values the user did not mean to
//! publish in the cluster). CodeBuild sends empty strings and lists for absent values (an
//! empty artifact location for NO_ARTIFACTS, empty contexts of successful phases, no
//! secondary artifacts); those are left out, so status shows only what carries information.

use aws_sdk_codebuild::types as aws;

use super::from_aws_time;
use crate::api::{
    AutoRetryConfig, BuildArtifacts, BuildInfo, BuildPhase, ExportedEnvironmentVariable,
    LogsDestination, LogsLocation, PhaseContext, RetriedBuild,
};

/// The status fields mirrored from `build`.
pub fn build_info(build: &aws::Build) -> BuildInfo {
    BuildInfo {
        build_id: text(&build.id),
        build_arn: text(&build.arn),
        build_number: build.build_number,
        build_status: build.build_status.as_ref().map(|s| s.as_str().to_owned()),
        current_phase: text(&build.current_phase),
        build_complete: Some(build.build_complete),
        start_time: build.start_time.as_ref().and_then(from_aws_time),
        end_time: build.end_time.as_ref().and_then(from_aws_time),
        source_version: text(&build.source_version),
        resolved_source_version: text(&build.resolved_source_version),
        phases: build.phases.as_ref().map(|p| p.iter().map(phase).collect()),
        artifacts: build
            .artifacts
            .as_ref()
            .map(artifacts)
            .filter(|a| a != &BuildArtifacts::default()),
        secondary_artifacts: build.secondary_artifacts.as_ref().and_then(|a| {
            non_empty(
                a.iter()
                    .map(artifacts)
                    .filter(|a| a != &BuildArtifacts::default())
                    .collect(),
            )
        }),
        logs: build.logs.as_ref().map(logs),
        exported_environment_variables: build.exported_environment_variables.as_ref().and_then(
            |v| {
                non_empty(
                    v.iter()
                        .map(|e| ExportedEnvironmentVariable {
                            name: text(&e.name),
                            value: text(&e.value),
                        })
                        .collect(),
                )
            },
        ),
        report_arns: build.report_arns.clone().and_then(non_empty),
        auto_retry_config: build.auto_retry_config.as_ref().map(|c| AutoRetryConfig {
            auto_retry_limit: c.auto_retry_limit,
            auto_retry_number: c.auto_retry_number,
            next_auto_retry: text(&c.next_auto_retry),
            previous_auto_retry: text(&c.previous_auto_retry),
        }),
    }
}

/// The short record of a build that CodeBuild retried, for `status.retries`.
pub fn retried_build(info: &BuildInfo) -> RetriedBuild {
    RetriedBuild {
        build_id: info.build_id.clone().unwrap_or_default(),
        build_number: info.build_number,
        build_status: info.build_status.clone(),
        logs: info.logs.clone(),
    }
}

fn phase(p: &aws::BuildPhase) -> BuildPhase {
    BuildPhase {
        phase_type: p.phase_type.as_ref().map(|t| t.as_str().to_owned()),
        phase_status: p.phase_status.as_ref().map(|s| s.as_str().to_owned()),
        start_time: p.start_time.as_ref().and_then(from_aws_time),
        end_time: p.end_time.as_ref().and_then(from_aws_time),
        duration_in_seconds: p.duration_in_seconds,
        contexts: contexts(&p.contexts),
    }
}

/// A phase's contexts, without the empty ones CodeBuild sends for phases that succeeded.
pub(super) fn contexts(contexts: &Option<Vec<aws::PhaseContext>>) -> Option<Vec<PhaseContext>> {
    contexts
        .as_ref()
        .map(|c| {
            c.iter()
                .map(|c| PhaseContext {
                    status_code: text(&c.status_code),
                    message: text(&c.message),
                })
                .filter(|c| c != &PhaseContext::default())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
}

pub(super) fn artifacts(a: &aws::BuildArtifacts) -> BuildArtifacts {
    BuildArtifacts {
        location: text(&a.location),
        sha256sum: text(&a.sha256_sum),
        md5sum: text(&a.md5_sum),
        override_artifact_name: a.override_artifact_name,
        encryption_disabled: a.encryption_disabled,
        artifact_identifier: text(&a.artifact_identifier),
        bucket_owner_access: a
            .bucket_owner_access
            .as_ref()
            .map(|b| b.as_str().to_owned()),
    }
}

fn logs(l: &aws::LogsLocation) -> LogsLocation {
    LogsLocation {
        group_name: text(&l.group_name),
        stream_name: text(&l.stream_name),
        deep_link: text(&l.deep_link),
        s3_deep_link: text(&l.s3_deep_link),
        cloud_watch_logs_arn: text(&l.cloud_watch_logs_arn),
        s3_logs_arn: text(&l.s3_logs_arn),
        cloud_watch_logs: l.cloud_watch_logs.as_ref().map(|c| LogsDestination {
            status: Some(c.status.as_str().to_owned()),
            location: None,
        }),
        s3_logs: l.s3_logs.as_ref().map(|s| LogsDestination {
            status: Some(s.status.as_str().to_owned()),
            location: text(&s.location),
        }),
    }
}

/// A list CodeBuild sent, or None when it is empty (`"secondaryArtifacts": []`).
pub(super) fn non_empty<T>(list: Vec<T>) -> Option<Vec<T>> {
    (!list.is_empty()).then_some(list)
}

/// A string CodeBuild sent, or None when it is absent or empty.
pub(super) fn text(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}
