//! The two kinds of run the one lifecycle carries: a CodeBuildRun (one build) and a
//! CodeBuildBatchRun (one batch build).
//!
//! Everything between "decide" and "the id is in status" is shared (the policy decision,
//! the start timing, the claim, the pacing, the search after a lost answer, the token
//! refusal, cancellation), and so are the writes, the finalizer release and the failure
//! road. A [`Kind`] supplies only what differs: its words, the request and the call that
//! start it, the search for its marker, how what it started reads as conditions, and how
//! a started one is followed and cleaned up.

use std::fmt::Debug;
use std::future::Future;

use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::Action;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::super::claim::LegacyAttempt;
use super::super::conditions::Progress;
use super::{Error, Step};
use crate::api::{RunOptions, RunStatus};
use crate::codebuild::{ApiError, CodeBuild, Target};
use crate::convert::ConvertError;
use crate::metrics::Metrics;
use crate::policy::{Decision, Policies};

/// What a kind started, as its status mirrors it.
pub(super) type StartedOf<K> = <<K as Kind>::Status as RunStatus>::Started;

/// The words a kind's Events, conditions and failures use.
pub(super) struct Words {
    /// What one object starts: "build", "build batch".
    pub thing: &'static str,
    /// The call that starts it: the Event action of the start sequence.
    pub start_action: &'static str,
    /// The call that stops it.
    pub stop_action: &'static str,
    /// The Event reason of a start.
    pub started: &'static str,
    /// The Event reason of a start found again by its marker.
    pub recovered: &'static str,
    /// What a failure while starting says the operator was doing.
    pub starting: &'static str,
    /// What a failure while searching for a lost start says the operator was doing.
    pub searching: &'static str,
}

/// A kind of run.
pub(super) trait Kind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Its status.
    type Status: RunStatus + Serialize;
    /// The request that starts it.
    type Input: Send;

    /// Its words.
    const WORDS: Words;

    /// Its status, if written.
    fn run_status(&self) -> Option<&Self::Status>;
    /// The settings of `spec.operator` every kind shares.
    fn options(&self) -> RunOptions;
    /// `spec.projectName`.
    fn project_name(&self) -> &str;
    /// `spec.idempotencyToken`.
    fn spec_token(&self) -> Option<&str>;
    /// A start attempt in the annotation of earlier operator versions (CodeBuildRun only).
    fn legacy_attempt(&self) -> Option<LegacyAttempt>;
    /// The policies' decision on it, None while its namespace is not known yet.
    fn decide(&self, policies: &Policies, namespace: &str, region: &str) -> Option<Decision>;
    /// The warning about PLAINTEXT variables that look like secrets, if any.
    fn plaintext_warning(&self) -> Option<String>;
    /// Whether its starts wait in the account's build-limit queue (StartBuild is refused at
    /// the limit; StartBuildBatch is not, CodeBuild queues the batch's builds).
    const QUEUES_FOR_BUILD_LIMIT: bool;

    /// The request that starts it, with `token` and the marker of object `uid`.
    fn start_input(&self, token: &str, uid: &str) -> Result<Self::Input, ConvertError>;
    /// The call that starts it.
    fn call_start<B: CodeBuild>(
        api: &B,
        target: &Target,
        input: Self::Input,
    ) -> impl Future<Output = Result<StartedOf<Self>, ApiError>> + Send;
    /// Finds what object `uid` started at or after `since` (its marker), as `target`.
    fn search<B: CodeBuild>(
        api: &B,
        target: &Target,
        project: &str,
        uid: &str,
        since: Timestamp,
    ) -> impl Future<Output = Result<Option<StartedOf<Self>>, Error>> + Send;
    /// How what it started reads as conditions.
    fn progress(started: &StartedOf<Self>) -> Progress;
    /// The Event message of a start (`verb`: "started", "found").
    fn started_message(started: &StartedOf<Self>, verb: &str) -> String;
    /// Counts a start.
    fn count_start(metrics: &Metrics, run: &Self);

    /// Follows what a run with an id in status started.
    fn follow<B: CodeBuild>(
        step: &mut Step<'_, B, Self>,
    ) -> impl Future<Output = Result<Action, Error>> + Send;
    /// Stops what a deleted run started (unless it is left running); the finalizer is
    /// released after.
    fn cleanup<B: CodeBuild>(
        step: &mut Step<'_, B, Self>,
    ) -> impl Future<Output = Result<Action, Error>> + Send;
}
