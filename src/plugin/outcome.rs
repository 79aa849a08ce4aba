//! How a run reads to the plugin (pure): whether it is done, its exit code, the builds of its
//! automatic-retry chain and where their logs are, and the one-screen summary.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::api::names::condition;
use crate::api::{
    BuildPhase, BuildReports, CodeBuildRun, CodeBuildRunStatus, LogTail, LogsLocation,
};

/// The exit codes of `wait`, `start --wait` and `rerun --wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: the build SUCCEEDED.
    Succeeded = 0,
    /// 1: the build FAILED.
    Failed = 1,
    /// 2: the build ended FAULT.
    Fault = 2,
    /// 3: the build was STOPPED (or the run was stopped before a build started).
    Stopped = 3,
    /// 4: the build TIMED_OUT.
    TimedOut = 4,
    /// 5: the run ended without a build: refused by a policy, or its spec is invalid.
    NoBuild = 5,
    /// 6: `--timeout` elapsed before the run ended.
    Timeout = 6,
    /// 10: the plugin could not do what it was asked (bad flags, no such run, no access).
    Error = 10,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }

    /// The exit code of a build that ended with `build_status`.
    pub fn of_build_status(build_status: &str) -> Exit {
        match build_status {
            "SUCCEEDED" => Exit::Succeeded,
            "FAULT" => Exit::Fault,
            "STOPPED" => Exit::Stopped,
            "TIMED_OUT" => Exit::TimedOut,
            _ => Exit::Failed,
        }
    }
}

/// Whether `run` is done, and how it ended: None while it is in progress (starting,
/// running, retried automatically, or retrying an error that may heal).
pub fn outcome(run: &CodeBuildRun) -> Option<Exit> {
    let status = run.status.as_ref()?;
    if status.build.is_final() {
        let build_status = status.build.build_status.as_deref().unwrap_or("FAILED");
        return Some(Exit::of_build_status(build_status));
    }
    if status.build.build_id.is_some() {
        return None;
    }
    // No build: done when the run is stalled for good (refused, invalid, cancelled).
    let succeeded = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::SUCCEEDED)?;
    let stalled = status
        .conditions
        .iter()
        .any(|c| c.type_ == condition::STALLED && c.status == "True");
    if succeeded.status != "False" || !stalled || observed_old_generation(run) {
        return None;
    }
    Some(if succeeded.reason == "STOPPED" {
        Exit::Stopped
    } else {
        Exit::NoBuild
    })
}

fn observed_old_generation(run: &CodeBuildRun) -> bool {
    let observed = run.status.as_ref().and_then(|s| s.observed_generation);
    observed.is_some() && observed != run.metadata.generation
}

/// One build of a run's automatic-retry chain.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainBuild {
    /// The build's id.
    pub id: String,
    /// Where its log is, when known.
    pub logs: Option<LogsLocation>,
    /// Whether it has ended.
    pub finished: bool,
}

/// The builds of `status`, oldest first: the retried ones, then the current one.
pub fn chain(status: &CodeBuildRunStatus) -> Vec<ChainBuild> {
    let mut builds: Vec<ChainBuild> = status
        .retries
        .iter()
        .flatten()
        .map(|r| ChainBuild {
            id: r.build_id.clone(),
            logs: r.logs.clone(),
            finished: true,
        })
        .collect();
    if let Some(id) = &status.build.build_id {
        builds.push(ChainBuild {
            id: id.clone(),
            logs: status.build.logs.clone(),
            finished: status.build.is_finished(),
        });
    }
    builds
}

/// Where a build's log can be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogPlace {
    /// CloudWatch Logs group and stream.
    CloudWatch { group: String, stream: String },
    /// Not in CloudWatch Logs: the message says where, if anywhere.
    Elsewhere(String),
    /// Not known yet (the stream appears once PROVISIONING is done).
    NotYet,
}

/// Where the log of `build` is.
pub fn log_place(build: &ChainBuild) -> LogPlace {
    let logs = build.logs.clone().unwrap_or_default();
    if logs
        .cloud_watch_logs
        .as_ref()
        .and_then(|c| c.status.as_deref())
        == Some("DISABLED")
    {
        let s3 = logs
            .s3_logs_arn
            .or(logs.s3_deep_link)
            .or_else(|| logs.s3_logs.and_then(|s| s.location));
        return LogPlace::Elsewhere(match s3 {
            Some(s3) => format!("build {} logs to S3 only: {s3}", build.id),
            None => format!(
                "build {} keeps no log (CloudWatch and S3 logs are off)",
                build.id
            ),
        });
    }
    match (logs.group_name, logs.stream_name) {
        (Some(group), Some(stream)) => LogPlace::CloudWatch { group, stream },
        _ if build.finished => LogPlace::Elsewhere(format!(
            "build {} ended before its container wrote a log (no log stream)",
            build.id
        )),
        _ => LogPlace::NotYet,
    }
}

/// What the run is doing, in a few words: `BUILD`, `Starting`, `ProjectNotFound`, ...
pub fn activity(run: &CodeBuildRun) -> String {
    let status = run.status.clone().unwrap_or_default();
    if !status.build.is_final()
        && let Some(phase) = status.build.current_phase
    {
        return phase;
    }
    status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::SUCCEEDED)
        .map(|c| c.reason.clone())
        .unwrap_or_else(|| "Pending".into())
}

/// The one-screen summary of a finished run: the outcome, the phases with their durations,
/// the failure tail and the reports.
pub fn summary(run: &CodeBuildRun) -> String {
    let name = run.metadata.name.as_deref().unwrap_or("?");
    let status = run.status.clone().unwrap_or_default();
    let b = &status.build;
    let mut out = String::new();
    let outcome = b.build_status.as_deref().unwrap_or("no build");
    let id = b.build_id.as_deref().unwrap_or("-");
    let _ = writeln!(out, "cbr/{name}: build {id} {outcome}");
    if let Some(c) = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::SUCCEEDED)
        && c.status == "False"
    {
        let _ = writeln!(out, "  {}", c.message);
    }
    for retry in status.retries.iter().flatten() {
        let ended = retry.build_status.as_deref().unwrap_or("?");
        let _ = writeln!(
            out,
            "  retried automatically: build {} {ended}",
            retry.build_id
        );
    }
    if let Some(phases) = &b.phases {
        let _ = writeln!(out, "phases:");
        for p in phases {
            out.push_str(&phase_line(p));
        }
    }
    if let Some(tail) = &status.log_tail {
        out.push_str(&tail_text(tail));
    }
    if let Some(reports) = &status.reports {
        out.push_str(&reports_text(reports));
    }
    if let Some(link) = b
        .logs
        .as_ref()
        .and_then(|l| l.deep_link.as_deref().or(l.s3_deep_link.as_deref()))
    {
        let _ = writeln!(out, "logs: {link}");
    }
    out
}

fn phase_line(p: &BuildPhase) -> String {
    let phase = p.phase_type.as_deref().unwrap_or("?");
    let status = p.phase_status.as_deref().unwrap_or("");
    let took = p
        .duration_in_seconds
        .map(|s| format!("{s}s"))
        .unwrap_or_default();
    let why: Vec<String> = p
        .contexts
        .iter()
        .flatten()
        .filter_map(|c| {
            let message = c.message.as_deref().unwrap_or("");
            let code = c.status_code.as_deref().unwrap_or("");
            (!message.is_empty() || !code.is_empty()).then(|| format!("{code}: {message}"))
        })
        .collect();
    let mut line = format!("  {phase:<17} {status:<10} {took:>6}");
    if !why.is_empty() {
        line.push_str("  ");
        line.push_str(&why.join("; "));
    }
    format!("{}\n", line.trim_end())
}

fn tail_text(tail: &LogTail) -> String {
    let mut out = String::new();
    if tail.lines.is_empty() {
        let reason = tail.reason.as_deref().unwrap_or("none");
        let message = tail.message.as_deref().unwrap_or("");
        let _ = writeln!(out, "log tail: none ({reason}) {message}");
        return out;
    }
    let _ = writeln!(out, "log tail (build {}):", tail.build_id);
    for line in &tail.lines {
        let _ = writeln!(out, "  | {line}");
    }
    out
}

fn reports_text(reports: &BuildReports) -> String {
    let mut out = String::new();
    let tests = reports
        .tests
        .as_deref()
        .map(|t| format!(", tests passed {t}"));
    let _ = writeln!(out, "reports{}:", tests.unwrap_or_default());
    for r in &reports.items {
        let name = r.name.as_deref().unwrap_or(&r.arn);
        let type_ = r.type_.as_deref().unwrap_or("?");
        let status = r.status.as_deref().unwrap_or("?");
        let mut line = format!("  {name} ({type_}) {status}");
        if let Some(t) = &r.test_summary {
            let counts: Vec<String> = t
                .status_counts
                .iter()
                .flatten()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{n} {}", k.to_lowercase()))
                .collect();
            let _ = write!(
                line,
                ": {} of {} tests",
                counts.join(", "),
                t.total.unwrap_or(0)
            );
            if let Some(ns) = t.duration_in_nano_seconds {
                let _ = write!(line, " in {:.1}s", ns as f64 / 1e9);
            }
        }
        if let Some(c) = &r.code_coverage_summary {
            let pct = |p: Option<f64>| p.map_or("-".to_owned(), |p| format!("{p:.1}%"));
            let _ = write!(
                line,
                ": lines {}, branches {}",
                pct(c.line_coverage_percentage),
                pct(c.branch_coverage_percentage)
            );
        }
        let _ = writeln!(out, "{line}");
    }
    if let Some(message) = &reports.message {
        let _ = writeln!(out, "  {message}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(status: serde_json::Value) -> CodeBuildRun {
        serde_json::from_value(json!({
            "apiVersion": "codebuild.operator.dev/v1alpha1", "kind": "CodeBuildRun",
            "metadata": {"name": "r", "namespace": "ns", "generation": 1},
            "spec": {"projectName": "p"}, "status": status,
        }))
        .unwrap()
    }

    fn cond(type_: &str, status: &str, reason: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "reason": reason, "message": "m",
               "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1})
    }

    #[test]
    fn exit_codes_follow_the_build_status() {
        for (status, code) in [
            ("SUCCEEDED", 0),
            ("FAILED", 1),
            ("FAULT", 2),
            ("STOPPED", 3),
            ("TIMED_OUT", 4),
        ] {
            let r = run(json!({"buildId": "p:1", "buildStatus": status, "buildComplete": true}));
            assert_eq!(outcome(&r).map(|e| e as u8), Some(code), "{status}");
        }
        let running = run(json!({"buildId": "p:1", "buildStatus": "IN_PROGRESS"}));
        assert_eq!(outcome(&running), None);
        let retried = run(
            json!({"buildId": "p:1", "buildStatus": "FAILED", "buildComplete": true,
            "autoRetryConfig": {"autoRetryLimit": 1, "autoRetryNumber": 0}}),
        );
        assert_eq!(outcome(&retried), None, "CodeBuild retries it");
    }

    #[test]
    fn a_run_without_a_build_ends_when_it_is_stalled_for_good() {
        let refused = run(json!({"observedGeneration": 1, "conditions": [
            cond("Succeeded", "False", "PolicyDenied"), cond("Stalled", "True", "PolicyDenied")]}));
        assert_eq!(outcome(&refused), Some(Exit::NoBuild));
        let cancelled = run(json!({"observedGeneration": 1, "conditions": [
            cond("Succeeded", "False", "STOPPED"), cond("Stalled", "True", "STOPPED")]}));
        assert_eq!(outcome(&cancelled), Some(Exit::Stopped));
        let starting = run(json!({"observedGeneration": 1, "conditions": [
            cond("Succeeded", "Unknown", "Starting"), cond("Stalled", "False", "NotStalled")]}));
        assert_eq!(outcome(&starting), None);
        let waiting = run(json!({"observedGeneration": 1, "conditions": [
            cond("Succeeded", "Unknown", "ProjectNotFound"), cond("Stalled", "True", "ProjectNotFound")]}));
        assert_eq!(outcome(&waiting), None, "retried until the project exists");
        assert_eq!(outcome(&run(json!({}))), None);
    }

    #[test]
    fn the_chain_and_where_each_log_is() {
        let status: CodeBuildRunStatus = serde_json::from_value(json!({
            "buildId": "p:3", "buildStatus": "IN_PROGRESS", "currentPhase": "PROVISIONING",
            "logs": {"deepLink": "https://x"},
            "retries": [
                {"buildId": "p:1", "buildStatus": "FAILED",
                 "logs": {"groupName": "/aws/codebuild/p", "streamName": "1"}},
                {"buildId": "p:2", "buildStatus": "FAILED",
                 "logs": {"cloudWatchLogs": {"status": "DISABLED"}, "s3LogsArn": "arn:aws:s3:::b/2.gz"}},
            ]}))
        .unwrap();
        let c = chain(&status);
        assert_eq!(
            c.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
            ["p:1", "p:2", "p:3"]
        );
        assert_eq!(
            log_place(&c[0]),
            LogPlace::CloudWatch {
                group: "/aws/codebuild/p".into(),
                stream: "1".into()
            }
        );
        assert!(
            matches!(log_place(&c[1]), LogPlace::Elsewhere(m) if m.contains("arn:aws:s3:::b/2.gz"))
        );
        assert_eq!(log_place(&c[2]), LogPlace::NotYet);
    }

    #[test]
    fn the_summary_shows_phases_tail_and_reports() {
        let r = run(json!({
            "buildId": "p:1", "buildStatus": "FAILED", "buildComplete": true,
            "phases": [{"phaseType": "BUILD", "phaseStatus": "FAILED", "durationInSeconds": 12,
                        "contexts": [{"statusCode": "COMMAND_EXECUTION_ERROR", "message": "make test"}]}],
            "logTail": {"buildId": "p:1", "lines": ["make: *** [test] Error 2"]},
            "reports": {"buildId": "p:1", "tests": "40/43", "items": [{"arn": "a", "name": "unit",
                "type": "TEST", "status": "FAILED", "testSummary": {"total": 43,
                "statusCounts": {"SUCCEEDED": 40, "FAILED": 3}, "durationInNanoSeconds": 1500000000}}]},
        }));
        let text = summary(&r);
        assert!(text.contains("cbr/r: build p:1 FAILED"), "{text}");
        assert!(
            text.contains(
                "BUILD             FAILED        12s  COMMAND_EXECUTION_ERROR: make test"
            ),
            "{text}"
        );
        assert!(text.contains("  | make: *** [test] Error 2"), "{text}");
        assert!(text.contains("reports, tests passed 40/43:"), "{text}");
        assert!(
            text.contains("unit (TEST) FAILED: 3 failed, 40 succeeded of 43 tests in 1.5s"),
            "{text}"
        );
    }
}
