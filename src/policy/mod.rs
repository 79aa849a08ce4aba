//! Tenancy: which namespaces may start which CodeBuild projects, with which StartBuild
//! overrides, under whose AWS identity (`CodeBuildRunPolicy`).
//!
//! `evaluate` decides (pure); `glob` and `selector` are its matching rules; `admission`
//! renders the same rules as a ValidatingAdmissionPolicy (pure); `watch` keeps the
//! policies and namespace labels the controller decides with, and the admission policy, up
//! to date (I/O).

pub mod admission;
pub mod evaluate;
pub mod glob;
pub mod hygiene;
pub mod selector;
mod watch;

pub use evaluate::{Decision, RunRequest, evaluate};
pub use watch::Policies;
