//! The CodeBuildRun controller.
//!
//! - `plan`: what to do next with a run (pure: start, follow, cleanup, progress);
//! - `conditions`: the four conditions of a run (pure);
//! - `claim`: the patches that claim and release a run (pure);
//! - `reconcile`: carries the plan out (writes, Events, CodeBuild calls), with one road
//!   for every failure;
//! - `recovery`: finds the build of a lost StartBuild answer;
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
pub use reconcile::{error_policy, reconcile};
pub use run::{Clients, Wiring, run, run_with};
pub use settings::{DEFAULT_STALL_AFTER, OperatorSettings, Settings};
