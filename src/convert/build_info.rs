//! The SDK's `Build` -> the mirrored part of status.
//!
//! Only locations, links, identifiers and outcomes are mirrored: never log contents, and
//! never the build's environment (its variables may hold values the user did not mean to
//! publish in the cluster).

use aws_sdk_codebuild::types as aws;

use super::from_aws_time;
use crate::api::{
    AutoRetryConfig, BuildArtifacts, BuildInfo, BuildPhase, ExportedEnvironmentVariable,
    LogsLocation, PhaseContext, RetriedBuild,
};

/// The status fields mirrored from `build`.
pub fn build_info(build: &aws::Build) -> BuildInfo {
    BuildInfo {
        build_id: build.id.clone(),
        build_arn: build.arn.clone(),
        build_number: build.build_number,
        build_status: build.build_status.as_ref().map(|s| s.as_str().to_owned()),
        current_phase: build.current_phase.clone(),
        build_complete: Some(build.build_complete),
        start_time: build.start_time.as_ref().and_then(from_aws_time),
        end_time: build.end_time.as_ref().and_then(from_aws_time),
        source_version: build.source_version.clone(),
        resolved_source_version: build.resolved_source_version.clone(),
        phases: build.phases.as_ref().map(|p| p.iter().map(phase).collect()),
        artifacts: build.artifacts.as_ref().map(artifacts),
        secondary_artifacts: build
            .secondary_artifacts
            .as_ref()
            .map(|a| a.iter().map(artifacts).collect()),
        logs: build.logs.as_ref().map(logs),
        exported_environment_variables: build.exported_environment_variables.as_ref().map(|v| {
            v.iter()
                .map(|e| ExportedEnvironmentVariable {
                    name: e.name.clone(),
                    value: e.value.clone(),
                })
                .collect()
        }),
        report_arns: build.report_arns.clone(),
        auto_retry_config: build.auto_retry_config.as_ref().map(|c| AutoRetryConfig {
            auto_retry_limit: c.auto_retry_limit,
            auto_retry_number: c.auto_retry_number,
            next_auto_retry: c.next_auto_retry.clone(),
            previous_auto_retry: c.previous_auto_retry.clone(),
        }),
    }
}

/// The short record of a build that CodeBuild retried, for `status.retries`.
pub fn retried_build(info: &BuildInfo) -> RetriedBuild {
    RetriedBuild {
        build_id: info.build_id.clone().unwrap_or_default(),
        build_number: info.build_number,
        build_status: info.build_status.clone(),
    }
}

fn phase(p: &aws::BuildPhase) -> BuildPhase {
    BuildPhase {
        phase_type: p.phase_type.as_ref().map(|t| t.as_str().to_owned()),
        phase_status: p.phase_status.as_ref().map(|s| s.as_str().to_owned()),
        start_time: p.start_time.as_ref().and_then(from_aws_time),
        end_time: p.end_time.as_ref().and_then(from_aws_time),
        duration_in_seconds: p.duration_in_seconds,
        contexts: p.contexts.as_ref().map(|c| {
            c.iter()
                .map(|c| PhaseContext {
                    status_code: c.status_code.clone(),
                    message: c.message.clone(),
                })
                .collect()
        }),
    }
}

fn artifacts(a: &aws::BuildArtifacts) -> BuildArtifacts {
    BuildArtifacts {
        location: a.location.clone(),
        sha256sum: a.sha256_sum.clone(),
        md5sum: a.md5_sum.clone(),
        override_artifact_name: a.override_artifact_name,
        encryption_disabled: a.encryption_disabled,
        artifact_identifier: a.artifact_identifier.clone(),
        bucket_owner_access: a
            .bucket_owner_access
            .as_ref()
            .map(|b| b.as_str().to_owned()),
    }
}

fn logs(l: &aws::LogsLocation) -> LogsLocation {
    LogsLocation {
        group_name: l.group_name.clone(),
        stream_name: l.stream_name.clone(),
        deep_link: l.deep_link.clone(),
        s3_deep_link: l.s3_deep_link.clone(),
        cloud_watch_logs_arn: l.cloud_watch_logs_arn.clone(),
        s3_logs_arn: l.s3_logs_arn.clone(),
    }
}
