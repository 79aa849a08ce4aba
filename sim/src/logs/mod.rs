//! CloudWatch Logs: what a build writes to its log stream, and `GetLogEvents` /
//! `FilterLogEvents` over those streams (AWS JSON 1.1, `X-Amz-Target: Logs_20140328.<Op>`,
//! served on the CodeBuild port). Like the rest of a build, its log is planned when the build
//! starts and read against the clock: nothing is written in the background.

pub mod api;
pub mod filter;
pub mod location;
pub mod paging;
pub mod script;
pub mod text;
pub mod volume;

/// Bytes CloudWatch Logs counts per event on top of its message (UTF-8).
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// The largest event CloudWatch Logs accepts, overhead included (256 KiB).
pub const MAX_EVENT_BYTES: usize = 262_144;
/// The largest response GetLogEvents / FilterLogEvents give (1 MB of events).
pub const MAX_RESPONSE_BYTES: usize = 1_048_576;
/// The most events one response holds, and the default and maximum `limit`.
pub const MAX_EVENTS: usize = 10_000;

/// The size CloudWatch Logs counts for an event with this message.
pub fn event_size(message: &str) -> usize {
    message.len() + EVENT_OVERHEAD_BYTES
}

/// Epoch seconds to epoch milliseconds, rounded as the service rounds phase times.
pub fn millis(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}
