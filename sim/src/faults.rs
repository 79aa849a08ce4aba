//! Fault injection settings and the pure per-call decision.

use crate::protocol::Service;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Faults to inject. Fractions are probabilities in 0..=1 per call. Settable through
/// `POST /_sim/faults` (this struct as JSON, camelCase) or [`crate::SimState::set_faults`];
/// setting replaces all previous settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Answer 400 ThrottlingException "Rate exceeded".
    pub throttle_fraction: f64,
    /// Delay every affected call by this many milliseconds before processing it.
    pub latency_ms: u64,
    /// Delay the answer of every affected call by this many milliseconds AFTER it was
    /// processed: the call takes effect (a build starts) while the client still waits, the
    /// window in which a crashing client loses the answer.
    pub response_latency_ms: u64,
    /// Answer with a 5xx error.
    pub server_error_fraction: f64,
    /// 500 (InternalFailure, the default) or 503 (ServiceUnavailable).
    pub server_error_status: Option<u16>,
    /// Close the connection without writing any response.
    pub drop_fraction: f64,
    /// StartBuild fails with AccountLimitExceededException when this many builds are in
    /// progress (the builds of batches included); the builds of a batch wait in QUEUED for
    /// a slot instead. Applies whatever `operation` says.
    pub max_concurrent_builds: Option<u32>,
    /// Restrict throttle/latency/5xx/drop to this operation (e.g. "BatchGetBuilds").
    pub operation: Option<String>,
    /// Restrict throttle/latency/5xx/drop to one service's endpoint: `codebuild` or `logs`
    /// (both share the port). Combines with `operation`.
    pub service: Option<Service>,
    /// Reseed the simulator's random generator when these faults are set.
    pub seed: Option<u64>,
}

/// What to do with one API call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Proceed,
    Drop,
    ServerError(u16),
    Throttle,
}

fn hit(fraction: f64, rng: &mut impl Rng) -> bool {
    if fraction >= 1.0 {
        true
    } else if fraction <= 0.0 || fraction.is_nan() {
        false
    } else {
        rng.random::<f64>() < fraction
    }
}

impl Faults {
    /// Whether the per-call faults (latency, drop, 5xx, throttle) apply to this call.
    pub fn applies_to(&self, service: Service, operation: &str) -> bool {
        self.operation.as_deref().is_none_or(|op| op == operation)
            && self.service.is_none_or(|s| s == service)
    }
}

/// Decides the latency and action for a call to `operation` of `service`. Drops are checked
/// first, then server errors, then throttling.
pub fn decide(
    faults: &Faults,
    service: Service,
    operation: &str,
    rng: &mut impl Rng,
) -> (Duration, Action) {
    if !faults.applies_to(service, operation) {
        return (Duration::ZERO, Action::Proceed);
    }
    let latency = Duration::from_millis(faults.latency_ms);
    let action = if hit(faults.drop_fraction, rng) {
        Action::Drop
    } else if hit(faults.server_error_fraction, rng) {
        Action::ServerError(match faults.server_error_status {
            Some(503) => 503,
            _ => 500,
        })
    } else if hit(faults.throttle_fraction, rng) {
        Action::Throttle
    } else {
        Action::Proceed
    };
    (latency, action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn none_by_default() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            decide(
                &Faults::default(),
                Service::CodeBuild,
                "StartBuild",
                &mut rng
            ),
            (Duration::ZERO, Action::Proceed)
        );
    }

    #[test]
    fn full_throttle_and_scoping() {
        let mut rng = StdRng::seed_from_u64(1);
        let f = Faults {
            throttle_fraction: 1.0,
            latency_ms: 5,
            operation: Some("BatchGetBuilds".into()),
            ..Faults::default()
        };
        assert_eq!(
            decide(&f, Service::CodeBuild, "BatchGetBuilds", &mut rng),
            (Duration::from_millis(5), Action::Throttle)
        );
        assert_eq!(
            decide(&f, Service::CodeBuild, "StartBuild", &mut rng).1,
            Action::Proceed
        );
    }

    #[test]
    fn scoped_to_one_service() {
        let mut rng = StdRng::seed_from_u64(1);
        let f = Faults {
            server_error_fraction: 1.0,
            service: Some(Service::Logs),
            ..Faults::default()
        };
        assert_eq!(
            decide(&f, Service::Logs, "GetLogEvents", &mut rng).1,
            Action::ServerError(500)
        );
        assert_eq!(
            decide(&f, Service::CodeBuild, "BatchGetBuilds", &mut rng).1,
            Action::Proceed
        );
        let json: Faults = serde_json::from_str(r#"{"service": "logs"}"#).unwrap_or_default();
        assert_eq!(json.service, Some(Service::Logs));
        assert!(serde_json::from_str::<Faults>(r#"{"service": "s3"}"#).is_err());
    }

    #[test]
    fn fraction_is_roughly_respected_and_deterministic() {
        let f = Faults {
            server_error_fraction: 0.3,
            server_error_status: Some(503),
            ..Faults::default()
        };
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..1000)
                .map(|_| decide(&f, Service::CodeBuild, "X", &mut rng).1)
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        let errors = a.iter().filter(|x| **x == Action::ServerError(503)).count();
        assert!((200..400).contains(&errors), "{errors}");
    }

    #[test]
    fn drop_wins() {
        let mut rng = StdRng::seed_from_u64(1);
        let f = Faults {
            drop_fraction: 1.0,
            throttle_fraction: 1.0,
            ..Faults::default()
        };
        assert_eq!(decide(&f, Service::Logs, "X", &mut rng).1, Action::Drop);
    }
}
