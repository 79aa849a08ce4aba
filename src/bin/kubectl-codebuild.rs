//! The `kubectl-codebuild` binary: `kubectl codebuild ...` once it is on the PATH (see
//! `plugins/codebuild.yaml` for krew). Wiring only: everything is in `codebuild_operator::plugin`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    codebuild_operator::plugin::main().await
}
