//! What a build produced, in the status to write (pure): the failure message names the last
//! line of the failure tail.

use super::super::conditions::Progress;
use super::Mirror;
use crate::api::names::reason;
use crate::output::message_line;

/// When status holds the failure tail of its current build, the failure message (the
/// `Succeeded`, `Ready` and `Stalled` conditions, and the `BuildFailed` Event) ends with the
/// tail's last line. Applied to every mirror of the build, so the message stays the same
/// from one write to the next.
pub fn name_last_line(mirror: &mut Mirror) {
    let Some(tail) = mirror.status.log_tail.as_ref() else {
        return;
    };
    if mirror.status.build.build_id.as_deref() != Some(tail.build_id.as_str()) {
        return;
    }
    let Some(line) = message_line(tail) else {
        return;
    };
    let Progress::Failed { message, .. } = &mut mirror.progress else {
        return;
    };
    message.push_str("; last log line: ");
    message.push_str(&line);
    for note in &mut mirror.notes {
        if note.reason == reason::BUILD_FAILED {
            note.message = message.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CodeBuildRunStatus, LogTail, RunOptions, sample_build};
    use crate::controller::plan::follow::{EventSettings, mirror};
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn the_failure_message_and_event_name_the_last_line() {
        let before = CodeBuildRunStatus {
            build: sample_build("IN_PROGRESS", "BUILD"),
            ..Default::default()
        };
        let mut m = mirror(
            &before,
            &sample_build("FAILED", "COMPLETED"),
            &RunOptions::default(),
            Timestamp::from_second(0).unwrap(),
            EventSettings::default(),
        );
        name_last_line(&mut m);
        assert_eq!(
            m.progress.message(),
            "build p:1 ended FAILED",
            "no tail yet"
        );
        m.status.log_tail = Some(LogTail {
            build_id: "p:1".into(),
            lines: vec![
                "make: *** [test] Error 2".into(),
                "[Container] x y Phase complete".into(),
            ],
            ..Default::default()
        });
        name_last_line(&mut m);
        let expected = "build p:1 ended FAILED; last log line: make: *** [test] Error 2";
        assert_eq!(m.progress.message(), expected);
        let note = m.notes.iter().find(|n| n.reason == "BuildFailed").unwrap();
        assert_eq!(note.message, expected);
    }
}
