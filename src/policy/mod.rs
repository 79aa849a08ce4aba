//! Tenancy: which namespaces may start which CodeBuild projects, with which StartBuild
//! overrides, under whose AWS identity (`CodeBuildRunPolicy`).
//!
//! `evaluate` decides (pure); `rules` holds the value rules of `spec.overrides` (which member
//! each constrains, and which of its values, in Rust and in CEL); `glob` and `selector` are
//! its matching rules; `admission` renders the same rules as a ValidatingAdmissionPolicy
//! (pure); `watch` keeps the policies and namespace labels the controller decides with, the
//! admission policy and each policy's status up to date (I/O).

pub mod admission;
pub mod evaluate;
pub mod glob;
pub mod hygiene;
pub mod rules;
pub mod selector;
mod watch;

pub use evaluate::{Decision, RunRequest, evaluate};
pub use rules::Overrides;
pub use watch::Policies;
