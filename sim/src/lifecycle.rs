//! Pure phase/outcome computation: a build's whole timeline is planned when it starts and its
//! visible state is derived from the clock at read time. No I/O, no clock reads here.

use serde_json::{Map, Value, json};

/// CodeBuild phase types in the order the service runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PhaseType {
    Submitted,
    Queued,
    Provisioning,
    DownloadSource,
    Install,
    PreBuild,
    Build,
    PostBuild,
    UploadArtifacts,
    Finalizing,
    Completed,
}

impl PhaseType {
    /// Every phase that has a duration (COMPLETED is only a marker).
    pub const RUNNING: [PhaseType; 10] = [
        PhaseType::Submitted,
        PhaseType::Queued,
        PhaseType::Provisioning,
        PhaseType::DownloadSource,
        PhaseType::Install,
        PhaseType::PreBuild,
        PhaseType::Build,
        PhaseType::PostBuild,
        PhaseType::UploadArtifacts,
        PhaseType::Finalizing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PhaseType::Submitted => "SUBMITTED",
            PhaseType::Queued => "QUEUED",
            PhaseType::Provisioning => "PROVISIONING",
            PhaseType::DownloadSource => "DOWNLOAD_SOURCE",
            PhaseType::Install => "INSTALL",
            PhaseType::PreBuild => "PRE_BUILD",
            PhaseType::Build => "BUILD",
            PhaseType::PostBuild => "POST_BUILD",
            PhaseType::UploadArtifacts => "UPLOAD_ARTIFACTS",
            PhaseType::Finalizing => "FINALIZING",
            PhaseType::Completed => "COMPLETED",
        }
    }

    pub fn parse(s: &str) -> Option<PhaseType> {
        PhaseType::RUNNING
            .into_iter()
            .chain([PhaseType::Completed])
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The phases that follow a failure in `self`: a failure in INSTALL..BUILD still runs
    /// POST_BUILD, UPLOAD_ARTIFACTS and FINALIZING; a failure before INSTALL goes straight to
    /// FINALIZING; a failure from POST_BUILD on continues with the remaining phases.
    fn after_failure(self) -> Vec<PhaseType> {
        use PhaseType::*;
        match self {
            Submitted | Queued | Provisioning | DownloadSource => vec![Finalizing],
            Install | PreBuild | Build => vec![PostBuild, UploadArtifacts, Finalizing],
            PostBuild => vec![UploadArtifacts, Finalizing],
            UploadArtifacts => vec![Finalizing],
            Finalizing | Completed => vec![],
        }
    }
}

/// Terminal status of a phase or a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    Failed,
    Fault,
    TimedOut,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::Fault => "FAULT",
            Status::TimedOut => "TIMED_OUT",
            Status::Stopped => "STOPPED",
        }
    }

    /// Parses a failure status (the values `CODEBUILD_SIM_STATUS` accepts).
    pub fn parse_failure(s: &str) -> Option<Status> {
        match s.trim().to_ascii_uppercase().as_str() {
            "FAILED" => Some(Status::Failed),
            "FAULT" => Some(Status::Fault),
            "TIMED_OUT" => Some(Status::TimedOut),
            _ => None,
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(self, Status::Failed | Status::Fault | Status::TimedOut)
    }
}

/// A planned failure: which phase fails, how, and the context it reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub phase: PhaseType,
    pub status: Status,
    pub status_code: String,
    pub message: String,
}

/// One phase of a planned timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedPhase {
    pub phase: PhaseType,
    pub start: f64,
    pub end: f64,
    pub status: Status,
    /// (statusCode, message) for a failing phase.
    pub context: Option<(String, String)>,
}

/// The whole life of a build as planned at start time.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    pub start: f64,
    pub phases: Vec<PlannedPhase>,
    /// When the COMPLETED phase starts (= the build's endTime).
    pub completed_at: f64,
    pub status: Status,
}

/// Inputs for [`plan`]. All durations are real (already time-scaled) seconds.
#[derive(Clone, Debug)]
pub struct PlanInput {
    pub start: f64,
    pub phase_seconds: f64,
    pub failure: Option<Failure>,
    /// Build timeout measured from the end of the wait in QUEUED; None disables it.
    pub timeout_seconds: Option<f64>,
    /// How much longer than a phase QUEUED lasts: the wait for a free build slot.
    pub queued_seconds: f64,
}

/// The statusCode/message CodeBuild reports when a build times out.
pub const TIMEOUT_CONTEXT: (&str, &str) = ("BUILD_TIMED_OUT", "Build has timed out. ");

/// A phase to run: its type, its status and its failure context.
type Step = (PhaseType, Status, Option<(String, String)>);

/// Plans the timeline of a build.
pub fn plan(input: &PlanInput) -> Timeline {
    let d = input.phase_seconds.max(0.0);
    let mut sequence: Vec<Step> = Vec::new();
    for p in PhaseType::RUNNING {
        match &input.failure {
            Some(f) if f.phase == p => {
                sequence.push((
                    p,
                    f.status,
                    Some((f.status_code.clone(), f.message.clone())),
                ));
                for q in p.after_failure() {
                    sequence.push((q, Status::Succeeded, None));
                }
                break;
            }
            _ => sequence.push((p, Status::Succeeded, None)),
        }
    }
    let wait = input.queued_seconds.max(0.0);
    let mut t = input.start;
    let mut phases: Vec<PlannedPhase> = Vec::with_capacity(sequence.len());
    for (phase, status, context) in sequence {
        let length = if phase == PhaseType::Queued {
            d + wait
        } else {
            d
        };
        phases.push(PlannedPhase {
            phase,
            start: t,
            end: t + length,
            status,
            context,
        });
        t += length;
    }
    let mut status = input
        .failure
        .as_ref()
        .filter(|f| f.phase != PhaseType::Completed)
        .map_or(Status::Succeeded, |f| f.status);

    if let Some(limit) = input.timeout_seconds {
        let deadline = input.start + wait + limit.max(0.0);
        if let Some(idx) = phases.iter().position(|p| p.end > deadline) {
            let cut = &mut phases[idx];
            let cut_phase = cut.phase;
            cut.end = deadline.max(cut.start);
            cut.status = Status::TimedOut;
            cut.context = Some((TIMEOUT_CONTEXT.0.to_string(), TIMEOUT_CONTEXT.1.to_string()));
            let end = cut.end;
            phases.truncate(idx + 1);
            if cut_phase != PhaseType::Finalizing {
                phases.push(PlannedPhase {
                    phase: PhaseType::Finalizing,
                    start: end,
                    end: end + d,
                    status: Status::Succeeded,
                    context: None,
                });
            }
            status = Status::TimedOut;
        }
    }
    let completed_at = phases.last().map_or(input.start, |p| p.end);
    Timeline {
        start: input.start,
        phases,
        completed_at,
        status,
    }
}

/// What a build looks like at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub phases: Vec<Value>,
    pub current_phase: &'static str,
    /// IN_PROGRESS or the terminal status.
    pub build_status: &'static str,
    pub end_time: Option<f64>,
    pub complete: bool,
    /// The terminal status once complete.
    pub final_status: Option<Status>,
}

/// Rounds epoch seconds to milliseconds, as the service reports them.
pub fn ts(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

fn phase_json(
    phase: PhaseType,
    start: f64,
    end: Option<f64>,
    status: Option<Status>,
    context: Option<&(String, String)>,
) -> Value {
    let mut m = Map::new();
    m.insert("phaseType".into(), json!(phase.as_str()));
    if let Some(s) = status {
        m.insert("phaseStatus".into(), json!(s.as_str()));
    }
    m.insert("startTime".into(), json!(ts(start)));
    if let Some(e) = end {
        m.insert("endTime".into(), json!(ts(e)));
        let secs = (ts(e) - ts(start)).max(0.0).floor() as i64;
        m.insert("durationInSeconds".into(), json!(secs));
        // SUBMITTED carries no contexts; finished phases carry one (empty when fine).
        if phase != PhaseType::Submitted {
            let (code, msg) = context.map_or(("", ""), |(c, m)| (c.as_str(), m.as_str()));
            m.insert(
                "contexts".into(),
                json!([{ "statusCode": code, "message": msg }]),
            );
        }
    }
    Value::Object(m)
}

/// Derives the visible state of a build at `now`. `stopped_at` is the time StopBuild was
/// applied (ignored if it is at or after the planned completion).
pub fn snapshot(tl: &Timeline, now: f64, stopped_at: Option<f64>) -> Snapshot {
    let stop = stopped_at.filter(|s| *s < tl.completed_at && *s <= now);
    let mut phases = Vec::new();
    if let Some(stop) = stop {
        for p in &tl.phases {
            if p.end <= stop {
                phases.push(phase_json(
                    p.phase,
                    p.start,
                    Some(p.end),
                    Some(p.status),
                    p.context.as_ref(),
                ));
            } else if p.start <= stop {
                phases.push(phase_json(
                    p.phase,
                    p.start,
                    Some(stop),
                    Some(Status::Stopped),
                    None,
                ));
            }
        }
        phases.push(phase_json(PhaseType::Completed, stop, None, None, None));
        return Snapshot {
            phases,
            current_phase: PhaseType::Completed.as_str(),
            build_status: Status::Stopped.as_str(),
            end_time: Some(stop),
            complete: true,
            final_status: Some(Status::Stopped),
        };
    }
    if now >= tl.completed_at {
        for p in &tl.phases {
            phases.push(phase_json(
                p.phase,
                p.start,
                Some(p.end),
                Some(p.status),
                p.context.as_ref(),
            ));
        }
        phases.push(phase_json(
            PhaseType::Completed,
            tl.completed_at,
            None,
            None,
            None,
        ));
        return Snapshot {
            phases,
            current_phase: PhaseType::Completed.as_str(),
            build_status: tl.status.as_str(),
            end_time: Some(tl.completed_at),
            complete: true,
            final_status: Some(tl.status),
        };
    }
    let mut current = PhaseType::Submitted;
    for p in &tl.phases {
        if p.end <= now {
            phases.push(phase_json(
                p.phase,
                p.start,
                Some(p.end),
                Some(p.status),
                p.context.as_ref(),
            ));
        } else {
            phases.push(phase_json(p.phase, p.start, None, None, None));
            current = p.phase;
            break;
        }
    }
    Snapshot {
        phases,
        current_phase: current.as_str(),
        build_status: "IN_PROGRESS",
        end_time: None,
        complete: false,
        final_status: None,
    }
}

/// Whether `phase` has finished by `now` (used for fields that appear after a phase, such as
/// resolvedSourceVersion after DOWNLOAD_SOURCE).
pub fn phase_finished(tl: &Timeline, phase: PhaseType, now: f64, stopped_at: Option<f64>) -> bool {
    let cut = stopped_at.map_or(now, |s| s.min(now));
    tl.phases
        .iter()
        .any(|p| p.phase == phase && p.end <= cut && p.status == Status::Succeeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(failure: Option<Failure>) -> PlanInput {
        PlanInput {
            start: 1000.0,
            phase_seconds: 1.0,
            failure,
            timeout_seconds: None,
            queued_seconds: 0.0,
        }
    }

    fn fail(phase: PhaseType, status: Status) -> Failure {
        Failure {
            phase,
            status,
            status_code: "COMMAND_EXECUTION_ERROR".into(),
            message: "boom".into(),
        }
    }

    fn types(s: &Snapshot) -> Vec<String> {
        s.phases
            .iter()
            .map(|p| p["phaseType"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn success_runs_every_phase() {
        let tl = plan(&input(None));
        assert_eq!(tl.phases.len(), 10);
        assert_eq!(tl.completed_at, 1010.0);
        assert_eq!(tl.status, Status::Succeeded);
        let s = snapshot(&tl, 2000.0, None);
        assert!(s.complete);
        assert_eq!(s.build_status, "SUCCEEDED");
        assert_eq!(s.current_phase, "COMPLETED");
        assert_eq!(s.end_time, Some(1010.0));
        assert_eq!(s.phases.len(), 11);
        let last = s.phases.last().cloned().unwrap_or_default();
        assert_eq!(last, json!({"phaseType": "COMPLETED", "startTime": 1010.0}));
        assert!(s.phases[0].get("contexts").is_none());
        assert_eq!(s.phases[1]["contexts"][0]["statusCode"], "");
    }

    #[test]
    fn in_progress_shows_running_phase_without_status() {
        let tl = plan(&input(None));
        let s = snapshot(&tl, 1002.5, None);
        assert!(!s.complete);
        assert_eq!(s.build_status, "IN_PROGRESS");
        assert_eq!(s.current_phase, "PROVISIONING");
        assert_eq!(types(&s), ["SUBMITTED", "QUEUED", "PROVISIONING"]);
        let running = &s.phases[2];
        assert!(running.get("phaseStatus").is_none());
        assert!(running.get("endTime").is_none());
        assert!(running.get("durationInSeconds").is_none());
        assert_eq!(s.end_time, None);
    }

    #[test]
    fn build_failure_still_runs_cleanup_phases() {
        let tl = plan(&input(Some(fail(PhaseType::Build, Status::Failed))));
        let s = snapshot(&tl, 5000.0, None);
        assert_eq!(s.build_status, "FAILED");
        assert_eq!(
            types(&s),
            [
                "SUBMITTED",
                "QUEUED",
                "PROVISIONING",
                "DOWNLOAD_SOURCE",
                "INSTALL",
                "PRE_BUILD",
                "BUILD",
                "POST_BUILD",
                "UPLOAD_ARTIFACTS",
                "FINALIZING",
                "COMPLETED"
            ]
        );
        assert_eq!(s.phases[6]["phaseStatus"], "FAILED");
        assert_eq!(s.phases[6]["contexts"][0]["message"], "boom");
        assert_eq!(s.phases[7]["phaseStatus"], "SUCCEEDED");
    }

    #[test]
    fn install_failure_skips_to_post_build() {
        let tl = plan(&input(Some(fail(PhaseType::Install, Status::Fault))));
        let s = snapshot(&tl, 5000.0, None);
        assert_eq!(s.build_status, "FAULT");
        assert_eq!(
            types(&s)[4..],
            [
                "INSTALL",
                "POST_BUILD",
                "UPLOAD_ARTIFACTS",
                "FINALIZING",
                "COMPLETED"
            ]
        );
    }

    #[test]
    fn download_failure_goes_to_finalizing() {
        let tl = plan(&input(Some(fail(
            PhaseType::DownloadSource,
            Status::Failed,
        ))));
        let s = snapshot(&tl, 5000.0, None);
        assert_eq!(
            types(&s)[3..],
            ["DOWNLOAD_SOURCE", "FINALIZING", "COMPLETED"]
        );
    }

    #[test]
    fn stop_marks_running_phase_stopped_and_persists() {
        let tl = plan(&input(None));
        let s = snapshot(&tl, 1003.5, Some(1003.5));
        assert!(s.complete);
        assert_eq!(s.build_status, "STOPPED");
        assert_eq!(s.end_time, Some(1003.5));
        assert_eq!(s.phases[3]["phaseType"], "DOWNLOAD_SOURCE");
        assert_eq!(s.phases[3]["phaseStatus"], "STOPPED");
        assert_eq!(s.phases[4]["phaseType"], "COMPLETED");
        // Much later it is still stopped.
        let later = snapshot(&tl, 9999.0, Some(1003.5));
        assert_eq!(later, s);
    }

    #[test]
    fn stop_after_completion_is_ignored() {
        let tl = plan(&input(None));
        let s = snapshot(&tl, 2000.0, Some(1500.0));
        assert_eq!(s.build_status, "SUCCEEDED");
    }

    #[test]
    fn timeout_cuts_the_running_phase() {
        let mut i = input(None);
        i.timeout_seconds = Some(6.5);
        let tl = plan(&i);
        assert_eq!(tl.status, Status::TimedOut);
        let s = snapshot(&tl, 5000.0, None);
        assert_eq!(s.build_status, "TIMED_OUT");
        assert_eq!(s.phases[6]["phaseType"], "BUILD");
        assert_eq!(s.phases[6]["phaseStatus"], "TIMED_OUT");
        assert_eq!(s.phases[6]["endTime"], 1006.5);
        assert_eq!(s.phases[7]["phaseType"], "FINALIZING");
        assert_eq!(s.end_time, Some(1007.5));
    }

    #[test]
    fn a_wait_for_a_slot_lengthens_queued_and_moves_the_deadline() {
        let mut i = input(None);
        i.queued_seconds = 5.0;
        i.timeout_seconds = Some(6.5);
        let tl = plan(&i);
        assert_eq!(tl.phases[1].phase, PhaseType::Queued);
        assert_eq!((tl.phases[1].start, tl.phases[1].end), (1001.0, 1007.0));
        // The timeout counts from the end of the wait: 1005 + 6.5 cuts BUILD at 1011.5.
        assert_eq!(tl.status, Status::TimedOut);
        assert_eq!(tl.phases[6].phase, PhaseType::Build);
        assert_eq!(tl.phases[6].end, 1011.5);
    }

    #[test]
    fn times_are_consistent() {
        let tl = plan(&input(Some(fail(PhaseType::PreBuild, Status::Failed))));
        let s = snapshot(&tl, 5000.0, None);
        let mut prev_end = 1000.0;
        for p in &s.phases {
            let start = p["startTime"].as_f64().unwrap_or(-1.0);
            assert_eq!(start, prev_end);
            if let Some(end) = p["endTime"].as_f64() {
                assert!(end >= start);
                prev_end = end;
            }
        }
        assert_eq!(s.end_time, Some(prev_end));
    }

    #[test]
    fn phase_finished_tracks_download_source() {
        let tl = plan(&input(None));
        assert!(!phase_finished(
            &tl,
            PhaseType::DownloadSource,
            1003.5,
            None
        ));
        assert!(phase_finished(&tl, PhaseType::DownloadSource, 1004.0, None));
        assert!(!phase_finished(
            &tl,
            PhaseType::DownloadSource,
            1009.0,
            Some(1002.0)
        ));
    }

    #[test]
    fn parse_phase_names() {
        assert_eq!(PhaseType::parse("build"), Some(PhaseType::Build));
        assert_eq!(PhaseType::parse("PRE_BUILD"), Some(PhaseType::PreBuild));
        assert_eq!(PhaseType::parse("nope"), None);
        assert_eq!(Status::parse_failure("timed_out"), Some(Status::TimedOut));
        assert_eq!(Status::parse_failure("SUCCEEDED"), None);
    }
}
