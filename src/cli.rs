//! Command line: every flag is also an environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{ArgAction, Parser, Subcommand, ValueEnum};

use crate::codebuild::AwsSettings;
use crate::controller::OperatorSettings;
use crate::controller::plan::EventSettings;
use crate::leader::{self, LeaseSettings};
use crate::metrics::PerRunLabels;
use crate::output::TailLimits;

/// Run AWS CodeBuild builds as Kubernetes CodeBuildRun objects.
#[derive(Debug, Parser)]
#[command(name = "codebuild-operator", version, about, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
// Parsed once per process: boxing RunArgs would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller.
    Run(RunArgs),
    /// Print a CustomResourceDefinition as YAML: CodeBuildRun (the default),
    /// CodeBuildBatchRun (`batch`) or CodeBuildRunPolicy (`policy`).
    Crd {
        /// Which CRD.
        #[arg(value_enum, default_value = "run")]
        kind: crate::crd::Kind,
    },
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A per-run label of the build and run metrics (`--metrics-run-labels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunLabel {
    /// The run's namespace, as the label `run_namespace`.
    Namespace,
    /// The run's CodeBuild project (`spec.projectName`), as the label `project`.
    Project,
}

/// Flags of `codebuild-operator run`. A flag given twice takes its last value.
#[derive(Clone, Debug, Parser)]
#[command(args_override_self = true)]
pub struct RunArgs {
    /// Namespaces to watch, comma-separated. Empty watches every namespace.
    #[arg(
        long,
        env = "CODEBUILD_OPERATOR_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub namespaces: Vec<String>,

    /// How often the tracker polls CodeBuild (one BatchGetBuilds round per region,
    /// 100 builds per call), e.g. 5s, 1500ms, 1m.
    #[arg(long, env = "CODEBUILD_OPERATOR_POLL_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,

    /// How many CodeBuildRuns are reconciled at the same time. Status refreshes of builds
    /// that changed take at most half of them, so starts and deletes never wait behind them.
    #[arg(
        long,
        env = "CODEBUILD_OPERATOR_MAX_CONCURRENT_RECONCILES",
        default_value_t = 16
    )]
    pub max_concurrent_reconciles: u16,

    /// Log format.
    #[arg(long, env = "CODEBUILD_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The AWS Region for runs that do not name one in spec.operator.region. Defaults to
    /// the AWS configuration (AWS_REGION, profile, instance metadata).
    #[arg(long, env = "CODEBUILD_OPERATOR_REGION")]
    pub region: Option<String>,

    /// A CodeBuild endpoint URL replacing the service's (local emulators). The standard
    /// AWS_ENDPOINT_URL_CODEBUILD is honoured too.
    #[arg(long, env = "CODEBUILD_OPERATOR_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,

    /// An STS endpoint URL for assuming the tenant roles of CodeBuildRunPolicies (emulators,
    /// VPC endpoints). The standard AWS_ENDPOINT_URL_STS is honoured too.
    #[arg(long, env = "CODEBUILD_OPERATOR_STS_ENDPOINT_URL")]
    pub sts_endpoint_url: Option<String>,

    /// A CloudWatch Logs endpoint URL for the failure tail (emulators, VPC endpoints). The
    /// standard AWS_ENDPOINT_URL_CLOUDWATCH_LOGS is honoured too.
    #[arg(long, env = "CODEBUILD_OPERATOR_LOGS_ENDPOINT_URL")]
    pub logs_endpoint_url: Option<String>,

    /// How many lines of a failed build's log (FAILED, FAULT, TIMED_OUT) go into
    /// status.logTail, read once with one GetLogEvents call when the build ends. 0 turns the
    /// failure tail off (no call). At most 1000.
    #[arg(
        long,
        env = "CODEBUILD_OPERATOR_LOG_TAIL_LINES",
        default_value_t = TailLimits::DEFAULT.lines,
        value_parser = RangedU64ValueParser::<usize>::new().range(0..=1000)
    )]
    pub log_tail_lines: usize,

    /// At most this many bytes of those lines (the newest are kept; a longer line is cut).
    /// 0 turns the failure tail off. At most 65536 (the tail is part of the object).
    #[arg(
        long,
        env = "CODEBUILD_OPERATOR_LOG_TAIL_BYTES",
        default_value_t = TailLimits::DEFAULT.bytes,
        value_parser = RangedU64ValueParser::<usize>::new().range(0..=65536)
    )]
    pub log_tail_bytes: usize,

    /// Read the test and coverage reports of finished builds into status.reports
    /// (BatchGetReports, batched across builds, 100 reports a call).
    #[arg(
        long,
        env = "CODEBUILD_OPERATOR_READ_REPORTS",
        default_value_t = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub read_reports: bool,

    /// How long an idempotency token stays valid in CodeBuild (5 minutes in AWS). Past it,
    /// a run whose StartBuild outcome was lost is searched for before anything is started
    /// again. Only emulators with scaled time need another value.
    #[arg(long, env = "CODEBUILD_OPERATOR_TOKEN_WINDOW", default_value = "5m", value_parser = humantime::parse_duration, hide = true)]
    pub token_window: Duration,

    /// How long a start may keep failing for a reason that may heal on its own (the project
    /// does not exist yet, access is denied, the account's concurrent build limit) before
    /// the run shows as Stalled, so GitOps tools and `helm --wait` stop waiting; it keeps
    /// retrying slowly and goes back to in progress when the cause is gone. E.g. 3m, 90s.
    #[arg(long, env = "CODEBUILD_OPERATOR_STALL_AFTER", default_value = "3m", value_parser = humantime::parse_duration)]
    pub stall_after: Duration,

    /// How long one CodeBuild call may take, the SDK's retries included. A StartBuild whose
    /// answer was lost is repeated with its token only while the repeat, taking this long
    /// at most, lands inside the token window less --clock-skew; otherwise the operator
    /// waits until no call can still be in flight and searches first. Only emulators with
    /// scaled time need another value.
    #[arg(long, env = "CODEBUILD_OPERATOR_AWS_OPERATION_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration, hide = true)]
    pub aws_operation_timeout: Duration,

    /// How far the clocks of the operator's replicas and of CodeBuild may disagree (a margin
    /// in the decisions about a lost StartBuild). Only emulators with scaled time need
    /// another value.
    #[arg(long, env = "CODEBUILD_OPERATOR_CLOCK_SKEW", default_value = "15s", value_parser = humantime::parse_duration, hide = true)]
    pub clock_skew: Duration,

    /// Publish a PhaseChanged Event for every phase of every build. Off: the phases are in
    /// status, and Events are only published for the start, the end, and every failure or
    /// warning (at most 3 for a build that succeeds), which halves the apiserver's writes.
    #[arg(
        long,
        env = "CODEBUILD_OPERATOR_PHASE_EVENTS",
        default_value_t = false,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub phase_events: bool,

    /// Where to serve /metrics (Prometheus), /healthz (liveness) and /readyz (readiness).
    #[arg(
        long,
        env = "CODEBUILD_OPERATOR_METRICS_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_address: SocketAddr,

    /// Per-run labels on the build and run metrics, comma-separated: `namespace` (as
    /// `run_namespace`) and `project`. Each adds a series per namespace or project to those
    /// metrics, a number the operator cannot bound: a cardinality choice. Empty (the
    /// default): labels from fixed sets only.
    #[arg(
        long,
        env = "CODEBUILD_OPERATOR_METRICS_RUN_LABELS",
        value_enum,
        value_delimiter = ','
    )]
    pub metrics_run_labels: Vec<RunLabel>,

    /// Elect a leader through a coordination.k8s.io Lease: every replica keeps its watch
    /// cache warm, only the leader reconciles and polls CodeBuild. Needed with more than one
    /// replica.
    #[arg(
        long,
        env = "CODEBUILD_OPERATOR_LEADER_ELECTION",
        default_value_t = false,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub leader_election: bool,

    /// Enforce CodeBuildRunPolicies: a run starts only when a policy lets its namespace start
    /// its project, in its Region, with the overrides it sets (and under the policy's IAM
    /// role, if it names one). Off: every namespace may start every project the operator's
    /// AWS identity reaches (a warning says so at startup).
    #[arg(
        long,
        env = "CODEBUILD_OPERATOR_ENFORCE_POLICIES",
        default_value_t = false,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub enforce_policies: bool,

    /// With --enforce-policies: the name of a ValidatingAdmissionPolicy the operator keeps
    /// in step with the CodeBuildRunPolicies, so the apiserver refuses a run no policy allows
    /// at `kubectl apply`, with the same message (the Helm chart binds it). Empty: none.
    #[arg(long, env = "CODEBUILD_OPERATOR_ADMISSION_POLICY", default_value = "")]
    pub admission_policy: String,

    /// The name of the leader election Lease.
    #[arg(
        long,
        env = "CODEBUILD_OPERATOR_LEASE_NAME",
        default_value = "codebuild-operator-leader"
    )]
    pub lease_name: String,

    /// The namespace of the leader election Lease. Defaults to POD_NAMESPACE, else
    /// "default".
    #[arg(long, env = "CODEBUILD_OPERATOR_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
}

impl RunArgs {
    /// The operator's settings from these flags.
    pub fn settings(&self) -> OperatorSettings {
        OperatorSettings {
            region: self.region.clone(),
            token_window: self.token_window,
            stall_after: self.stall_after,
            aws: AwsSettings {
                endpoint_url: self.endpoint_url.clone(),
                sts_endpoint_url: self.sts_endpoint_url.clone(),
                operation_timeout: Some(self.aws_operation_timeout),
                logs_endpoint_url: self.logs_endpoint_url.clone(),
            },
            clock_skew: self.clock_skew,
            events: EventSettings {
                phases: self.phase_events,
            },
            namespaces: self.namespaces.clone(),
            poll_interval: self.poll_interval,
            max_concurrent_reconciles: self.max_concurrent_reconciles,
            metrics_address: self.metrics_address,
            metrics_run_labels: PerRunLabels {
                namespace: self.metrics_run_labels.contains(&RunLabel::Namespace),
                project: self.metrics_run_labels.contains(&RunLabel::Project),
            },
            leader_election: self.leader_election.then(|| LeaseSettings {
                name: self.lease_name.clone(),
                namespace: self.lease_namespace(),
                identity: leader::default_identity(),
            }),
            enforce_policies: self.enforce_policies,
            admission_policy: (self.enforce_policies && !self.admission_policy.is_empty())
                .then(|| self.admission_policy.clone()),
            log_tail: TailLimits {
                lines: self.log_tail_lines,
                bytes: self.log_tail_bytes,
            },
            read_reports: self.read_reports,
        }
    }

    /// The Lease's namespace: the flag, else the pod's namespace, else "default".
    pub fn lease_namespace(&self) -> String {
        self.lease_namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|ns| !ns.is_empty())
            })
            .unwrap_or_else(|| "default".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        let mut argv = vec!["codebuild-operator", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("valid flags").command {
            Command::Run(args) => args,
            Command::Crd { .. } => unreachable!("parsed `run`"),
        }
    }

    #[test]
    fn metrics_and_leader_election_flags() {
        let defaults = run_args(&[]);
        assert_eq!(defaults.metrics_address.to_string(), "0.0.0.0:8080");
        assert!(!defaults.leader_election);
        assert_eq!(defaults.lease_name, "codebuild-operator-leader");

        assert!(run_args(&["--leader-election"]).leader_election);
        assert!(run_args(&["--leader-election=true"]).leader_election);
        assert!(!run_args(&["--leader-election=false"]).leader_election);
        let args = run_args(&[
            "--metrics-address",
            "127.0.0.1:9090",
            "--lease-name",
            "l",
            "--lease-namespace",
            "ops",
        ]);
        assert_eq!(args.metrics_address.to_string(), "127.0.0.1:9090");
        assert_eq!(args.lease_name, "l");
        assert_eq!(args.lease_namespace(), "ops");
        assert!(Cli::try_parse_from(["x", "run", "--metrics-address", "nowhere"]).is_err());
    }

    #[test]
    fn per_run_metric_labels_are_opt_in() {
        assert_eq!(
            run_args(&[]).settings().metrics_run_labels,
            PerRunLabels::default()
        );
        let both = run_args(&["--metrics-run-labels", "namespace,project"]).settings();
        assert_eq!(
            both.metrics_run_labels,
            PerRunLabels {
                namespace: true,
                project: true
            }
        );
        let project = run_args(&["--metrics-run-labels=project"]).settings();
        assert!(project.metrics_run_labels.project && !project.metrics_run_labels.namespace);
        assert!(Cli::try_parse_from(["x", "run", "--metrics-run-labels", "name"]).is_err());
    }

    #[test]
    fn flags_become_the_operators_settings() {
        let settings = run_args(&[]).settings();
        assert!(settings.leader_election.is_none());
        assert_eq!(settings.admission_policy, None);
        let settings = run_args(&[
            "--leader-election",
            "--lease-name",
            "l",
            "--lease-namespace",
            "ops",
            "--admission-policy",
            "vap",
        ])
        .settings();
        let lease = settings.leader_election.unwrap();
        assert_eq!(
            (lease.name.as_str(), lease.namespace.as_str()),
            ("l", "ops")
        );
        assert_eq!(
            settings.admission_policy, None,
            "an admission policy only with --enforce-policies"
        );
        let settings = run_args(&["--enforce-policies", "--admission-policy", "vap"]).settings();
        assert_eq!(settings.admission_policy.as_deref(), Some("vap"));
    }

    #[test]
    fn output_flags() {
        let defaults = run_args(&[]).settings();
        assert_eq!(defaults.log_tail, TailLimits::DEFAULT);
        assert!(defaults.read_reports);
        assert_eq!(defaults.aws.logs_endpoint_url, None);
        let settings = run_args(&[
            "--log-tail-lines",
            "0",
            "--log-tail-bytes",
            "100",
            "--read-reports=false",
            "--logs-endpoint-url",
            "http://127.0.0.1:1",
        ])
        .settings();
        assert!(settings.log_tail.is_off());
        assert_eq!(settings.log_tail.bytes, 100);
        assert!(!settings.read_reports);
        assert_eq!(
            settings.aws.logs_endpoint_url.as_deref(),
            Some("http://127.0.0.1:1")
        );
    }
}
