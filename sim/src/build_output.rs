//! What a build writes besides its state: its CloudWatch log stream and its reports, planned
//! when it starts from its buildspec, its reserved variables and its timeline, and shown as
//! time passes (the Build's `logs` and `reportArns`, GetLogEvents, BatchGetReports).

use crate::buildspec::Buildspec;
use crate::lifecycle::{self, PhaseType, Timeline};
use crate::logs::location;
use crate::logs::script::{LogScript, ScriptInput};
use crate::logs::text::{fnv, mix};
use crate::logs::volume::{self, Volume};
use crate::outcome::{self, Outcome};
use crate::reports::{self, Owner, PlannedReport, ReportSpec};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The buildspec and reserved variables of a build, read before it gets an id so a bad value
/// rejects StartBuild without using up a build number.
#[derive(Clone, Debug)]
pub struct Choices {
    pub outcome: Outcome,
    pub volume: Volume,
    pub reports: Vec<ReportSpec>,
    pub buildspec: Buildspec,
}

impl Choices {
    /// `buildspec` is the build's merged `source.buildspec`; `vars` its merged variables.
    /// Errors are InvalidInputException messages.
    pub fn read(
        buildspec: Option<&str>,
        vars: &[(String, String)],
        retry_number: u32,
    ) -> Result<Choices, String> {
        let buildspec = Buildspec::resolve(buildspec);
        let outcome = outcome::parse(vars, retry_number, |p| buildspec.failing_command(p))?;
        Ok(Choices {
            outcome,
            volume: volume::parse(vars)?,
            reports: reports::parse(vars)?,
            buildspec,
        })
    }
}

/// One build's log stream and reports.
#[derive(Clone, Debug)]
pub struct BuildOutput {
    /// (group, stream) when CloudWatch logs are enabled.
    pub stream: Option<(String, String)>,
    /// The Build's `logs` while PROVISIONING runs, when it differs from the final one.
    early_logs: Option<Value>,
    /// The stream's events; None when no stream is ever created.
    pub script: Option<LogScript>,
    pub reports: Vec<PlannedReport>,
}

/// The facts about a new build that its output depends on.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    pub id: &'a str,
    pub project: &'a str,
    /// The Build's static fields (`arn`, `logs`, `artifacts`).
    pub fields: &'a Map<String, Value>,
    pub timeline: &'a Timeline,
    /// Length of one phase (real seconds): reports settle this long after the build ends.
    pub phase_seconds: f64,
    pub time_scale: f64,
    pub region: &'a str,
    pub account: &'a str,
}

impl BuildOutput {
    pub fn plan(choices: &Choices, ctx: &Context) -> BuildOutput {
        let logs = ctx.fields.get("logs").cloned().unwrap_or_else(|| json!({}));
        let stream = location::stream_of(&logs);
        let seed = fnv(ctx.id);
        let script = stream.as_ref().and_then(|_| {
            let src_dir = format!("/codebuild/output/src{}/src", mix(seed, 1) % 1_000_000_000);
            let artifacts = ctx.fields.get("artifacts").and_then(|a| a.get("location"));
            LogScript::plan(&ScriptInput {
                timeline: ctx.timeline,
                buildspec: &choices.buildspec,
                src_dir: &src_dir,
                artifacts: artifacts
                    .and_then(Value::as_str)
                    .is_some_and(|l| !l.is_empty()),
                volume: choices.volume.clone(),
                seed,
                time_scale: ctx.time_scale,
            })
        });
        let early_logs = stream
            .as_ref()
            .filter(|(group, _)| *group == location::default_group(ctx.project))
            .map(|_| location::while_provisioning(&logs, ctx.region, ctx.account));
        let build_arn = ctx
            .fields
            .get("arn")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let owner = Owner {
            region: ctx.region,
            account: ctx.account,
            project: ctx.project,
            build_id: ctx.id,
            build_arn,
        };
        BuildOutput {
            stream,
            early_logs,
            script,
            reports: reports::plan(&choices.reports, &owner, ctx.timeline, ctx.phase_seconds),
        }
    }

    /// Sets the Build's `logs` and `reportArns` as they are at `now`.
    pub fn render_into(
        &self,
        build: &mut Map<String, Value>,
        tl: &Timeline,
        now: f64,
        stopped_at: Option<f64>,
    ) {
        if let Some(early) = &self.early_logs
            && !phase_ended(tl, PhaseType::Provisioning, now, stopped_at)
        {
            build.insert("logs".into(), early.clone());
        }
        let arns: Vec<&str> = self
            .reports
            .iter()
            .filter(|r| r.exists(now, stopped_at))
            .map(|r| r.arn.as_str())
            .collect();
        if !arns.is_empty() {
            build.insert("reportArns".into(), json!(arns));
        }
    }

    /// The readable events of the stream at `now`, when it exists by then.
    pub fn readable(
        &self,
        tl: &Timeline,
        now: f64,
        stopped_at: Option<f64>,
    ) -> Option<(&LogScript, usize)> {
        let script = self.script.as_ref()?;
        if !lifecycle::phase_finished(tl, PhaseType::Provisioning, now, stopped_at) {
            return None;
        }
        let stop_ms = stopped_at.map(|s| (s * 1000.0).floor() as i64);
        Some((
            script,
            script.readable((now * 1000.0).floor() as i64, stop_ms),
        ))
    }
}

/// Whether `phase` has ended (in any status) by `now`, cut at a stop.
fn phase_ended(tl: &Timeline, phase: PhaseType, now: f64, stopped_at: Option<f64>) -> bool {
    let cut = stopped_at.map_or(now, |s| s.min(now));
    tl.phases.iter().any(|p| p.phase == phase && p.end <= cut)
}

/// One event of a build's log, for tests (see [`crate::SimState::log_events`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    /// Position in the stream (0 = the first event).
    pub index: usize,
    /// When the line was written (epoch ms).
    pub timestamp: i64,
    /// When CloudWatch Logs had it, so readers could see it (epoch ms, >= timestamp).
    pub ingestion_time: i64,
    pub message: String,
}

/// A build's log stream, for tests (see [`crate::SimState::log_stream`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogStreamInfo {
    pub group_name: String,
    pub stream_name: String,
    /// When the stream was created (epoch ms); None until it exists (or when it never will).
    pub created: Option<i64>,
    /// Events readable now.
    pub readable_events: usize,
    /// Events the stream will hold when the build has written everything (as planned now; a
    /// StopBuild cuts it).
    pub total_events: usize,
    /// The build is over and every event it wrote is readable: nothing more will appear.
    pub complete: bool,
}

impl LogStreamInfo {
    pub fn of(
        output: &BuildOutput,
        tl: &Timeline,
        now: f64,
        stopped_at: Option<f64>,
        build_complete: bool,
    ) -> Option<LogStreamInfo> {
        let (group, stream) = output.stream.clone()?;
        let readable = output.readable(tl, now, stopped_at);
        let stop_ms = stopped_at.map(|s| (s * 1000.0).floor() as i64);
        let total = output
            .script
            .as_ref()
            .map_or(0, |s| s.readable(i64::MAX, stop_ms));
        let readable_events = readable.map_or(0, |(_, n)| n);
        Some(LogStreamInfo {
            group_name: group,
            stream_name: stream,
            created: readable.map(|(s, _)| s.created_ms()),
            readable_events,
            total_events: total,
            complete: build_complete && readable_events == total,
        })
    }
}
