//! codebuild-operator: run AWS CodeBuild builds as Kubernetes `CodeBuildRun` objects.
//!
//! The library holds everything; `main.rs` (the operator) and `bin/kubectl-codebuild.rs`
//! (the kubectl plugin) only wire it. Pure logic (`api`, `convert`,
//! `controller::plan`, `controller::conditions`) is kept apart from I/O (`codebuild`,
//! `controller::reconcile`, `tracker`).

pub mod api;
pub mod cli;
pub mod codebuild;
pub mod controller;
pub mod convert;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod output;
pub mod plugin;
pub mod policy;
pub mod server;
pub mod telemetry;
pub mod tracker;
