//! Test and code coverage reports a build uploads, chosen by `CODEBUILD_SIM_REPORTS`: listed in
//! `Build.reportArns` once POST_BUILD has ended (CodeBuild collects report files after it),
//! GENERATING until a phase length after the build ends, then final; read with
//! BatchGetReports.
//!
//! `CODEBUILD_SIM_REPORTS` is `report;report;...`, each `NAME:TYPE[:field,field,...]`:
//! - `unit:TEST:succeeded=40,failed=2,skipped=1,error=0,unknown=0,durationMs=1520`
//! - `coverage:CODE_COVERAGE:lines=812/1000,branches=120/200`
//!
//! and either may add `status=SUCCEEDED|FAILED|INCOMPLETE`. A test report is FAILED when a test
//! failed or erred, else SUCCEEDED; a coverage report is SUCCEEDED. As for report groups a
//! buildspec defines, the report group is named `<project>-<NAME>`.

use crate::lifecycle::{PhaseType, Timeline, ts};
use crate::logs::text::{fnv, mix};
use crate::outcome::last_value;
use serde_json::{Map, Value, json};

pub const REPORTS: &str = "CODEBUILD_SIM_REPORTS";
/// Reports expire 30 days after they are created.
pub const EXPIRY_SECONDS: f64 = 30.0 * 24.0 * 3600.0;

/// What a report says once it is final.
#[derive(Clone, Debug, PartialEq)]
pub enum Summary {
    Test {
        succeeded: u32,
        failed: u32,
        skipped: u32,
        error: u32,
        unknown: u32,
        duration_ms: u64,
    },
    Coverage {
        lines_covered: u32,
        lines_missed: u32,
        branches_covered: u32,
        branches_missed: u32,
    },
}

/// One report asked for in `CODEBUILD_SIM_REPORTS`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportSpec {
    pub name: String,
    pub summary: Summary,
    /// The final status when it is not the one the counts imply.
    pub status: Option<&'static str>,
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{REPORTS}: {key} must be a non-negative integer, got '{v}'"))
}

/// `covered/total` as (covered, missed).
fn fraction(key: &str, v: &str) -> Result<(u32, u32), String> {
    let (covered, total) = v
        .split_once('/')
        .ok_or_else(|| format!("{REPORTS}: {key} must be COVERED/TOTAL, got '{v}'"))?;
    let (covered, total): (u32, u32) = (number(key, covered)?, number(key, total)?);
    if covered > total {
        return Err(format!(
            "{REPORTS}: {key} covers more than its total: '{v}'"
        ));
    }
    Ok((covered, total - covered))
}

fn final_status(v: &str) -> Result<&'static str, String> {
    match v.trim().to_ascii_uppercase().as_str() {
        "SUCCEEDED" => Ok("SUCCEEDED"),
        "FAILED" => Ok("FAILED"),
        "INCOMPLETE" => Ok("INCOMPLETE"),
        _ => Err(format!(
            "{REPORTS}: status must be SUCCEEDED, FAILED or INCOMPLETE, got '{v}'"
        )),
    }
}

fn valid_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A summary of report type `kind` with every count at zero.
fn empty_summary(kind: &str) -> Result<Summary, String> {
    match kind {
        "TEST" => Ok(Summary::Test {
            succeeded: 0,
            failed: 0,
            skipped: 0,
            error: 0,
            unknown: 0,
            duration_ms: 0,
        }),
        "CODE_COVERAGE" | "COVERAGE" => Ok(Summary::Coverage {
            lines_covered: 0,
            lines_missed: 0,
            branches_covered: 0,
            branches_missed: 0,
        }),
        _ => Err(format!(
            "{REPORTS}: type must be TEST or CODE_COVERAGE, got '{kind}'"
        )),
    }
}

/// Sets the count `key` (lower case) of a summary; false when it has no such count.
fn set_count(summary: &mut Summary, key: &str, v: &str) -> Result<bool, String> {
    let slot = match (summary, key) {
        (Summary::Test { succeeded, .. }, "succeeded") => succeeded,
        (Summary::Test { failed, .. }, "failed") => failed,
        (Summary::Test { skipped, .. }, "skipped") => skipped,
        (Summary::Test { error, .. }, "error") => error,
        (Summary::Test { unknown, .. }, "unknown") => unknown,
        (
            Summary::Coverage {
                lines_covered,
                lines_missed,
                ..
            },
            "lines",
        ) => {
            (*lines_covered, *lines_missed) = fraction(key, v)?;
            return Ok(true);
        }
        (
            Summary::Coverage {
                branches_covered,
                branches_missed,
                ..
            },
            "branches",
        ) => {
            (*branches_covered, *branches_missed) = fraction(key, v)?;
            return Ok(true);
        }
        _ => return Ok(false),
    };
    *slot = number(key, v)?;
    Ok(true)
}

/// Parses one `NAME:TYPE[:fields]` entry.
fn parse_one(entry: &str) -> Result<ReportSpec, String> {
    let mut parts = entry.trim().splitn(3, ':');
    let name = parts.next().unwrap_or_default().trim().to_string();
    if !valid_name(&name) {
        return Err(format!(
            "{REPORTS}: report names are 1..100 letters, digits, '-' or '_', got '{name}'"
        ));
    }
    let kind = parts.next().unwrap_or_default().trim().to_ascii_uppercase();
    let mut summary = empty_summary(&kind)?;
    let (mut status, mut duration) = (None, None);
    for field in parts.next().unwrap_or_default().split(',').map(str::trim) {
        if field.is_empty() {
            continue;
        }
        let (key, v) = field
            .split_once('=')
            .ok_or_else(|| format!("{REPORTS}: fields are key=value, got '{field}'"))?;
        let key = key.trim().to_ascii_lowercase();
        let is_test = matches!(summary, Summary::Test { .. });
        match key.as_str() {
            "status" => status = Some(final_status(v)?),
            "durationms" if is_test => duration = Some(number(&key, v)?),
            _ if set_count(&mut summary, &key, v)? => {}
            _ => {
                return Err(format!(
                    "{REPORTS}: unknown field '{key}' for a {kind} report"
                ));
            }
        }
    }
    let total = test_total(&summary);
    if let Summary::Test { duration_ms, .. } = &mut summary {
        *duration_ms = duration.unwrap_or(total * 25);
    }
    Ok(ReportSpec {
        name,
        summary,
        status,
    })
}

/// Parses `CODEBUILD_SIM_REPORTS` from the build's variables (none: no reports).
pub fn parse(vars: &[(String, String)]) -> Result<Vec<ReportSpec>, String> {
    let Some(value) = last_value(vars, REPORTS) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<ReportSpec> = Vec::new();
    for entry in value.split(';').filter(|e| !e.trim().is_empty()) {
        let spec = parse_one(entry)?;
        if out.iter().any(|r| r.name == spec.name) {
            return Err(format!("{REPORTS}: report '{}' is named twice", spec.name));
        }
        out.push(spec);
    }
    Ok(out)
}

/// A report of one build, placed in time.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedReport {
    pub arn: String,
    pub group_name: String,
    pub group_arn: String,
    /// The build's ARN.
    pub execution_id: String,
    pub spec: ReportSpec,
    /// When it appears in `reportArns` (the end of POST_BUILD).
    pub created: f64,
    /// How long after the build ends it stays GENERATING.
    pub settle_seconds: f64,
}

/// Where a build's reports go.
#[derive(Clone, Debug)]
pub struct Owner<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub project: &'a str,
    pub build_id: &'a str,
    pub build_arn: &'a str,
}

/// A stable uuid for a report of a build.
fn report_uuid(build_id: &str, name: &str) -> String {
    let a = mix(fnv(build_id), fnv(name));
    let b = mix(a, 0x7265_706f_7274);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The reports of a build with this timeline; none when POST_BUILD never runs.
pub fn plan(
    specs: &[ReportSpec],
    owner: &Owner,
    tl: &Timeline,
    phase_seconds: f64,
) -> Vec<PlannedReport> {
    let Some(post_build) = tl.phases.iter().find(|p| p.phase == PhaseType::PostBuild) else {
        return Vec::new();
    };
    specs
        .iter()
        .map(|spec| {
            let group_name = format!("{}-{}", owner.project, spec.name);
            let prefix = format!("arn:aws:codebuild:{}:{}", owner.region, owner.account);
            PlannedReport {
                arn: format!(
                    "{prefix}:report/{group_name}:{}",
                    report_uuid(owner.build_id, &spec.name)
                ),
                group_arn: format!("{prefix}:report-group/{group_name}"),
                group_name,
                execution_id: owner.build_arn.to_string(),
                spec: spec.clone(),
                created: post_build.end,
                settle_seconds: phase_seconds.max(0.0),
            }
        })
        .collect()
}

impl PlannedReport {
    /// Whether it exists at `now` for a build stopped at `stopped_at` (if it was).
    pub fn exists(&self, now: f64, stopped_at: Option<f64>) -> bool {
        self.created <= now && stopped_at.is_none_or(|s| s >= self.created)
    }

    fn final_status(&self) -> &'static str {
        self.spec.status.unwrap_or(match self.spec.summary {
            Summary::Test { failed, error, .. } if failed > 0 || error > 0 => "FAILED",
            _ => "SUCCEEDED",
        })
    }

    /// The Report as BatchGetReports shows it at `now`; `ended` is when the build ended.
    pub fn render(&self, now: f64, ended: Option<f64>) -> Value {
        let mut m = Map::new();
        m.insert("arn".into(), json!(self.arn));
        let kind = match self.spec.summary {
            Summary::Test { .. } => "TEST",
            Summary::Coverage { .. } => "CODE_COVERAGE",
        };
        m.insert("type".into(), json!(kind));
        m.insert("name".into(), json!(self.group_name));
        m.insert("reportGroupArn".into(), json!(self.group_arn));
        m.insert("executionId".into(), json!(self.execution_id));
        let done = ended.is_some_and(|e| e + self.settle_seconds <= now);
        let status = if done {
            self.final_status()
        } else {
            "GENERATING"
        };
        m.insert("status".into(), json!(status));
        m.insert("created".into(), json!(ts(self.created)));
        m.insert("expired".into(), json!(ts(self.created + EXPIRY_SECONDS)));
        m.insert(
            "exportConfig".into(),
            json!({"exportConfigType": "NO_EXPORT"}),
        );
        m.insert("truncated".into(), json!(false));
        if done {
            let (key, summary) = summary_json(&self.spec.summary);
            m.insert(key.into(), summary);
        }
        Value::Object(m)
    }
}

/// The number of test cases in a test summary (0 for coverage).
fn test_total(summary: &Summary) -> u64 {
    match *summary {
        Summary::Test {
            succeeded,
            failed,
            skipped,
            error,
            unknown,
            ..
        } => [succeeded, failed, skipped, error, unknown]
            .into_iter()
            .map(u64::from)
            .sum(),
        Summary::Coverage { .. } => 0,
    }
}

fn percent(covered: u32, missed: u32) -> f64 {
    let total = f64::from(covered) + f64::from(missed);
    if total == 0.0 {
        0.0
    } else {
        (f64::from(covered) / total * 10_000.0).round() / 100.0
    }
}

fn summary_json(summary: &Summary) -> (&'static str, Value) {
    match *summary {
        Summary::Test {
            succeeded,
            failed,
            skipped,
            error,
            unknown,
            duration_ms,
        } => (
            "testSummary",
            json!({
                "total": test_total(summary),
                "statusCounts": {
                    "SUCCEEDED": succeeded, "FAILED": failed, "SKIPPED": skipped,
                    "ERROR": error, "UNKNOWN": unknown
                },
                "durationInNanoSeconds": duration_ms * 1_000_000,
            }),
        ),
        Summary::Coverage {
            lines_covered,
            lines_missed,
            branches_covered,
            branches_missed,
        } => (
            "codeCoverageSummary",
            json!({
                "lineCoveragePercentage": percent(lines_covered, lines_missed),
                "linesCovered": lines_covered,
                "linesMissed": lines_missed,
                "branchCoveragePercentage": percent(branches_covered, branches_missed),
                "branchesCovered": branches_covered,
                "branchesMissed": branches_missed,
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{PlanInput, plan as plan_timeline};

    fn vars(v: &str) -> Vec<(String, String)> {
        vec![(REPORTS.to_string(), v.to_string())]
    }

    #[test]
    fn parses_tests_and_coverage() {
        let specs = parse(&vars(
            "unit:TEST:succeeded=40,failed=2,skipped=1,durationMs=1520; cov:CODE_COVERAGE:lines=812/1000,branches=120/200,status=INCOMPLETE",
        ))
        .unwrap_or_default();
        assert_eq!(specs.len(), 2);
        assert_eq!(
            specs[0].summary,
            Summary::Test {
                succeeded: 40,
                failed: 2,
                skipped: 1,
                error: 0,
                unknown: 0,
                duration_ms: 1520
            }
        );
        assert_eq!(
            specs[1].summary,
            Summary::Coverage {
                lines_covered: 812,
                lines_missed: 188,
                branches_covered: 120,
                branches_missed: 80
            }
        );
        assert_eq!(specs[1].status, Some("INCOMPLETE"));
        assert_eq!(parse(&[]), Ok(vec![]));
    }

    #[test]
    fn bad_specs_are_errors() {
        for bad in [
            "unit",
            "unit:BENCH",
            "bad name:TEST",
            "u:TEST:failed=x",
            "u:TEST:lines=1/2",
            "c:CODE_COVERAGE:lines=3/2",
            "c:CODE_COVERAGE:lines=3",
            "u:TEST:status=GENERATING",
            "u:TEST;u:TEST",
            "u:TEST:failed",
        ] {
            assert!(parse(&vars(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn reports_appear_after_post_build_and_settle_after_the_end() {
        let tl = plan_timeline(&PlanInput {
            start: 1000.0,
            phase_seconds: 1.0,
            failure: None,
            timeout_seconds: None,
            queued_seconds: 0.0,
        });
        let owner = Owner {
            region: "us-east-1",
            account: "123456789012",
            project: "proj",
            build_id: "proj:u",
            build_arn: "arn:aws:codebuild:us-east-1:123456789012:build/proj:u",
        };
        let specs = parse(&vars(
            "unit:TEST:succeeded=3,failed=1;cov:COVERAGE:lines=1/3",
        ))
        .unwrap_or_default();
        let reports = plan(&specs, &owner, &tl, 1.0);
        let r = &reports[0];
        assert!(
            r.arn
                .starts_with("arn:aws:codebuild:us-east-1:123456789012:report/proj-unit:")
        );
        assert_eq!(
            r.group_arn,
            "arn:aws:codebuild:us-east-1:123456789012:report-group/proj-unit"
        );
        assert_eq!(r.arn, plan(&specs, &owner, &tl, 1.0)[0].arn, "stable");
        assert_eq!(r.created, 1008.0);
        assert!(!r.exists(1007.9, None) && r.exists(1008.0, None));
        assert!(!r.exists(1009.0, Some(1007.0)));
        let generating = r.render(1009.0, None);
        assert_eq!(generating["status"], "GENERATING");
        assert!(generating.get("testSummary").is_none());
        let done = r.render(1011.0, Some(1010.0));
        assert_eq!(done["status"], "FAILED");
        assert_eq!(
            done["testSummary"],
            json!({"total": 4, "statusCounts": {"SUCCEEDED": 3, "FAILED": 1, "SKIPPED": 0, "ERROR": 0, "UNKNOWN": 0}, "durationInNanoSeconds": 100_000_000u64})
        );
        let cov = reports[1].render(1011.0, Some(1010.0));
        assert_eq!(cov["status"], "SUCCEEDED");
        assert_eq!(cov["codeCoverageSummary"]["lineCoveragePercentage"], 33.33);
        assert_eq!(cov["codeCoverageSummary"]["branchCoveragePercentage"], 0.0);
    }
}
