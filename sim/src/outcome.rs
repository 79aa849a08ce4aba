//! Reserved `CODEBUILD_SIM_*` build environment variables that choose a build's outcome.
//! Pure parsing; see sim/README.md for the user-facing description.

use crate::lifecycle::{Failure, PhaseType, Status};

pub const FAIL_PHASE: &str = "CODEBUILD_SIM_FAIL_PHASE";
pub const STATUS: &str = "CODEBUILD_SIM_STATUS";
pub const STATUS_CODE: &str = "CODEBUILD_SIM_STATUS_CODE";
pub const MESSAGE: &str = "CODEBUILD_SIM_MESSAGE";
pub const PHASE_SECONDS: &str = "CODEBUILD_SIM_PHASE_SECONDS";
pub const EXPORT: &str = "CODEBUILD_SIM_EXPORT";
pub const SUCCEED_ON_RETRY: &str = "CODEBUILD_SIM_SUCCEED_ON_RETRY";

/// What the reserved variables ask for, for one build of an auto-retry chain.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub failure: Option<Failure>,
    /// Per-phase duration before time scaling.
    pub phase_seconds: Option<f64>,
    pub exports: Vec<(String, String)>,
}

/// The value of the reserved variable `name` (the last entry wins, as in the merged
/// environment).
pub fn last_value<'v>(vars: &'v [(String, String)], name: &str) -> Option<&'v str> {
    vars.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The statusCode of a failing command.
pub const COMMAND_EXECUTION_ERROR: &str = "COMMAND_EXECUTION_ERROR";

/// The exit status a failing command reports when the message does not say.
pub const DEFAULT_EXIT_STATUS: i32 = 2;

/// The message CodeBuild gives a phase whose command `command` exited with `status`.
pub fn command_failure_message(command: &str, status: i32) -> String {
    format!("Error while executing command: {command}. Reason: exit status {status}")
}

/// The command and exit status a [`command_failure_message`] names, if `message` is one.
pub fn parse_command_failure(message: &str) -> Option<(String, i32)> {
    let rest = message.strip_prefix("Error while executing command: ")?;
    let (command, status) = rest.rsplit_once(". Reason: exit status ")?;
    Some((command.to_string(), status.trim().parse().ok()?))
}

/// The context a failing phase reports when `CODEBUILD_SIM_MESSAGE` is not set. `command` is
/// the command that fails in a command phase ("make" when unknown).
pub fn default_context(
    phase: PhaseType,
    status: Status,
    command: Option<&str>,
) -> (String, String) {
    let (code, message) = match status {
        Status::TimedOut => crate::lifecycle::TIMEOUT_CONTEXT,
        Status::Fault => (
            "INTERNAL_ERROR",
            "CodeBuild encountered an internal error while running the build",
        ),
        _ => match phase {
            PhaseType::Provisioning => (
                "BUILD_CONTAINER_UNABLE_TO_PULL_IMAGE",
                "Unable to pull customer's container image. CannotPullContainerError: pull access denied",
            ),
            PhaseType::DownloadSource => (
                "CLIENT_ERROR",
                "repository not found for primary source and source version main",
            ),
            PhaseType::UploadArtifacts => ("CLIENT_ERROR", "no matching artifact paths found"),
            _ => {
                let command = command.unwrap_or("make");
                return (
                    COMMAND_EXECUTION_ERROR.to_string(),
                    command_failure_message(command, DEFAULT_EXIT_STATUS),
                );
            }
        },
    };
    (code.to_string(), message.to_string())
}

/// Parses the reserved variables (later entries win) for retry number `retry_number`
/// (0 = the original build). `failing_command` names the command a phase made to fail runs
/// last (from the buildspec). Errors are messages for an InvalidInputException.
pub fn parse(
    vars: &[(String, String)],
    retry_number: u32,
    failing_command: impl Fn(PhaseType) -> Option<String>,
) -> Result<Outcome, String> {
    let get = |name: &str| last_value(vars, name);
    let mut out = Outcome::default();
    if let Some(v) = get(PHASE_SECONDS) {
        let secs: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("{PHASE_SECONDS} must be a number, got '{v}'"))?;
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("{PHASE_SECONDS} must be >= 0, got '{v}'"));
        }
        out.phase_seconds = Some(secs);
    }
    if let Some(v) = get(EXPORT) {
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{EXPORT} entries must be NAME=value, got '{item}'"))?;
            out.exports
                .push((name.trim().to_string(), value.to_string()));
        }
    }
    let succeed_on = match get(SUCCEED_ON_RETRY) {
        Some(v) => Some(
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("{SUCCEED_ON_RETRY} must be a non-negative integer"))?,
        ),
        None => None,
    };
    let status = match get(STATUS) {
        Some(v) => Status::parse_failure(v)
            .ok_or_else(|| format!("{STATUS} must be FAILED, FAULT or TIMED_OUT, got '{v}'"))?,
        None => Status::Failed,
    };
    if let Some(v) = get(FAIL_PHASE) {
        let phase = PhaseType::parse(v)
            .filter(|p| *p != PhaseType::Completed)
            .ok_or_else(|| format!("{FAIL_PHASE}: unknown phase '{v}'"))?;
        let succeeds = succeed_on.is_some_and(|n| retry_number >= n);
        if !succeeds {
            let command = failing_command(phase);
            let (code, msg) = default_context(phase, status, command.as_deref());
            out.failure = Some(Failure {
                phase,
                status,
                status_code: get(STATUS_CODE).map_or(code, str::to_string),
                message: get(MESSAGE).map_or(msg, str::to_string),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// `parse` with no buildspec commands known.
    fn parse(vars: &[(String, String)], retry: u32) -> Result<Outcome, String> {
        super::parse(vars, retry, |_| None)
    }

    #[test]
    fn no_vars_means_success() {
        assert_eq!(parse(&[], 0), Ok(Outcome::default()));
    }

    #[test]
    fn fail_phase_with_defaults() {
        let o = parse(&vars(&[(FAIL_PHASE, "BUILD")]), 0).unwrap_or_default();
        let f = o.failure.unwrap_or_else(|| panic!("no failure"));
        assert_eq!(f.phase, PhaseType::Build);
        assert_eq!(f.status, Status::Failed);
        assert_eq!(f.status_code, "COMMAND_EXECUTION_ERROR");
        assert_eq!(
            f.message,
            "Error while executing command: make. Reason: exit status 2"
        );
    }

    #[test]
    fn default_message_names_the_failing_command() {
        let v = vars(&[(FAIL_PHASE, "BUILD")]);
        let o = super::parse(&v, 0, |p| {
            (p == PhaseType::Build).then(|| "make test".into())
        });
        let f = o.ok().and_then(|o| o.failure);
        assert_eq!(
            f.map(|f| f.message).as_deref(),
            Some("Error while executing command: make test. Reason: exit status 2")
        );
        assert_eq!(
            parse_command_failure("Error while executing command: a. b. Reason: exit status 127"),
            Some(("a. b".to_string(), 127))
        );
        assert_eq!(parse_command_failure("custom"), None);
    }

    #[test]
    fn status_and_message_overrides() {
        let o = parse(
            &vars(&[
                (FAIL_PHASE, "pre_build"),
                (STATUS, "FAULT"),
                (MESSAGE, "custom"),
                (STATUS_CODE, "X"),
            ]),
            0,
        );
        let f = o.ok().and_then(|o| o.failure);
        assert_eq!(
            f,
            Some(Failure {
                phase: PhaseType::PreBuild,
                status: Status::Fault,
                status_code: "X".into(),
                message: "custom".into()
            })
        );
    }

    #[test]
    fn succeed_on_retry() {
        let v = vars(&[(FAIL_PHASE, "BUILD"), (SUCCEED_ON_RETRY, "2")]);
        assert!(parse(&v, 0).is_ok_and(|o| o.failure.is_some()));
        assert!(parse(&v, 1).is_ok_and(|o| o.failure.is_some()));
        assert!(parse(&v, 2).is_ok_and(|o| o.failure.is_none()));
    }

    #[test]
    fn exports_and_seconds() {
        let o =
            parse(&vars(&[(EXPORT, "A=1, B=x=y"), (PHASE_SECONDS, "0.25")]), 0).unwrap_or_default();
        assert_eq!(
            o.exports,
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert_eq!(o.phase_seconds, Some(0.25));
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse(&vars(&[(FAIL_PHASE, "NOPE")]), 0).is_err());
        assert!(parse(&vars(&[(FAIL_PHASE, "COMPLETED")]), 0).is_err());
        assert!(parse(&vars(&[(STATUS, "SUCCEEDED")]), 0).is_err());
        assert!(parse(&vars(&[(PHASE_SECONDS, "-1")]), 0).is_err());
        assert!(parse(&vars(&[(EXPORT, "novalue")]), 0).is_err());
    }
}
