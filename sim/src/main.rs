//! `codebuild-sim` binary: serves the simulator on 127.0.0.1.

use anyhow::Context;
use clap::Parser;
use codebuild_sim::{Faults, RateLimits, Server, SimConfig};
use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// A local simulator of the AWS CodeBuild API (AWS JSON 1.1) for tests.
#[derive(Debug, Parser)]
#[command(name = "codebuild-sim", version)]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, env = "CODEBUILD_SIM_PORT", default_value_t = 0)]
    port: u16,
    /// Write the bound port (digits only) to this file once listening.
    #[arg(long, env = "CODEBUILD_SIM_PORT_FILE")]
    port_file: Option<PathBuf>,
    /// Region used in ARNs and log links.
    #[arg(long, env = "CODEBUILD_SIM_REGION", default_value = "us-east-1")]
    region: String,
    /// Account id used in ARNs.
    #[arg(long, env = "CODEBUILD_SIM_ACCOUNT_ID", default_value = "123456789012")]
    account_id: String,
    /// Multiplies every simulated duration (0.1 = ten times faster).
    #[arg(long, env = "CODEBUILD_SIM_TIME_SCALE", default_value_t = 1.0)]
    time_scale: f64,
    /// Duration of each build phase in seconds, before time scaling.
    #[arg(long, env = "CODEBUILD_SIM_PHASE_SECONDS", default_value_t = 1.0)]
    phase_seconds: f64,
    /// Project to create at start (repeatable; comma-separated in the env var).
    #[arg(
        long = "project",
        env = "CODEBUILD_SIM_PROJECTS",
        value_delimiter = ','
    )]
    projects: Vec<String>,
    /// Idempotency token validity in seconds, before time scaling.
    #[arg(
        long,
        env = "CODEBUILD_SIM_TOKEN_WINDOW_SECONDS",
        default_value_t = 300.0
    )]
    token_window_seconds: f64,
    /// Seed for build ids and fault decisions (random when unset).
    #[arg(long, env = "CODEBUILD_SIM_SEED")]
    seed: Option<u64>,
    /// Value of the Build `initiator` field.
    #[arg(
        long,
        env = "CODEBUILD_SIM_INITIATOR",
        default_value = "codebuild-sim-user"
    )]
    initiator: String,
    /// Reject StartBuild with AccountLimitExceededException past this many running builds.
    #[arg(long, env = "CODEBUILD_SIM_MAX_CONCURRENT_BUILDS")]
    max_concurrent_builds: Option<u32>,
    /// Request rate limit of one operation: OPERATION=RATE[/s|/m|/h][,burst=N], e.g.
    /// `StartBuild=10/s,burst=20`; `*` for every operation without its own (repeatable;
    /// `;`-separated in the env var). Calls past it get ThrottlingException.
    #[arg(
        long = "rate-limit",
        env = "CODEBUILD_SIM_RATE_LIMITS",
        value_delimiter = ';'
    )]
    rate_limits: Vec<String>,
    /// Log filter (tracing EnvFilter syntax); logs go to stderr.
    #[arg(long, env = "CODEBUILD_SIM_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if !(args.time_scale.is_finite() && args.time_scale >= 0.0) {
        anyhow::bail!("--time-scale must be a non-negative number");
    }
    if !(args.phase_seconds.is_finite() && args.phase_seconds >= 0.0) {
        anyhow::bail!("--phase-seconds must be a non-negative number");
    }
    let rate_limits = RateLimits::from_specs(&args.rate_limits).map_err(anyhow::Error::msg)?;
    let config = SimConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)),
        region: args.region,
        account_id: args.account_id,
        time_scale: args.time_scale,
        phase_seconds: args.phase_seconds,
        token_window_seconds: args.token_window_seconds,
        projects: args
            .projects
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect(),
        seed: args.seed,
        initiator: args.initiator,
        faults: Faults {
            max_concurrent_builds: args.max_concurrent_builds,
            ..Faults::default()
        },
        rate_limits,
    };
    let server = Server::start(config).await.context("starting the server")?;
    let port = server.addr().port();
    if let Some(path) = &args.port_file {
        // Write then rename, so a reader never sees a partial file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, port.to_string())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("listening on {}", server.endpoint());
    tracing::info!(endpoint = %server.endpoint(), "codebuild-sim listening");
    wait_for_signal().await?;
    tracing::info!("shutting down");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
