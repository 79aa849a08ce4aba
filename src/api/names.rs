//! Every name the operator writes into the cluster or reads back from it, defined once: the
//! field manager, the finalizer, the annotation and environment variable it owns, the
//! condition types and every condition and Event reason.
//!
//! Reasons are part of the API users script against (`kubectl wait`, alerts on Events, the
//! Argo CD health check): change one only with a release note. Reasons that come from AWS
//! (build statuses such as `FAILED`, phase names such as `BUILD`) are the service's own
//! words and are not listed here.

/// The field manager of every write the operator makes (and the Event reporter).
pub const FIELD_MANAGER: &str = "codebuild-operator";

/// The finalizer that keeps a run until its build is stopped (or deliberately left running).
pub const FINALIZER: &str = "codebuild.operator.dev/stop-build";

/// Where earlier versions of the operator recorded a StartBuild attempt (a JSON `StartAttempt`).
/// The operator no longer writes it, and never trusts it: any user who can create a run can
/// write an annotation, while `status` is the operator's alone. A run that carries it and
/// has no attempt in status is searched for (its marker) before anything is started.
pub const START_ATTEMPT_ANNOTATION: &str = "codebuild.operator.dev/start-attempt";

/// Set by `kubectl codebuild rerun` on the run it creates: the name of the run it repeats.
pub const RERUN_OF_ANNOTATION: &str = "codebuild.operator.dev/rerun-of";

/// The environment variable the operator adds to every build it starts, carrying the
/// object's uid, so a build can be traced back to its run (and found after a crash).
pub const MARKER_ENV_VAR: &str = "CODEBUILD_OPERATOR_RUN_UID";

/// Condition types (kstatus-compatible, see `controller::conditions`).
pub mod condition {
    /// The build's outcome: Unknown while it runs, True on SUCCEEDED, False otherwise.
    pub const SUCCEEDED: &str = "Succeeded";
    /// True only once the build succeeded.
    pub const READY: &str = "Ready";
    /// True while the operator still has work to do for the run.
    pub const RECONCILING: &str = "Reconciling";
    /// True on a terminal failure or an error that needs a change to the object.
    pub const STALLED: &str = "Stalled";
}

/// Condition and Event reasons the operator chooses (AWS error categories included).
pub mod reason {
    // --- the run's progress (condition reasons) ---
    /// The operator recorded a start attempt and is calling StartBuild.
    pub const STARTING: &str = "Starting";
    /// The build ended and CodeBuild retries it automatically.
    pub const AUTO_RETRY: &str = "AutoRetry";
    /// The build succeeded (the `Succeeded` and `Ready` reason).
    pub const SUCCEEDED: &str = "SUCCEEDED";
    /// `Stalled=False` while nothing is stuck.
    pub const NOT_STALLED: &str = "NotStalled";
    /// `Reconciling=False` once the run is done.
    pub const FINISHED: &str = "Finished";
    /// A build status the operator does not know (the service added one).
    pub const UNKNOWN: &str = "Unknown";
    /// A stop was requested before any build was started: none was.
    pub const STOPPED: &str = "STOPPED";

    // --- refusals and failures (condition reasons and Warning Events) ---
    /// No CodeBuildRunPolicy allows the run.
    pub const POLICY_DENIED: &str = "PolicyDenied";
    /// The spec cannot be turned into a StartBuild request.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// CodeBuild does not know the recorded build.
    pub const BUILD_NOT_FOUND: &str = "BuildNotFound";
    /// The recorded build id is not one CodeBuild can look up.
    pub const INVALID_BUILD_ID: &str = "InvalidBuildId";
    /// The run's idempotency token was first used with other parameters (another run).
    pub const TOKEN_IN_USE: &str = "IdempotencyTokenInUse";
    /// The build of a lost StartBuild answer could not be searched to the end.
    pub const BUILD_SEARCH_INCOMPLETE: &str = "BuildSearchIncomplete";
    /// The object changed between the operator's read and its write, more than once.
    pub const CONFLICT: &str = "Conflict";
    /// Another Kubernetes API failure.
    pub const KUBERNETES_ERROR: &str = "KubernetesError";
    /// The object lacks something the apiserver always sets.
    pub const INVALID_OBJECT: &str = "InvalidObject";
    /// A start attempt in the legacy annotation the operator no longer trusts.
    pub const START_ATTEMPT_IGNORED: &str = "StartAttemptIgnored";
    /// A PLAINTEXT environment variable whose name looks like a secret.
    pub const PLAINTEXT_SECRET: &str = "PlaintextSecret";
    /// `ttlSecondsAfterFinished` on a run a GitOps tool manages: it would be recreated.
    pub const TTL_UNDER_GITOPS: &str = "TTLUnderGitOps";

    // --- AWS error categories (`codebuild::ErrorKind::category`) ---
    /// InvalidInputException.
    pub const INVALID_INPUT: &str = "InvalidInput";
    /// IAM or an organization policy denied the call.
    pub const ACCESS_DENIED: &str = "AccessDenied";
    /// The project does not exist (yet).
    pub const PROJECT_NOT_FOUND: &str = "ProjectNotFound";
    /// Too many concurrent builds for the account and Region.
    pub const ACCOUNT_LIMIT_EXCEEDED: &str = "AccountLimitExceeded";
    /// The service throttled the call.
    pub const THROTTLED: &str = "Throttled";
    /// The service failed (5xx).
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
    /// No answer in time, or the connection broke.
    pub const NETWORK_ERROR: &str = "NetworkError";
    /// Any other AWS failure.
    pub const AWS_ERROR: &str = "AwsError";

    /// Stalled reasons the operator keeps checking on its own (a policy or namespace label
    /// changes; errors that may heal): a run stalled for one of these is not waiting for a
    /// change to itself.
    pub const RECHECKED: &[&str] = &[
        POLICY_DENIED,
        PROJECT_NOT_FOUND,
        ACCESS_DENIED,
        ACCOUNT_LIMIT_EXCEEDED,
    ];

    // --- Events only ---
    /// StartBuild returned the run's build.
    pub const BUILD_STARTED: &str = "BuildStarted";
    /// The build of a lost StartBuild answer was found.
    pub const BUILD_RECOVERED: &str = "BuildRecovered";
    /// The build entered a phase.
    pub const PHASE_CHANGED: &str = "PhaseChanged";
    /// The build succeeded.
    pub const BUILD_SUCCEEDED: &str = "BuildSucceeded";
    /// The build ended FAILED, FAULT or TIMED_OUT.
    pub const BUILD_FAILED: &str = "BuildFailed";
    /// `spec.operator.stop` was honoured: StopBuild was called.
    pub const STOP_REQUESTED: &str = "StopRequested";
    /// `spec.operator.stop` was set before any build started: none will.
    pub const CANCELLED: &str = "Cancelled";
    /// The build was stopped: the run was deleted, or `spec.operator.stop` asked for it.
    pub const BUILD_STOPPED: &str = "BuildStopped";

    // --- batch builds (CodeBuildBatchRun) ---
    /// StartBuildBatch returned the object's batch.
    pub const BUILD_BATCH_STARTED: &str = "BuildBatchStarted";
    /// The batch of a lost StartBuildBatch answer was found.
    pub const BUILD_BATCH_RECOVERED: &str = "BuildBatchRecovered";
    /// The batch succeeded.
    pub const BUILD_BATCH_SUCCEEDED: &str = "BuildBatchSucceeded";
    /// The batch ended FAILED, FAULT, TIMED_OUT, or STOPPED without a stop request.
    pub const BUILD_BATCH_FAILED: &str = "BuildBatchFailed";
    /// The batch was stopped: the object was deleted, or `spec.operator.stop` asked for it.
    pub const BUILD_BATCH_STOPPED: &str = "BuildBatchStopped";
    /// RetryBuildBatch was called (`spec.operator.retry`).
    pub const RETRY_REQUESTED: &str = "RetryRequested";
    /// CodeBuild refused a retry (`spec.operator.retry`); it is not made again.
    pub const RETRY_REFUSED: &str = "RetryRefused";
    /// CodeBuild does not know the recorded batch.
    pub const BUILD_BATCH_NOT_FOUND: &str = "BuildBatchNotFound";
    /// The recorded batch id is not one CodeBuild can look up.
    pub const INVALID_BUILD_BATCH_ID: &str = "InvalidBuildBatchId";
}

/// Why `status.logTail` holds no lines (besides the AWS error categories of [`reason`]:
/// AccessDenied, Throttled, ServiceUnavailable, NetworkError, AwsError).
pub mod log_tail {
    /// The build does not send its log to CloudWatch Logs (S3 only, or no log at all).
    pub const LOGS_DISABLED: &str = "LogsDisabled";
    /// The build ended before its container wrote a log (PROVISIONING did not finish).
    pub const NO_LOG_STREAM: &str = "NoLogStream";
    /// CloudWatch Logs does not know the build's group or stream (deleted, or expired).
    pub const LOG_STREAM_NOT_FOUND: &str = "LogStreamNotFound";
    /// The stream holds no line.
    pub const LOG_EMPTY: &str = "LogEmpty";
}

/// Event actions: what the operator was doing (the API call, or the phase for
/// `PhaseChanged`, which keeps one Event series per phase).
pub mod action {
    /// StartBuild, and the decisions made before it.
    pub const START_BUILD: &str = "StartBuild";
    /// StopBuild.
    pub const STOP_BUILD: &str = "StopBuild";
    /// What the tracker's BatchGetBuilds reported.
    pub const BATCH_GET_BUILDS: &str = "BatchGetBuilds";
    /// StartBuildBatch, and the decisions made before it.
    pub const START_BUILD_BATCH: &str = "StartBuildBatch";
    /// StopBuildBatch.
    pub const STOP_BUILD_BATCH: &str = "StopBuildBatch";
    /// RetryBuildBatch.
    pub const RETRY_BUILD_BATCH: &str = "RetryBuildBatch";
    /// What the tracker's BatchGetBuildBatches reported.
    pub const BATCH_GET_BUILD_BATCHES: &str = "BatchGetBuildBatches";
    /// Any other step of a reconcile.
    pub const RECONCILE: &str = "Reconcile";
}
