//! The label sets of the operator's metrics. Every value comes from a fixed set: outcomes,
//! error categories, operation names, build statuses, run states, AWS Region names. The only
//! exception is opt-in ([`PerRunLabels`]): a run's namespace and project, for clusters that
//! accept one series per namespace and project.

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

use crate::api::{CodeBuildRun, FINAL_BUILD_STATUSES};

/// The `region` of a Region the operator does not know (a typo in a spec, or a Region AWS
/// opened after this release): user input must not add label values.
pub const OTHER_REGION: &str = "other";

/// The `status` of a final build status the operator does not know.
pub const OTHER_STATUS: &str = "OTHER";

/// The AWS Regions with CodeBuild, as AWS names them (commercial, GovCloud, China, European
/// Sovereign Cloud). A Region outside this list is counted as [`OTHER_REGION`]; add new ones
/// here.
const AWS_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eusc-de-east-1",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// `region` as a label value: the Region's name when AWS has it, else [`OTHER_REGION`].
pub fn region_label(region: &str) -> &'static str {
    AWS_REGIONS
        .iter()
        .find(|r| **r == region)
        .copied()
        .unwrap_or(OTHER_REGION)
}

/// `status` as a label value: one of [`FINAL_BUILD_STATUSES`], else [`OTHER_STATUS`].
pub fn status_label(status: Option<&str>) -> &'static str {
    status
        .and_then(|s| FINAL_BUILD_STATUSES.iter().find(|f| **f == s).copied())
        .unwrap_or(OTHER_STATUS)
}

/// Which per-run labels the build and run metrics carry. Both off by default: each adds one
/// series per value (namespace, project) to every metric that carries it, which the
/// operator cannot bound. A cardinality choice for whoever runs Prometheus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerRunLabels {
    /// `run_namespace`: the run's namespace.
    pub namespace: bool,
    /// `project`: the run's CodeBuild project (`spec.projectName`).
    pub project: bool,
}

impl PerRunLabels {
    /// The labels of `run` this selection keeps.
    pub(super) fn of(&self, run: &CodeBuildRun) -> RunLabels {
        RunLabels {
            namespace: self
                .namespace
                .then(|| run.metadata.namespace.clone().unwrap_or_default()),
            project: self.project.then(|| run.spec.project_name.clone()),
        }
    }
}

/// The opt-in labels of one run: `run_namespace` and `project`, each present only when
/// chosen. (Not `namespace`: Prometheus attaches the scraped pod's own `namespace` to every
/// series and would rename ours to `exported_namespace`.)
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct RunLabels {
    namespace: Option<String>,
    project: Option<String>,
}

impl EncodeLabelSet for RunLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        if let Some(namespace) = &self.namespace {
            ("run_namespace", namespace.as_str()).encode(encoder.encode_label())?;
        }
        if let Some(project) = &self.project {
            ("project", project.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// `outcome` of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    pub outcome: &'static str,
}

/// `category` of an error (a fixed string per error variant).
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(super) struct CategoryLabels {
    pub category: &'static str,
}

/// `operation`, `outcome` (`success` or the error category) and `region` of a CodeBuild
/// call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(super) struct AwsCallLabels {
    pub operation: &'static str,
    pub outcome: &'static str,
    pub region: &'static str,
}

/// `operation` and `region` of one HTTP request to CodeBuild.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(super) struct AwsRequestLabels {
    pub operation: &'static str,
    pub region: &'static str,
}

/// `status` of a finished build.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(super) struct StatusLabels {
    pub status: &'static str,
}

/// `version` of the running binary.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(super) struct VersionLabels {
    pub version: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_input_cannot_add_label_values() {
        assert_eq!(region_label("eu-west-1"), "eu-west-1");
        assert_eq!(region_label("eu-west-1 "), OTHER_REGION);
        assert_eq!(region_label("mars-north-1"), OTHER_REGION);
        assert_eq!(status_label(Some("FAILED")), "FAILED");
        assert_eq!(status_label(Some("IN_PROGRESS")), OTHER_STATUS);
        assert_eq!(status_label(None), OTHER_STATUS);
    }

    #[test]
    fn regions_are_sorted_and_unique() {
        assert!(AWS_REGIONS.windows(2).all(|w| w[0] < w[1]));
    }
}
