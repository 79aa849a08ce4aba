//! `kubectl codebuild`: a kubectl plugin for CodeBuildRuns (the `kubectl-codebuild` binary).
//!
//! - [`cli`]: the commands and flags;
//! - [`session`]: the user's kubeconfig and AWS credentials, errors that name what is missing;
//! - [`follow`]: following a run and its log (through the automatic-retry chain);
//! - [`pace`]: how often the log is read (pure);
//! - [`outcome`]: exit codes, the retry chain, where a log is, the summary (pure);
//! - [`request`]: the runs `start` and `rerun` create (pure);
//! - [`screen`]: log lines to stdout, progress to stderr (a line on a terminal, plain lines
//!   when piped).

pub mod cli;
pub mod follow;
pub mod outcome;
pub mod pace;
pub mod request;
pub mod screen;
pub mod session;

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;

use crate::api::CodeBuildRun;
use crate::output::reports_to_read;
use cli::{Cli, Command, StartArgs, Then};
use follow::{Ended, Watch};
use outcome::{Exit, outcome, summary};
use screen::Screen;
use session::Session;

/// Why the plugin could not do what it was asked.
#[derive(Debug)]
pub struct PluginError(String);

impl PluginError {
    /// The command line asks for something that cannot be done.
    pub fn usage(message: impl Into<String>) -> Self {
        PluginError(message.into())
    }

    /// Something the plugin needs is missing or refused.
    pub fn failed(message: impl Into<String>) -> Self {
        PluginError(message.into())
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PluginError {}

/// The plugin: parses the command line, does it, and says how it went as the exit code.
pub async fn main() -> ExitCode {
    // kube (rustls) and the AWS SDK must agree on one process-wide crypto provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap exits 2 on a usage error, which is FAULT here.
            return if e.use_stderr() {
                Exit::Error.code()
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let mut screen = Screen::new();
    let result = run(cli, &mut screen).await;
    screen.done();
    match result {
        Ok(exit) => exit.code(),
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Error.code()
        }
    }
}

async fn run(cli: Cli, screen: &mut Screen) -> Result<Exit, PluginError> {
    let session = Session::connect(&cli.global).await?;
    match cli.command {
        Command::Logs(args) => {
            let watch = Watch {
                logs: true,
                follow: args.follow,
                tail: args.tail,
                retry: args.retry,
                deadline: None,
            };
            follow::watch(&session, &args.run, &watch, screen).await?;
            Ok(Exit::Succeeded)
        }
        Command::Wait(args) => {
            let then = Then {
                wait: true,
                logs: false,
                timeout: args.timeout,
            };
            wait(&session, &args.run, &then, screen).await
        }
        Command::Start(args) => {
            let manifest = start_manifest(&args)?;
            let created = session.create(&manifest).await?;
            created_then(&session, &created, &args.then, screen).await
        }
        Command::Rerun(args) => {
            let old = session.get(&args.run).await?;
            let created = session.create(&request::rerun_manifest(&old)?).await?;
            created_then(&session, &created, &args.then, screen).await
        }
        Command::Stop(args) => {
            session.stop(&args.run).await?;
            screen.print(&format!(
                "codebuildrun.codebuild.operator.dev/{} stop requested\n",
                session::bare(&args.run)
            ));
            Ok(Exit::Succeeded)
        }
    }
}

/// The manifest `start` creates.
fn start_manifest(args: &StartArgs) -> Result<Value, PluginError> {
    let file = args.file.as_deref().map(read_request).transpose()?;
    let spec = request::start_spec(
        file,
        args.project.as_deref(),
        args.source_version.as_deref(),
        &args.env,
    )?;
    let base = match &args.generate_name {
        Some(prefix) => prefix.clone(),
        None => spec
            .get("projectName")
            .and_then(Value::as_str)
            .unwrap_or("codebuild")
            .to_owned(),
    };
    Ok(request::manifest(
        &request::generate_name(&base),
        spec,
        None,
    ))
}

/// A StartBuild request from a JSON file (`-`: stdin).
fn read_request(path: &Path) -> Result<Value, PluginError> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| PluginError::failed(format!("reading the request from stdin: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| PluginError::failed(format!("reading {}: {e}", path.display())))?
    };
    serde_json::from_str(&text).map_err(|e| {
        PluginError::usage(format!(
            "{} is not a StartBuild JSON request: {e}",
            path.display()
        ))
    })
}

/// How long `wait` waits, after the build ended, for the operator to read its reports.
const REPORTS_WAIT: Duration = Duration::from_secs(15);

/// `run` once the operator has read its reports (CodeBuild writes them as the build ends),
/// waiting at most [`REPORTS_WAIT`] (and never past `deadline`).
async fn with_reports(
    session: &Session,
    mut run: CodeBuildRun,
    deadline: Option<Instant>,
) -> Result<CodeBuildRun, PluginError> {
    let until = Instant::now() + REPORTS_WAIT;
    let until = deadline.map_or(until, |d| d.min(until));
    let name = run.metadata.name.clone().unwrap_or_default();
    loop {
        let pending = run
            .status
            .as_ref()
            .is_some_and(|s| !reports_to_read(s, crate::convert::now().0).is_empty());
        if !pending || Instant::now() + follow::RUN_POLL > until {
            return Ok(run);
        }
        tokio::time::sleep(follow::RUN_POLL).await;
        run = session.get(&name).await?;
    }
}

/// Says the run was created, then waits (and follows its log) when asked.
async fn created_then(
    session: &Session,
    created: &CodeBuildRun,
    then: &Then,
    screen: &mut Screen,
) -> Result<Exit, PluginError> {
    let name = created.metadata.name.clone().unwrap_or_default();
    let line = format!("codebuildrun.codebuild.operator.dev/{name} created");
    if then.logs {
        screen.note(&line);
    } else {
        screen.print(&format!("{line}\n"));
    }
    if !then.wait && !then.logs {
        return Ok(Exit::Succeeded);
    }
    wait(session, &name, then, screen).await
}

/// Waits for run `name` (following its log with `then.logs`), prints the summary and
/// returns the exit code of its outcome.
async fn wait(
    session: &Session,
    name: &str,
    then: &Then,
    screen: &mut Screen,
) -> Result<Exit, PluginError> {
    let watch = Watch {
        logs: then.logs,
        follow: true,
        tail: None,
        retry: None,
        deadline: then.timeout.map(|t| Instant::now() + t),
    };
    let name = session::bare(name);
    let ended = follow::watch(session, name, &watch, screen).await?;
    screen.done();
    let run = match ended {
        Ended::Done(run) => run,
        Ended::TimedOut(run) => {
            let what = outcome::activity(&run);
            screen.note(&format!(
                "timed out after {} waiting for cbr/{name} ({what})",
                humantime::format_duration(then.timeout.unwrap_or_default())
            ));
            return Ok(Exit::Timeout);
        }
    };
    let run = with_reports(session, run, watch.deadline).await?;
    let text = summary(&run);
    if then.logs {
        screen.note(text.trim_end());
    } else {
        screen.print(&text);
    }
    Ok(outcome(&run).unwrap_or(Exit::Error))
}
