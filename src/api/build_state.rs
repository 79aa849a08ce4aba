//! Where a mirrored build stands: finished, final, or followed by an automatic retry. Pure
//! predicates on [`BuildInfo`], shared by the controller, the tracker and the metrics.

use super::BuildInfo;

/// Build statuses after which CodeBuild does no more work on a build, in the API's order.
pub const FINAL_BUILD_STATUSES: &[&str] = &["SUCCEEDED", "FAILED", "FAULT", "TIMED_OUT", "STOPPED"];

/// The build status of a build that succeeded.
pub const SUCCEEDED: &str = "SUCCEEDED";
/// The build status of a stopped build.
pub const STOPPED: &str = "STOPPED";

impl BuildInfo {
    /// Whether CodeBuild has finished with this build (`buildComplete`, or a final status:
    /// moto never sets `buildComplete`).
    pub fn is_finished(&self) -> bool {
        self.build_complete == Some(true)
            || self
                .build_status
                .as_deref()
                .is_some_and(|s| FINAL_BUILD_STATUSES.contains(&s))
    }

    /// Whether a finished build will be followed by an automatic retry CodeBuild has not
    /// named yet (retries left, no `nextAutoRetry`): keep watching it.
    pub fn awaiting_auto_retry(&self) -> bool {
        let failed = self
            .build_status
            .as_deref()
            .is_some_and(|s| s != SUCCEEDED && s != STOPPED);
        let retries_left = self.auto_retry_config.as_ref().is_some_and(|c| {
            c.next_auto_retry.is_none()
                && c.auto_retry_number.unwrap_or(0) < c.auto_retry_limit.unwrap_or(0)
        });
        self.is_finished() && failed && retries_left
    }

    /// The id of the build CodeBuild started to retry this one, once this one finished.
    pub fn next_auto_retry(&self) -> Option<&str> {
        if !self.is_finished() {
            return None;
        }
        self.auto_retry_config.as_ref()?.next_auto_retry.as_deref()
    }

    /// Whether the run is done with this build: it finished and no retry is coming.
    pub fn is_final(&self) -> bool {
        self.is_finished() && self.next_auto_retry().is_none() && !self.awaiting_auto_retry()
    }

    /// Whether the build ended STOPPED.
    pub fn is_stopped(&self) -> bool {
        self.build_status.as_deref() == Some(STOPPED)
    }

    /// Whether the build is final and succeeded.
    pub fn succeeded(&self) -> bool {
        self.is_final() && self.build_status.as_deref() == Some(SUCCEEDED)
    }
}

/// Build `p:1` with `status` in `phase`, as the tests of the crate use it.
#[cfg(test)]
pub(crate) fn sample_build(status: &str, phase: &str) -> BuildInfo {
    BuildInfo {
        build_id: Some("p:1".into()),
        build_status: Some(status.into()),
        current_phase: Some(phase.into()),
        build_complete: Some(status != "IN_PROGRESS"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AutoRetryConfig;

    fn build(status: &str) -> BuildInfo {
        sample_build(status, "COMPLETED")
    }

    #[test]
    fn terminal_status_counts_as_finished_without_build_complete() {
        let mut b = build("SUCCEEDED");
        b.build_complete = Some(false);
        assert!(b.is_final());
        assert!(b.succeeded());
        assert!(!build("IN_PROGRESS").is_finished());
    }

    #[test]
    fn auto_retry_chain_is_followed() {
        let mut b = build("FAILED");
        b.auto_retry_config = Some(AutoRetryConfig {
            auto_retry_limit: Some(2),
            auto_retry_number: Some(0),
            next_auto_retry: Some("p:2".into()),
            previous_auto_retry: None,
        });
        assert_eq!(b.next_auto_retry(), Some("p:2"));
        assert!(!b.is_final());
        b.auto_retry_config.as_mut().unwrap().next_auto_retry = None;
        assert!(b.awaiting_auto_retry());
        assert!(!b.is_final());
        b.auto_retry_config.as_mut().unwrap().auto_retry_number = Some(2);
        assert!(b.is_final());
        assert!(!b.succeeded());
    }

    #[test]
    fn stopped_and_succeeded_builds_are_not_retried() {
        for status in ["SUCCEEDED", "STOPPED"] {
            let mut b = build(status);
            b.auto_retry_config = Some(AutoRetryConfig {
                auto_retry_limit: Some(2),
                auto_retry_number: Some(0),
                ..Default::default()
            });
            assert!(b.is_final(), "{status}");
        }
    }
}
