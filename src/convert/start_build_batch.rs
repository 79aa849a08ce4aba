//! spec -> StartBuildBatch input.
//!
//! As for StartBuild, every member of the spec is destructured without `..`, so a member
//! added to the spec and forgotten here is a compile error; the members StartBuildBatch
//! shares with StartBuild go through the very functions StartBuild's do.

use aws_sdk_codebuild::operation::start_build_batch::StartBuildBatchInput;
use aws_sdk_codebuild::types as aws;

use super::ConvertError;
use super::start_build::{
    artifacts, cache, git_submodules, logs_config, map_list, project_source, registry_credential,
    source_auth, source_version_of, with_marker,
};
use crate::api::{BatchRestrictions, CodeBuildBatchRunSpec, ProjectBuildBatchConfig};

/// The StartBuildBatch request for `spec`, with `idempotency_token` (the spec's own token,
/// or the one the operator derived) and the marker variable naming the object's uid
/// appended to `environmentVariablesOverride` (replacing a user variable of the same name).
pub fn start_build_batch_input(
    spec: &CodeBuildBatchRunSpec,
    idempotency_token: &str,
    run_uid: &str,
) -> Result<StartBuildBatchInput, ConvertError> {
    let CodeBuildBatchRunSpec {
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
        idempotency_token: _, // the caller resolves it (spec's own or derived)
        logs_config_override,
        registry_credential_override,
        image_pull_credentials_type_override,
        build_batch_config_override,
        debug_session_enabled,
        operator: _, // operator settings are never sent to CodeBuild
    } = spec;

    let input = StartBuildBatchInput::builder()
        .project_name(project_name)
        .set_secondary_sources_override(map_list(secondary_sources_override, project_source)?)
        .set_secondary_sources_version_override(map_list(
            secondary_sources_version_override,
            source_version_of,
        )?)
        .set_source_version(source_version.clone())
        .set_artifacts_override(artifacts_override.as_ref().map(artifacts).transpose()?)
        .set_secondary_artifacts_override(map_list(secondary_artifacts_override, artifacts)?)
        .set_environment_variables_override(Some(with_marker(
            environment_variables_override,
            run_uid,
        )?))
        .set_source_type_override(source_type_override.map(|t| t.as_str().into()))
        .set_source_location_override(source_location_override.clone())
        .set_source_auth_override(source_auth_override.as_ref().map(source_auth).transpose()?)
        .set_git_clone_depth_override(*git_clone_depth_override)
        .set_git_submodules_config_override(
            git_submodules_config_override
                .as_ref()
                .map(git_submodules)
                .transpose()?,
        )
        .set_buildspec_override(buildspec_override.clone())
        .set_insecure_ssl_override(*insecure_ssl_override)
        .set_report_build_batch_status_override(*report_build_batch_status_override)
        .set_environment_type_override(environment_type_override.map(|t| t.as_str().into()))
        .set_image_override(image_override.clone())
        .set_compute_type_override(compute_type_override.map(|t| t.as_str().into()))
        .set_certificate_override(certificate_override.clone())
        .set_cache_override(cache_override.as_ref().map(cache).transpose()?)
        .set_service_role_override(service_role_override.clone())
        .set_privileged_mode_override(*privileged_mode_override)
        .set_build_timeout_in_minutes_override(*build_timeout_in_minutes_override)
        .set_queued_timeout_in_minutes_override(*queued_timeout_in_minutes_override)
        .set_encryption_key_override(encryption_key_override.clone())
        .idempotency_token(idempotency_token)
        .set_logs_config_override(logs_config_override.as_ref().map(logs_config).transpose()?)
        .set_registry_credential_override(
            registry_credential_override
                .as_ref()
                .map(registry_credential)
                .transpose()?,
        )
        .set_image_pull_credentials_type_override(
            image_pull_credentials_type_override.map(|t| t.as_str().into()),
        )
        .set_build_batch_config_override(build_batch_config_override.as_ref().map(batch_config))
        .set_debug_session_enabled(*debug_session_enabled)
        .build()?;
    Ok(input)
}

fn batch_config(c: &ProjectBuildBatchConfig) -> aws::ProjectBuildBatchConfig {
    let ProjectBuildBatchConfig {
        service_role,
        combine_artifacts,
        restrictions,
        timeout_in_mins,
        batch_report_mode,
    } = c;
    aws::ProjectBuildBatchConfig::builder()
        .set_service_role(service_role.clone())
        .set_combine_artifacts(*combine_artifacts)
        .set_restrictions(restrictions.as_ref().map(batch_restrictions))
        .set_timeout_in_mins(*timeout_in_mins)
        .set_batch_report_mode(batch_report_mode.map(|m| m.as_str().into()))
        .build()
}

fn batch_restrictions(r: &BatchRestrictions) -> aws::BatchRestrictions {
    let BatchRestrictions {
        maximum_builds_allowed,
        compute_types_allowed,
        fleets_allowed,
    } = r;
    aws::BatchRestrictions::builder()
        .set_maximum_builds_allowed(*maximum_builds_allowed)
        .set_compute_types_allowed(compute_types_allowed.clone())
        .set_fleets_allowed(fleets_allowed.clone())
        .build()
}
