//! The failure tail (pure): whether to read the log of a build that just ended, where, and
//! what of it goes into `status.logTail`.
//!
//! One GetLogEvents call reads the newest events of the stream (`startFromHead: false`).
//! CodeBuild runs its clean-up phases (POST_BUILD, UPLOAD_ARTIFACTS) after a failed phase,
//! and their lines say nothing about the failure, so the tail ends where the failing phase
//! ended (`Phase complete: BUILD State: FAILED` and its `Phase context` line) when the page
//! read shows it; the page holds [`EXTRA_EVENTS`] more events than the tail keeps so that it
//! usually does. Otherwise (a timeout, a fault, a very chatty clean-up) the tail is the end
//! of the log.

use super::ansi;
use crate::api::names::log_tail;
use crate::api::{BuildInfo, LogTail, LogsLocation};
use crate::codebuild::{ApiError, GET_LOG_EVENTS_MAX_LIMIT, LogEvent, LogRead};

/// Events read beyond the tail's lines, to see past the clean-up phases to the failure.
pub const EXTRA_EVENTS: usize = 100;

/// The longest log line the `Succeeded` condition's message quotes (characters).
const MESSAGE_LINE_MAX: usize = 200;

/// Build statuses whose log is worth a look.
const FAILED_STATUSES: &[&str] = &["FAILED", "FAULT", "TIMED_OUT"];

/// How much of a failed build's log goes into status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailLimits {
    /// At most this many lines (0: no tail is read).
    pub lines: usize,
    /// At most this many bytes of text, newlines counted (0: no tail is read).
    pub bytes: usize,
}

impl TailLimits {
    /// About 20 lines and 4 KiB: enough to see why, small enough for every status write.
    pub const DEFAULT: TailLimits = TailLimits {
        lines: 20,
        bytes: 4096,
    };

    /// Whether the tail is turned off.
    pub fn is_off(&self) -> bool {
        self.lines == 0 || self.bytes == 0
    }
}

impl Default for TailLimits {
    fn default() -> Self {
        TailLimits::DEFAULT
    }
}

/// What to do about the log of a build that just ended.
#[derive(Clone, Debug, PartialEq)]
pub enum TailStep {
    /// Read this page (one GetLogEvents call), then [`tail_from_events`].
    Read(LogRead),
    /// There is nothing to read; status says why.
    Unavailable(LogTail),
}

/// What to do about the log of `build`, which just became final: nothing (it did not fail,
/// or the tail is off), read it, or say why there is none.
pub fn tail_step(build: &BuildInfo, limits: &TailLimits) -> Option<TailStep> {
    if limits.is_off() || !build.is_final() {
        return None;
    }
    let status = build.build_status.as_deref()?;
    if !FAILED_STATUSES.contains(&status) {
        return None;
    }
    let build_id = build.build_id.clone()?;
    let logs = build.logs.clone().unwrap_or_default();
    let cloud_watch = logs
        .cloud_watch_logs
        .as_ref()
        .and_then(|c| c.status.as_deref());
    if cloud_watch == Some("DISABLED") {
        return Some(TailStep::Unavailable(LogTail {
            build_id,
            reason: Some(log_tail::LOGS_DISABLED.into()),
            message: Some(disabled_message(&logs)),
            ..LogTail::default()
        }));
    }
    match (logs.group_name, logs.stream_name) {
        (Some(group), Some(stream)) => Some(TailStep::Read(LogRead {
            group,
            stream,
            start_from_head: false,
            next_token: None,
            limit: Some(read_limit(limits)),
        })),
        _ => Some(TailStep::Unavailable(LogTail {
            build_id,
            reason: Some(log_tail::NO_LOG_STREAM.into()),
            message: Some(
                "the build ended before its container wrote a log (it has no log stream)".into(),
            ),
            ..LogTail::default()
        })),
    }
}

/// How many events the one read asks for.
fn read_limit(limits: &TailLimits) -> i32 {
    let wanted = limits.lines.saturating_add(EXTRA_EVENTS);
    i32::try_from(wanted).map_or(GET_LOG_EVENTS_MAX_LIMIT, |n| {
        n.min(GET_LOG_EVENTS_MAX_LIMIT)
    })
}

fn disabled_message(logs: &LogsLocation) -> String {
    let s3 = logs
        .s3_logs_arn
        .as_deref()
        .or(logs.s3_deep_link.as_deref())
        .or_else(|| logs.s3_logs.as_ref().and_then(|s| s.location.as_deref()));
    match s3 {
        Some(where_) => {
            format!("CloudWatch logs are off for this build; its log is in S3: {where_}")
        }
        None => {
            "CloudWatch logs are off for this build, and so are S3 logs: it keeps no log".into()
        }
    }
}

/// The tail of build `build_id` from the newest events of its stream (oldest first, as
/// GetLogEvents returns them).
pub fn tail_from_events(build_id: &str, events: &[LogEvent], limits: &TailLimits) -> LogTail {
    let lines: Vec<String> = events
        .iter()
        .flat_map(|e| e.message.trim_end_matches(['\n', '\r']).split('\n'))
        .map(|l| ansi::strip(l.trim_end_matches('\r')))
        .collect();
    if lines.is_empty() {
        return LogTail {
            build_id: build_id.to_owned(),
            reason: Some(log_tail::LOG_EMPTY.into()),
            message: Some("the build's log stream holds no line".into()),
            ..LogTail::default()
        };
    }
    let end = failure_end(&lines).unwrap_or(lines.len());
    LogTail {
        build_id: build_id.to_owned(),
        lines: fit(&lines[..end], limits),
        ..LogTail::default()
    }
}

/// Where the tail ends: after the last phase that did not succeed, and its context line.
fn failure_end(lines: &[String]) -> Option<usize> {
    let failed = lines.iter().rposition(|l| is_failed_phase(l))?;
    let context = lines
        .get(failed + 1)
        .is_some_and(|l| agent_text(l).starts_with("Phase context status code:"));
    Some(failed + 1 + usize::from(context))
}

/// `Phase complete: BUILD State: FAILED` (or the `Success: false` of very old images).
fn is_failed_phase(line: &str) -> bool {
    let text = agent_text(line);
    let Some(rest) = text.strip_prefix("Phase complete: ") else {
        return false;
    };
    match rest.split_once(" State: ") {
        Some((_, state)) => state.trim() != "SUCCEEDED",
        None => rest.trim_end().ends_with("Success: false"),
    }
}

/// The text of an agent line after `[Container] <date> <time> `; other lines as they are.
fn agent_text(line: &str) -> &str {
    match line.strip_prefix("[Container] ") {
        Some(rest) => rest.splitn(3, ' ').nth(2).unwrap_or(rest),
        None => line,
    }
}

/// The last lines of `lines` within the limits; a line longer than the byte cap is cut to it
/// (at a character boundary, ending in `…`).
fn fit(lines: &[String], limits: &TailLimits) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    let mut bytes = 0;
    for line in lines.iter().rev().take(limits.lines) {
        let cost = line.len() + 1;
        if bytes + cost > limits.bytes {
            if kept.is_empty() {
                kept.push(cut(line, limits.bytes.saturating_sub(1)));
            }
            break;
        }
        bytes += cost;
        kept.push(line.clone());
    }
    kept.reverse();
    kept
}

/// `line` cut to at most `max` bytes, ending in `…` when cut.
fn cut(line: &str, max: usize) -> String {
    if line.len() <= max {
        return line.to_owned();
    }
    let ellipsis = '…'.len_utf8();
    let mut end = max.saturating_sub(ellipsis);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// Why the tail of build `build_id` could not be read: GetLogEvents failed with `error`.
pub fn tail_from_error(build_id: &str, read: &LogRead, error: &ApiError) -> LogTail {
    let not_found = error.code.as_deref() == Some("ResourceNotFoundException");
    let reason = if not_found {
        log_tail::LOG_STREAM_NOT_FOUND
    } else {
        error.kind.category()
    };
    let hint = match error.kind {
        crate::codebuild::ErrorKind::AccessDenied => {
            " (the operator's IAM role needs logs:GetLogEvents on this log group)"
        }
        _ => "",
    };
    LogTail {
        build_id: build_id.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(format!(
            "GetLogEvents on log group {} stream {}: {error}{hint}; the tail is not read again",
            read.group, read.stream
        )),
        ..LogTail::default()
    }
}

/// The line the `Succeeded` condition's message quotes: the last line the build's commands
/// printed in the tail (the agent's own `[Container]` lines repeat what the phase context
/// says), else the tail's last line; cut to a readable length.
pub fn message_line(tail: &LogTail) -> Option<String> {
    let line = tail
        .lines
        .iter()
        .rev()
        .find(|l| !l.starts_with("[Container] ") && !l.trim().is_empty())
        .or_else(|| tail.lines.last())?;
    let line = line.trim();
    Some(if line.chars().count() > MESSAGE_LINE_MAX {
        let cut: String = line.chars().take(MESSAGE_LINE_MAX - 1).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::LogsDestination;
    use crate::api::sample_build;
    use crate::codebuild::ErrorKind;

    fn event(message: &str) -> LogEvent {
        LogEvent {
            message: format!("{message}\n"),
            ..LogEvent::default()
        }
    }

    fn failed_with_logs(group: Option<&str>, stream: Option<&str>) -> BuildInfo {
        let mut b = sample_build("FAILED", "COMPLETED");
        b.logs = Some(LogsLocation {
            group_name: group.map(str::to_owned),
            stream_name: stream.map(str::to_owned),
            ..LogsLocation::default()
        });
        b
    }

    const LIMITS: TailLimits = TailLimits::DEFAULT;

    #[test]
    fn only_a_failed_final_build_is_read_from_the_tail() {
        let b = failed_with_logs(Some("/aws/codebuild/p"), Some("1"));
        assert_eq!(
            tail_step(&b, &LIMITS),
            Some(TailStep::Read(LogRead {
                group: "/aws/codebuild/p".into(),
                stream: "1".into(),
                start_from_head: false,
                next_token: None,
                limit: Some(120),
            }))
        );
        for status in ["FAULT", "TIMED_OUT"] {
            let mut other = b.clone();
            other.build_status = Some(status.into());
            assert!(matches!(
                tail_step(&other, &LIMITS),
                Some(TailStep::Read(_))
            ));
        }
        for status in ["SUCCEEDED", "STOPPED", "IN_PROGRESS"] {
            let mut other = b.clone();
            other.build_status = Some(status.into());
            assert_eq!(tail_step(&other, &LIMITS), None, "{status}");
        }
        let off = TailLimits {
            lines: 0,
            bytes: 4096,
        };
        assert_eq!(tail_step(&b, &off), None);
    }

    #[test]
    fn no_stream_and_logs_off_say_why_without_a_call() {
        let b = failed_with_logs(None, None);
        let Some(TailStep::Unavailable(t)) = tail_step(&b, &LIMITS) else {
            panic!("expected no read");
        };
        assert_eq!(t.reason.as_deref(), Some("NoLogStream"));
        let mut s3 = failed_with_logs(None, None);
        let logs = s3.logs.as_mut().unwrap();
        logs.cloud_watch_logs = Some(LogsDestination {
            status: Some("DISABLED".into()),
            location: None,
        });
        logs.s3_logs_arn = Some("arn:aws:s3:::bucket/logs/1.gz".into());
        let Some(TailStep::Unavailable(t)) = tail_step(&s3, &LIMITS) else {
            panic!("expected no read");
        };
        assert_eq!(t.reason.as_deref(), Some("LogsDisabled"));
        assert!(t.message.unwrap().contains("arn:aws:s3:::bucket/logs/1.gz"));
    }

    fn failing_log() -> Vec<LogEvent> {
        let mut log: Vec<LogEvent> = [
            "[Container] 2024/12/22 20:03:40.120001 Entering phase BUILD",
            "[Container] 2024/12/22 20:03:40.120001 Running command make test",
            "\u{1b}[31mFAIL\u{1b}[0m src/parser.test.js",
            "make: *** [test] Error 2",
            "[Container] 2024/12/22 20:03:43.966393 Command did not exit successfully make test exit status 2",
            "[Container] 2024/12/22 20:03:43.966400 Phase complete: BUILD State: FAILED",
            "[Container] 2024/12/22 20:03:43.966407 Phase context status code: COMMAND_EXECUTION_ERROR Message: Error while executing command: make test. Reason: exit status 2",
            "[Container] 2024/12/22 20:03:43.970000 Entering phase POST_BUILD",
            "[Container] 2024/12/22 20:03:43.970000 Running command make package",
            "packaging",
            "[Container] 2024/12/22 20:03:44.000000 Phase complete: POST_BUILD State: SUCCEEDED",
            "[Container] 2024/12/22 20:03:44.000000 Phase context status code:  Message: ",
        ]
        .into_iter()
        .map(event)
        .collect();
        log.insert(0, event("earlier output"));
        log
    }

    #[test]
    fn the_tail_ends_with_the_failing_phase_and_loses_its_colours() {
        let tail = tail_from_events("p:1", &failing_log(), &LIMITS);
        assert_eq!(tail.reason, None);
        assert_eq!(tail.lines.len(), 8, "{:#?}", tail.lines);
        assert_eq!(tail.lines[0], "earlier output");
        assert_eq!(tail.lines[3], "FAIL src/parser.test.js");
        assert!(tail.lines[7].contains("Phase context status code: COMMAND_EXECUTION_ERROR"));
        assert_eq!(
            message_line(&tail).as_deref(),
            Some("make: *** [test] Error 2")
        );
    }

    #[test]
    fn lines_and_bytes_are_capped_keeping_the_newest() {
        let limits = TailLimits {
            lines: 3,
            bytes: 4096,
        };
        let tail = tail_from_events("p:1", &failing_log(), &limits);
        assert_eq!(tail.lines.len(), 3);
        assert!(tail.lines[0].contains("Command did not exit successfully make test"));
        let events: Vec<LogEvent> = (0..10).map(|i| event(&format!("line {i:03}"))).collect();
        let small = TailLimits {
            lines: 20,
            bytes: 20,
        };
        let tail = tail_from_events("p:1", &events, &small);
        assert_eq!(
            tail.lines,
            vec!["line 008", "line 009"],
            "9 bytes each with the newline"
        );
        let long = vec![event(&"é".repeat(100))];
        let tail = tail_from_events(
            "p:1",
            &long,
            &TailLimits {
                lines: 5,
                bytes: 21,
            },
        );
        assert_eq!(tail.lines.len(), 1);
        assert!(
            tail.lines[0].len() <= 20 && tail.lines[0].ends_with('…'),
            "{:?}",
            tail.lines
        );
    }

    #[test]
    fn without_a_failed_phase_the_tail_is_the_end_of_the_log() {
        let events: Vec<LogEvent> = ["a", "b", "Build has timed out"]
            .into_iter()
            .map(event)
            .collect();
        let tail = tail_from_events("p:1", &events, &LIMITS);
        assert_eq!(tail.lines, vec!["a", "b", "Build has timed out"]);
        assert_eq!(message_line(&tail).as_deref(), Some("Build has timed out"));
        let empty = tail_from_events("p:1", &[], &LIMITS);
        assert_eq!(empty.reason.as_deref(), Some("LogEmpty"));
        assert_eq!(message_line(&empty), None);
    }

    #[test]
    fn old_images_say_success_false() {
        assert!(is_failed_phase(
            "[Container] 2018/01/01 00:00:00 Phase complete: BUILD Success: false"
        ));
        assert!(!is_failed_phase(
            "[Container] 2018/01/01 00:00:00 Phase complete: BUILD Success: true"
        ));
        assert!(!is_failed_phase("Phase complete: BUILD State: SUCCEEDED"));
    }

    #[test]
    fn errors_become_reasons() {
        let read = LogRead {
            group: "g".into(),
            stream: "s".into(),
            ..LogRead::default()
        };
        let denied = ApiError::new(ErrorKind::AccessDenied, Some("AccessDeniedException"), "no");
        let t = tail_from_error("p:1", &read, &denied);
        assert_eq!(t.reason.as_deref(), Some("AccessDenied"));
        assert!(t.message.unwrap().contains("logs:GetLogEvents"));
        let missing = ApiError::new(
            ErrorKind::ProjectNotFound,
            Some("ResourceNotFoundException"),
            "The specified log stream does not exist.",
        );
        let t = tail_from_error("p:1", &read, &missing);
        assert_eq!(t.reason.as_deref(), Some("LogStreamNotFound"));
        let throttled = ApiError::new(
            ErrorKind::Throttled,
            Some("ThrottlingException"),
            "Rate exceeded",
        );
        assert_eq!(
            tail_from_error("p:1", &read, &throttled).reason.as_deref(),
            Some("Throttled")
        );
    }
}
