//! The command line of `kubectl codebuild`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// See what a CodeBuildRun's build does without leaving Kubernetes: follow its log, wait for
/// it, start, rerun and stop runs. Uses your kubeconfig (KUBECONFIG, --kubeconfig,
/// --context) and your AWS credentials (the SDK's default chain: AWS_PROFILE, environment,
/// SSO, ...) for the build's CloudWatch log, in the Region the run records.
///
/// Exit codes of wait, start --wait and rerun --wait: 0 SUCCEEDED, 1 FAILED, 2 FAULT,
/// 3 STOPPED, 4 TIMED_OUT, 5 the run ended without a build (refused by a policy, invalid),
/// 6 --timeout elapsed, 10 the plugin could not do what it was asked (no such run, no
/// access, bad flags).
#[derive(Debug, Parser)]
#[command(
    name = "kubectl codebuild",
    bin_name = "kubectl codebuild",
    version,
    about,
    long_about
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The flags every command takes, as kubectl's own.
#[derive(Clone, Debug, Args)]
pub struct Global {
    /// The namespace (default: the kubeconfig context's, else "default").
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The AWS Region of the build's log, for a run that records none (default: the AWS
    /// configuration's). A run's status.startAttempt.region always wins.
    #[arg(long, global = true)]
    pub region: Option<String>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the build's log; -f follows it until the build ends and the stream is drained
    /// (through CodeBuild's automatic retries).
    Logs(LogsArgs),
    /// Wait until the run's build ends; print a summary (phases, the failure tail, reports);
    /// exit 0 SUCCEEDED, 1 FAILED, 2 FAULT, 3 STOPPED, 4 TIMED_OUT.
    Wait(WaitArgs),
    /// Create a run of PROJECT (generateName PROJECT-) from flags or a StartBuild JSON file.
    Start(StartArgs),
    /// Create a new run with the same StartBuild members as RUN (a new idempotency token).
    Rerun(RerunArgs),
    /// Stop the run's build (sets spec.operator.stop; before the start, none is started).
    Stop(StopArgs),
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The CodeBuildRun.
    pub run: String,
    /// Follow the log until the build ends and its last lines are read.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Start with the last N lines instead of the whole log.
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,
    /// The build of the automatic-retry chain to read: 0 the first, 1 its first retry...
    /// (default: the latest; with -f, every later one too).
    #[arg(long, value_name = "K")]
    pub retry: Option<usize>,
}

/// `wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The CodeBuildRun.
    pub run: String,
    /// Give up after this long (exit 6), e.g. 30m, 90s. Default: no limit.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
}

/// How `start` and `rerun` go on after creating the run.
#[derive(Debug, Args)]
pub struct Then {
    /// Wait until the build ends; exit with its outcome (see `wait`).
    #[arg(long)]
    pub wait: bool,
    /// Print the build's log while waiting (implies --wait); the summary then goes to stderr.
    #[arg(long)]
    pub logs: bool,
    /// With --wait: give up after this long (exit 6).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
}

/// `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The CodeBuild project (name or ARN); optional with -f when the file names it.
    pub project: Option<String>,
    /// A StartBuild request as JSON (the API's member names; `-` reads stdin). Flags
    /// override its members.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The source version to build (commit, branch, tag, pr/N, S3 object version).
    #[arg(long)]
    pub source_version: Option<String>,
    /// An environment variable for the build, NAME=VALUE (PLAINTEXT); repeatable. Replaces a
    /// variable of the same name from -f.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// The run's name prefix (default: the project's name).
    #[arg(long)]
    pub generate_name: Option<String>,
    #[command(flatten)]
    pub then: Then,
}

/// `rerun`.
#[derive(Debug, Args)]
pub struct RerunArgs {
    /// The CodeBuildRun to repeat.
    pub run: String,
    #[command(flatten)]
    pub then: Then,
}

/// `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The CodeBuildRun.
    pub run: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commands_parse_as_documented() {
        let cli = Cli::try_parse_from([
            "kubectl-codebuild",
            "start",
            "my-app",
            "--source-version",
            "main",
            "--env",
            "A=1",
            "--env",
            "B=2",
            "--wait",
            "--logs",
            "-n",
            "team-a",
        ])
        .unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("team-a"));
        let Command::Start(start) = cli.command else {
            panic!("start")
        };
        assert_eq!(start.project.as_deref(), Some("my-app"));
        assert_eq!(start.env, ["A=1", "B=2"]);
        assert!(start.then.wait && start.then.logs);
        let cli = Cli::try_parse_from([
            "kubectl-codebuild",
            "logs",
            "r",
            "-f",
            "--tail",
            "5",
            "--retry",
            "1",
        ])
        .unwrap();
        let Command::Logs(logs) = cli.command else {
            panic!("logs")
        };
        assert!(logs.follow);
        assert_eq!((logs.tail, logs.retry), (Some(5), Some(1)));
        let cli =
            Cli::try_parse_from(["kubectl-codebuild", "wait", "r", "--timeout", "90s"]).unwrap();
        let Command::Wait(wait) = cli.command else {
            panic!("wait")
        };
        assert_eq!(wait.timeout, Some(Duration::from_secs(90)));
        assert!(Cli::try_parse_from(["kubectl-codebuild", "wait"]).is_err());
    }
}
