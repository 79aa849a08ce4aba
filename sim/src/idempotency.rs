//! StartBuild idempotency tokens: pure decision logic.

use serde_json::Value;

/// A token seen before.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenEntry {
    pub build_id: String,
    /// The full StartBuild request the token was first used with.
    pub request: Value,
    /// When the token was first used (sim clock, epoch seconds).
    pub first_used: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Start a new build (no token, unknown token, or the window has passed).
    Start,
    /// Return this existing build.
    Replay(String),
    /// Same token, different parameters, inside the window.
    Mismatch,
}

/// Decides what a StartBuild with `request` does given a previous use of its token.
/// `window` is in real (time-scaled) seconds.
pub fn decide(previous: Option<&TokenEntry>, request: &Value, now: f64, window: f64) -> Decision {
    match previous {
        Some(prev) if now - prev.first_used < window => {
            if prev.request == *request {
                Decision::Replay(prev.build_id.clone())
            } else {
                Decision::Mismatch
            }
        }
        _ => Decision::Start,
    }
}

/// The message for a mismatch (the service documents "a parameter mismatch error" without
/// the exact text).
pub fn mismatch_message(token: &str) -> String {
    format!(
        "Idempotency token parameter mismatch: token {token} was already used with different request parameters"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> TokenEntry {
        TokenEntry {
            build_id: "p:1".into(),
            request: json!({"projectName": "p", "idempotencyToken": "t"}),
            first_used: 100.0,
        }
    }

    #[test]
    fn replay_inside_window() {
        let req = json!({"idempotencyToken": "t", "projectName": "p"});
        assert_eq!(
            decide(Some(&entry()), &req, 399.0, 300.0),
            Decision::Replay("p:1".into())
        );
    }

    #[test]
    fn mismatch_inside_window() {
        let req = json!({"projectName": "p", "idempotencyToken": "t", "sourceVersion": "x"});
        assert_eq!(
            decide(Some(&entry()), &req, 200.0, 300.0),
            Decision::Mismatch
        );
    }

    #[test]
    fn new_build_after_window_or_without_token() {
        let req = json!({"projectName": "p", "idempotencyToken": "t"});
        assert_eq!(decide(Some(&entry()), &req, 400.0, 300.0), Decision::Start);
        assert_eq!(decide(None, &req, 400.0, 300.0), Decision::Start);
    }
}
