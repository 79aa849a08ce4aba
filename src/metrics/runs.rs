//! Runs by state: a census of the watch caches, taken by the tracker once per round and
//! exposed as the `codebuild_operator_runs` gauge.
//!
//! The state is read from what the operator wrote (status and its conditions), never from
//! counters kept alongside reconciles: a gauge computed from the caches is right after a
//! restart or a leader change, and cannot drift.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder,
};
use prometheus_client::metrics::gauge::ConstGauge;

use super::labels::{PerRunLabels, RunLabels};
use crate::api::CodeBuildRun;
use crate::api::names::{condition, reason};

/// The name of the gauge, after the registry's prefix.
pub(super) const NAME: &str = "runs";

/// Where a run stands, as an operator asks about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunState {
    /// Refused by every CodeBuildRunPolicy: waits for a policy (or the run) to change.
    WaitingForPolicy,
    /// No build yet: being decided, claimed and started (retrying transient errors).
    Starting,
    /// A build was started and is not final yet (includes CodeBuild's automatic retries).
    Running,
    /// Stalled on an error that needs a change to the run (invalid spec, access denied, a
    /// build CodeBuild no longer knows, ...): nothing happens until someone acts.
    Stalled,
    /// Done: the build is final, or a stop was requested before any build started.
    Finished,
}

impl RunState {
    /// Every state, in label order.
    pub const ALL: [RunState; 5] = [
        RunState::WaitingForPolicy,
        RunState::Starting,
        RunState::Running,
        RunState::Stalled,
        RunState::Finished,
    ];

    /// The `state` label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::WaitingForPolicy => "waiting_for_policy",
            RunState::Starting => "starting",
            RunState::Running => "running",
            RunState::Stalled => "stalled",
            RunState::Finished => "finished",
        }
    }
}

/// The state of `run`, from its status.
pub fn run_state(run: &CodeBuildRun) -> RunState {
    let Some(status) = &run.status else {
        return RunState::Starting;
    };
    if status.build.build_id.is_some() && status.build.is_final() {
        return RunState::Finished;
    }
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::STALLED && c.status == "True");
    match (stalled.map(|c| c.reason.as_str()), &status.build.build_id) {
        (Some(reason::POLICY_DENIED), None) => RunState::WaitingForPolicy,
        // A stop requested before any build: nothing was started, nothing will be.
        (Some(reason::STOPPED), None) => RunState::Finished,
        (Some(_), _) => RunState::Stalled,
        (None, Some(_)) => RunState::Running,
        (None, None) => RunState::Starting,
    }
}

/// `state`, with the opt-in per-run labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
struct StateLabels {
    state: RunState,
    run: RunLabels,
}

impl EncodeLabelSet for StateLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        ("state", self.state.as_str()).encode(encoder.encode_label())?;
        self.run.encode(encoder)
    }
}

/// The latest census, encoded on every scrape. Empty until the first tracker round (a
/// standby replica, which does not poll, exports no runs).
#[derive(Debug, Default)]
pub(super) struct RunCensus {
    labels: PerRunLabels,
    counts: Mutex<Option<BTreeMap<StateLabels, i64>>>,
}

impl RunCensus {
    pub(super) fn new(labels: PerRunLabels) -> Arc<Self> {
        Arc::new(RunCensus {
            labels,
            counts: Mutex::default(),
        })
    }

    /// Replaces the census with one of `runs`. Without per-run labels every state is
    /// present (0 when no run is in it), so an alert on a state has a series to look at.
    pub(super) fn count<'a>(&self, runs: impl IntoIterator<Item = &'a CodeBuildRun>) {
        let mut counts = BTreeMap::new();
        if self.labels == PerRunLabels::default() {
            for state in RunState::ALL {
                counts.insert(
                    StateLabels {
                        state,
                        run: RunLabels::default(),
                    },
                    0,
                );
            }
        }
        for run in runs {
            let key = StateLabels {
                state: run_state(run),
                run: self.labels.of(run),
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner) = Some(counts);
    }
}

impl Collector for RunCensus {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(counts) = counts else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            NAME,
            "CodeBuildRuns in the watch caches by state (waiting_for_policy, starting, running, \
             stalled, finished), counted by the leader each tracker round",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (labels, count) in &counts {
            ConstGauge::new(*count).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CodeBuildRunStatus, sample_build};
    use crate::controller::conditions::{Progress, conditions};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn run(build: Option<&str>, progress: Option<Progress>) -> CodeBuildRun {
        let mut run: CodeBuildRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "codebuild.operator.dev/v1alpha1", "kind": "CodeBuildRun",
            "metadata": {"name": "r", "namespace": "team-a"},
            "spec": {"projectName": "app"},
        }))
        .unwrap();
        let Some(progress) = progress else {
            return run;
        };
        let now = Time(Timestamp::UNIX_EPOCH);
        run.status = Some(CodeBuildRunStatus {
            conditions: conditions(&progress, Some(1), &[], &now),
            build: build.map(|s| sample_build(s, "BUILD")).unwrap_or_default(),
            ..Default::default()
        });
        run
    }

    fn failed(reason: &str) -> Option<Progress> {
        Some(Progress::Failed {
            reason: reason.into(),
            message: "m".into(),
        })
    }

    fn in_progress(reason: &str) -> Option<Progress> {
        Some(Progress::InProgress {
            reason: reason.into(),
            message: "m".into(),
        })
    }

    #[test]
    fn states_follow_the_conditions_the_operator_writes() {
        let cases = [
            (run(None, None), RunState::Starting),
            (run(None, in_progress("Starting")), RunState::Starting),
            (run(None, in_progress("Throttled")), RunState::Starting),
            (
                run(None, failed("PolicyDenied")),
                RunState::WaitingForPolicy,
            ),
            (run(None, failed("InvalidSpec")), RunState::Stalled),
            (run(None, failed("AccessDenied")), RunState::Stalled),
            (run(None, failed("STOPPED")), RunState::Finished),
            (
                run(Some("IN_PROGRESS"), in_progress("BUILD")),
                RunState::Running,
            ),
            (
                run(Some("IN_PROGRESS"), failed("BuildNotFound")),
                RunState::Stalled,
            ),
            (
                run(
                    Some("SUCCEEDED"),
                    Some(Progress::Succeeded {
                        message: "m".into(),
                    }),
                ),
                RunState::Finished,
            ),
            (run(Some("FAILED"), failed("FAILED")), RunState::Finished),
        ];
        for (run, state) in cases {
            assert_eq!(run_state(&run), state, "{:?}", run.status);
        }
    }

    fn encoded(census: &Arc<RunCensus>) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(census.clone()));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn census_has_every_state_without_per_run_labels() {
        let census = RunCensus::new(PerRunLabels::default());
        assert!(
            !encoded(&census).contains("runs{"),
            "nothing before a round"
        );
        let runs = [
            run(None, failed("PolicyDenied")),
            run(Some("IN_PROGRESS"), in_progress("BUILD")),
            run(Some("IN_PROGRESS"), in_progress("BUILD")),
        ];
        census.count(&runs);
        let text = encoded(&census);
        for line in [
            "runs{state=\"waiting_for_policy\"} 1",
            "runs{state=\"starting\"} 0",
            "runs{state=\"running\"} 2",
            "runs{state=\"stalled\"} 0",
            "runs{state=\"finished\"} 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        census.count([]);
        assert!(encoded(&census).contains("runs{state=\"running\"} 0"));
    }

    #[test]
    fn per_run_labels_when_chosen() {
        let census = RunCensus::new(PerRunLabels {
            namespace: true,
            project: true,
        });
        census.count(&[run(None, None)]);
        let text = encoded(&census);
        assert!(
            text.contains("runs{state=\"starting\",run_namespace=\"team-a\",project=\"app\"} 1"),
            "{text}"
        );
        assert!(!text.contains("state=\"running\""), "{text}");
        let census = RunCensus::new(PerRunLabels {
            namespace: false,
            project: true,
        });
        census.count(&[run(None, None)]);
        assert!(encoded(&census).contains("runs{state=\"starting\",project=\"app\"} 1"));
    }
}
