//! Following a run: its state, read from the apiserver every [`RUN_POLL`], shown as it
//! changes; with logs, the log of its build (and, following, of every later build of the
//! automatic-retry chain) read with GetLogEvents as [`Pacer`] allows, each line printed
//! once, in order, by following the stream's forward token.
//!
//! A build's log is drained once the build has ended and a read made at least [`DRAIN`]
//! after that was seen brought nothing new (CloudWatch Logs stores the last lines a little
//! after the build ends).

use std::time::{Duration, Instant};

use super::PluginError;
use super::outcome::{ChainBuild, LogPlace, activity, chain, log_place, outcome};
use super::pace::Pacer;
use super::screen::Screen;
use super::session::Session;
use crate::api::CodeBuildRun;
use crate::codebuild::{ApiError, AwsBuildApi, BuildApi, ErrorKind, LogRead, Target};

/// How often the run is read from the apiserver.
pub const RUN_POLL: Duration = Duration::from_secs(1);
/// How long after a build was seen ended its log is still read for late lines.
pub const DRAIN: Duration = Duration::from_secs(3);
/// Failed reads in a row (throttled, 5xx, no answer) after which the plugin gives up.
const MAX_FAILURES: u32 = 30;

/// What to follow.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    /// Print the build's log.
    pub logs: bool,
    /// Keep following (the log until drained, the chain, the run until it ends).
    pub follow: bool,
    /// Start with the last N lines.
    pub tail: Option<u32>,
    /// Read this build of the chain (default: the latest).
    pub retry: Option<usize>,
    /// Give up at this instant.
    pub deadline: Option<Instant>,
}

/// How a watch ended.
pub enum Ended {
    /// The run ended (or, without following, the log was printed): the run as last read.
    Done(CodeBuildRun),
    /// The deadline passed first.
    TimedOut(CodeBuildRun),
}

/// Follows run `name` as `watch` says.
pub async fn watch(
    session: &Session,
    name: &str,
    watch: &Watch,
    screen: &mut Screen,
) -> Result<Ended, PluginError> {
    let name = super::session::bare(name);
    let mut run = session.get(name).await?;
    let mut reader = LogReader::new(watch);
    let mut next_poll = Instant::now() + RUN_POLL;
    loop {
        screen.status(&run);
        let wait_until = if watch.logs {
            match reader.step(session, &run, screen).await? {
                Step::Done => return Ok(Ended::Done(run)),
                Step::WaitUntil(at) => at.min(next_poll),
            }
        } else if outcome(&run).is_some() {
            return Ok(Ended::Done(run));
        } else {
            next_poll
        };
        if watch.deadline.is_some_and(|d| wait_until >= d) {
            tokio::time::sleep_until(watch.deadline.unwrap_or(wait_until).into()).await;
            return Ok(Ended::TimedOut(run));
        }
        tokio::time::sleep_until(wait_until.into()).await;
        if Instant::now() >= next_poll {
            run = session.get(name).await?;
            next_poll = Instant::now() + RUN_POLL;
        }
    }
}

/// What the log reader wants next.
enum Step {
    /// Everything asked for was printed.
    Done,
    /// Call again at this instant (or when the run changed).
    WaitUntil(Instant),
}

/// The reader of one run's log: which build of the chain, where in its stream.
struct LogReader {
    follow: bool,
    retry: Option<usize>,
    tail: Option<u32>,
    index: Option<usize>,
    token: Option<String>,
    /// When the current build was first seen ended.
    ended_seen: Option<Instant>,
    /// The build whose missing log was already noted.
    noted: Option<usize>,
    pacer: Pacer,
    failures: u32,
    aws: Option<(AwsBuildApi, Target)>,
}

impl LogReader {
    fn new(watch: &Watch) -> LogReader {
        LogReader {
            follow: watch.follow,
            retry: watch.retry,
            tail: watch.tail,
            index: None,
            token: None,
            ended_seen: None,
            noted: None,
            pacer: Pacer::new(Instant::now()),
            failures: 0,
            aws: None,
        }
    }

    async fn step(
        &mut self,
        session: &Session,
        run: &CodeBuildRun,
        screen: &mut Screen,
    ) -> Result<Step, PluginError> {
        let status = run.status.clone().unwrap_or_default();
        let builds = chain(&status);
        let run_ended = outcome(run).is_some();
        let name = run.metadata.name.as_deref().unwrap_or("?");
        if builds.is_empty() {
            if !self.follow && !run_ended {
                screen.note(&format!("cbr/{name} has no build yet ({})", activity(run)));
                return Ok(Step::Done);
            }
            return Ok(if run_ended { Step::Done } else { later() });
        }
        let i = *self
            .index
            .get_or_insert_with(|| self.retry.unwrap_or(builds.len() - 1));
        let Some(build) = builds.get(i) else {
            return Err(PluginError::failed(format!(
                "cbr/{name} has {} build(s) in its retry chain (--retry 0..{}); there is no --retry {i}",
                builds.len(),
                builds.len() - 1
            )));
        };
        match log_place(build) {
            LogPlace::NotYet if !self.follow => {
                let phase = activity(run);
                screen.note(&format!(
                    "build {} has no log yet (phase {phase})",
                    build.id
                ));
                Ok(Step::Done)
            }
            LogPlace::NotYet => Ok(later()),
            LogPlace::Elsewhere(message) => {
                if self.noted != Some(i) {
                    screen.note(&message);
                    self.noted = Some(i);
                }
                Ok(self.next_build(&builds, run_ended, screen))
            }
            LogPlace::CloudWatch { group, stream } => {
                let read = (group, stream);
                self.read(session, run, build, read, &builds, screen).await
            }
        }
    }

    /// The current build is done: on to the next build of the chain when following.
    fn next_build(&mut self, builds: &[ChainBuild], run_ended: bool, screen: &mut Screen) -> Step {
        if !self.follow {
            return Step::Done;
        }
        let i = self.index.unwrap_or(0);
        if let Some(next) = builds.get(i + 1) {
            self.index = Some(i + 1);
            self.token = None;
            self.tail = None;
            self.ended_seen = None;
            screen.note(&format!(
                "--- build {} (automatic retry {} of the build above)",
                next.id,
                i + 1
            ));
            return Step::WaitUntil(Instant::now());
        }
        if run_ended { Step::Done } else { later() }
    }

    async fn read(
        &mut self,
        session: &Session,
        run: &CodeBuildRun,
        build: &ChainBuild,
        (group, stream): (String, String),
        builds: &[ChainBuild],
        screen: &mut Screen,
    ) -> Result<Step, PluginError> {
        let now = Instant::now();
        let due = self.pacer.due(now);
        if due > now {
            return Ok(Step::WaitUntil(due));
        }
        if self.aws.is_none() {
            self.aws = Some(session.aws(run).await?);
        }
        let Some((api, target)) = &self.aws else {
            return Ok(later());
        };
        let read = LogRead {
            group,
            stream,
            start_from_head: self.tail.is_none(),
            next_token: self.token.clone(),
            limit: self
                .tail
                .filter(|_| self.token.is_none())
                .map(|n| n.clamp(1, 10_000) as i32),
        };
        self.pacer.take(now);
        let result = api.get_log_events(target, read.clone()).await;
        let run_ended = outcome(run).is_some();
        match result {
            Ok(page) => {
                self.pacer.worked(now);
                self.failures = 0;
                for event in &page.events {
                    screen.line(&event.message);
                }
                if page.next_forward_token.is_some() {
                    self.token = page.next_forward_token;
                }
                Ok(self.after_read(
                    page.events.is_empty(),
                    build,
                    now,
                    builds,
                    run_ended,
                    screen,
                ))
            }
            Err(error) => {
                let region = target.region.clone();
                self.failed(
                    error,
                    &read,
                    &region,
                    build,
                    now,
                    (builds, run_ended),
                    screen,
                )
            }
        }
    }

    /// After a read that worked: done with this build once it has ended and was drained.
    fn after_read(
        &mut self,
        empty: bool,
        build: &ChainBuild,
        read_at: Instant,
        builds: &[ChainBuild],
        run_ended: bool,
        screen: &mut Screen,
    ) -> Step {
        if !self.follow {
            return if empty {
                Step::Done
            } else {
                Step::WaitUntil(self.pacer.due(Instant::now()))
            };
        }
        if build.finished {
            let seen = *self.ended_seen.get_or_insert(read_at);
            if empty && read_at >= seen + DRAIN {
                return self.next_build(builds, run_ended, screen);
            }
        }
        Step::WaitUntil(self.pacer.due(Instant::now()))
    }

    /// After a read that failed: what cannot heal ends the plugin with what is missing; a
    /// stream gone after its build ended is skipped; anything else is read again.
    #[allow(clippy::too_many_arguments)]
    fn failed(
        &mut self,
        error: ApiError,
        read: &LogRead,
        region: &str,
        build: &ChainBuild,
        now: Instant,
        (builds, run_ended): (&[ChainBuild], bool),
        screen: &mut Screen,
    ) -> Result<Step, PluginError> {
        self.pacer.failed(now, error.kind == ErrorKind::Throttled);
        self.failures += 1;
        let place = format!(
            "reading the log of build {} (log group {}, stream {}, Region {region})",
            build.id, read.group, read.stream
        );
        match error.kind {
            ErrorKind::AccessDenied => {
                return Err(PluginError::failed(format!(
                    "{place}: {error}: your AWS identity needs logs:GetLogEvents on \
                     arn:aws:logs:{region}:*:log-group:{}:*",
                    read.group
                )));
            }
            ErrorKind::InvalidInput | ErrorKind::Other => {
                return Err(PluginError::failed(format!("{place}: {error}")));
            }
            // The SDK reports a missing identity as a request that could not be sent.
            ErrorKind::Network if error.message.contains("no credentials") => {
                return Err(PluginError::failed(format!(
                    "{place}: no AWS credentials: set AWS_PROFILE (and `aws sso login`), or \
                     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({error})"
                )));
            }
            _ => {}
        }
        let gone = error.code.as_deref() == Some("ResourceNotFoundException");
        if gone && build.finished {
            let seen = *self.ended_seen.get_or_insert(now);
            if !self.follow || now >= seen + DRAIN {
                screen.note(&format!("{place}: the log stream does not exist ({error})"));
                return Ok(self.next_build(builds, run_ended, screen));
            }
        }
        if self.failures >= MAX_FAILURES {
            return Err(PluginError::failed(format!(
                "{place}: {} failed reads in a row, the last: {error}",
                self.failures
            )));
        }
        Ok(Step::WaitUntil(self.pacer.due(Instant::now())))
    }
}

/// Nothing to do until the run changes.
fn later() -> Step {
    Step::WaitUntil(Instant::now() + RUN_POLL)
}
