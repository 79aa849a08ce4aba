//! The SDK's `BuildBatch` -> the mirrored part of a CodeBuildBatchRun's status.
//!
//! As for builds: locations, links, identifiers and outcomes, never the batch's environment;
//! empty strings and lists CodeBuild sends for absent values are left out. Values outside
//! the model's enumerations that the service answers (a build group's `PENDING`, a phase's
//! `CLIENT_ERROR` or `RETRY`, lower-case artifact types) reach the SDK as unknown enum
//! values and are mirrored as CodeBuild spelt them.

use aws_sdk_codebuild::types as aws;

use super::build_info::{artifacts, contexts, non_empty, text};
use super::from_aws_time;
use crate::api::{
    BuildArtifacts, BuildBatchInfo, BuildBatchPhase, BuildGroup, BuildSummary, ResolvedArtifact,
};

/// The status fields mirrored from `batch`.
pub fn batch_info(batch: &aws::BuildBatch) -> BuildBatchInfo {
    let mut info = BuildBatchInfo {
        id: text(&batch.id),
        arn: text(&batch.arn),
        build_batch_number: batch.build_batch_number,
        build_batch_status: batch
            .build_batch_status
            .as_ref()
            .map(|s| s.as_str().to_owned()),
        current_phase: text(&batch.current_phase),
        complete: Some(batch.complete),
        start_time: batch.start_time.as_ref().and_then(from_aws_time),
        end_time: batch.end_time.as_ref().and_then(from_aws_time),
        source_version: text(&batch.source_version),
        resolved_source_version: text(&batch.resolved_source_version),
        phases: batch.phases.as_ref().map(|p| p.iter().map(phase).collect()),
        build_groups: batch
            .build_groups
            .as_ref()
            .and_then(|g| non_empty(g.iter().map(group).collect())),
        builds: None,
        artifacts: batch
            .artifacts
            .as_ref()
            .map(artifacts)
            .filter(|a| a != &BuildArtifacts::default()),
        secondary_artifacts: batch.secondary_artifacts.as_ref().and_then(|a| {
            non_empty(
                a.iter()
                    .map(artifacts)
                    .filter(|a| a != &BuildArtifacts::default())
                    .collect(),
            )
        }),
        report_arns: batch.report_arns.clone().and_then(non_empty),
    };
    info.builds = info.builds_done();
    info
}

/// The build id at the end of a build ARN (`arn:aws:codebuild:<region>:<account>:build/<id>`).
pub fn build_id_of_arn(arn: &str) -> Option<&str> {
    arn.split_once(":build/").map(|(_, id)| id)
}

fn phase(p: &aws::BuildBatchPhase) -> BuildBatchPhase {
    BuildBatchPhase {
        phase_type: p.phase_type.as_ref().map(|t| t.as_str().to_owned()),
        phase_status: p.phase_status.as_ref().map(|s| s.as_str().to_owned()),
        start_time: p.start_time.as_ref().and_then(from_aws_time),
        end_time: p.end_time.as_ref().and_then(from_aws_time),
        duration_in_seconds: p.duration_in_seconds,
        contexts: contexts(&p.contexts),
    }
}

fn group(g: &aws::BuildGroup) -> BuildGroup {
    BuildGroup {
        identifier: text(&g.identifier),
        depends_on: g.depends_on.clone().and_then(non_empty),
        ignore_failure: Some(g.ignore_failure),
        current_build_summary: g.current_build_summary.as_ref().map(summary),
        prior_build_summary_list: g
            .prior_build_summary_list
            .as_ref()
            .and_then(|l| non_empty(l.iter().map(summary).collect())),
    }
}

fn summary(s: &aws::BuildSummary) -> BuildSummary {
    let arn = text(&s.arn);
    BuildSummary {
        build_id: arn.as_deref().and_then(build_id_of_arn).map(str::to_owned),
        arn,
        requested_on: s.requested_on.as_ref().and_then(from_aws_time),
        build_status: s.build_status.as_ref().map(|b| b.as_str().to_owned()),
        primary_artifact: s
            .primary_artifact
            .as_ref()
            .map(resolved)
            .filter(|a| a != &ResolvedArtifact::default()),
        secondary_artifacts: s.secondary_artifacts.as_ref().and_then(|l| {
            non_empty(
                l.iter()
                    .map(resolved)
                    .filter(|a| a != &ResolvedArtifact::default())
                    .collect(),
            )
        }),
    }
}

fn resolved(a: &aws::ResolvedArtifact) -> ResolvedArtifact {
    ResolvedArtifact {
        type_: a.r#type.as_ref().map(|t| t.as_str().to_owned()),
        location: text(&a.location),
        identifier: text(&a.identifier),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_arn_gives_its_id() {
        assert_eq!(
            build_id_of_arn("arn:aws:codebuild:us-east-1:123456789012:build/p:0c1f-2d"),
            Some("p:0c1f-2d")
        );
        assert_eq!(build_id_of_arn("p:1"), None);
    }

    #[test]
    fn values_outside_the_model_are_mirrored_as_spelt() {
        let batch = aws::BuildBatch::builder()
            .id("p:b")
            .build_batch_status(aws::StatusType::InProgress)
            .build_groups(
                aws::BuildGroup::builder()
                    .identifier("a")
                    .current_build_summary(
                        aws::BuildSummary::builder()
                            .arn("arn:aws:codebuild:us-east-1:1:build/p:a1")
                            .build_status(aws::StatusType::from("PENDING"))
                            .primary_artifact(
                                aws::ResolvedArtifact::builder()
                                    .r#type(aws::ArtifactsType::from("s3"))
                                    .location("arn:aws:s3:::b/x")
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build();
        let info = batch_info(&batch);
        let group = &info.build_groups.as_ref().unwrap()[0];
        let current = group.current_build_summary.as_ref().unwrap();
        assert_eq!(current.build_status.as_deref(), Some("PENDING"));
        assert_eq!(current.build_id.as_deref(), Some("p:a1"));
        assert_eq!(
            current.primary_artifact.as_ref().unwrap().type_.as_deref(),
            Some("s3")
        );
        assert_eq!(info.builds.as_deref(), Some("0/1"));
    }
}
