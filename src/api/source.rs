//! Source members of the StartBuild request: `ProjectSource`, its auth, submodules and
//! status-reporting settings, and secondary source versions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::api_enum;

api_enum! {
    /// Where the source code comes from: CODECOMMIT, CODEPIPELINE, GITHUB, GITLAB,
    /// GITLAB_SELF_MANAGED, S3, BITBUCKET, GITHUB_ENTERPRISE or NO_SOURCE.
    SourceType {
        Codecommit = "CODECOMMIT",
        Codepipeline = "CODEPIPELINE",
        Github = "GITHUB",
        Gitlab = "GITLAB",
        GitlabSelfManaged = "GITLAB_SELF_MANAGED",
        S3 = "S3",
        Bitbucket = "BITBUCKET",
        GithubEnterprise = "GITHUB_ENTERPRISE",
        NoSource = "NO_SOURCE",
    }
}

api_enum! {
    /// How CodeBuild authenticates to the source provider: OAUTH, CODECONNECTIONS (a
    /// CodeConnections / CodeStar connection ARN in `resource`) or SECRETS_MANAGER (a secret ARN
    /// in `resource`).
    SourceAuthType {
        Oauth = "OAUTH",
        Codeconnections = "CODECONNECTIONS",
        SecretsManager = "SECRETS_MANAGER",
    }
}

/// Credentials CodeBuild uses to reach the source provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceAuth {
    /// The kind of credential. Required.
    #[serde(rename = "type")]
    pub type_: SourceAuthType,
    /// The connection or secret ARN, for CODECONNECTIONS and SECRETS_MANAGER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// Whether the Git clone also fetches submodules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSubmodulesConfig {
    /// Fetch Git submodules for this build. Required.
    pub fetch_submodules: bool,
}

/// How the build's status is reported back to the source provider (GitHub, GitHub
/// Enterprise, GitLab, Bitbucket) as a commit status or check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildStatusConfig {
    /// The context (GitHub, GitLab: the status name; Bitbucket: the `name`) of the reported
    /// status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The URL the reported status links to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

/// One source of a build: the provider, where the code is, and how to fetch it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSource {
    /// The source provider. Required.
    #[serde(rename = "type")]
    pub type_: SourceType,
    /// Where the source is: a repository URL for Git providers, `bucket/path/object.zip` for
    /// S3; not used with CODEPIPELINE or NO_SOURCE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Depth of the Git clone; 0 clones the full history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub git_clone_depth: Option<i32>,
    /// Whether to fetch Git submodules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_submodules_config: Option<GitSubmodulesConfig>,
    /// The buildspec for this source: inline YAML, a path relative to the source root, or an
    /// S3 object ARN. Empty means `buildspec.yml` at the source root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildspec: Option<String>,
    /// Credentials for the source provider (CodeBuild console and API use only; most
    /// projects set this once on the project instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SourceAuth>,
    /// Report the build's start and end to the source provider (GitHub, GitHub Enterprise,
    /// GitLab, Bitbucket only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_build_status: Option<bool>,
    /// How the reported status is named and where it links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_status_config: Option<BuildStatusConfig>,
    /// Ignore TLS warnings when connecting to a GitHub Enterprise source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_ssl: Option<bool>,
    /// Names a secondary source, so `secondarySourcesVersionOverride` and the buildspec can
    /// refer to it (`$CODEBUILD_SRC_DIR_<sourceIdentifier>`). Letters, digits and
    /// underscores, fewer than 128 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 127), regex(pattern = r"^[A-Za-z0-9_]+$"))]
    pub source_identifier: Option<String>,
}

/// The version to build for one secondary source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSourceVersion {
    /// The `sourceIdentifier` of the secondary source. Required.
    pub source_identifier: String,
    /// The version of that source: a commit ID, branch, tag or `pr/<number>` for Git
    /// providers, an object version ID for S3. Required.
    pub source_version: String,
}
