//! What every reconcile shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use rand::Rng;

use crate::api::CodeBuildRun;
use crate::codebuild::{BuildApi, ErrorKind};
use crate::metrics::Metrics;
use crate::policy::Policies;
use crate::tracker::Tracker;

/// Operator settings that reconcile needs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The region of runs that do not name one.
    pub default_region: String,
    /// How long CodeBuild honours an idempotency token.
    pub token_window: Duration,
}

/// Shared state of the controller.
pub struct Context<B> {
    /// The Kubernetes client.
    pub client: Client,
    /// CodeBuild.
    pub api: Arc<B>,
    /// The build tracker.
    pub tracker: Tracker<B>,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Settings.
    pub settings: Settings,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The CodeBuildRunPolicies to enforce; None when policies are not enforced.
    pub policies: Option<Policies>,
    failures: Mutex<HashMap<ObjectRef<CodeBuildRun>, u32>>,
}

impl<B: BuildApi> Context<B> {
    /// A context.
    pub fn new(
        client: Client,
        api: Arc<B>,
        tracker: Tracker<B>,
        recorder: Recorder,
        settings: Settings,
    ) -> Self {
        Context {
            client,
            api,
            tracker,
            recorder,
            settings,
            metrics: Arc::default(),
            policies: None,
            failures: Mutex::default(),
        }
    }

    /// Enforces `policies` before every start.
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = Some(policies);
        self
    }

    /// Counts into `metrics` (a fresh, unexported set by default).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The delay before retrying `obj` after another failure: exponential with jitter,
    /// slow and capped for a missing project.
    pub fn backoff(&self, obj: &ObjectRef<CodeBuildRun>, kind: Option<ErrorKind>) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let n = failures.entry(obj.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let (base, cap) = match kind {
            Some(ErrorKind::ProjectNotFound) => (Duration::from_secs(5), Duration::from_secs(300)),
            Some(ErrorKind::AccountLimitExceeded) => {
                (Duration::from_secs(10), Duration::from_secs(300))
            }
            _ => (Duration::from_millis(500), Duration::from_secs(300)),
        };
        let exp = base.saturating_mul(1u32 << (*n - 1).min(16)).min(cap);
        let jitter = rand::rng().random_range(0.8..1.2);
        exp.mul_f64(jitter)
    }

    /// Forget the failures of `obj` after a reconcile that went through.
    pub fn succeeded(&self, obj: &ObjectRef<CodeBuildRun>) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(obj);
    }
}
