//! Prometheus metrics of the operator.
//!
//! Every label value comes from a fixed, small set (outcomes, error categories, CodeBuild
//! operation names, terminal build statuses), never from object names, spec contents or
//! secrets: a metric must be safe to ship to any monitoring system and must not explode in
//! cardinality with the number of runs.

use std::fmt;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::FINAL_BUILD_STATUSES;

/// Every metric name starts with this.
pub const PREFIX: &str = "codebuild_operator";
/// The Content-Type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `outcome` of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// `category` of an error (a fixed string per error variant).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    category: &'static str,
}

/// `operation` and `outcome` (`success` or the error category) of a CodeBuild call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsCallLabels {
    operation: &'static str,
    outcome: &'static str,
}

/// `status` of a finished build.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

/// The operator's metrics and the registry they are exposed from.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<OutcomeLabels, Counter>,
    reconcile_errors: Family<CategoryLabels, Counter>,
    reconcile_duration: Histogram,
    aws_calls: Family<AwsCallLabels, Counter>,
    builds_started: Counter,
    builds_finished: Family<StatusLabels, Counter>,
    builds_in_flight: Gauge,
    tracker_round_duration: Histogram,
    tracker_round_builds: Histogram,
    leader: Gauge,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

// === impl Metrics ===

impl Metrics {
    /// A fresh set of metrics in a registry of its own.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of CodeBuildRuns by outcome (success, error)",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<CategoryLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles by error category (the Event reason)",
            reconcile_errors.clone(),
        );
        // 1 ms .. ~33 s: a reconcile is a few apiserver and AWS round trips.
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "reconcile_duration_seconds",
            "How long one reconcile took",
            reconcile_duration.clone(),
        );
        let aws_calls = Family::<AwsCallLabels, Counter>::default();
        registry.register(
            "aws_calls",
            "CodeBuild API calls by operation and outcome (success or the error category)",
            aws_calls.clone(),
        );
        let builds_started = Counter::default();
        registry.register(
            "builds_started",
            "Builds started with StartBuild",
            builds_started.clone(),
        );
        let builds_finished = Family::<StatusLabels, Counter>::default();
        registry.register(
            "builds_finished",
            "Builds seen reaching a final status, by buildStatus",
            builds_finished.clone(),
        );
        let builds_in_flight = Gauge::default();
        registry.register(
            "builds_in_flight",
            "Builds the tracker is polling (started, not yet final)",
            builds_in_flight.clone(),
        );
        let tracker_round_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "tracker_round_duration_seconds",
            "How long one tracker round (every BatchGetBuilds call of one poll) took",
            tracker_round_duration.clone(),
        );
        // 1 .. 4096 builds per round.
        let tracker_round_builds = Histogram::new(exponential_buckets(1.0, 2.0, 13));
        registry.register(
            "tracker_round_builds",
            "Builds asked for in one tracker round",
            tracker_round_builds.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease (always 1 without leader election)",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            aws_calls,
            builds_started,
            builds_finished,
            builds_in_flight,
            tracker_round_duration,
            tracker_round_builds,
            leader,
        }
    }

    /// The metrics in the OpenMetrics text format (which Prometheus scrapes natively).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// One reconcile ended: `Err(category)` for a failure.
    pub fn reconciled(&self, took: Duration, result: Result<(), &'static str>) {
        self.reconcile_duration.observe(took.as_secs_f64());
        let outcome = match result {
            Ok(()) => "success",
            Err(category) => {
                self.reconcile_errors
                    .get_or_create(&CategoryLabels { category })
                    .inc();
                "error"
            }
        };
        self.reconciles
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// One CodeBuild call ended: `Err(category)` for a failure.
    pub fn aws_call(&self, operation: &'static str, result: Result<(), &'static str>) {
        let outcome = result.err().unwrap_or("success");
        self.aws_calls
            .get_or_create(&AwsCallLabels { operation, outcome })
            .inc();
    }

    /// StartBuild returned a new build.
    pub fn build_started(&self) {
        self.builds_started.inc();
    }

    /// A build reached a final `status` (one of [`FINAL_BUILD_STATUSES`]; anything else is
    /// counted as `OTHER`, so an unexpected value from the API cannot add label values).
    pub fn build_finished(&self, status: Option<&str>) {
        let status = status
            .and_then(|s| FINAL_BUILD_STATUSES.iter().find(|f| **f == s).copied())
            .unwrap_or("OTHER");
        self.builds_finished
            .get_or_create(&StatusLabels { status })
            .inc();
    }

    /// One tracker round ended.
    pub fn tracker_round(&self, took: Duration, builds: usize, in_flight: usize) {
        self.tracker_round_duration.observe(took.as_secs_f64());
        self.tracker_round_builds.observe(builds as f64);
        self.builds_in_flight
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_family_with_fixed_labels() {
        let m = Metrics::new();
        m.reconciled(Duration::from_millis(3), Ok(()));
        m.reconciled(Duration::from_millis(3), Err("Throttled"));
        m.aws_call("StartBuild", Ok(()));
        m.aws_call("BatchGetBuilds", Err("Throttled"));
        m.build_started();
        m.build_finished(Some("SUCCEEDED"));
        m.build_finished(Some("something new"));
        m.tracker_round(Duration::from_millis(20), 3, 2);
        m.set_leader(true);
        let text = m.encode().unwrap();
        for needle in [
            "codebuild_operator_reconciles_total{outcome=\"success\"} 1",
            "codebuild_operator_reconciles_total{outcome=\"error\"} 1",
            "codebuild_operator_reconcile_errors_total{category=\"Throttled\"} 1",
            "codebuild_operator_reconcile_duration_seconds_count 2",
            "codebuild_operator_aws_calls_total{operation=\"StartBuild\",outcome=\"success\"} 1",
            "codebuild_operator_aws_calls_total{operation=\"BatchGetBuilds\",outcome=\"Throttled\"} 1",
            "codebuild_operator_builds_started_total 1",
            "codebuild_operator_builds_finished_total{status=\"SUCCEEDED\"} 1",
            "codebuild_operator_builds_finished_total{status=\"OTHER\"} 1",
            "codebuild_operator_builds_in_flight 2",
            "codebuild_operator_tracker_round_duration_seconds_count 1",
            "codebuild_operator_tracker_round_builds_sum 3",
            "codebuild_operator_leader 1",
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
