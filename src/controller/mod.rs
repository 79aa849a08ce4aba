//! The CodeBuildRun and CodeBuildBatchRun controllers: one lifecycle, two kinds.
//!
//! - `plan`: what to do next with a run (pure: start, follow, cleanup, progress; a batch
//!   run's follow and retries);
//! - `conditions`: the four conditions of a run (pure);
//! - `claim`: the patches that claim and release a run (pure);
//! - `reconcile`: carries the plan out (writes, Events, CodeBuild calls), with one road
//!   for every failure;
//! - `recovery`: finds the build (batch) of a lost StartBuild (StartBuildBatch) answer;
//! - `run`: wiring (startup, leader election, one Controller per namespace, the tracker).

mod claim;
pub mod conditions;
mod context;
mod error;
pub mod plan;
mod reconcile;
mod recovery;
mod released;
mod run;
mod settings;

pub use context::Context;
pub use error::Error;
pub use reconcile::{error_policy, reconcile, reconcile_batch};
pub use run::{Clients, Wiring, run, run_with};
pub use settings::{DEFAULT_STALL_AFTER, OperatorSettings, Settings};
