//! Test and coverage reports in status (pure): which report ARNs of a run still need
//! reading, and `status.reports` from what BatchGetReports answered.
//!
//! A report is read once its build is final. It may still be GENERATING for a while after
//! the build ends: such a report is read again on later rounds, until it is final or
//! [`GIVE_UP_AFTER`] has passed since the build ended. Reports that are final in status are
//! never read again, so a finished run costs no call once its reports are in.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::{BuildInfo, BuildReports, CodeBuildRunStatus, ReportSummary};

/// How long after a build ended its reports are still read while they are GENERATING.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// The report status of a report still being produced.
pub const GENERATING: &str = "GENERATING";
/// The status given to a report CodeBuild lists in `reportsNotFound`.
pub const NOT_FOUND: &str = "NOT_FOUND";

/// What BatchGetReports said about one report.
#[derive(Clone, Debug, PartialEq)]
pub enum ReportAnswer {
    /// The report, as mirrored into status (`NOT_FOUND` status when CodeBuild does not know it).
    Report(ReportSummary),
    /// The call was refused (access denied): the message says why.
    Denied(String),
}

impl ReportAnswer {
    /// Whether the answer will not change any more when asked again.
    pub fn is_settled(&self) -> bool {
        match self {
            ReportAnswer::Report(r) => r.status.as_deref() != Some(GENERATING),
            ReportAnswer::Denied(_) => false,
        }
    }
}

/// The report ARNs of a run whose build is final that still need reading: those not in
/// `status.reports` for this build yet, or still GENERATING there, unless the build ended
/// more than [`GIVE_UP_AFTER`] before `now`.
pub fn reports_to_read(status: &CodeBuildRunStatus, now: Timestamp) -> Vec<String> {
    let build = &status.build;
    let arns = match (&build.report_arns, &build.build_id) {
        (Some(arns), Some(_)) if build.is_final() && !arns.is_empty() => arns,
        _ => return Vec::new(),
    };
    if given_up(build, now) {
        return Vec::new();
    }
    let known = known_items(status);
    arns.iter()
        .filter(|arn| {
            known
                .get(arn.as_str())
                .is_none_or(|r| r.status.as_deref() == Some(GENERATING))
        })
        .cloned()
        .collect()
}

/// Whether the build ended longer ago than [`GIVE_UP_AFTER`].
fn given_up(build: &BuildInfo, now: Timestamp) -> bool {
    build.end_time.as_ref().is_some_and(|end| {
        let ended = end.0.as_second();
        now.as_second().saturating_sub(ended) > GIVE_UP_AFTER.as_secs() as i64
    })
}

/// The reports status records for its current build, by ARN.
fn known_items(status: &CodeBuildRunStatus) -> HashMap<&str, &ReportSummary> {
    match (&status.reports, &status.build.build_id) {
        (Some(reports), Some(id)) if &reports.build_id == id => {
            reports.items.iter().map(|r| (r.arn.as_str(), r)).collect()
        }
        _ => HashMap::new(),
    }
}

/// `status.reports` for a run whose build is final, from the reports status already holds
/// and the reader's `answers` (by ARN). None while nothing is known about any report (no
/// write until there is something to show).
pub fn mirror_reports(
    status: &CodeBuildRunStatus,
    answers: &HashMap<String, ReportAnswer>,
    now: Timestamp,
) -> Option<BuildReports> {
    let build = &status.build;
    let build_id = build.build_id.clone()?;
    let arns = build.report_arns.as_ref().filter(|a| !a.is_empty())?;
    if !build.is_final() {
        return None;
    }
    let known = known_items(status);
    let mut denied = None;
    let mut items = Vec::new();
    for arn in arns {
        match answers.get(arn) {
            Some(ReportAnswer::Report(r)) => items.push(r.clone()),
            Some(ReportAnswer::Denied(message)) => {
                denied = Some(message.clone());
                items.extend(known.get(arn.as_str()).map(|r| (*r).clone()));
            }
            None => items.extend(known.get(arn.as_str()).map(|r| (*r).clone())),
        }
    }
    if items.is_empty() && denied.is_none() {
        return None;
    }
    let generating = items
        .iter()
        .any(|r| r.status.as_deref() == Some(GENERATING));
    let message = denied.or_else(|| {
        (generating && given_up(build, now)).then(|| {
            format!(
                "a report was still GENERATING {} minutes after the build ended; it is not read again",
                GIVE_UP_AFTER.as_secs() / 60
            )
        })
    });
    Some(BuildReports {
        build_id,
        tests: tests_column(&items),
        items,
        message,
    })
}

/// `passed/total` over the TEST reports that have a summary.
fn tests_column(items: &[ReportSummary]) -> Option<String> {
    let summaries: Vec<_> = items
        .iter()
        .filter_map(|r| r.test_summary.as_ref())
        .collect();
    if summaries.is_empty() {
        return None;
    }
    let total: i64 = summaries
        .iter()
        .map(|s| i64::from(s.total.unwrap_or(0)))
        .sum();
    let passed: i64 = summaries
        .iter()
        .filter_map(|s| s.status_counts.as_ref()?.get("SUCCEEDED"))
        .map(|n| i64::from(*n))
        .sum();
    Some(format!("{passed}/{total}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{TestReportSummary, sample_build};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::collections::BTreeMap;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn status_with(arns: &[&str], build_status: &str) -> CodeBuildRunStatus {
        let mut build = sample_build(build_status, "COMPLETED");
        build.report_arns = Some(arns.iter().map(|a| a.to_string()).collect());
        build.end_time = Some(Time(at(1000)));
        CodeBuildRunStatus {
            build,
            ..Default::default()
        }
    }

    fn test_report(arn: &str, status: &str, passed: i32, total: i32) -> ReportSummary {
        ReportSummary {
            arn: arn.into(),
            name: Some("unit".into()),
            type_: Some("TEST".into()),
            status: Some(status.into()),
            test_summary: (status != GENERATING).then(|| TestReportSummary {
                total: Some(total),
                status_counts: Some(BTreeMap::from([
                    ("SUCCEEDED".to_owned(), passed),
                    ("FAILED".to_owned(), total - passed),
                ])),
                duration_in_nano_seconds: Some(1_520_000_000),
            }),
            code_coverage_summary: None,
        }
    }

    #[test]
    fn only_final_builds_with_reports_are_read_and_only_until_settled() {
        let s = status_with(&["a", "b"], "FAILED");
        assert_eq!(reports_to_read(&s, at(1001)), vec!["a", "b"]);
        assert!(reports_to_read(&status_with(&["a"], "IN_PROGRESS"), at(1001)).is_empty());
        assert!(reports_to_read(&status_with(&[], "SUCCEEDED"), at(1001)).is_empty());
        let mut settled = s.clone();
        settled.reports = Some(BuildReports {
            build_id: "p:1".into(),
            items: vec![
                test_report("a", "FAILED", 40, 43),
                test_report("b", GENERATING, 0, 0),
            ],
            ..Default::default()
        });
        assert_eq!(reports_to_read(&settled, at(1001)), vec!["b"]);
        assert!(
            reports_to_read(&settled, at(1000 + 601)).is_empty(),
            "given up 10 minutes after the end"
        );
        settled.reports.as_mut().unwrap().build_id = "p:0".into();
        assert_eq!(
            reports_to_read(&settled, at(1001)),
            vec!["a", "b"],
            "another build's"
        );
    }

    #[test]
    fn the_mirror_sums_tests_and_keeps_what_status_knows() {
        let s = status_with(&["a", "b", "c"], "SUCCEEDED");
        assert_eq!(mirror_reports(&s, &HashMap::new(), at(1001)), None);
        let answers = HashMap::from([
            (
                "a".to_owned(),
                ReportAnswer::Report(test_report("a", "FAILED", 40, 43)),
            ),
            (
                "b".to_owned(),
                ReportAnswer::Report(test_report("b", "SUCCEEDED", 7, 7)),
            ),
        ]);
        let r = mirror_reports(&s, &answers, at(1001)).unwrap();
        assert_eq!(r.tests.as_deref(), Some("47/50"));
        assert_eq!(r.items.len(), 2);
        assert_eq!(r.message, None);
        // Later, the reader forgot them (settled); status keeps them.
        let mut later = s.clone();
        later.reports = Some(r.clone());
        assert_eq!(mirror_reports(&later, &HashMap::new(), at(2000)), Some(r));
    }

    #[test]
    fn a_denial_is_said_and_a_stuck_report_is_given_up() {
        let s = status_with(&["a"], "SUCCEEDED");
        let denied = HashMap::from([(
            "a".to_owned(),
            ReportAnswer::Denied("AccessDeniedException: no".into()),
        )]);
        let r = mirror_reports(&s, &denied, at(1001)).unwrap();
        assert!(r.items.is_empty());
        assert_eq!(r.message.as_deref(), Some("AccessDeniedException: no"));
        let generating = HashMap::from([(
            "a".to_owned(),
            ReportAnswer::Report(test_report("a", GENERATING, 0, 0)),
        )]);
        let r = mirror_reports(&s, &generating, at(1001)).unwrap();
        assert_eq!((r.tests, r.message), (None, None));
        let r = mirror_reports(&s, &generating, at(1000 + 601)).unwrap();
        assert!(r.message.unwrap().contains("still GENERATING"));
    }
}
