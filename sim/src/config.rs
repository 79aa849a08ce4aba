//! Simulator configuration.

use crate::faults::Faults;
use crate::ratelimit::RateLimits;
use std::net::{Ipv4Addr, SocketAddr};

/// Configuration for [`crate::Server::start`] / [`crate::SimState::new`].
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address to listen on; default 127.0.0.1:0 (a free port).
    pub bind: SocketAddr,
    /// Region used in ARNs and log links; default us-east-1.
    pub region: String,
    /// Account id used in ARNs; default 123456789012.
    pub account_id: String,
    /// Multiplies every simulated duration (phases, token window); 0.1 runs 10x faster.
    pub time_scale: f64,
    /// Duration of each phase before time scaling; default 1.0.
    pub phase_seconds: f64,
    /// Idempotency token validity before time scaling; default 300 (5 minutes).
    pub token_window_seconds: f64,
    /// Projects created at start with default settings.
    pub projects: Vec<String>,
    /// Seed for ids and fault decisions; None picks a random seed.
    pub seed: Option<u64>,
    /// The Build `initiator` value.
    pub initiator: String,
    /// Faults active from the start.
    pub faults: Faults,
    /// Per-operation request rate limits active from the start (and after a reset).
    pub rate_limits: RateLimits,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            time_scale: 1.0,
            phase_seconds: 1.0,
            token_window_seconds: 300.0,
            projects: Vec::new(),
            seed: None,
            initiator: "codebuild-sim-user".into(),
            faults: Faults::default(),
            rate_limits: RateLimits::default(),
        }
    }
}
