//! Where a CodeBuild call goes, and as whom: a Region, and optionally an IAM role the
//! operator assumes for the tenant the run belongs to.

use std::fmt;

use kube::ResourceExt;

use crate::api::{CodeBuildRun, StartAttempt};

/// An IAM role assumed (STS AssumeRole) for the runs of one namespace.
///
/// Credentials are cached per role and namespace: the session name and the session tag
/// name the namespace, so CloudTrail shows which tenant each call was made for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssumedRole {
    /// The role's ARN.
    pub role_arn: String,
    /// The namespace of the runs the role is assumed for.
    pub namespace: String,
}

/// The target of a CodeBuild call: a Region and the identity to call it with.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// The AWS Region.
    pub region: String,
    /// The role to assume; None calls with the operator's own credentials.
    pub role: Option<AssumedRole>,
}

impl Target {
    /// A Region, called with the operator's own credentials.
    pub fn region(region: impl Into<String>) -> Self {
        Target {
            region: region.into(),
            role: None,
        }
    }

    /// A Region, called with the credentials of `role`.
    pub fn with_role(region: impl Into<String>, role: Option<AssumedRole>) -> Self {
        Target {
            region: region.into(),
            role,
        }
    }

    /// Where the calls for `run` go: see [`Target::of_attempt`].
    pub fn for_run(run: &CodeBuildRun, default_region: &str) -> Target {
        let attempt = run.status.as_ref().and_then(|s| s.start_attempt.as_ref());
        let region = run.spec.options().region;
        Target::of_attempt(
            attempt,
            &run.namespace().unwrap_or_default(),
            region.as_deref().unwrap_or(default_region),
        )
    }

    /// Where the calls for a run of `namespace` go: the Region and role of its recorded
    /// start `attempt` (written by the operator to status before StartBuild, so a later
    /// policy change cannot move a started build to another identity), else `run_region`
    /// with the operator's own identity.
    pub fn of_attempt(attempt: Option<&StartAttempt>, namespace: &str, run_region: &str) -> Target {
        let Some(attempt) = attempt else {
            return Target::region(run_region);
        };
        let role = attempt.role_arn.clone().map(|role_arn| AssumedRole {
            role_arn,
            namespace: namespace.to_owned(),
        });
        Target::with_role(attempt.region.clone(), role)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.role {
            None => f.write_str(&self.region),
            Some(role) => write!(f, "{} as {}", self.region, role.role_arn),
        }
    }
}

impl AssumedRole {
    /// The STS session name: `codebuild-operator.<namespace>`, within STS's 64 characters
    /// (a namespace name is at most 63, so long names are cut).
    pub fn session_name(&self) -> String {
        let mut name = format!("codebuild-operator.{}", self.namespace);
        name.truncate(64);
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_name_fits_sts_limits() {
        let role = AssumedRole {
            role_arn: "arn:aws:iam::1:role/r".into(),
            namespace: "n".repeat(63),
        };
        let name = role.session_name();
        assert_eq!(name.len(), 64);
        assert!(name.starts_with("codebuild-operator.nnn"));
        let short = AssumedRole {
            namespace: "team-a".into(),
            ..role
        };
        assert_eq!(short.session_name(), "codebuild-operator.team-a");
    }
}
