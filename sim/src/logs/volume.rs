//! Reserved build variables that choose how much a build logs and what its lines look like.

use super::{EVENT_OVERHEAD_BYTES, MAX_EVENT_BYTES};
use crate::outcome::last_value;

pub const LOG_LINES: &str = "CODEBUILD_SIM_LOG_LINES";
pub const LOG_LINE_BYTES: &str = "CODEBUILD_SIM_LOG_LINE_BYTES";
pub const LOG_UNICODE: &str = "CODEBUILD_SIM_LOG_UNICODE";
pub const LOG_DELAY_SECONDS: &str = "CODEBUILD_SIM_LOG_DELAY_SECONDS";

/// Command output lines per command phase unless `CODEBUILD_SIM_LOG_LINES` says otherwise.
pub const DEFAULT_LINES: u32 = 4;
/// The most output lines a phase may print (ten full GetLogEvents pages).
pub const MAX_LINES: u32 = 100_000;
/// The longest message an event may carry: 256 KiB less the per-event overhead.
pub const MAX_LINE_BYTES: usize = MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES;
/// How long a batch of lines takes to become readable unless `CODEBUILD_SIM_LOG_DELAY_SECONDS`
/// says otherwise (seconds, before time scaling).
pub const DEFAULT_DELAY_SECONDS: f64 = 0.2;

/// What a build's command output looks like.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    /// Output lines each command phase (INSTALL, PRE_BUILD, BUILD, POST_BUILD) prints,
    /// shared among the commands it runs.
    pub lines: u32,
    /// Every output line is exactly this many UTF-8 bytes, its newline included.
    pub line_bytes: Option<usize>,
    /// Output lines carry non-ASCII text and ANSI colour codes.
    pub unicode: bool,
    /// Delivery delay: a batch of lines becomes readable this long after it is sent
    /// (seconds, before time scaling).
    pub delay_seconds: f64,
}

impl Default for Volume {
    fn default() -> Self {
        Volume {
            lines: DEFAULT_LINES,
            line_bytes: None,
            unicode: false,
            delay_seconds: DEFAULT_DELAY_SECONDS,
        }
    }
}

fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{name} must be true or false, got '{v}'")),
    }
}

/// Parses the log variables (later entries win). Errors are InvalidInputException messages.
pub fn parse(vars: &[(String, String)]) -> Result<Volume, String> {
    let mut out = Volume::default();
    if let Some(v) = last_value(vars, LOG_LINES) {
        out.lines = v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= MAX_LINES)
            .ok_or_else(|| format!("{LOG_LINES} must be an integer 0..={MAX_LINES}, got '{v}'"))?;
    }
    if let Some(v) = last_value(vars, LOG_LINE_BYTES) {
        let bytes = v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LINE_BYTES).contains(n))
            .ok_or_else(|| {
                format!("{LOG_LINE_BYTES} must be an integer 1..={MAX_LINE_BYTES}, got '{v}'")
            })?;
        out.line_bytes = Some(bytes);
    }
    if let Some(v) = last_value(vars, LOG_UNICODE) {
        out.unicode = parse_bool(LOG_UNICODE, v)?;
    }
    if let Some(v) = last_value(vars, LOG_DELAY_SECONDS) {
        out.delay_seconds = v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|d| d.is_finite() && *d >= 0.0)
            .ok_or_else(|| format!("{LOG_DELAY_SECONDS} must be a number >= 0, got '{v}'"))?;
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

    #[test]
    fn defaults_and_values() {
        assert_eq!(parse(&[]), Ok(Volume::default()));
        let v = parse(&vars(&[
            (LOG_LINES, "250"),
            (LOG_LINE_BYTES, "262118"),
            (LOG_UNICODE, "yes"),
            (LOG_DELAY_SECONDS, "30"),
        ]));
        assert_eq!(
            v,
            Ok(Volume {
                lines: 250,
                line_bytes: Some(262_118),
                unicode: true,
                delay_seconds: 30.0,
            })
        );
    }

    #[test]
    fn bad_values_are_errors() {
        for (name, value) in [
            (LOG_LINES, "-1"),
            (LOG_LINES, "100001"),
            (LOG_LINE_BYTES, "0"),
            (LOG_LINE_BYTES, "262119"),
            (LOG_UNICODE, "maybe"),
            (LOG_DELAY_SECONDS, "-1"),
            (LOG_DELAY_SECONDS, "soon"),
        ] {
            assert!(parse(&vars(&[(name, value)])).is_err(), "{name}={value}");
        }
    }
}
