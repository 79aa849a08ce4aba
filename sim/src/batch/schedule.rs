//! How a batch moves along the clock. Every batch knows its next event (when SUBMITTED ends,
//! when its DOWNLOAD_SOURCE build ends, when an entry's dependencies have ended, ...);
//! [`crate::store::Inner::settle`] applies the events of every batch in time order up to
//! `now`, so builds are started at the moment they would have been and the build slots
//! (`maxConcurrentBuilds`) are handed out in that order. Nothing runs in the background.
//!
//! A run: SUBMITTED (one phase length); DOWNLOAD_BATCHSPEC while the DOWNLOAD_SOURCE build
//! runs (a real build of the project, without artifacts; it fails in DOWNLOAD_SOURCE with
//! YAML_FILE_ERROR when the batchspec cannot be read); IN_PROGRESS while the entries run,
//! each graph entry once the entries it depends on have ended; COMBINE_ARTIFACTS (one phase
//! length with `combineArtifacts`, else none) when no entry failed; then a SUCCEEDED,
//! FAILED or STOPPED marker.

use super::record::{
    Attempt, AttemptState, BatchPhase, BatchRecord, DOWNLOAD_SOURCE, Group, PhaseRec, Stage,
};
use super::request;
use crate::build_record::{BatchMember, NewBuild};
use crate::config::SimConfig;
use crate::lifecycle::{Failure, PhaseType, Status};
use crate::store::Inner;
use serde_json::Value;

/// The phase status the service gives IN_PROGRESS when a build of the batch failed (outside
/// the model's StatusType; seen in the AWS CLI's documented RetryBuildBatch answer).
pub const FAILED_IN_PROGRESS: &str = "CLIENT_ERROR";
/// The status a retry gives the FAILED or STOPPED phase it ends (also outside StatusType).
pub const RETRIED: &str = "RETRY";

/// Something that happens to a batch at a moment; ordered so that, at the same moment, a
/// timeout or fast failure comes before the builds it would cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    Timeout,
    FastFail,
    EndSubmitted,
    SourceRead,
    Skip(usize),
    Start(usize),
    EndInProgress,
    EndCombine,
}

/// The simulator's builds, as a batch starts, reads and stops them.
pub struct Ctx<'a> {
    pub inner: &'a mut Inner,
    pub config: &'a SimConfig,
}

impl Ctx<'_> {
    /// Starts a build of `batch` (it waits in QUEUED while `maxConcurrentBuilds` builds
    /// run). None if it cannot be created.
    fn start(&mut self, batch: &BatchRecord, plan: Planned) -> Option<usize> {
        let Planned {
            request,
            uuid,
            at,
            attempt,
            forced,
        } = plan;
        let new = NewBuild {
            project: &batch.project,
            project_json: &batch.project_json,
            request: &request,
            start: at,
            retry: None,
            access_key_id: batch.access_key_id.clone(),
            batch: Some(BatchMember {
                batch_arn: batch.fields["arn"].as_str().unwrap_or_default().to_string(),
                uuid,
                attempt,
                forced,
            }),
        };
        match self.inner.create_build(self.config, new) {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::warn!(batch = %batch.id, error = %e, "batch build not created");
                None
            }
        }
    }

    /// Stops a build at `at` unless it has ended by then.
    fn stop(&mut self, build: usize, at: f64) {
        let b = &mut self.inner.builds[build];
        if b.ended_at(at).is_none() {
            b.stopped_at = Some(at);
        }
    }

    /// The (statusCode, message) of the phase a build failed in.
    fn failure_context(&self, build: usize) -> Option<(String, String)> {
        let tl = &self.inner.builds[build].timeline;
        tl.phases
            .iter()
            .filter(|p| p.status != Status::Succeeded)
            .find_map(|p| p.context.clone())
    }
}

/// A build of the batch about to start.
struct Planned {
    request: Value,
    uuid: String,
    /// When it is requested.
    at: f64,
    /// How many earlier attempts its group has.
    attempt: u32,
    forced: Option<Option<Failure>>,
}

impl BatchRecord {
    /// The next event and its time, if the batch is not done.
    pub fn next_event(&self, inner: &Inner) -> Option<(f64, Event)> {
        let started = self.current_phase()?.start;
        let step = match self.stage {
            Stage::Done(_) => return None,
            Stage::Submitted => Some((started + self.phase_seconds, Event::EndSubmitted)),
            Stage::Downloading => {
                let ds = &self.groups[0];
                let end = if ds.selected {
                    ds.outcome(&inner.builds).map_or(started, |(end, _)| end)
                } else {
                    started + self.phase_seconds
                };
                Some((end, Event::SourceRead))
            }
            Stage::Running => self.next_in_progress(started, inner),
            Stage::Combining => {
                let length = if self.combine {
                    self.phase_seconds
                } else {
                    0.0
                };
                Some((started + length, Event::EndCombine))
            }
        };
        let timeout = self.deadline.map(|d| (d, Event::Timeout));
        [step, timeout]
            .into_iter()
            .flatten()
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
    }

    /// The next event while the entries run.
    fn next_in_progress(&self, started: f64, inner: &Inner) -> Option<(f64, Event)> {
        let mut events: Vec<(f64, Event)> = Vec::new();
        let mut all_ended = true;
        let mut last_end = started;
        for (g, group) in self.groups.iter().enumerate().skip(1) {
            match group.current.as_ref().map(|a| &a.state) {
                Some(AttemptState::Pending) => {
                    all_ended = false;
                    if let Some(ready) = self.dependencies_ended(group, started, inner) {
                        events.push(ready_event(ready, g));
                    }
                }
                _ => {
                    let Some((end, status)) = group.outcome(&inner.builds) else {
                        continue;
                    };
                    last_end = last_end.max(end);
                    let fails_fast = self.spec.as_ref().is_ok_and(|s| s.fast_fail);
                    if fails_fast && !self.fast_failed && fails(group, status) && group.selected {
                        events.push((end, Event::FastFail));
                    }
                }
            }
        }
        if all_ended {
            events.push((last_end, Event::EndInProgress));
        }
        events
            .into_iter()
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
    }

    /// When every entry `group` depends on has ended, and whether one failed (None while one
    /// has not been planned yet).
    fn dependencies_ended(
        &self,
        group: &Group,
        started: f64,
        inner: &Inner,
    ) -> Option<(f64, bool)> {
        let mut at = started;
        let mut failed = false;
        for dep in group.entry.as_ref().map_or(&[][..], |e| &e.depend_on[..]) {
            let dg = self.groups.iter().find(|g| &g.identifier == dep)?;
            let (end, status) = dg.outcome(&inner.builds)?;
            at = at.max(end);
            failed |= fails(dg, status);
        }
        Some((at, failed))
    }

    /// Applies `event` at `t`.
    pub fn apply(&mut self, event: Event, t: f64, ctx: &mut Ctx) {
        match event {
            Event::EndSubmitted => self.end_submitted(t, ctx),
            Event::SourceRead => self.source_read(t, ctx),
            Event::Start(g) => self.start_entry(g, t, ctx),
            Event::Skip(g) => self.set_state(g, AttemptState::Skipped(t)),
            Event::FastFail => {
                self.fast_failed = true;
                self.cut_builds(t, ctx);
            }
            Event::EndInProgress => self.end_in_progress(t, &ctx.inner.builds),
            Event::EndCombine => self.finish(
                t,
                BatchPhase::Succeeded,
                Status::Succeeded,
                "SUCCEEDED",
                None,
            ),
            Event::Timeout => {
                self.cut_builds(t, ctx);
                self.finish(t, BatchPhase::Failed, Status::TimedOut, "TIMED_OUT", None);
            }
        }
    }

    fn end_submitted(&mut self, t: f64, ctx: &mut Ctx) {
        self.close_phase(t, "SUCCEEDED", None);
        self.open_phase(BatchPhase::DownloadBatchspec, t);
        self.stage = Stage::Downloading;
        if !self.groups[0].selected {
            return;
        }
        let uuid = ctx.inner.new_uuid();
        let forced = Some(self.spec.as_ref().err().map(|message| Failure {
            phase: PhaseType::DownloadSource,
            status: Status::Failed,
            status_code: "YAML_FILE_ERROR".into(),
            message: message.clone(),
        }));
        let plan = Planned {
            request: request::source_request(&self.member_request),
            uuid: uuid.clone(),
            at: t,
            attempt: self.groups[0].prior.len() as u32,
            forced,
        };
        let state = match ctx.start(self, plan) {
            Some(b) => AttemptState::Started(b),
            None => AttemptState::Skipped(t),
        };
        self.groups[0].current = Some(Attempt {
            uuid,
            requested_on: t,
            state,
        });
    }

    /// DOWNLOAD_BATCHSPEC ends: the batch fails, or its entries are planned.
    fn source_read(&mut self, t: f64, ctx: &mut Ctx) {
        let ds = &self.groups[0];
        let source_failure = match ds.outcome(&ctx.inner.builds) {
            Some((_, Status::Succeeded)) => None,
            Some((_, status)) if ds.selected => Some(
                match ds.current.as_ref().map(|a| &a.state) {
                    Some(AttemptState::Started(b)) => ctx.failure_context(*b),
                    _ => None,
                }
                .unwrap_or_else(|| {
                    (
                        "CLIENT_ERROR".into(),
                        format!("{DOWNLOAD_SOURCE} build {}", status.as_str()),
                    )
                }),
            ),
            _ => None,
        };
        let failure = source_failure
            .or_else(|| {
                self.spec
                    .as_ref()
                    .err()
                    .map(|m| ("YAML_FILE_ERROR".into(), m.clone()))
            })
            .or_else(|| {
                self.restriction
                    .as_ref()
                    .err()
                    .map(|m| ("CLIENT_ERROR".into(), m.clone()))
            });
        if let Some(context) = failure {
            self.finish(
                t,
                BatchPhase::Failed,
                Status::Failed,
                "FAILED",
                Some(context),
            );
            return;
        }
        self.close_phase(t, "SUCCEEDED", None);
        self.source_resolved = true;
        self.plan_entries(t, ctx);
        self.open_phase(BatchPhase::InProgress, t);
        self.stage = Stage::Running;
    }

    /// Creates the entries' groups on the first run, and a pending attempt for every entry
    /// that runs in this one.
    fn plan_entries(&mut self, t: f64, ctx: &mut Ctx) {
        if self.groups.len() == 1
            && let Ok(spec) = &self.spec
        {
            self.groups.extend(spec.entries.iter().map(|e| Group {
                identifier: e.identifier.clone(),
                entry: Some(e.clone()),
                current: None,
                prior: Vec::new(),
                selected: true,
            }));
        }
        for g in self.groups.iter_mut().skip(1).filter(|g| g.selected) {
            g.current = Some(Attempt {
                uuid: ctx.inner.new_uuid(),
                requested_on: t,
                state: AttemptState::Pending,
            });
        }
    }

    fn start_entry(&mut self, g: usize, t: f64, ctx: &mut Ctx) {
        let (Some(entry), Some(attempt)) = (&self.groups[g].entry, &self.groups[g].current) else {
            return;
        };
        let plan = Planned {
            request: request::entry_request(&self.member_request, entry),
            uuid: attempt.uuid.clone(),
            at: t,
            attempt: self.groups[g].prior.len() as u32,
            forced: None,
        };
        let state = match ctx.start(self, plan) {
            Some(b) => AttemptState::Started(b),
            None => AttemptState::Skipped(t),
        };
        if let Some(a) = self.groups[g].current.as_mut() {
            a.requested_on = t;
            a.state = state;
        }
    }

    fn set_state(&mut self, g: usize, state: AttemptState) {
        if let Some(a) = self.groups[g].current.as_mut() {
            a.state = state;
        }
    }

    /// Stops the builds still running at `t` and skips the ones not started.
    fn cut_builds(&mut self, t: f64, ctx: &mut Ctx) {
        for g in &mut self.groups {
            let Some(a) = g.current.as_mut() else {
                continue;
            };
            match a.state {
                AttemptState::Started(b) if g.selected => ctx.stop(b, t),
                AttemptState::Pending => a.state = AttemptState::Skipped(t),
                _ => {}
            }
        }
    }

    fn end_in_progress(&mut self, t: f64, builds: &[crate::build_record::BuildRecord]) {
        let failed = self.groups.iter().skip(1).any(|g| {
            g.outcome(builds)
                .is_some_and(|(_, status)| fails(g, status))
        });
        if failed {
            self.finish(
                t,
                BatchPhase::Failed,
                Status::Failed,
                FAILED_IN_PROGRESS,
                None,
            );
            return;
        }
        self.close_phase(t, "SUCCEEDED", None);
        self.open_phase(BatchPhase::CombineArtifacts, t);
        self.stage = Stage::Combining;
    }

    /// StopBuildBatch at `t`: the running phase and builds stop, pending builds never start.
    pub fn stop(&mut self, t: f64, ctx: &mut Ctx) {
        if self.is_complete() {
            return;
        }
        self.cut_builds(t, ctx);
        self.finish(t, BatchPhase::Stopped, Status::Stopped, "STOPPED", None);
    }

    /// RetryBuildBatch at `t`: a new run of the builds `retry_failed` picks (the failed ones,
    /// or all). The marker phase ends with RETRY; each retried group's current attempt
    /// becomes a prior one.
    pub fn retry(
        &mut self,
        t: f64,
        retry_failed: bool,
        builds: &[crate::build_record::BuildRecord],
    ) {
        if let Some(last) = self.phases.last_mut() {
            last.end = Some(t);
            last.status = Some(RETRIED);
        }
        for g in &mut self.groups {
            let succeeded = g
                .outcome(builds)
                .is_some_and(|(_, s)| s == Status::Succeeded);
            g.selected = !(retry_failed && succeeded);
            if g.selected
                && let Some(a) = g.current.take()
            {
                g.prior.push(a);
            }
        }
        self.fast_failed = false;
        self.deadline = self.timeout_seconds.map(|s| t + s);
        self.open_phase(BatchPhase::Submitted, t);
        self.stage = Stage::Submitted;
    }

    /// Ends the running phase with `status` and adds the terminal marker.
    fn finish(
        &mut self,
        t: f64,
        marker: BatchPhase,
        outcome: Status,
        status: &'static str,
        context: Option<(String, String)>,
    ) {
        self.close_phase(t, status, context);
        self.open_phase(marker, t);
        self.stage = Stage::Done(outcome);
        self.deadline = None;
    }

    fn close_phase(&mut self, t: f64, status: &'static str, context: Option<(String, String)>) {
        if let Some(p) = self.phases.last_mut() {
            p.end = Some(t);
            p.status = Some(status);
            p.context = context;
        }
    }

    pub fn open_phase(&mut self, kind: BatchPhase, t: f64) {
        self.phases.push(PhaseRec {
            kind,
            start: t,
            end: None,
            status: None,
            context: None,
        });
    }
}

/// The event of a pending entry whose dependencies ended at `at`.
fn ready_event((at, dependency_failed): (f64, bool), g: usize) -> (f64, Event) {
    if dependency_failed {
        (at, Event::Skip(g))
    } else {
        (at, Event::Start(g))
    }
}

/// A group that ended this way fails the batch (and its dependents).
fn fails(g: &Group, status: Status) -> bool {
    status != Status::Succeeded && !g.ignore_failure()
}
