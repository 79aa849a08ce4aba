//! `ttlSecondsAfterFinished` (pure), for whatever a run started: a build or a batch.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::follow::Next;
use crate::api::{RunOptions, Started};

/// How long until a finished run may be deleted under `ttlSecondsAfterFinished`; zero when
/// due, None when no TTL applies (no TTL, not final yet, or no end time yet).
pub fn ttl_left<T: Started>(started: &T, options: &RunOptions, now: Timestamp) -> Option<Duration> {
    let ttl = options.ttl_seconds_after_finished?;
    if !started.done() {
        return None;
    }
    let end = started.ended_at()?.0;
    let due = end.as_second().saturating_add(ttl.max(0));
    let left = due.saturating_sub(now.as_second());
    Some(Duration::from_secs(left.max(0) as u64))
}

/// What follows a status write of `started`: the TTL once it is final.
pub fn after<T: Started>(started: &T, options: &RunOptions, now: Timestamp) -> Next {
    match ttl_left(started, options, now) {
        Some(left) if left.is_zero() => Next::Delete,
        Some(left) => Next::Requeue(left + Duration::from_secs(1)),
        None => Next::AwaitChange,
    }
}
