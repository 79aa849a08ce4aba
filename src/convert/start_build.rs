//! spec -> StartBuild input.
//!
//! Every member of the spec is destructured without `..`, so adding a field to the spec and
//! forgetting it here is a compile error; the tests compare a fully populated spec with the
//! request the SDK puts on the wire.

use aws_sdk_codebuild::operation::start_build::StartBuildInput;
use aws_sdk_codebuild::types as aws;
use aws_smithy_types::error::operation::BuildError;

use crate::api::{
    self, CodeBuildRunSpec, EnvironmentVariable, LogsConfig, ProjectArtifacts, ProjectCache,
    ProjectSource, ProjectSourceVersion,
};

/// A spec that the SDK refuses to turn into a request. The schema makes this unreachable for
/// objects admitted by the apiserver; it exists so nothing is dropped silently.
#[derive(Debug, thiserror::Error)]
#[error("spec cannot be sent as a StartBuild request: {0}")]
pub struct ConvertError(#[from] BuildError);

/// The StartBuild request for `spec`, with `idempotency_token` (the spec's own token, or
/// the one the operator derived) and the marker variable naming the object's uid appended
/// to `environmentVariablesOverride` (replacing a user variable of the same name).
pub fn start_build_input(
    spec: &CodeBuildRunSpec,
    idempotency_token: &str,
    run_uid: &str,
) -> Result<StartBuildInput, ConvertError> {
    let CodeBuildRunSpec {
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
        report_build_status_override,
        build_status_config_override,
        environment_type_override,
        image_override,
        compute_type_override,
        certificate_override,
        cache_override,
        service_role_override,
        privileged_mode_override,
        timeout_in_minutes_override,
        queued_timeout_in_minutes_override,
        encryption_key_override,
        idempotency_token: _, // the caller resolves it (spec's own or derived)
        logs_config_override,
        registry_credential_override,
        image_pull_credentials_type_override,
        debug_session_enabled,
        fleet_override,
        auto_retry_limit_override,
        host_kernel_override,
        operator: _, // operator settings are never sent to CodeBuild
    } = spec;

    let input = StartBuildInput::builder()
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
        .set_report_build_status_override(*report_build_status_override)
        .set_build_status_config_override(
            build_status_config_override
                .as_ref()
                .map(build_status_config),
        )
        .set_environment_type_override(environment_type_override.map(|t| t.as_str().into()))
        .set_image_override(image_override.clone())
        .set_compute_type_override(compute_type_override.map(|t| t.as_str().into()))
        .set_certificate_override(certificate_override.clone())
        .set_cache_override(cache_override.as_ref().map(cache).transpose()?)
        .set_service_role_override(service_role_override.clone())
        .set_privileged_mode_override(*privileged_mode_override)
        .set_timeout_in_minutes_override(*timeout_in_minutes_override)
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
        .set_debug_session_enabled(*debug_session_enabled)
        .set_fleet_override(fleet_override.as_ref().map(|f| {
            aws::ProjectFleet::builder()
                .set_fleet_arn(f.fleet_arn.clone())
                .build()
        }))
        .set_auto_retry_limit_override(*auto_retry_limit_override)
        .set_host_kernel_override(host_kernel_override.map(|t| t.as_str().into()))
        .build()?;
    Ok(input)
}

/// The user's variables (any of the marker's name dropped), then the marker with `run_uid`.
pub(super) fn with_marker(
    variables: &Option<Vec<EnvironmentVariable>>,
    run_uid: &str,
) -> Result<Vec<aws::EnvironmentVariable>, BuildError> {
    let mut env: Vec<aws::EnvironmentVariable> = Vec::new();
    for var in variables.iter().flatten() {
        if var.name != api::MARKER_ENV_VAR {
            env.push(environment_variable(var)?);
        }
    }
    env.push(
        aws::EnvironmentVariable::builder()
            .name(api::MARKER_ENV_VAR)
            .value(run_uid)
            .r#type(aws::EnvironmentVariableType::Plaintext)
            .build()?,
    );
    Ok(env)
}

pub(super) fn map_list<T, U>(
    list: &Option<Vec<T>>,
    f: impl Fn(&T) -> Result<U, BuildError>,
) -> Result<Option<Vec<U>>, BuildError> {
    list.as_ref()
        .map(|items| items.iter().map(f).collect())
        .transpose()
}

pub(super) fn environment_variable(
    v: &EnvironmentVariable,
) -> Result<aws::EnvironmentVariable, BuildError> {
    aws::EnvironmentVariable::builder()
        .name(&v.name)
        .value(&v.value)
        .set_type(v.type_.map(|t| t.as_str().into()))
        .build()
}

pub(super) fn project_source(s: &ProjectSource) -> Result<aws::ProjectSource, BuildError> {
    let ProjectSource {
        type_,
        location,
        git_clone_depth,
        git_submodules_config,
        buildspec,
        auth,
        report_build_status,
        build_status_config: status_config,
        insecure_ssl,
        source_identifier,
    } = s;
    aws::ProjectSource::builder()
        .r#type(type_.as_str().into())
        .set_location(location.clone())
        .set_git_clone_depth(*git_clone_depth)
        .set_git_submodules_config(
            git_submodules_config
                .as_ref()
                .map(git_submodules)
                .transpose()?,
        )
        .set_buildspec(buildspec.clone())
        .set_auth(auth.as_ref().map(source_auth).transpose()?)
        .set_report_build_status(*report_build_status)
        .set_build_status_config(status_config.as_ref().map(build_status_config))
        .set_insecure_ssl(*insecure_ssl)
        .set_source_identifier(source_identifier.clone())
        .build()
}

pub(super) fn source_version_of(
    v: &ProjectSourceVersion,
) -> Result<aws::ProjectSourceVersion, BuildError> {
    aws::ProjectSourceVersion::builder()
        .source_identifier(&v.source_identifier)
        .source_version(&v.source_version)
        .build()
}

pub(super) fn artifacts(a: &ProjectArtifacts) -> Result<aws::ProjectArtifacts, BuildError> {
    let ProjectArtifacts {
        type_,
        location,
        path,
        namespace_type,
        name,
        packaging,
        override_artifact_name,
        encryption_disabled,
        artifact_identifier,
        bucket_owner_access,
    } = a;
    aws::ProjectArtifacts::builder()
        .r#type(type_.as_str().into())
        .set_location(location.clone())
        .set_path(path.clone())
        .set_namespace_type(namespace_type.map(|t| t.as_str().into()))
        .set_name(name.clone())
        .set_packaging(packaging.map(|t| t.as_str().into()))
        .set_override_artifact_name(*override_artifact_name)
        .set_encryption_disabled(*encryption_disabled)
        .set_artifact_identifier(artifact_identifier.clone())
        .set_bucket_owner_access(bucket_owner_access.map(|t| t.as_str().into()))
        .build()
}

pub(super) fn source_auth(a: &api::SourceAuth) -> Result<aws::SourceAuth, BuildError> {
    aws::SourceAuth::builder()
        .r#type(a.type_.as_str().into())
        .set_resource(a.resource.clone())
        .build()
}

pub(super) fn git_submodules(
    g: &api::GitSubmodulesConfig,
) -> Result<aws::GitSubmodulesConfig, BuildError> {
    aws::GitSubmodulesConfig::builder()
        .fetch_submodules(g.fetch_submodules)
        .build()
}

fn build_status_config(c: &api::BuildStatusConfig) -> aws::BuildStatusConfig {
    aws::BuildStatusConfig::builder()
        .set_context(c.context.clone())
        .set_target_url(c.target_url.clone())
        .build()
}

pub(super) fn cache(c: &ProjectCache) -> Result<aws::ProjectCache, BuildError> {
    aws::ProjectCache::builder()
        .r#type(c.type_.as_str().into())
        .set_location(c.location.clone())
        .set_modes(
            c.modes
                .as_ref()
                .map(|m| m.iter().map(|m| m.as_str().into()).collect()),
        )
        .set_cache_namespace(c.cache_namespace.clone())
        .build()
}

pub(super) fn logs_config(l: &LogsConfig) -> Result<aws::LogsConfig, BuildError> {
    let cloud_watch = l
        .cloud_watch_logs
        .as_ref()
        .map(|c| {
            aws::CloudWatchLogsConfig::builder()
                .status(c.status.as_str().into())
                .set_group_name(c.group_name.clone())
                .set_stream_name(c.stream_name.clone())
                .build()
        })
        .transpose()?;
    let s3 = l
        .s3_logs
        .as_ref()
        .map(|s| {
            aws::S3LogsConfig::builder()
                .status(s.status.as_str().into())
                .set_location(s.location.clone())
                .set_encryption_disabled(s.encryption_disabled)
                .set_bucket_owner_access(s.bucket_owner_access.map(|t| t.as_str().into()))
                .build()
        })
        .transpose()?;
    Ok(aws::LogsConfig::builder()
        .set_cloud_watch_logs(cloud_watch)
        .set_s3_logs(s3)
        .build())
}

pub(super) fn registry_credential(
    r: &api::RegistryCredential,
) -> Result<aws::RegistryCredential, BuildError> {
    aws::RegistryCredential::builder()
        .credential(&r.credential)
        .credential_provider(r.credential_provider.as_str().into())
        .build()
}
