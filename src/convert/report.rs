//! The SDK's `Report` (BatchGetReports) -> one report in `status.reports`.

use std::collections::BTreeMap;

use aws_sdk_codebuild::types as aws;

use crate::api::{CodeCoverageReportSummary, ReportSummary, TestReportSummary};

/// The mirrored part of `report`: name, type, status, test counts and duration, coverage.
pub fn report_summary(report: &aws::Report) -> ReportSummary {
    ReportSummary {
        arn: report.arn.clone().unwrap_or_default(),
        name: report.name.clone().filter(|n| !n.is_empty()),
        type_: report.r#type.as_ref().map(|t| t.as_str().to_owned()),
        status: report.status.as_ref().map(|s| s.as_str().to_owned()),
        test_summary: report.test_summary.as_ref().map(|t| TestReportSummary {
            total: Some(t.total),
            status_counts: Some(
                t.status_counts
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect::<BTreeMap<_, _>>(),
            ),
            duration_in_nano_seconds: Some(t.duration_in_nano_seconds),
        }),
        code_coverage_summary: report.code_coverage_summary.as_ref().map(|c| {
            CodeCoverageReportSummary {
                line_coverage_percentage: c.line_coverage_percentage,
                lines_covered: c.lines_covered,
                lines_missed: c.lines_missed,
                branch_coverage_percentage: c.branch_coverage_percentage,
                branches_covered: c.branches_covered,
                branches_missed: c.branches_missed,
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_codebuild::types::{ReportStatusType, ReportType};

    #[test]
    fn a_test_report_keeps_its_counts() {
        let report = aws::Report::builder()
            .arn("arn:aws:codebuild:us-east-1:1:report/p-unit:u")
            .name("p-unit")
            .r#type(ReportType::Test)
            .status(ReportStatusType::Failed)
            .test_summary(
                aws::TestReportSummary::builder()
                    .total(43)
                    .status_counts("SUCCEEDED", 40)
                    .status_counts("FAILED", 3)
                    .duration_in_nano_seconds(1_520_000_000)
                    .build()
                    .unwrap(),
            )
            .build();
        let s = report_summary(&report);
        assert_eq!(s.type_.as_deref(), Some("TEST"));
        assert_eq!(s.status.as_deref(), Some("FAILED"));
        let t = s.test_summary.unwrap();
        assert_eq!(t.total, Some(43));
        assert_eq!(t.status_counts.unwrap()["SUCCEEDED"], 40);
        assert_eq!(s.code_coverage_summary, None);
    }
}
