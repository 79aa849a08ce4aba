//! `BuildApi` on the AWS SDK: one CodeBuild client and one CloudWatch Logs client per target
//! (Region, and the tenant role when one is assumed), sharing that target's credentials. The operator's own credentials come from aws-config's default chain
//! (environment, profile, web identity / IRSA, EKS Pod Identity, instance metadata); a
//! tenant role is assumed with STS AssumeRole on top of them. Each client keeps its
//! credentials in the SDK's identity cache, which refreshes them before they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, SdkConfig, timeout::TimeoutConfig};
use aws_sdk_codebuild::Client;
use aws_sdk_codebuild::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_codebuild::config::{
    ConfigBag, Intercept, Region, RuntimeComponents, SharedCredentialsProvider,
};
use aws_sdk_codebuild::error::BoxError;
use aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsError;
use aws_sdk_codebuild::operation::batch_get_reports::BatchGetReportsError;
use aws_sdk_codebuild::operation::list_builds_for_project::ListBuildsForProjectError;
use aws_sdk_codebuild::operation::start_build::StartBuildError;
use aws_sdk_codebuild::operation::start_build::StartBuildInput;
use aws_sdk_codebuild::operation::stop_build::StopBuildError;
use aws_sdk_codebuild::types::{Build, SortOrderType};

use aws_smithy_runtime_api::client::interceptors::context::Error as OperationError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::error::classify_service;
use super::{
    ApiError, AssumedRole, BuildApi, BuildBatch, BuildIdPage, ErrorKind, LogEvent, LogPage,
    LogRead, ReportBatch, StartRate, Target,
};
use crate::metrics::Metrics;

mod batch;

/// How long one attempt of a call may take before it counts as a network failure.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call may take including the SDK's own retries, by default.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one GetLogEvents call may take: the failure tail must never hold a run's final
/// status back for long, and a follower polls again a second later anyway.
const LOGS_TIMEOUT: Duration = Duration::from_secs(5);
/// The session tag naming the namespace a tenant role is assumed for.
pub const NAMESPACE_SESSION_TAG: &str = "kubernetes-namespace";

/// Where the AWS calls go.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// An endpoint URL that replaces CodeBuild's (for local emulators). When unset, the SDK
    /// still honours `AWS_ENDPOINT_URL_CODEBUILD` and `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// An endpoint URL that replaces STS's for AssumeRole (emulators, VPC endpoints). When
    /// unset, the SDK still honours `AWS_ENDPOINT_URL_STS` and `AWS_ENDPOINT_URL`.
    pub sts_endpoint_url: Option<String>,
    /// How long a call may take, the SDK's retries included ([`OPERATION_TIMEOUT`] when
    /// unset). The exactly-once start relies on it: a call older than this is over.
    pub operation_timeout: Option<Duration>,
    /// An endpoint URL that replaces CloudWatch Logs' (GetLogEvents). When unset, the SDK
    /// still honours `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` and `AWS_ENDPOINT_URL`.
    pub logs_endpoint_url: Option<String>,
}

impl AwsSettings {
    /// The operation timeout in force.
    pub fn operation_timeout(&self) -> Duration {
        self.operation_timeout.unwrap_or(OPERATION_TIMEOUT)
    }
}

/// The clients of one target, sharing its credentials.
#[derive(Clone)]
struct Clients {
    codebuild: Client,
    logs: aws_sdk_cloudwatchlogs::Client,
}

/// CodeBuild through the AWS SDK.
#[derive(Clone)]
pub struct AwsBuildApi {
    shared: Arc<SdkConfig>,
    settings: AwsSettings,
    clients: Arc<Mutex<HashMap<Target, Clients>>>,
    start_rates: Arc<Mutex<HashMap<Target, Arc<Mutex<StartRate>>>>>,
    metrics: Arc<Metrics>,
}

impl AwsBuildApi {
    /// Loads aws-config's default chain. `region` is the region used when neither the flag
    /// nor the environment names one.
    pub async fn load(region: Option<String>, settings: AwsSettings) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(ATTEMPT_TIMEOUT.min(settings.operation_timeout()))
                .operation_timeout(settings.operation_timeout())
                .build(),
        );
        if let Some(region) = region {
            loader = loader.region(Region::new(region));
        }
        Self::from_sdk_config(loader.load().await, settings)
    }

    /// Uses an already loaded configuration (tests pass one with a fake HTTP client).
    pub fn from_sdk_config(shared: SdkConfig, settings: AwsSettings) -> Self {
        AwsBuildApi {
            shared: Arc::new(shared),
            settings,
            clients: Arc::default(),
            start_rates: Arc::default(),
            metrics: Arc::default(),
        }
    }

    /// Counts every call into `metrics` (a fresh, unexported set by default).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Makes one call of `operation` to `target`, and counts it: outcome (success or the
    /// error category), Region and how long it took, the SDK's retries included.
    async fn observe<T>(
        &self,
        operation: &'static str,
        target: &Target,
        call: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics.aws_call(
            operation,
            &target.region,
            started.elapsed(),
            result.as_ref().map(|_| ()).map_err(|e| e.kind.category()),
        );
        result
    }

    /// The region of the loaded configuration, if any.
    pub fn default_region(&self) -> Option<String> {
        self.shared.region().map(|r| r.to_string())
    }

    /// The CodeBuild client of `target`.
    fn client(&self, target: &Target) -> Client {
        self.clients(target).codebuild
    }

    /// The clients of `target`, made on first use and kept: their identity cache holds the
    /// target's credentials (for a role: one AssumeRole, then a refresh shortly before the
    /// credentials expire).
    fn clients(&self, target: &Target) -> Clients {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry(target.clone())
            .or_insert_with(|| self.make_clients(target))
            .clone()
    }

    /// The StartBuild pace of `target`, made on first use and kept.
    fn start_rate(&self, target: &Target) -> Arc<Mutex<StartRate>> {
        let mut rates = self
            .start_rates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        rates
            .entry(target.clone())
            .or_insert_with(|| Arc::new(Mutex::new(StartRate::new(Instant::now()))))
            .clone()
    }

    /// A start (StartBuild or StartBuildBatch) to `target` went through: its rate may rise.
    pub(super) fn start_went_through(&self, target: &Target) {
        self.start_rate(target)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .succeeded(Instant::now());
    }

    fn make_clients(&self, target: &Target) -> Clients {
        let region = Region::new(target.region.clone());
        let role = target
            .role
            .as_ref()
            .map(|role| SharedCredentialsProvider::new(self.assume_role(role)));
        let mut codebuild = aws_sdk_codebuild::config::Builder::from(self.shared.as_ref())
            .region(region.clone())
            .interceptor(ThrottleCounter {
                metrics: self.metrics.clone(),
                region: target.region.clone(),
                start_rate: self.start_rate(target),
            });
        // One attempt per GetLogEvents: the tail is read once per failed build, and a
        // follower paces its own retries (each attempt is a call against the account's quota).
        let mut logs = aws_sdk_cloudwatchlogs::config::Builder::from(self.shared.as_ref())
            .region(region)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(LOGS_TIMEOUT)
                    .operation_timeout(LOGS_TIMEOUT)
                    .build(),
            );
        if let Some(provider) = role {
            codebuild = codebuild.credentials_provider(provider.clone());
            logs = logs.credentials_provider(provider);
        }
        if let Some(url) = &self.settings.endpoint_url {
            codebuild = codebuild.endpoint_url(url);
        }
        if let Some(url) = &self.settings.logs_endpoint_url {
            logs = logs.endpoint_url(url);
        }
        Clients {
            codebuild: Client::from_conf(codebuild.build()),
            logs: aws_sdk_cloudwatchlogs::Client::from_conf(logs.build()),
        }
    }

    /// A credentials provider that assumes `role` with the operator's own credentials. STS
    /// is reached as aws-config says (its Region, `AWS_ENDPOINT_URL_STS`).
    fn assume_role(&self, role: &AssumedRole) -> AssumeRoleProvider {
        let sts_config = match &self.settings.sts_endpoint_url {
            Some(url) => self.shared.to_builder().endpoint_url(url).build(),
            None => self.shared.as_ref().clone(),
        };
        let builder = AssumeRoleProvider::builder(role.role_arn.clone())
            .session_name(role.session_name())
            .tags([(NAMESPACE_SESSION_TAG, role.namespace.as_str())])
            .configure(&sts_config);
        // `build` is async only to load a default configuration, which `configure` has
        // given: the future completes at once, without I/O.
        futures::executor::block_on(builder.build())
    }
}

impl BuildApi for AwsBuildApi {
    fn start_permit(&self, target: &Target) -> Result<(), Duration> {
        self.start_rate(target)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .permit(Instant::now())
    }

    async fn start_build(
        &self,
        target: &Target,
        input: StartBuildInput,
    ) -> Result<Build, ApiError> {
        // The fluent builder has no "from input": copy every member. `StartBuildInput` is
        // built by `convert::start_build_input`, which covers every spec member.
        let StartBuildInput {
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
            idempotency_token,
            logs_config_override,
            registry_credential_override,
            image_pull_credentials_type_override,
            debug_session_enabled,
            fleet_override,
            auto_retry_limit_override,
            host_kernel_override,
            ..
        } = input;
        let client = self.client(target);
        let call = async {
            client
                .start_build()
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
                .set_report_build_status_override(report_build_status_override)
                .set_build_status_config_override(build_status_config_override)
                .set_environment_type_override(environment_type_override)
                .set_image_override(image_override)
                .set_compute_type_override(compute_type_override)
                .set_certificate_override(certificate_override)
                .set_cache_override(cache_override)
                .set_service_role_override(service_role_override)
                .set_privileged_mode_override(privileged_mode_override)
                .set_timeout_in_minutes_override(timeout_in_minutes_override)
                .set_queued_timeout_in_minutes_override(queued_timeout_in_minutes_override)
                .set_encryption_key_override(encryption_key_override)
                .set_idempotency_token(idempotency_token)
                .set_logs_config_override(logs_config_override)
                .set_registry_credential_override(registry_credential_override)
                .set_image_pull_credentials_type_override(image_pull_credentials_type_override)
                .set_debug_session_enabled(debug_session_enabled)
                .set_fleet_override(fleet_override)
                .set_auto_retry_limit_override(auto_retry_limit_override)
                .set_host_kernel_override(host_kernel_override)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))
        };
        let out = self.observe("StartBuild", target, call).await?;
        self.start_went_through(target);
        out.build_value
            .ok_or_else(|| ApiError::new(ErrorKind::Other, None, "StartBuild returned no build"))
    }

    async fn batch_get_builds(
        &self,
        target: &Target,
        ids: Vec<String>,
    ) -> Result<BuildBatch, ApiError> {
        let client = self.client(target);
        let call = async {
            client
                .batch_get_builds()
                .set_ids(Some(ids))
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))
        };
        let out = self.observe("BatchGetBuilds", target, call).await?;
        Ok(BuildBatch {
            builds: out.builds.unwrap_or_default(),
            not_found: out.builds_not_found.unwrap_or_default(),
        })
    }

    async fn stop_build(&self, target: &Target, id: &str) -> Result<Build, ApiError> {
        let client = self.client(target);
        let call = async {
            client
                .stop_build()
                .id(id)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))
        };
        let out = self.observe("StopBuild", target, call).await?;
        out.build_value
            .ok_or_else(|| ApiError::new(ErrorKind::Other, None, "StopBuild returned no build"))
    }

    async fn list_builds_for_project(
        &self,
        target: &Target,
        project: &str,
        next_token: Option<String>,
    ) -> Result<BuildIdPage, ApiError> {
        let client = self.client(target);
        let call = async {
            client
                .list_builds_for_project()
                .project_name(project)
                .sort_order(SortOrderType::Descending)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))
        };
        let out = self.observe("ListBuildsForProject", target, call).await?;
        Ok(BuildIdPage {
            ids: out.ids.unwrap_or_default(),
            next_token: out.next_token,
        })
    }

    async fn batch_get_reports(
        &self,
        target: &Target,
        arns: Vec<String>,
    ) -> Result<ReportBatch, ApiError> {
        let client = self.client(target);
        let call = async {
            client
                .batch_get_reports()
                .set_report_arns(Some(arns))
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))
        };
        let out = self.observe("BatchGetReports", target, call).await?;
        Ok(ReportBatch {
            reports: out.reports.unwrap_or_default(),
            not_found: out.reports_not_found.unwrap_or_default(),
        })
    }

    async fn get_log_events(&self, target: &Target, read: LogRead) -> Result<LogPage, ApiError> {
        let logs = self.clients(target).logs;
        let call = async {
            logs.get_log_events()
                .log_group_name(read.group)
                .log_stream_name(read.stream)
                .start_from_head(read.start_from_head)
                .set_next_token(read.next_token)
                .set_limit(read.limit)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))
        };
        let out = self.observe("GetLogEvents", target, call).await?;
        Ok(LogPage {
            events: out
                .events
                .unwrap_or_default()
                .into_iter()
                .map(|e| LogEvent {
                    timestamp: e.timestamp,
                    ingestion_time: e.ingestion_time,
                    message: e.message.unwrap_or_default(),
                })
                .collect(),
            next_forward_token: out.next_forward_token,
            next_backward_token: out.next_backward_token,
        })
    }
}

/// Counts every HTTP request CodeBuild throttled, attempt by attempt: the SDK retries a
/// throttled request on its own (standard retry mode), so a call that succeeded on its
/// second attempt shows as a success in `aws_calls_total` and only here as throttling.
/// One per client, which is one per target: the Region is the client's.
#[derive(Debug)]
struct ThrottleCounter {
    metrics: Arc<Metrics>,
    region: String,
    /// The target's StartBuild pace, slowed by every throttled StartBuild attempt.
    start_rate: Arc<Mutex<StartRate>>,
}

impl Intercept for ThrottleCounter {
    fn name(&self) -> &'static str {
        "ThrottleCounter"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(status) = context.response().map(|r| r.status().as_u16()) else {
            return Ok(()); // no answer at all: a network failure, not throttling
        };
        let Some(Err(error)) = context.output_or_error() else {
            return Ok(());
        };
        let code = error.as_operation_error().and_then(|e| {
            error_code::<StartBuildError>(e)
                .or_else(|| error_code::<BatchGetBuildsError>(e))
                .or_else(|| error_code::<StopBuildError>(e))
                .or_else(|| error_code::<ListBuildsForProjectError>(e))
                .or_else(|| error_code::<BatchGetReportsError>(e))
                .or_else(|| batch_error_code(e))
        });
        if classify_service(code.as_deref(), None, status).kind == ErrorKind::Throttled {
            let operation = cfg.load::<Metadata>().map(|m| m.name()).unwrap_or_default();
            self.metrics
                .aws_throttled(operation_label(operation), &self.region);
            if operation == "StartBuild" || operation == "StartBuildBatch" {
                self.start_rate
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .throttled(Instant::now());
            }
        }
        Ok(())
    }
}

/// The service's error code, when `error` is an error of the operation `E`.
fn error_code<E>(error: &OperationError) -> Option<String>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    error
        .downcast_ref::<E>()
        .and_then(|e| e.code())
        .map(str::to_owned)
}

/// The service's error code, when `error` is an error of a batch build operation.
fn batch_error_code(error: &OperationError) -> Option<String> {
    use aws_sdk_codebuild::operation::{
        batch_get_build_batches::BatchGetBuildBatchesError,
        list_build_batches_for_project::ListBuildBatchesForProjectError,
        retry_build_batch::RetryBuildBatchError, start_build_batch::StartBuildBatchError,
        stop_build_batch::StopBuildBatchError,
    };
    error_code::<StartBuildBatchError>(error)
        .or_else(|| error_code::<BatchGetBuildBatchesError>(error))
        .or_else(|| error_code::<StopBuildBatchError>(error))
        .or_else(|| error_code::<RetryBuildBatchError>(error))
        .or_else(|| error_code::<ListBuildBatchesForProjectError>(error))
}

/// The operation as a label value: one of the CodeBuild operations the operator calls.
fn operation_label(name: &str) -> &'static str {
    [
        "StartBuild",
        "BatchGetBuilds",
        "StopBuild",
        "ListBuildsForProject",
        "BatchGetReports",
        "StartBuildBatch",
        "BatchGetBuildBatches",
        "StopBuildBatch",
        "RetryBuildBatch",
        "ListBuildBatchesForProject",
    ]
    .into_iter()
    .find(|op| *op == name)
    .unwrap_or("other")
}
