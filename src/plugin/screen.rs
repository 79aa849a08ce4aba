//! Where the plugin writes: the build's log lines to stdout, exactly as the build wrote them;
//! what the run is doing to stderr — on a terminal one progress line rewritten in place, when
//! piped one plain line per change.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::api::CodeBuildRun;

use super::outcome::activity;

/// The plugin's two outputs.
pub struct Screen {
    tty: bool,
    /// The progress line shown on the terminal, if any.
    shown: Option<String>,
    /// What the run was last seen doing (build id, activity), to write only changes.
    last: Option<(String, String)>,
    since: Instant,
}

impl Screen {
    /// A screen on this process's stdout and stderr.
    pub fn new() -> Screen {
        Screen {
            tty: std::io::stderr().is_terminal(),
            shown: None,
            last: None,
            since: Instant::now(),
        }
    }

    /// One log line, to stdout (a newline is added when the build's line has none).
    pub fn line(&mut self, message: &str) {
        self.clear();
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(message.as_bytes());
        if !message.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
        drop(out);
        self.redraw();
    }

    /// A note about the run, to stderr.
    pub fn note(&mut self, text: &str) {
        self.clear();
        eprintln!("{text}");
        self.redraw();
    }

    /// Text for stdout, as it is (the summary).
    pub fn print(&mut self, text: &str) {
        self.clear();
        print!("{text}");
        let _ = std::io::stdout().flush();
    }

    /// What `run` is doing now: redrawn on a terminal (with the time in this phase), a
    /// plain line when piped and it changed.
    pub fn status(&mut self, run: &CodeBuildRun) {
        let name = run.metadata.name.as_deref().unwrap_or("?");
        let build = run
            .status
            .as_ref()
            .and_then(|s| s.build.build_id.clone())
            .unwrap_or_default();
        let now = (build.clone(), activity(run));
        let changed = self.last.as_ref() != Some(&now);
        if changed {
            self.since = Instant::now();
        }
        let what = match now.0.as_str() {
            "" => format!("cbr/{name}: {}", now.1),
            id => format!("cbr/{name}: build {id}: {}", now.1),
        };
        self.last = Some(now);
        if self.tty {
            let secs = self.since.elapsed().as_secs();
            self.shown = Some(format!("{what} ({secs}s)"));
            self.redraw();
        } else if changed {
            eprintln!("{what}");
        }
    }

    /// Removes the progress line for good.
    pub fn done(&mut self) {
        self.clear();
        self.shown = None;
    }

    fn clear(&self) {
        if self.tty && self.shown.is_some() {
            eprint!("\r\u{1b}[2K");
        }
    }

    fn redraw(&self) {
        if let (true, Some(line)) = (self.tty, &self.shown) {
            eprint!("\r\u{1b}[2K{line}");
            let _ = std::io::stderr().flush();
        }
    }
}

impl Default for Screen {
    fn default() -> Self {
        Screen::new()
    }
}
