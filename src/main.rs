//! The `codebuild-operator` binary: wiring only.

use clap::Parser;
use codebuild_operator::cli::{Cli, Command};
use codebuild_operator::{controller, crd, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // kube (rustls) and the AWS SDK must agree on one process-wide crypto provider; install
    // aws-lc-rs before either builds a TLS config. Err means one is installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { kind } => {
            print!("{}", crd::kind_yaml(kind)?);
            Ok(())
        }
        Command::Run(args) => {
            telemetry::init(args.log_format);
            controller::run(args.settings()).await
        }
    }
}
