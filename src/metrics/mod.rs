//! Prometheus metrics of the operator.
//!
//! Every label value comes from a fixed, small set (outcomes, error categories, CodeBuild
//! operation names, AWS Region names, build statuses, run states), never from object names,
//! spec contents or secrets: a metric must be safe to ship to any monitoring system and must
//! not explode in cardinality with the number of runs. The one exception is opt-in
//! ([`PerRunLabels`], `--metrics-run-labels`): the namespace and project of a run on the
//! build and run metrics, for whoever accepts a series per namespace and project.
//!
//! - `labels`: the label sets, and the fixed sets their values come from;
//! - `runs`: runs by state, counted from the watch caches each tracker round;
//! - `process`: the standard `process_*` metrics, read from `/proc/self` on each scrape.

mod labels;
mod process;
mod runs;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::{BuildInfo, CodeBuildRun, FINAL_BUILD_STATUSES};
use labels::{
    AwsCallLabels, AwsRequestLabels, CategoryLabels, OutcomeLabels, RunLabels, StatusLabels,
    VersionLabels, region_label, status_label,
};

pub use labels::{OTHER_REGION, OTHER_STATUS, PerRunLabels};
pub use process::{ProcessCollector, ProcessSample};
pub use runs::{RunState, run_state};

/// Every metric name of the operator's own starts with this (the `process_*` metrics follow
/// the Prometheus clients' names instead).
pub const PREFIX: &str = "codebuild_operator";
/// The Content-Type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Build durations: 15 s to 8 h (CodeBuild's timeout goes up to 36 h; longer builds land in
/// `+Inf`).
const BUILD_DURATION_BUCKETS: [f64; 16] = [
    15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 5400.0, 7200.0,
    10800.0, 14400.0, 28800.0,
];
/// From a run's creation to its build id: 250 ms to 30 min (a run refused by policy and
/// allowed later waits as long as that took).
const START_LATENCY_BUCKETS: [f64; 16] = [
    0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn aws_call_histogram() -> Histogram {
    // 5 ms .. ~41 s: one call, including the SDK's own retries (30 s operation timeout).
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

fn build_duration_histogram() -> Histogram {
    Histogram::new(BUILD_DURATION_BUCKETS)
}

fn start_latency_histogram() -> Histogram {
    Histogram::new(START_LATENCY_BUCKETS)
}

/// The operator's metrics and the registry they are exposed from.
pub struct Metrics {
    registry: Registry,
    run_labels: PerRunLabels,
    reconciles: Family<OutcomeLabels, Counter>,
    reconcile_errors: Family<CategoryLabels, Counter>,
    reconcile_duration: Histogram,
    aws_calls: Family<AwsCallLabels, Counter>,
    aws_call_duration: HistogramFamily<AwsCallLabels>,
    aws_throttled: Family<AwsRequestLabels, Counter>,
    builds_started: Family<RunLabels, Counter>,
    start_latency: HistogramFamily<RunLabels>,
    builds_finished: Family<(StatusLabels, RunLabels), Counter>,
    build_duration: HistogramFamily<(StatusLabels, RunLabels)>,
    builds_in_flight: Gauge,
    tracker_round_duration: Histogram,
    tracker_round_builds: Histogram,
    poll_interval: Gauge<f64, std::sync::atomic::AtomicU64>,
    runs: Arc<runs::RunCensus>,
    leader: Gauge,
    ready: Gauge,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("run_labels", &self.run_labels)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

// === impl Metrics ===

impl Metrics {
    /// A fresh set of metrics in a registry of its own, without per-run labels.
    pub fn new() -> Self {
        Self::with_run_labels(PerRunLabels::default())
    }

    /// A fresh set of metrics whose build and run metrics carry the chosen per-run labels.
    pub fn with_run_labels(run_labels: PerRunLabels) -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let registry = root.sub_registry_with_prefix(PREFIX);
        let metrics = Metrics {
            registry: Registry::default(),
            run_labels,
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            // 1 ms .. ~33 s: a reconcile is a few apiserver and AWS round trips.
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            aws_calls: Family::default(),
            aws_call_duration: Family::new_with_constructor(aws_call_histogram),
            aws_throttled: Family::default(),
            builds_started: Family::default(),
            start_latency: Family::new_with_constructor(start_latency_histogram),
            builds_finished: Family::default(),
            build_duration: Family::new_with_constructor(build_duration_histogram),
            builds_in_flight: Gauge::default(),
            tracker_round_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            // 1 .. 4096 builds per round.
            tracker_round_builds: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            poll_interval: Gauge::default(),
            runs: runs::RunCensus::new(run_labels),
            leader: Gauge::default(),
            ready: Gauge::default(),
        };
        metrics.register(registry);
        metrics.precreate();
        Metrics {
            registry: root,
            ..metrics
        }
    }

    /// Registers every metric under [`PREFIX`].
    fn register(&self, r: &mut Registry) {
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register(
            "build_info",
            "Always 1; the version of the operator binary",
            build_info,
        );
        r.register(
            "reconciles",
            "Reconciles of CodeBuildRuns by outcome (success, error)",
            self.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Failed reconciles by error category (the Event reason)",
            self.reconcile_errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "How long one reconcile took",
            self.reconcile_duration.clone(),
        );
        r.register(
            "aws_calls",
            "CodeBuild API calls by operation, outcome (success or the error category) and Region",
            self.aws_calls.clone(),
        );
        r.register(
            "aws_call_duration_seconds",
            "How long one CodeBuild API call took, including the AWS SDK's retries, by \
             operation, outcome and Region",
            self.aws_call_duration.clone(),
        );
        r.register(
            "aws_throttled_requests",
            "HTTP requests CodeBuild throttled, by operation and Region, including those the \
             AWS SDK retried successfully",
            self.aws_throttled.clone(),
        );
        self.register_builds(r);
        self.register_tracker(r);
        r.register_collector(Box::new(self.runs.clone()));
        r.register(
            "leader",
            "1 while this replica holds the leader lease (always 1 without leader election)",
            self.leader.clone(),
        );
        r.register(
            "ready",
            "1 while /readyz answers 200 (every watch cache synced, leadership known)",
            self.ready.clone(),
        );
    }

    fn register_builds(&self, r: &mut Registry) {
        r.register(
            "builds_started",
            "Builds started with StartBuild",
            self.builds_started.clone(),
        );
        r.register(
            "build_start_latency_seconds",
            "From a run's creation (metadata.creationTimestamp, whole seconds) to StartBuild's \
             answer: how long users wait for a build id",
            self.start_latency.clone(),
        );
        r.register(
            "builds_finished",
            "Builds seen reaching a final status, by buildStatus",
            self.builds_finished.clone(),
        );
        r.register(
            "build_duration_seconds",
            "How long a build ran in CodeBuild (startTime to endTime of the run's last build), \
             by final buildStatus",
            self.build_duration.clone(),
        );
    }

    fn register_tracker(&self, r: &mut Registry) {
        r.register(
            "builds_in_flight",
            "Builds the tracker is polling (started, not yet final)",
            self.builds_in_flight.clone(),
        );
        r.register(
            "tracker_round_duration_seconds",
            "How long one tracker round (every BatchGetBuilds call of one poll) took",
            self.tracker_round_duration.clone(),
        );
        r.register(
            "tracker_round_builds",
            "Builds asked for in one tracker round",
            self.tracker_round_builds.clone(),
        );
        r.register(
            "tracker_poll_interval_seconds",
            "The tracker's poll interval (--poll-interval): a round slower than this delays \
             the next one",
            self.poll_interval.clone(),
        );
    }

    /// Without per-run labels the build series exist from the start (at 0), so the first
    /// build of each kind counts in `rate()` and `increase()`.
    fn precreate(&self) {
        if self.run_labels != PerRunLabels::default() {
            return;
        }
        let none = RunLabels::default();
        let _ = self.builds_started.get_or_create(&none);
        for status in FINAL_BUILD_STATUSES {
            let key = (StatusLabels { status }, none.clone());
            let _ = self.builds_finished.get_or_create(&key);
            let _ = self.build_duration.get_or_create(&key);
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

    /// One CodeBuild call to `region` ended after `took`: `Err(category)` for a failure.
    pub fn aws_call(
        &self,
        operation: &'static str,
        region: &str,
        took: Duration,
        result: Result<(), &'static str>,
    ) {
        let labels = AwsCallLabels {
            operation,
            outcome: result.err().unwrap_or("success"),
            region: region_label(region),
        };
        self.aws_calls.get_or_create(&labels).inc();
        self.aws_call_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// CodeBuild throttled one HTTP request of `operation` to `region` (the SDK may retry it).
    pub fn aws_throttled(&self, operation: &'static str, region: &str) {
        self.aws_throttled
            .get_or_create(&AwsRequestLabels {
                operation,
                region: region_label(region),
            })
            .inc();
    }

    /// StartBuild returned a new build for `run`: counts it, and the time since the run was
    /// created.
    pub fn build_started(&self, run: &CodeBuildRun) {
        let labels = self.run_labels.of(run);
        self.builds_started.get_or_create(&labels).inc();
        if let Some(created) = &run.metadata.creation_timestamp {
            let waited = Timestamp::now().duration_since(created.0).as_secs_f64();
            // The apiserver's clock and ours may disagree by a little.
            self.start_latency
                .get_or_create(&labels)
                .observe(waited.max(0.0));
        }
    }

    /// The build of `run` became final as `build`: counts it by status (one of
    /// [`FINAL_BUILD_STATUSES`]; anything else as `OTHER`, so an unexpected value from the API
    /// cannot add label values) and records how long it ran when CodeBuild says.
    pub fn build_finished(&self, run: &CodeBuildRun, build: &BuildInfo) {
        let key = (
            StatusLabels {
                status: status_label(build.build_status.as_deref()),
            },
            self.run_labels.of(run),
        );
        self.builds_finished.get_or_create(&key).inc();
        if let (Some(start), Some(end)) = (&build.start_time, &build.end_time) {
            let ran = end.0.duration_since(start.0).as_secs_f64();
            self.build_duration
                .get_or_create(&key)
                .observe(ran.max(0.0));
        }
    }

    /// One tracker round ended.
    pub fn tracker_round(&self, took: Duration, builds: usize, in_flight: usize) {
        self.tracker_round_duration.observe(took.as_secs_f64());
        self.tracker_round_builds.observe(builds as f64);
        self.builds_in_flight
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
    }

    /// The tracker polls every `interval`.
    pub fn set_poll_interval(&self, interval: Duration) {
        self.poll_interval.set(interval.as_secs_f64());
    }

    /// Counts `runs` (every run in the watch caches) by state, replacing the last census.
    pub fn count_runs<'a>(&self, runs: impl IntoIterator<Item = &'a CodeBuildRun>) {
        self.runs.count(runs);
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Whether this replica is ready (`/readyz`).
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }
}

#[cfg(test)]
mod tests;
