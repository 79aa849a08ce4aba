//! `codebuild-sim`: a local simulator of AWS CodeBuild speaking the AWS JSON 1.1 protocol.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let sim = codebuild_sim::Server::start(codebuild_sim::SimConfig {
//!     time_scale: 0.01,
//!     ..Default::default()
//! })
//! .await?;
//! sim.state().create_project("demo")?;
//! println!("{}", sim.endpoint());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//! The same port serves CloudWatch Logs (`X-Amz-Target: Logs_20140328.<Op>`): the log stream
//! each build writes as its phases run. Batch builds (StartBuildBatch and the operations on
//! batches) run real simulated builds for the entries of their batchspec. See sim/README.md
//! for the reserved build variables, batch builds, rate limits and the admin API.

pub mod admin;
pub mod batch;
pub mod build_output;
mod build_record;
pub mod buildspec;
pub mod config;
pub mod faults;
pub mod idempotency;
pub mod lifecycle;
pub mod logs;
pub mod outcome;
pub mod overrides;
pub mod pagination;
pub mod protocol;
pub mod ratelimit;
pub mod reports;
pub mod server;
pub mod store;

pub use batch::ops::BatchStartRecord;
pub use build_output::{LogEvent, LogStreamInfo};
pub use config::SimConfig;
pub use faults::Faults;
pub use protocol::{ApiError, ErrorKind, Service};
pub use ratelimit::{RateLimit, RateLimits};
pub use server::Server;
pub use store::{Counters, SimState, StartRecord};
