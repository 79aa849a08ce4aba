//! What a build produced, added to the status a reconcile writes: the failure tail, read
//! once when the build ends FAILED, FAULT or TIMED_OUT (one GetLogEvents call; kept until
//! the write that holds it went through, so a failed write does not read it again), and the
//! reports the report reader learnt.

use tracing::warn;

use super::super::plan::{Mirror, output::name_last_line};
use super::Step;
use crate::api::{BuildInfo, LogTail};
use crate::codebuild::BuildApi;
use crate::convert;
use crate::output::{TailStep, mirror_reports, tail_from_error, tail_from_events, tail_step};

impl<B: BuildApi> Step<'_, B> {
    /// Adds the failure tail (when the build just ended), the reports and the failure
    /// message's last log line to `mirror`.
    pub(super) async fn add_output(&self, mirror: &mut Mirror) {
        if mirror.newly_final.is_some()
            && let Some(tail) = self.read_tail(&mirror.status.build).await
        {
            mirror.status.log_tail = Some(tail);
        }
        if let Some(arns) = mirror.status.build.report_arns.as_ref() {
            let answers = self.ctx.reports.answers(arns);
            if let Some(reports) = mirror_reports(&mirror.status, &answers, convert::now().0) {
                mirror.status.reports = Some(reports);
            }
        }
        name_last_line(mirror);
    }

    /// The failure tail of `build`, if it failed: read from its log stream (once), or why
    /// there is none. A failed read never fails the reconcile: status says why.
    async fn read_tail(&self, build: &BuildInfo) -> Option<LogTail> {
        let limits = self.ctx.settings.log_tail;
        let id = build.build_id.as_deref()?;
        if let Some(tail) = self.ctx.pending_tail(id) {
            return Some(tail);
        }
        let tail = match tail_step(build, &limits)? {
            TailStep::Unavailable(tail) => tail,
            TailStep::Read(read) => {
                let target = self.target();
                match self
                    .ctx
                    .codebuild
                    .get_log_events(&target, read.clone())
                    .await
                {
                    Ok(page) => tail_from_events(id, &page.events, &limits),
                    Err(error) => {
                        warn!(run = %self.oref, build = id, %error, category = error.kind.category(),
                            "could not read the failure tail");
                        tail_from_error(id, &read, &error)
                    }
                }
            }
        };
        self.ctx.keep_tail(&tail);
        Some(tail)
    }
}
