//! What a run starts and then follows: a build (CodeBuildRun) or a batch build
//! (CodeBuildBatchRun). The lifecycle decisions both kinds share (when the finalizer goes,
//! what the tracker polls, when a TTL counts) read it through this trait.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{BuildBatchInfo, BuildInfo, CodeBuildBatchRunStatus, CodeBuildRunStatus, StartAttempt};

/// What a run started, as status mirrors it.
pub trait Started: Clone + Debug + Default + PartialEq + Send + Sync + 'static {
    /// Its id, once CodeBuild gave one.
    fn started_id(&self) -> Option<&str>;
    /// Whether CodeBuild has finished with it.
    fn finished(&self) -> bool;
    /// Whether the run is done with it: finished, and CodeBuild does not follow it with
    /// anything the run must wait for.
    fn done(&self) -> bool;
    /// When it ended.
    fn ended_at(&self) -> Option<&Time>;
}

impl Started for BuildInfo {
    fn started_id(&self) -> Option<&str> {
        self.build_id.as_deref()
    }

    fn finished(&self) -> bool {
        self.is_finished()
    }

    fn done(&self) -> bool {
        self.is_final()
    }

    fn ended_at(&self) -> Option<&Time> {
        self.end_time.as_ref()
    }
}

/// What the lifecycle decisions both kinds share read and write of a run's status: the
/// start attempt, the conditions, and what was started.
pub trait RunStatus: Clone + Debug + Default + PartialEq + Send + Sync + 'static {
    /// What the run starts: a build or a batch.
    type Started: Started;
    /// The recorded start attempt, if any.
    fn start_attempt(&self) -> Option<&StartAttempt>;
    /// The conditions.
    fn conditions(&self) -> &[Condition];
    /// What was started, as last mirrored (empty before the start).
    fn started(&self) -> &Self::Started;
    /// Records `attempt`.
    fn set_start_attempt(&mut self, attempt: StartAttempt);
    /// Mirrors `started`.
    fn set_started(&mut self, started: Self::Started);
    /// Sets the conditions, computed for `generation`.
    fn set_conditions(&mut self, generation: Option<i64>, conditions: Vec<Condition>);
}

impl RunStatus for CodeBuildRunStatus {
    type Started = BuildInfo;

    fn start_attempt(&self) -> Option<&StartAttempt> {
        self.start_attempt.as_ref()
    }

    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    fn started(&self) -> &BuildInfo {
        &self.build
    }

    fn set_start_attempt(&mut self, attempt: StartAttempt) {
        self.start_attempt = Some(attempt);
    }

    fn set_started(&mut self, started: BuildInfo) {
        self.build = started;
    }

    fn set_conditions(&mut self, generation: Option<i64>, conditions: Vec<Condition>) {
        self.observed_generation = generation;
        self.conditions = conditions;
    }
}

impl RunStatus for CodeBuildBatchRunStatus {
    type Started = BuildBatchInfo;

    fn start_attempt(&self) -> Option<&StartAttempt> {
        self.start_attempt.as_ref()
    }

    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    fn started(&self) -> &BuildBatchInfo {
        &self.batch
    }

    fn set_start_attempt(&mut self, attempt: StartAttempt) {
        self.start_attempt = Some(attempt);
    }

    fn set_started(&mut self, started: BuildBatchInfo) {
        self.batch = started;
    }

    fn set_conditions(&mut self, generation: Option<i64>, conditions: Vec<Condition>) {
        self.observed_generation = generation;
        self.conditions = conditions;
    }
}
