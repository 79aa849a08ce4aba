//! The controller's own settings (the CLI turns its flags into these; nothing here knows
//! about flags).

use std::net::SocketAddr;
use std::time::Duration;

use super::plan::EventSettings;
use super::plan::start::StartTiming;
use crate::codebuild::AwsSettings;
use crate::leader::LeaseSettings;
use crate::metrics::PerRunLabels;
use crate::output::TailLimits;

/// The default of [`Settings::stall_after`].
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(180);
/// The default of [`Settings::call_timeout`]: the AWS client's operation timeout.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The default of [`Settings::clock_skew`].
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(15);

/// What every reconcile needs to know.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The Region of runs that do not name one.
    pub default_region: String,
    /// How long CodeBuild honours an idempotency token (5 minutes in AWS).
    pub token_window: Duration,
    /// How long a start may keep failing for a reason that may heal (a missing project, a
    /// denial, an account limit) before the run shows as Stalled (it keeps retrying).
    pub stall_after: Duration,
    /// The longest one CodeBuild call may take, retries included (the AWS client's
    /// operation timeout).
    pub call_timeout: Duration,
    /// How far the clocks of the replicas and of CodeBuild may disagree.
    pub clock_skew: Duration,
    /// Which Events are published besides starts, ends, failures and warnings.
    pub events: EventSettings,
    /// How much of a failed build's log goes into `status.logTail` (off: nothing is read).
    pub log_tail: TailLimits,
}

impl Settings {
    /// The settings for an operator whose runs default to `default_region`.
    pub fn new(default_region: impl Into<String>) -> Self {
        Settings {
            default_region: default_region.into(),
            token_window: Duration::from_secs(300),
            stall_after: DEFAULT_STALL_AFTER,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            clock_skew: DEFAULT_CLOCK_SKEW,
            events: EventSettings::default(),
            log_tail: TailLimits::DEFAULT,
        }
    }

    /// With `events`.
    pub fn with_events(mut self, events: EventSettings) -> Self {
        self.events = events;
        self
    }

    /// With another call timeout and clock skew margin (emulators with scaled time).
    pub fn with_call_limits(mut self, call_timeout: Duration, clock_skew: Duration) -> Self {
        self.call_timeout = call_timeout;
        self.clock_skew = clock_skew;
        self
    }

    /// What decides whether a lost StartBuild is repeated or searched for.
    pub fn start_timing(&self) -> StartTiming {
        StartTiming {
            token_window: self.token_window,
            call_timeout: self.call_timeout,
            clock_skew: self.clock_skew,
        }
    }

    /// With other limits for the failure tail (`TailLimits { lines: 0, .. }` turns it off).
    pub fn with_log_tail(mut self, log_tail: TailLimits) -> Self {
        self.log_tail = log_tail;
        self
    }

    /// With another grace period before a start that keeps failing shows as Stalled.
    pub fn with_stall_after(mut self, stall_after: Duration) -> Self {
        self.stall_after = stall_after;
        self
    }

    /// With another idempotency token window (emulators with scaled time).
    pub fn with_token_window(mut self, token_window: Duration) -> Self {
        self.token_window = token_window;
        self
    }
}

/// Everything the running operator is configured with.
#[derive(Clone, Debug)]
pub struct OperatorSettings {
    /// The Region of runs that do not name one; None: the AWS configuration's.
    pub region: Option<String>,
    /// How long CodeBuild honours an idempotency token.
    pub token_window: Duration,
    /// See [`Settings::stall_after`].
    pub stall_after: Duration,
    /// See [`Settings::clock_skew`].
    pub clock_skew: Duration,
    /// See [`Settings::events`].
    pub events: EventSettings,
    /// Where the CodeBuild and STS calls go (emulators, VPC endpoints).
    pub aws: AwsSettings,
    /// The namespaces to watch; empty: all.
    pub namespaces: Vec<String>,
    /// How often the tracker polls CodeBuild.
    pub poll_interval: Duration,
    /// How many runs are reconciled at the same time (0: no limit).
    pub max_concurrent_reconciles: u16,
    /// Where /metrics, /healthz and /readyz are served.
    pub metrics_address: SocketAddr,
    /// The opt-in per-run labels (namespace, project) of the build and run metrics.
    pub metrics_run_labels: PerRunLabels,
    /// The Lease to elect a leader with; None: this replica always leads.
    pub leader_election: Option<LeaseSettings>,
    /// Whether CodeBuildRunPolicies are enforced.
    pub enforce_policies: bool,
    /// The ValidatingAdmissionPolicy kept in step with the policies (with enforcement).
    pub admission_policy: Option<String>,
    /// How much of a failed build's log goes into status.
    pub log_tail: TailLimits,
    /// Whether the test and coverage reports of finished builds are read (BatchGetReports).
    pub read_reports: bool,
}

impl OperatorSettings {
    /// The reconcile settings, once the default Region is known.
    pub fn reconcile(&self, default_region: String) -> Settings {
        Settings::new(default_region)
            .with_token_window(self.token_window)
            .with_stall_after(self.stall_after)
            .with_call_limits(self.aws.operation_timeout(), self.clock_skew)
            .with_events(self.events)
            .with_log_tail(self.log_tail)
    }

    /// The namespaces to watch: each one named (once, however often it is named: two
    /// controllers on one namespace would reconcile the same object at the same time), or
    /// None for all.
    pub fn watched_namespaces(&self) -> Vec<Option<String>> {
        let mut named: Vec<Option<String>> = Vec::new();
        for ns in self.namespaces.iter().filter(|n| !n.is_empty()) {
            if !named.iter().flatten().any(|seen| seen == ns) {
                named.push(Some(ns.clone()));
            }
        }
        if named.is_empty() { vec![None] } else { named }
    }

    /// How many status refreshes (reconciles triggered by a changed build) may wait for or
    /// hold a reconcile slot at once: half the slots, so starts and deletes always have the
    /// other half (see `tracker::paced`; measured against three quarters and no limit in
    /// the README's Performance section). Unlimited reconciles (0) leave refreshes unpaced.
    pub fn refresh_limit(&self) -> usize {
        match usize::from(self.max_concurrent_reconciles) {
            0 => 0,
            slots => (slots / 2).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(namespaces: &[&str], slots: u16) -> OperatorSettings {
        OperatorSettings {
            region: None,
            token_window: Duration::from_secs(300),
            stall_after: DEFAULT_STALL_AFTER,
            clock_skew: DEFAULT_CLOCK_SKEW,
            events: EventSettings::default(),
            aws: AwsSettings::default(),
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            poll_interval: Duration::from_secs(5),
            max_concurrent_reconciles: slots,
            metrics_address: "127.0.0.1:0".parse().unwrap(),
            metrics_run_labels: PerRunLabels::default(),
            leader_election: None,
            enforce_policies: false,
            admission_policy: None,
            log_tail: TailLimits::DEFAULT,
            read_reports: true,
        }
    }

    #[test]
    fn refreshes_leave_half_the_slots() {
        assert_eq!(settings(&[], 16).refresh_limit(), 8);
        assert_eq!(settings(&[], 1).refresh_limit(), 1);
        assert_eq!(settings(&[], 2).refresh_limit(), 1);
        assert_eq!(
            settings(&[], 0).refresh_limit(),
            0,
            "unlimited reconciles, unpaced refreshes"
        );
    }

    #[test]
    fn each_namespace_is_watched_once() {
        assert_eq!(settings(&[], 16).watched_namespaces(), vec![None]);
        assert_eq!(settings(&[""], 16).watched_namespaces(), vec![None]);
        assert_eq!(
            settings(&["a", "b", "a", "", "c", "b"], 16).watched_namespaces(),
            vec![Some("a".into()), Some("b".into()), Some("c".into())]
        );
    }
}
