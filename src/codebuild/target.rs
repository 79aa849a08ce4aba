//! Where a CodeBuild call goes, and as whom: a Region, and optionally an IAM role the
//! operator assumes for the tenant the run belongs to.

use std::fmt;

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
