//! A build's record and how builds are created: for StartBuild, for auto-retries and for the
//! builds of a batch (which may wait in QUEUED for a build slot).

use crate::build_output::{BuildOutput, Choices, Context};
use crate::config::SimConfig;
use crate::lifecycle::{self, Failure, PhaseType, PlanInput, Status, Timeline};
use crate::logs::filter::StreamEvents;
use crate::overrides::{self, BuildIds, Place};
use crate::protocol::ApiError;
use crate::store::Inner;
use rand::Rng;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// A build's place in an auto-retry chain.
#[derive(Clone, Debug)]
pub(crate) struct RetryState {
    pub limit: u32,
    pub number: u32,
    pub previous: Option<String>,
    pub next: Option<String>,
}

/// One build: what it was started with and its planned life.
#[derive(Clone, Debug)]
pub(crate) struct BuildRecord {
    pub id: String,
    pub project: String,
    pub project_json: Value,
    pub request: Value,
    pub access_key_id: Option<String>,
    pub fields: Map<String, Value>,
    pub timeline: Timeline,
    pub stopped_at: Option<f64>,
    pub exports: Vec<(String, String)>,
    pub resolved_source_version: Option<String>,
    pub retry: Option<RetryState>,
    /// Its log stream and reports (shared: records are cloned for auto-retries).
    pub output: Arc<BuildOutput>,
}

impl BuildRecord {
    pub(crate) fn render(&self, now: f64) -> Value {
        let snap = lifecycle::snapshot(&self.timeline, now, self.stopped_at);
        let mut m = self.fields.clone();
        m.insert("phases".into(), Value::Array(snap.phases));
        m.insert("currentPhase".into(), json!(snap.current_phase));
        m.insert("buildStatus".into(), json!(snap.build_status));
        m.insert("buildComplete".into(), json!(snap.complete));
        if let Some(end) = snap.end_time {
            m.insert("endTime".into(), json!(lifecycle::ts(end)));
        }
        if let Some(v) = &self.resolved_source_version
            && lifecycle::phase_finished(
                &self.timeline,
                PhaseType::DownloadSource,
                now,
                self.stopped_at,
            )
        {
            m.insert("resolvedSourceVersion".into(), json!(v));
        }
        if snap.final_status == Some(Status::Succeeded) && !self.exports.is_empty() {
            let list: Vec<Value> = self
                .exports
                .iter()
                .map(|(n, v)| json!({"name": n, "value": v}))
                .collect();
            m.insert("exportedEnvironmentVariables".into(), json!(list));
        }
        if let Some(r) = &self.retry {
            let mut c = Map::new();
            c.insert("autoRetryLimit".into(), json!(r.limit));
            c.insert("autoRetryNumber".into(), json!(r.number));
            if let Some(n) = &r.next {
                c.insert("nextAutoRetry".into(), json!(n));
            }
            if let Some(p) = &r.previous {
                c.insert("previousAutoRetry".into(), json!(p));
            }
            m.insert("autoRetryConfig".into(), Value::Object(c));
        }
        self.output
            .render_into(&mut m, &self.timeline, now, self.stopped_at);
        Value::Object(m)
    }

    /// When the build ended (completed or stopped), if it has by `now`.
    pub(crate) fn ended_at(&self, now: f64) -> Option<f64> {
        let end = self
            .stopped_at
            .filter(|s| *s < self.timeline.completed_at)
            .unwrap_or(self.timeline.completed_at);
        (end <= now).then_some(end)
    }

    /// Its log stream as readers see it at `now`, once the stream exists.
    pub(crate) fn stream_at(&self, now: f64) -> Option<StreamEvents<'_>> {
        let (_, name) = self.output.stream.as_ref()?;
        let (script, readable) = self.output.readable(&self.timeline, now, self.stopped_at)?;
        Some(StreamEvents {
            name,
            script,
            readable,
        })
    }

    pub(crate) fn is_complete(&self, now: f64) -> bool {
        self.stopped_at.is_some_and(|s| s <= now) || self.timeline.completed_at <= now
    }

    /// The failed build should be retried (and when it completed).
    pub(crate) fn wants_retry(&self, now: f64) -> Option<f64> {
        let r = self.retry.as_ref()?;
        let stopped = self
            .stopped_at
            .is_some_and(|s| s < self.timeline.completed_at);
        (r.next.is_none()
            && r.number < r.limit
            && !stopped
            && self.timeline.status.is_failure()
            && self.timeline.completed_at <= now)
            .then_some(self.timeline.completed_at)
    }
}

impl BuildRecord {
    /// Whether the build is active at `t`: requested and not yet ended, queued or running
    /// (what `maxConcurrentBuilds` counts, for StartBuild too).
    pub(crate) fn active_at(&self, t: f64) -> bool {
        self.timeline.start <= t && self.ended_at(t).is_none()
    }

    /// Its terminal status once it has ended by `now`, with the end time.
    pub(crate) fn outcome_at(&self, now: f64) -> Option<(f64, Status)> {
        let end = self.ended_at(now)?;
        let stopped = self
            .stopped_at
            .is_some_and(|s| s < self.timeline.completed_at);
        Some((
            end,
            if stopped {
                Status::Stopped
            } else {
                self.timeline.status
            },
        ))
    }
}

/// What a new build is started with.
pub(crate) struct NewBuild<'a> {
    pub project: &'a str,
    pub project_json: &'a Value,
    /// A StartBuild request.
    pub request: &'a Value,
    /// Its `startTime`.
    pub start: f64,
    pub retry: Option<RetryState>,
    pub access_key_id: Option<String>,
    pub batch: Option<BatchMember>,
}

/// What a build of a batch adds to a build.
pub(crate) struct BatchMember {
    pub batch_arn: String,
    /// The id after `project:`, chosen when the batch planned the build.
    pub uuid: String,
    /// Its group's attempt (0, then 1 after the first RetryBuildBatch that re-ran it...): the
    /// number `CODEBUILD_SIM_SUCCEED_ON_RETRY` counts for a build of a batch.
    pub attempt: u32,
    /// For the batch's DOWNLOAD_SOURCE build: how it ends, whatever its reserved variables
    /// say (it writes no exports and no reports either).
    pub forced: Option<Option<Failure>>,
}

/// The timeline of a new build and its (time-scaled) phase length.
pub(crate) fn plan_timeline(
    config: &SimConfig,
    fields: &Map<String, Value>,
    choices: &Choices,
    start: f64,
    queued_seconds: f64,
) -> (Timeline, f64) {
    let scale = config.time_scale.max(0.0);
    let timeout_minutes = fields
        .get("timeoutInMinutes")
        .and_then(Value::as_f64)
        .unwrap_or(60.0);
    let phase_seconds = choices
        .outcome
        .phase_seconds
        .unwrap_or(config.phase_seconds)
        * scale;
    let timeline = lifecycle::plan(&PlanInput {
        start,
        phase_seconds,
        failure: choices.outcome.failure.clone(),
        timeout_seconds: Some(timeout_minutes * 60.0 * scale),
        queued_seconds,
    });
    (timeline, phase_seconds)
}

/// The buildspec and reserved variables of a new build; a batch's DOWNLOAD_SOURCE build ends
/// as its batch decides, writing no exports and no reports.
fn choices_of(new: &NewBuild) -> Result<Choices, ApiError> {
    let env = overrides::merged_env_vars(new.project_json, new.request);
    let retry_number = match (&new.retry, &new.batch) {
        (Some(r), _) => r.number,
        (None, Some(m)) => m.attempt,
        (None, None) => 0,
    };
    let mut choices = Choices::read(
        overrides::merged_buildspec(new.project_json, new.request),
        &overrides::env_pairs(&env),
        retry_number,
    )
    .map_err(ApiError::invalid)?;
    if let Some(forced) = new.batch.as_ref().and_then(|m| m.forced.clone()) {
        choices.outcome.failure = forced;
        choices.outcome.exports.clear();
        choices.reports.clear();
    }
    Ok(choices)
}

impl Inner {
    /// Materialises auto-retry builds whose predecessors have failed by `now`.
    pub(crate) fn settle_retries(&mut self, config: &SimConfig, now: f64) {
        let mut i = 0;
        while i < self.builds.len() {
            if let Some(at) = self.builds[i].wants_retry(now) {
                let parent = self.builds[i].clone();
                let Some(r) = parent.retry.as_ref() else {
                    i += 1;
                    continue;
                };
                let retry = RetryState {
                    limit: r.limit,
                    number: r.number + 1,
                    previous: Some(parent.id.clone()),
                    next: None,
                };
                let new = NewBuild {
                    project: &parent.project,
                    project_json: &parent.project_json,
                    request: &parent.request,
                    start: at,
                    retry: Some(retry),
                    access_key_id: parent.access_key_id.clone(),
                    batch: None,
                };
                match self.create_build(config, new) {
                    Ok(idx) => {
                        let new_id = self.builds[idx].id.clone();
                        if let Some(r) = self.builds[i].retry.as_mut() {
                            r.next = Some(new_id);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(build = %parent.id, error = %e, "auto-retry not created");
                        if let Some(r) = self.builds[i].retry.as_mut() {
                            r.limit = r.number;
                        }
                    }
                }
            }
            i += 1;
        }
    }

    /// Creates a build; errors are the reserved variables' InvalidInputException.
    pub(crate) fn create_build(
        &mut self,
        config: &SimConfig,
        new: NewBuild,
    ) -> Result<usize, ApiError> {
        let NewBuild {
            project,
            project_json,
            request,
            start,
            ..
        } = new;
        let choices = choices_of(&new)?;
        let uuid = match &new.batch {
            Some(m) => m.uuid.clone(),
            None => self.new_uuid(),
        };
        let number = self.build_numbers.entry(project.to_string()).or_insert(0);
        *number += 1;
        let place = Place {
            region: &config.region,
            account: &config.account_id,
        };
        let ids = BuildIds {
            project,
            uuid: &uuid,
            build_number: *number,
            start,
            initiator: &config.initiator,
        };
        let mut fields = overrides::build_fields(project_json, request, &ids, &place);
        if let Some(m) = &new.batch {
            fields.insert("buildBatchArn".into(), json!(m.batch_arn));
        }
        let queued = match &new.batch {
            Some(_) => self.queue_wait(config, &choices, start),
            None => 0.0,
        };
        let (timeline, phase_seconds) = plan_timeline(config, &fields, &choices, start, queued);
        let resolved_source_version = overrides::resolved_source_version(
            &fields["source"],
            fields.get("sourceVersion").and_then(Value::as_str),
        );
        let id = ids.id();
        let output = BuildOutput::plan(
            &choices,
            &Context {
                id: &id,
                project,
                fields: &fields,
                timeline: &timeline,
                phase_seconds,
                time_scale: config.time_scale.max(0.0),
                region: &config.region,
                account: &config.account_id,
            },
        );
        self.builds.push(BuildRecord {
            id: id.clone(),
            project: project.to_string(),
            project_json: project_json.clone(),
            request: request.clone(),
            access_key_id: new.access_key_id,
            fields,
            timeline,
            stopped_at: None,
            exports: choices.outcome.exports,
            resolved_source_version,
            retry: new.retry,
            output: Arc::new(output),
        });
        let idx = self.builds.len() - 1;
        self.by_id.insert(id, idx);
        self.index_output(idx);
        Ok(idx)
    }

    /// A random UUID from the seeded generator.
    pub(crate) fn new_uuid(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string()
    }

    /// How much longer than a phase a build of a batch requested at `start` waits in
    /// QUEUED: until fewer than `maxConcurrentBuilds` other builds are active (CodeBuild
    /// queues the builds of a batch rather than refusing them). Builds are created in the
    /// order they are requested and a queued build counts as active, so the queue is first
    /// come, first served and the limit is never exceeded.
    fn queue_wait(&self, config: &SimConfig, choices: &Choices, start: f64) -> f64 {
        let phase = choices
            .outcome
            .phase_seconds
            .unwrap_or(config.phase_seconds)
            * config.time_scale.max(0.0);
        // When it would leave QUEUED without waiting.
        let due = start + 2.0 * phase;
        self.free_slot_at(due, self.faults.max_concurrent_builds) - due
    }

    /// The earliest time from `t` on when fewer than `max` builds are active (`t` itself
    /// without a limit). Builds are created in the order they are requested, so every build
    /// there is was requested by `t` and is active until it ends: the answer is the end
    /// that leaves `max - 1` of them running.
    pub(crate) fn free_slot_at(&self, t: f64, max: Option<u32>) -> f64 {
        let Some(max) = max.map(|m| m as usize).filter(|m| *m > 0) else {
            return t;
        };
        let mut ends: Vec<f64> = self
            .builds
            .iter()
            .filter_map(|b| b.ended_at(f64::INFINITY))
            .filter(|end| *end > t)
            .collect();
        if ends.len() < max {
            return t;
        }
        ends.sort_by(f64::total_cmp);
        ends[ends.len() - max]
    }

    /// Makes a new build's log stream and reports findable.
    pub(crate) fn index_output(&mut self, idx: usize) {
        let output = Arc::clone(&self.builds[idx].output);
        if let Some((group, stream)) = &output.stream {
            self.streams
                .entry(group.clone())
                .or_default()
                .insert(stream.clone(), idx);
        }
        for (i, r) in output.reports.iter().enumerate() {
            self.reports.insert(r.arn.clone(), (idx, i));
        }
    }
}
