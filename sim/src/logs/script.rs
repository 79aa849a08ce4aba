//! What a build writes to its log stream, planned from its timeline when it starts: the
//! agent's lines (phase banners, the commands it runs, why a phase failed) and the commands'
//! output, each with a timestamp inside its phase and an ingestion time (when CloudWatch Logs
//! has it, so readers see lines appear as time passes). Messages are rendered on demand, so a
//! build with very long lines costs little until they are read.

use super::text::{container_time, mix, output_line};
use super::volume::Volume;
use crate::buildspec::{Buildspec, COMMAND_PHASES};
use crate::lifecycle::{PhaseType, PlannedPhase, Status, Timeline};
use crate::outcome::{COMMAND_EXECUTION_ERROR, DEFAULT_EXIT_STATUS, parse_command_failure};

/// The log agent sends lines in batches this often (ms, before time scaling); a batch
/// becomes readable [`Volume::delay_seconds`] after it is sent.
pub const FLUSH_MS: f64 = 1000.0;

/// Inputs for [`LogScript::plan`].
#[derive(Clone, Debug)]
pub struct ScriptInput<'a> {
    pub timeline: &'a Timeline,
    pub buildspec: &'a Buildspec,
    /// CODEBUILD_SRC_DIR, as the agent prints it.
    pub src_dir: &'a str,
    /// The build uploads artifacts (not NO_ARTIFACTS).
    pub artifacts: bool,
    pub volume: Volume,
    /// Seed of the build's text (from its id).
    pub seed: u64,
    /// The simulator's time scale (applies to FLUSH_MS and the delivery delay).
    pub time_scale: f64,
}

#[derive(Clone, Debug, PartialEq)]
enum Line {
    /// An agent line: `[Container] <time> <text>`.
    Agent(Box<str>),
    /// Output line `k` of `n` of command number `command`.
    Output { command: u32, k: u32, n: u32 },
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    timestamp: i64,
    ingestion: i64,
    line: Line,
}

/// A build's whole log stream as planned.
#[derive(Clone, Debug, PartialEq)]
pub struct LogScript {
    entries: Vec<Entry>,
    commands: Vec<String>,
    volume: Volume,
    seed: u64,
    created_ms: i64,
}

fn agent(text: impl Into<String>) -> Line {
    Line::Agent(text.into().into_boxed_str())
}

/// The two lines that close a phase.
fn completion(p: &PlannedPhase) -> [Line; 2] {
    let (code, message) = p
        .context
        .as_ref()
        .map_or(("", ""), |(c, m)| (c.as_str(), m.as_str()));
    [
        agent(format!(
            "Phase complete: {} State: {}",
            p.phase.as_str(),
            p.status.as_str()
        )),
        agent(format!(
            "Phase context status code: {code} Message: {message}"
        )),
    ]
}

impl LogScript {
    /// The log of a build; None when its container never runs (PROVISIONING did not
    /// succeed), so no stream is ever created.
    pub fn plan(input: &ScriptInput) -> Option<LogScript> {
        let tl = input.timeline;
        let provisioning = tl
            .phases
            .iter()
            .position(|p| p.phase == PhaseType::Provisioning && p.status == Status::Succeeded)?;
        let created_ms = super::millis(tl.phases[provisioning].end);
        let scale = input.time_scale.max(0.0);
        let flush = ((FLUSH_MS * scale).round() as i64).max(1);
        let delivery = (input.volume.delay_seconds * 1000.0 * scale).round() as i64;
        let mut script = LogScript {
            entries: Vec::new(),
            commands: Vec::new(),
            volume: input.volume.clone(),
            seed: input.seed,
            created_ms,
        };
        for p in &tl.phases[provisioning + 1..] {
            let lines = script.phase_lines(input, p);
            let (start, end) = (super::millis(p.start), super::millis(p.end));
            let last = lines.len().saturating_sub(1).max(1) as i128;
            for (i, line) in lines.into_iter().enumerate() {
                let timestamp = start + (i128::from(end - start) * i as i128 / last) as i64;
                // The batch this line is sent in leaves at the next flush after it was written.
                let batches = (timestamp - created_ms + flush - 1).div_euclid(flush);
                let ingestion = created_ms + batches * flush + delivery;
                script.entries.push(Entry {
                    timestamp,
                    ingestion,
                    line,
                });
            }
        }
        Some(script)
    }

    fn phase_lines(&mut self, input: &ScriptInput, p: &PlannedPhase) -> Vec<Line> {
        match p.phase {
            PhaseType::DownloadSource => download_lines(input, p),
            phase if COMMAND_PHASES.contains(&phase) => self.command_lines(input, p),
            PhaseType::UploadArtifacts => upload_lines(input, p),
            _ => Vec::new(),
        }
    }

    /// A command phase: its banner, each command with its output, and, when a command failed,
    /// that command and its exit status as the last lines before the phase's end.
    fn command_lines(&mut self, input: &ScriptInput, p: &PlannedPhase) -> Vec<Line> {
        let mut commands: Vec<String> = input.buildspec.commands(p.phase).to_vec();
        let failed = p
            .context
            .as_ref()
            .filter(|(code, _)| p.status == Status::Failed && code == COMMAND_EXECUTION_ERROR)
            .map(|(_, message)| {
                parse_command_failure(message).unwrap_or_else(|| {
                    let command = input.buildspec.failing_command(p.phase);
                    (
                        command.unwrap_or_else(|| "make".into()),
                        DEFAULT_EXIT_STATUS,
                    )
                })
            });
        if let Some((command, _)) = &failed {
            match commands.iter().position(|c| c == command) {
                Some(i) => commands.truncate(i + 1),
                None => commands.push(command.clone()),
            }
        }
        let mut lines = vec![agent(format!("Entering phase {}", p.phase.as_str()))];
        let count = commands.len() as u32;
        for (j, command) in commands.iter().enumerate() {
            let j = j as u32;
            let n = input.volume.lines / count + u32::from(j < input.volume.lines % count);
            let index = self.command_index(command);
            lines.push(agent(format!("Running command {command}")));
            lines.extend((0..n).map(|k| Line::Output {
                command: index,
                k,
                n,
            }));
        }
        if let Some((command, status)) = failed {
            lines.push(agent(format!(
                "Command did not exit successfully {command} exit status {status}"
            )));
        }
        lines.extend(completion(p));
        lines
    }

    fn command_index(&mut self, command: &str) -> u32 {
        let i = match self.commands.iter().position(|c| c == command) {
            Some(i) => i,
            None => {
                self.commands.push(command.to_string());
                self.commands.len() - 1
            }
        };
        i as u32
    }

    /// When the stream was created (epoch ms): the end of PROVISIONING.
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    /// Every event the build will ever write (some may not be readable yet).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn timestamp(&self, i: usize) -> i64 {
        self.entries[i].timestamp
    }

    pub fn ingestion(&self, i: usize) -> i64 {
        self.entries[i].ingestion
    }

    /// How many events can be read at `now_ms`: those ingested by then and, for a build
    /// stopped at `stop_ms`, written before it stopped. Always a prefix of the stream.
    pub fn readable(&self, now_ms: i64, stop_ms: Option<i64>) -> usize {
        let ingested = self.entries.partition_point(|e| e.ingestion <= now_ms);
        let written = stop_ms.map_or(self.entries.len(), |s| {
            self.entries.partition_point(|e| e.timestamp <= s)
        });
        ingested.min(written)
    }

    /// The index of the first event with a timestamp at or after `ms`.
    pub fn first_at_or_after(&self, ms: i64) -> usize {
        self.entries.partition_point(|e| e.timestamp < ms)
    }

    /// FilterLogEvents' `eventId` of event `i`: 56 digits, like the service's (time, stream
    /// seed, index).
    pub fn event_id(&self, i: usize) -> String {
        let ts = self.entries[i].timestamp.max(0);
        format!("{ts:020}{:020}{i:016}", self.seed)
    }

    /// The message of event `i`, with its newline.
    pub fn message(&self, i: usize) -> String {
        let e = &self.entries[i];
        let h = mix(self.seed, i as u64);
        match &e.line {
            Line::Agent(text) => {
                format!(
                    "[Container] {} {text}\n",
                    container_time(e.timestamp, h % 1000)
                )
            }
            Line::Output { command, k, n } => {
                let command = &self.commands[*command as usize];
                output_line(command, *k, *n, h, &self.volume)
            }
        }
    }
}

/// DOWNLOAD_SOURCE: the agent starts, reads the source and the buildspec.
fn download_lines(input: &ScriptInput, p: &PlannedPhase) -> Vec<Line> {
    let mut lines = vec![
        agent("Running on CodeBuild On-demand"),
        agent("Waiting for agent ping"),
        agent("Waiting for DOWNLOAD_SOURCE"),
    ];
    if p.status == Status::Succeeded {
        let src = input.src_dir;
        lines.extend([
            agent("Phase is DOWNLOAD_SOURCE"),
            agent(format!("CODEBUILD_SRC_DIR={src}")),
            agent(format!(
                "YAML location is {}",
                input.buildspec.location_in(src)
            )),
            agent("Processing environment variables"),
            agent("No runtime version selected in buildspec."),
            agent(format!("Moving to directory {src}")),
            agent("Registering with agent"),
            agent(format!(
                "Phases found in YAML: {}",
                input.buildspec.phases.len()
            )),
        ]);
        for (phase, commands) in &input.buildspec.phases {
            lines.push(agent(format!(
                " {}: {} commands",
                phase.as_str(),
                commands.len()
            )));
        }
    }
    lines.extend(completion(p));
    lines
}

/// UPLOAD_ARTIFACTS: the agent collects the artifact files.
fn upload_lines(input: &ScriptInput, p: &PlannedPhase) -> Vec<Line> {
    let mut lines = Vec::new();
    if input.artifacts {
        let files = 1 + mix(input.seed, 0x0a57) % 40;
        lines.extend([
            agent("Expanding base directory path: ."),
            agent("Assembling file list"),
            agent("Expanding ."),
            agent("Expanding file paths for base directory ."),
            agent("Assembling file list"),
            agent("Expanding **/*"),
            agent(format!("Found {files} file(s)")),
        ]);
    }
    lines.extend(completion(p));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{Failure, PlanInput, plan};

    fn timeline(failure: Option<Failure>) -> Timeline {
        plan(&PlanInput {
            start: 1_700_000_000.0,
            phase_seconds: 10.0,
            failure,
            timeout_seconds: None,
            queued_seconds: 0.0,
        })
    }

    fn script(tl: &Timeline, buildspec: &Buildspec, volume: Volume) -> Option<LogScript> {
        LogScript::plan(&ScriptInput {
            timeline: tl,
            buildspec,
            src_dir: "/codebuild/output/src1/src",
            artifacts: true,
            volume,
            seed: 42,
            time_scale: 1.0,
        })
    }

    fn messages(s: &LogScript) -> Vec<String> {
        (0..s.len()).map(|i| s.message(i)).collect()
    }

    fn inline(yaml: &str) -> Buildspec {
        Buildspec::resolve(Some(yaml))
    }

    #[test]
    fn a_successful_build_logs_every_container_phase() {
        let tl = timeline(None);
        let spec = inline("phases:\n  build:\n    commands:\n      - make test\n");
        let s = script(&tl, &spec, Volume::default()).unwrap_or_else(|| panic!("no log"));
        let all = messages(&s);
        assert_eq!(s.created_ms(), 1_700_000_030_000);
        // 1_700_000_000 is 2023-11-14T22:13:20Z; the stream starts after three 10 s phases.
        assert_eq!(
            all[0],
            format!(
                "[Container] 2023/11/14 22:13:50.000{:03} Running on CodeBuild On-demand\n",
                mix(42, 0) % 1000
            )
        );
        let text: Vec<&str> = all
            .iter()
            .map(|m| m.get(39..).unwrap_or(m).trim_end())
            .collect();
        for banner in [
            "YAML location is /codebuild/readonly/buildspec.yml",
            "Phases found in YAML: 1",
            " BUILD: 1 commands",
            "Phase complete: DOWNLOAD_SOURCE State: SUCCEEDED",
            "Phase context status code:  Message: ",
            "Entering phase INSTALL",
            "Entering phase BUILD",
            "Running command make test",
            "Phase complete: BUILD State: SUCCEEDED",
            "Phase complete: UPLOAD_ARTIFACTS State: SUCCEEDED",
        ] {
            assert!(
                all.iter().any(|m| m.contains(banner)),
                "{banner}: {text:#?}"
            );
        }
        // Four output lines in BUILD (the only phase with commands), none elsewhere.
        let outputs = all.iter().filter(|m| !m.starts_with("[Container]")).count();
        assert_eq!(outputs, 4);
        assert!(all.iter().all(|m| m.ends_with('\n')));
    }

    #[test]
    fn timestamps_stay_in_their_phase_and_ingestion_follows() {
        let tl = timeline(None);
        let s = script(&tl, &inline("x"), Volume::default()).unwrap_or_else(|| panic!("no log"));
        let first_phase = &tl.phases[3];
        assert_eq!(s.timestamp(0), super::super::millis(first_phase.start));
        let last_end = super::super::millis(tl.phases[8].end);
        for i in 0..s.len() {
            assert!(s.timestamp(i) >= s.created_ms() && s.timestamp(i) <= last_end);
            assert!(s.ingestion(i) >= s.timestamp(i) + 200);
            assert!(s.ingestion(i) < s.timestamp(i) + 1200);
            if i > 0 {
                assert!(s.timestamp(i) >= s.timestamp(i - 1));
                assert!(s.ingestion(i) >= s.ingestion(i - 1));
            }
        }
        // Lines appear over time.
        assert_eq!(s.readable(s.created_ms(), None), 0);
        let mid = super::super::millis(tl.phases[6].start);
        let part = s.readable(mid, None);
        assert!(part > 0 && part < s.len(), "{part} of {}", s.len());
        assert_eq!(s.readable(i64::MAX, None), s.len());
        assert_eq!(
            s.readable(i64::MAX, Some(mid)),
            s.first_at_or_after(mid + 1)
        );
    }

    #[test]
    fn a_failing_command_ends_its_phase() {
        let tl = timeline(Some(Failure {
            phase: PhaseType::Build,
            status: Status::Failed,
            status_code: "COMMAND_EXECUTION_ERROR".into(),
            message: "Error while executing command: make test. Reason: exit status 2".into(),
        }));
        let spec = inline(
            "phases:\n  build:\n    commands:\n      - make\n      - make test\n      - make docs\n",
        );
        let s = script(&tl, &spec, Volume::default()).unwrap_or_else(|| panic!("no log"));
        let all = messages(&s);
        let end = all
            .iter()
            .position(|m| m.contains("Phase context status code: COMMAND_EXECUTION_ERROR"))
            .unwrap_or_else(|| panic!("{all:#?}"));
        assert!(
            all[end - 2].ends_with(" Command did not exit successfully make test exit status 2\n")
        );
        assert!(all[end - 1].ends_with(" Phase complete: BUILD State: FAILED\n"));
        assert!(all[end].ends_with(
            " Phase context status code: COMMAND_EXECUTION_ERROR Message: Error while executing command: make test. Reason: exit status 2\n"
        ));
        assert!(!all.iter().any(|m| m.contains("Running command make docs")));
        // POST_BUILD still runs.
        assert!(all[end + 1].ends_with(" Entering phase POST_BUILD\n"));
    }

    #[test]
    fn no_stream_without_a_container() {
        let tl = timeline(Some(Failure {
            phase: PhaseType::Provisioning,
            status: Status::Failed,
            status_code: "BUILD_CONTAINER_UNABLE_TO_PULL_IMAGE".into(),
            message: "x".into(),
        }));
        assert!(script(&tl, &inline("x"), Volume::default()).is_none());
    }

    #[test]
    fn volume_sets_lines_per_phase() {
        let tl = timeline(None);
        let spec = Buildspec::resolve(None);
        let volume = Volume {
            lines: 1001,
            ..Volume::default()
        };
        let s = script(&tl, &spec, volume).unwrap_or_else(|| panic!("no log"));
        let outputs = messages(&s)
            .iter()
            .filter(|m| !m.starts_with("[Container]"))
            .count();
        assert_eq!(outputs, 4 * 1001);
        // Same seed, same lines.
        let again = script(&tl, &spec, s.volume.clone()).unwrap_or_else(|| panic!("no log"));
        assert_eq!(messages(&s), messages(&again));
    }
}
