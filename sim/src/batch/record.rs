//! A batch build as the simulator keeps it: its phases so far, its build groups (one per
//! batchspec entry, plus the DOWNLOAD_SOURCE build that reads the batchspec) with their
//! attempts, and where its run is. [`super::schedule`] moves it along the clock; this module
//! holds the state and shows it as a BuildBatch.

use super::spec::{BatchSpec, Entry};
use crate::build_record::BuildRecord;
use crate::lifecycle::{Status, ts};
use crate::overrides::Place;
use serde_json::{Map, Value, json};

/// The build group of the build that downloads the source and reads the batchspec.
pub const DOWNLOAD_SOURCE: &str = "DOWNLOAD_SOURCE";

/// BuildBatchPhaseType.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchPhase {
    Submitted,
    DownloadBatchspec,
    InProgress,
    CombineArtifacts,
    Succeeded,
    Failed,
    Stopped,
}

impl BatchPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchPhase::Submitted => "SUBMITTED",
            BatchPhase::DownloadBatchspec => "DOWNLOAD_BATCHSPEC",
            BatchPhase::InProgress => "IN_PROGRESS",
            BatchPhase::CombineArtifacts => "COMBINE_ARTIFACTS",
            BatchPhase::Succeeded => "SUCCEEDED",
            BatchPhase::Failed => "FAILED",
            BatchPhase::Stopped => "STOPPED",
        }
    }
}

/// One phase as it happened. The terminal phases (SUCCEEDED, FAILED, STOPPED) are markers
/// with only a start, until a retry ends a FAILED or STOPPED one with status `RETRY`.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseRec {
    pub kind: BatchPhase,
    pub start: f64,
    pub end: Option<f64>,
    /// A StatusType, or `CLIENT_ERROR` / `RETRY` (see [`super::schedule`]).
    pub status: Option<&'static str>,
    /// (statusCode, message) of a phase that failed.
    pub context: Option<(String, String)>,
}

/// Where one attempt at a group's build is.
#[derive(Clone, Debug, PartialEq)]
pub enum AttemptState {
    /// Waiting for the entries it depends on (the service shows `PENDING`).
    Pending,
    /// Its build (an index into the builds).
    Started(usize),
    /// It never ran: a dependency failed, the batch failed fast, stopped or timed out.
    Skipped(f64),
}

/// One attempt at a group's build; its id is chosen when it is planned.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub uuid: String,
    pub requested_on: f64,
    pub state: AttemptState,
}

/// A build group: a batchspec entry (or the DOWNLOAD_SOURCE build) and its attempts.
#[derive(Clone, Debug)]
pub struct Group {
    pub identifier: String,
    /// None for DOWNLOAD_SOURCE.
    pub entry: Option<Entry>,
    pub current: Option<Attempt>,
    pub prior: Vec<Attempt>,
    /// It runs in the current run (all do on the first; a retry picks).
    pub selected: bool,
}

impl Group {
    pub fn ignore_failure(&self) -> bool {
        self.entry.as_ref().is_some_and(|e| e.ignore_failure)
    }

    /// When its current attempt ended and how, as planned (None while pending or absent).
    pub fn outcome(&self, builds: &[BuildRecord]) -> Option<(f64, Status)> {
        match self.current.as_ref()?.state {
            AttemptState::Pending => None,
            AttemptState::Started(b) => builds[b].outcome_at(f64::INFINITY),
            AttemptState::Skipped(at) => Some((at, Status::Stopped)),
        }
    }
}

/// Where the current run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Submitted,
    Downloading,
    Running,
    Combining,
    Done(Status),
}

/// One batch build.
#[derive(Clone, Debug)]
pub struct BatchRecord {
    pub id: String,
    pub project: String,
    pub project_json: Value,
    /// The StartBuild request its builds start from.
    pub member_request: Value,
    pub access_key_id: Option<String>,
    /// Fields that do not change (see [`super::request::static_fields`]).
    pub fields: Map<String, Value>,
    /// The batchspec, or why it cannot be read.
    pub spec: Result<BatchSpec, String>,
    /// Whether its entries keep to the batch restrictions.
    pub restriction: Result<(), String>,
    /// `buildBatchConfig.combineArtifacts`.
    pub combine: bool,
    /// Length of a phase (time-scaled seconds).
    pub phase_seconds: f64,
    /// `buildBatchConfig.timeoutInMins` (time-scaled seconds).
    pub timeout_seconds: Option<f64>,
    pub phases: Vec<PhaseRec>,
    pub stage: Stage,
    /// DOWNLOAD_SOURCE first, then the entries once the batchspec has been read.
    pub groups: Vec<Group>,
    pub resolved_source_version: Option<String>,
    /// The batchspec has been read once (resolvedSourceVersion is known).
    pub source_resolved: bool,
    /// When the current run times out.
    pub deadline: Option<f64>,
    /// The current run has stopped its builds after a failure (`fast-fail`).
    pub fast_failed: bool,
}

impl BatchRecord {
    /// The running phase (the last one).
    pub fn current_phase(&self) -> Option<&PhaseRec> {
        self.phases.last()
    }

    /// How it ended, once it has.
    pub fn final_status(&self) -> Option<Status> {
        match self.stage {
            Stage::Done(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.stage, Stage::Done(_))
    }

    /// `buildBatchStatus` now.
    pub fn status_str(&self) -> &'static str {
        match self.stage {
            Stage::Done(s) => s.as_str(),
            _ => "IN_PROGRESS",
        }
    }

    /// The BuildBatch as it is at `now` (everything up to `now` has been settled).
    pub fn render(&self, now: f64, builds: &[BuildRecord], place: &Place) -> Value {
        let mut b = self.fields.clone();
        if let Stage::Done(_) = self.stage
            && let Some(last) = self.phases.last()
        {
            b.insert("endTime".into(), json!(ts(last.start)));
        }
        let current = self
            .current_phase()
            .map_or("SUBMITTED", |p| p.kind.as_str());
        b.insert("currentPhase".into(), json!(current));
        b.insert("buildBatchStatus".into(), json!(self.status_str()));
        if self.source_resolved
            && let Some(v) = &self.resolved_source_version
        {
            b.insert("resolvedSourceVersion".into(), json!(v));
        }
        let phases: Vec<Value> = self.phases.iter().map(phase_json).collect();
        b.insert("phases".into(), json!(phases));
        b.insert("complete".into(), json!(self.is_complete()));
        let groups: Vec<Value> = self
            .groups
            .iter()
            .filter(|g| g.current.is_some() || !g.prior.is_empty())
            .map(|g| self.group_json(g, now, builds, place))
            .collect();
        if !groups.is_empty() {
            b.insert("buildGroups".into(), json!(groups));
        }
        let reports = self.report_arns(now, builds);
        if !reports.is_empty() {
            b.insert("reportArns".into(), json!(reports));
        }
        Value::Object(b)
    }

    fn group_json(&self, g: &Group, now: f64, builds: &[BuildRecord], place: &Place) -> Value {
        let mut m = Map::new();
        m.insert("identifier".into(), json!(g.identifier));
        if let Some(e) = &g.entry {
            m.insert("dependsOn".into(), json!(e.depend_on));
        }
        m.insert("ignoreFailure".into(), json!(g.ignore_failure()));
        let summary = |a: &Attempt| self.summary(a, &g.identifier, now, builds, place);
        if let Some(a) = &g.current {
            m.insert("currentBuildSummary".into(), summary(a));
        }
        if !g.prior.is_empty() {
            let prior: Vec<Value> = g.prior.iter().map(summary).collect();
            m.insert("priorBuildSummaryList".into(), json!(prior));
        }
        Value::Object(m)
    }

    /// A BuildSummary: the build's status now, and its artifacts once it has ended.
    fn summary(
        &self,
        a: &Attempt,
        identifier: &str,
        now: f64,
        builds: &[BuildRecord],
        place: &Place,
    ) -> Value {
        let id = format!("{}:{}", self.project, a.uuid);
        let mut m = Map::new();
        m.insert("arn".into(), json!(place.build_arn(&id)));
        m.insert("requestedOn".into(), json!(ts(a.requested_on)));
        let status = match a.state {
            AttemptState::Pending => "PENDING",
            AttemptState::Skipped(_) => Status::Stopped.as_str(),
            AttemptState::Started(i) => match builds[i].outcome_at(now) {
                None => "IN_PROGRESS",
                Some((_, status)) => {
                    let (primary, secondary) = resolved_artifacts(&builds[i], identifier);
                    m.insert("primaryArtifact".into(), primary);
                    m.insert("secondaryArtifacts".into(), json!(secondary));
                    status.as_str()
                }
            },
        };
        m.insert("buildStatus".into(), json!(status));
        Value::Object(m)
    }

    /// The reports the current builds have written by `now`.
    fn report_arns(&self, now: f64, builds: &[BuildRecord]) -> Vec<String> {
        let started = self
            .groups
            .iter()
            .filter_map(|g| match g.current.as_ref()?.state {
                AttemptState::Started(i) => Some(&builds[i]),
                _ => None,
            });
        started
            .flat_map(|b| {
                b.output
                    .reports
                    .iter()
                    .filter(move |r| r.exists(now, b.stopped_at))
                    .map(|r| r.arn.clone())
            })
            .collect()
    }
}

fn phase_json(p: &PhaseRec) -> Value {
    let mut m = Map::new();
    m.insert("phaseType".into(), json!(p.kind.as_str()));
    if let Some(s) = p.status {
        m.insert("phaseStatus".into(), json!(s));
    }
    m.insert("startTime".into(), json!(ts(p.start)));
    if let Some(end) = p.end {
        m.insert("endTime".into(), json!(ts(end)));
        let secs = (ts(end) - ts(p.start)).max(0.0).floor() as i64;
        m.insert("durationInSeconds".into(), json!(secs));
    }
    if let Some((code, message)) = &p.context {
        m.insert(
            "contexts".into(),
            json!([{"statusCode": code, "message": message}]),
        );
    }
    Value::Object(m)
}

/// A build's artifacts as a BuildSummary shows them: ResolvedArtifacts whose `type` is the
/// ArtifactsType in lower case (`no_artifacts`), as the service answers.
fn resolved_artifacts(b: &BuildRecord, identifier: &str) -> (Value, Vec<Value>) {
    let kind = |spec: Option<&Value>| {
        spec.and_then(|s| s.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("NO_ARTIFACTS")
            .to_ascii_lowercase()
    };
    let primary_spec = b
        .request
        .get("artifactsOverride")
        .filter(|v| v.is_object())
        .or_else(|| b.project_json.get("artifacts"));
    let location = |built: &Value| {
        built
            .get("location")
            .and_then(Value::as_str)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
    };
    let mut primary = json!({"type": kind(primary_spec), "identifier": identifier});
    if let Some(l) = b.fields.get("artifacts").and_then(location) {
        primary["location"] = json!(l);
    }
    let specs = b
        .request
        .get("secondaryArtifactsOverride")
        .filter(|v| v.is_array())
        .or_else(|| b.project_json.get("secondaryArtifacts"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let built = b.fields["secondaryArtifacts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let secondary = specs
        .iter()
        .zip(built.iter())
        .map(|(spec, art)| {
            let mut r = json!({"type": kind(Some(spec))});
            if let Some(l) = location(art) {
                r["location"] = json!(l);
            }
            if let Some(id) = spec.get("artifactIdentifier").and_then(Value::as_str) {
                r["identifier"] = json!(id);
            }
            r
        })
        .collect();
    (primary, secondary)
}
