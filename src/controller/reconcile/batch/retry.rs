//! Retries of a batch (RetryBuildBatch), exactly once each: the attempt is recorded in
//! status (with the resourceVersion the decision was made on, then the finalizer) before
//! the call, as a start is; a lost answer is repeated with its token or checked, as
//! `plan::retry` decides.

use kube::runtime::controller::Action;

use super::super::super::conditions::Progress;
use super::super::super::plan::Note;
use super::super::super::plan::batch::{self as plan, batch_progress, settle};
use super::super::super::plan::retry::{RetryStep, after_check};
use super::super::{Doing, Error, Step};
use crate::api::names::{action, reason};
use crate::api::{CodeBuildBatchRun, RetryAttempt};
use crate::codebuild::{CodeBuild, ErrorKind};
use crate::convert::{self, batch_info};

impl Doing {
    const RETRYING: Doing = Doing {
        action: action::RETRY_BUILD_BATCH,
        what: "retrying the build batch",
    };
}

impl<B: CodeBuild> Step<'_, B, CodeBuildBatchRun> {
    /// Carries out a retry step of `plan::retry`.
    pub(super) async fn retry(&mut self, step: RetryStep) -> Result<Action, Error> {
        self.doing = Doing::RETRYING;
        match step {
            // Settled in the plan's mirror; nothing to do here.
            RetryStep::Idle | RetryStep::Took(_) => Ok(Action::await_change()),
            RetryStep::WaitForLostCall(wait) => Ok(Action::requeue(wait)),
            RetryStep::Retry(attempt) => {
                self.claim_retry(&attempt).await?;
                self.call_retry(attempt).await
            }
            RetryStep::Resend(attempt) => {
                self.ensure_finalizer().await?;
                self.call_retry(attempt).await
            }
            RetryStep::Check(attempt) => {
                let id = self.current.batch.id.clone().unwrap_or_default();
                let fresh = self.read_batch(&id).await?;
                match after_check(&attempt, &fresh, convert::now().0) {
                    RetryStep::Retry(again) => {
                        self.claim_retry(&again).await?;
                        self.call_retry(again).await
                    }
                    _ => {
                        let mut next = self.current.clone();
                        settle(
                            &mut next,
                            RetryAttempt {
                                retried: Some(true),
                                ..attempt
                            },
                        );
                        self.mirror_fresh(next, &fresh).await
                    }
                }
            }
        }
    }

    /// The first write of a retry: the attempt in status with the conditions of a batch
    /// being retried, carrying the resourceVersion the decision was made on; then the
    /// finalizer, so a delete during the retry stops the batch.
    async fn claim_retry(&mut self, attempt: &RetryAttempt) -> Result<(), Error> {
        let id = self.current.batch.id.clone().unwrap_or_default();
        let mut next = self.current.clone();
        settle(&mut next, attempt.clone());
        let progress = Progress::InProgress {
            reason: reason::RETRY_REQUESTED.to_owned(),
            message: format!(
                "retrying build batch {id} ({}, retry {})",
                attempt.retry_type, attempt.count
            ),
        };
        self.claim_with(next, &progress).await?;
        self.ensure_finalizer().await
    }

    /// RetryBuildBatch with the attempt's token; its answer is mirrored. CodeBuild's
    /// refusal is recorded with the attempt (it is not made again) and said in a Warning.
    async fn call_retry(&mut self, attempt: RetryAttempt) -> Result<Action, Error> {
        let id = self.current.batch.id.clone().unwrap_or_default();
        let target = self.target();
        let answer = self
            .ctx
            .codebuild
            .retry_build_batch(&target, &id, attempt.retry_type, &attempt.idempotency_token)
            .await;
        match answer {
            Ok(batch) => {
                let info = batch_info(&batch);
                self.ctx.batches.record(&info);
                let message = format!(
                    "retried build batch {id} ({}, retry {})",
                    attempt.retry_type, attempt.count
                );
                let mut next = self.current.clone();
                settle(
                    &mut next,
                    RetryAttempt {
                        retried: Some(true),
                        ..attempt
                    },
                );
                let note =
                    Note::normal(reason::RETRY_REQUESTED, action::RETRY_BUILD_BATCH, message);
                self.publish(note).await;
                self.mirror_fresh(next, &info).await
            }
            Err(e) if e.kind == ErrorKind::InvalidInput => {
                let message = format!(
                    "CodeBuild refused retry {} of build batch {id} ({}): {e}; it is not made \
                     again (raise spec.operator.retry.count to ask for another)",
                    attempt.count, attempt.retry_type
                );
                let mut next = self.current.clone();
                settle(
                    &mut next,
                    RetryAttempt {
                        refused: Some(e.to_string()),
                        ..attempt
                    },
                );
                let progress = batch_progress(&next.batch);
                self.write(next, &progress).await?;
                let note = Note::warning(reason::RETRY_REFUSED, action::RETRY_BUILD_BATCH, message);
                self.publish(note).await;
                if self.current.batch.is_finished() {
                    self.release().await?;
                }
                Ok(Action::await_change())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Mirrors `fresh` (a batch CodeBuild answered outside a tracker round) into `next`.
    async fn mirror_fresh(
        &mut self,
        next: crate::api::CodeBuildBatchRunStatus,
        fresh: &crate::api::BuildBatchInfo,
    ) -> Result<Action, Error> {
        let options = self.run.spec.options();
        let (now, events) = (convert::now().0, self.ctx.settings.events);
        let mirror = plan::mirror(&next, fresh, &options, now, events);
        self.mirror_batch(mirror).await
    }
}
