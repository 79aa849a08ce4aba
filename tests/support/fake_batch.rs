//! The batch build calls of the one fake CodeBuild ([`FakeCodeBuild`]): batches kept in
//! memory, every call logged as `aws <Operation> <details>` in the same log as the build
//! calls.

use aws_sdk_codebuild::operation::start_build_batch::StartBuildBatchInput;
use aws_sdk_codebuild::types::{BuildBatch, EnvironmentVariable, ProjectEnvironment, StatusType};
use aws_smithy_types::DateTime;
use codebuild_operator::api::{MARKER_ENV_VAR, RetryBuildBatchType};
use codebuild_operator::codebuild::{
    ApiError, BatchApi, BatchesFound, BuildIdPage, ErrorKind, Target,
};

use super::fake::FakeCodeBuild;

/// A batch as CodeBuild returns it, carrying the marker of run `uid`.
pub fn batch(id: &str, status: StatusType, phase: &str, uid: &str) -> BuildBatch {
    let marker = EnvironmentVariable::builder()
        .name(MARKER_ENV_VAR)
        .value(uid)
        .build()
        .unwrap();
    BuildBatch::builder()
        .id(id)
        .arn(format!(
            "arn:aws:codebuild:us-east-1:123456789012:build-batch/{id}"
        ))
        .build_batch_number(1)
        .build_batch_status(status.clone())
        .current_phase(phase)
        .complete(status != StatusType::InProgress)
        .start_time(DateTime::from_secs(
            DateTime::from(std::time::SystemTime::now()).secs(),
        ))
        .environment(
            ProjectEnvironment::builder()
                .r#type("LINUX_CONTAINER".into())
                .image("img")
                .compute_type("BUILD_GENERAL1_SMALL".into())
                .environment_variables(marker)
                .build()
                .unwrap(),
        )
        .build()
}

impl FakeCodeBuild {
    /// Sets the status (and phase) of batch `id`; returns it, if CodeBuild knows it.
    pub fn set_batch_status(
        &self,
        id: &str,
        status: StatusType,
        phase: &str,
    ) -> Option<BuildBatch> {
        let mut batches = self.batches.lock().unwrap();
        let b = batches.iter_mut().find(|b| b.id.as_deref() == Some(id))?;
        b.build_batch_status = Some(status.clone());
        b.current_phase = Some(phase.to_owned());
        b.complete = status != StatusType::InProgress;
        Some(b.clone())
    }
}

impl BatchApi for FakeCodeBuild {
    async fn start_build_batch(
        &self,
        target: &Target,
        input: StartBuildBatchInput,
    ) -> Result<BuildBatch, ApiError> {
        let token = input.idempotency_token.clone().unwrap_or_default();
        self.log
            .lock()
            .unwrap()
            .push(format!("aws StartBuildBatch {target} token={token}"));
        let delay = *self.start_delay.lock().unwrap();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(e) = self.start_error.lock().unwrap().clone() {
            return Err(e);
        }
        let uid = input
            .environment_variables_override
            .unwrap_or_default()
            .into_iter()
            .find(|v| v.name == MARKER_ENV_VAR)
            .map(|v| v.value)
            .unwrap_or_default();
        let b = batch("p:b1", StatusType::InProgress, "SUBMITTED", &uid);
        self.batches.lock().unwrap().push(b.clone());
        Ok(b)
    }

    async fn batch_get_build_batches(
        &self,
        target: &Target,
        ids: Vec<String>,
    ) -> Result<BatchesFound, ApiError> {
        assert!(ids.len() <= 100, "more than 100 ids in one call");
        self.batch_batch_calls
            .lock()
            .unwrap()
            .push((target.region.clone(), ids.len()));
        self.log
            .lock()
            .unwrap()
            .push(format!("aws BatchGetBuildBatches {}", ids.join(",")));
        let known = self.batches.lock().unwrap().clone();
        let mut found = BatchesFound::default();
        for id in ids {
            match known.iter().find(|b| b.id.as_deref() == Some(&id)) {
                Some(b) => found.batches.push(b.clone()),
                None => found.not_found.push(id),
            }
        }
        Ok(found)
    }

    async fn stop_build_batch(&self, _target: &Target, id: &str) -> Result<BuildBatch, ApiError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("aws StopBuildBatch {id}"));
        self.set_batch_status(id, StatusType::Stopped, "STOPPED")
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::ProjectNotFound,
                    Some("ResourceNotFoundException"),
                    format!("Build batch {id} does not exist"),
                )
            })
    }

    async fn retry_build_batch(
        &self,
        _target: &Target,
        id: &str,
        retry_type: RetryBuildBatchType,
        idempotency_token: &str,
    ) -> Result<BuildBatch, ApiError> {
        self.log.lock().unwrap().push(format!(
            "aws RetryBuildBatch {id} {retry_type} token={idempotency_token}"
        ));
        self.set_batch_status(id, StatusType::InProgress, "SUBMITTED")
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::ProjectNotFound,
                    Some("ResourceNotFoundException"),
                    format!("Build batch {id} does not exist"),
                )
            })
    }

    async fn list_build_batches_for_project(
        &self,
        _target: &Target,
        project: &str,
        _next_token: Option<String>,
    ) -> Result<BuildIdPage, ApiError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("aws ListBuildBatchesForProject {project}"));
        let ids = self
            .batches
            .lock()
            .unwrap()
            .iter()
            .rev()
            .map(|b| b.id.clone().unwrap())
            .collect();
        Ok(BuildIdPage {
            ids,
            next_token: None,
        })
    }
}
