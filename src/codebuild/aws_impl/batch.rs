//! `BatchApi` on the AWS SDK: the same clients, identities, timeouts and metrics as the
//! build calls (`super::AwsBuildApi`); StartBuildBatch is paced by the same per-target
//! start rate as StartBuild.

use aws_sdk_codebuild::operation::start_build_batch::StartBuildBatchInput;
use aws_sdk_codebuild::operation::start_build_batch::builders::StartBuildBatchFluentBuilder;
use aws_sdk_codebuild::types::{BuildBatch, SortOrderType};

use super::super::batch::{BATCH_GET_BUILD_BATCHES_MAX_IDS, BatchApi, BatchesFound};
use super::super::{ApiError, BuildIdPage, ErrorKind, Target};
use super::AwsBuildApi;
use crate::api::RetryBuildBatchType;

impl BatchApi for AwsBuildApi {
    async fn start_build_batch(
        &self,
        target: &Target,
        input: StartBuildBatchInput,
    ) -> Result<BuildBatch, ApiError> {
        let request = start_build_batch_request(self.client(target), input);
        let call = async { request.send().await.map_err(|e| ApiError::from_sdk(&e)) };
        let out = self.observe("StartBuildBatch", target, call).await?;
        self.start_went_through(target);
        out.build_batch.ok_or_else(|| no_batch("StartBuildBatch"))
    }

    async fn batch_get_build_batches(
        &self,
        target: &Target,
        ids: Vec<String>,
    ) -> Result<BatchesFound, ApiError> {
        debug_assert!(ids.len() <= BATCH_GET_BUILD_BATCHES_MAX_IDS);
        let client = self.client(target);
        let call = async {
            client
                .batch_get_build_batches()
                .set_ids(Some(ids))
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))
        };
        let out = self.observe("BatchGetBuildBatches", target, call).await?;
        Ok(BatchesFound {
            batches: out.build_batches.unwrap_or_default(),
            not_found: out.build_batches_not_found.unwrap_or_default(),
        })
    }

    async fn stop_build_batch(&self, target: &Target, id: &str) -> Result<BuildBatch, ApiError> {
        let client = self.client(target);
        let call = async {
            client
                .stop_build_batch()
                .id(id)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))
        };
        let out = self.observe("StopBuildBatch", target, call).await?;
        out.build_batch.ok_or_else(|| no_batch("StopBuildBatch"))
    }

    async fn retry_build_batch(
        &self,
        target: &Target,
        id: &str,
        retry_type: RetryBuildBatchType,
        idempotency_token: &str,
    ) -> Result<BuildBatch, ApiError> {
        let client = self.client(target);
        let call = async {
            client
                .retry_build_batch()
                .id(id)
                .retry_type(retry_type.as_str().into())
                .idempotency_token(idempotency_token)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))
        };
        let out = self.observe("RetryBuildBatch", target, call).await?;
        out.build_batch.ok_or_else(|| no_batch("RetryBuildBatch"))
    }

    async fn list_build_batches_for_project(
        &self,
        target: &Target,
        project: &str,
        next_token: Option<String>,
    ) -> Result<BuildIdPage, ApiError> {
        let client = self.client(target);
        let call = async {
            client
                .list_build_batches_for_project()
                .project_name(project)
                .sort_order(SortOrderType::Descending)
                .max_results(100)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))
        };
        let out = self
            .observe("ListBuildBatchesForProject", target, call)
            .await?;
        Ok(BuildIdPage {
            ids: out.ids.unwrap_or_default(),
            next_token: out.next_token,
        })
    }
}

/// The StartBuildBatch call for `input` on `client`. The fluent builder has no "from input":
/// every member is copied. The input is built by `convert::start_build_batch_input`, which
/// covers every spec member.
fn start_build_batch_request(
    client: aws_sdk_codebuild::Client,
    input: StartBuildBatchInput,
) -> StartBuildBatchFluentBuilder {
    let StartBuildBatchInput {
        project_name,
        secondary_sources_override,
        secondary_sources_version_override,
        source_version,
        artifacts_override,
        secondary_artifacts_override,
        environment_variables_override,
        source_type_override,
        source_location_override,
        source_auth_override,
        git_clone_depth_override,
        git_submodules_config_override,
        buildspec_override,
        insecure_ssl_override,
        report_build_batch_status_override,
        environment_type_override,
        image_override,
        compute_type_override,
        certificate_override,
        cache_override,
        service_role_override,
        privileged_mode_override,
        build_timeout_in_minutes_override,
        queued_timeout_in_minutes_override,
        encryption_key_override,
        idempotency_token,
        logs_config_override,
        registry_credential_override,
        image_pull_credentials_type_override,
        build_batch_config_override,
        debug_session_enabled,
        ..
    } = input;
    client
        .start_build_batch()
        .set_project_name(project_name)
        .set_secondary_sources_override(secondary_sources_override)
        .set_secondary_sources_version_override(secondary_sources_version_override)
        .set_source_version(source_version)
        .set_artifacts_override(artifacts_override)
        .set_secondary_artifacts_override(secondary_artifacts_override)
        .set_environment_variables_override(environment_variables_override)
        .set_source_type_override(source_type_override)
        .set_source_location_override(source_location_override)
        .set_source_auth_override(source_auth_override)
        .set_git_clone_depth_override(git_clone_depth_override)
        .set_git_submodules_config_override(git_submodules_config_override)
        .set_buildspec_override(buildspec_override)
        .set_insecure_ssl_override(insecure_ssl_override)
        .set_report_build_batch_status_override(report_build_batch_status_override)
        .set_environment_type_override(environment_type_override)
        .set_image_override(image_override)
        .set_compute_type_override(compute_type_override)
        .set_certificate_override(certificate_override)
        .set_cache_override(cache_override)
        .set_service_role_override(service_role_override)
        .set_privileged_mode_override(privileged_mode_override)
        .set_build_timeout_in_minutes_override(build_timeout_in_minutes_override)
        .set_queued_timeout_in_minutes_override(queued_timeout_in_minutes_override)
        .set_encryption_key_override(encryption_key_override)
        .set_idempotency_token(idempotency_token)
        .set_logs_config_override(logs_config_override)
        .set_registry_credential_override(registry_credential_override)
        .set_image_pull_credentials_type_override(image_pull_credentials_type_override)
        .set_build_batch_config_override(build_batch_config_override)
        .set_debug_session_enabled(debug_session_enabled)
}

fn no_batch(operation: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Other,
        None,
        format!("{operation} returned no build batch"),
    )
}
