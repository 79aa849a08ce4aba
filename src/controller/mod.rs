//! The CodeBuildRun controller.
//!
//! `reconcile` is thin I/O around the pure decisions in `plan` and `conditions`; `claim`
//! builds the one write that takes a run before StartBuild; `recovery` finds a build whose
//! StartBuild answer was lost; `run` wires the kube-runtime Controller, the tracker and
//! graceful shutdown together.

mod claim;
pub mod conditions;
mod context;
mod error;
pub mod plan;
mod reconcile;
mod recovery;
mod run;

pub use context::{Context, Settings};
pub use error::Error;
pub use reconcile::{error_policy, reconcile};
pub use run::{Clients, run, run_with};

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "codebuild-operator";
