//! `CodeBuildRunPolicy`: which namespaces may start which CodeBuild projects, with which
//! StartBuild overrides, under whose AWS identity. Cluster-scoped, owned by cluster
//! administrators. Policies add up: a run is allowed when at least one policy allows all of
//! it; when none does, it is refused.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Grants the namespaces it selects the right to start the CodeBuild projects it names, in
/// the Regions it names, with the StartBuild overrides it allows. Enforced by the operator
/// when it runs with `--enforce-policies` (chart value `policy.enforce`): a CodeBuildRun
/// that no policy allows is refused with reason PolicyDenied and nothing is started.
// Each printcolumn(...) repeats `type_`: clippy reads that as a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "codebuild.operator.dev",
    version = "v1alpha1",
    kind = "CodeBuildRunPolicy",
    plural = "codebuildrunpolicies",
    singular = "codebuildrunpolicy",
    shortname = "cbrp",
    category = "codebuild",
    derive = "PartialEq",
    doc = "CodeBuildRunPolicy lets the namespaces it selects start the CodeBuild projects it names, with the overrides it allows, optionally under an IAM role of their own.",
    printcolumn(name = "Projects", type_ = "string", json_path = ".spec.projects"),
    printcolumn(name = "Role", type_ = "string", json_path = ".spec.roleArn"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CodeBuildRunPolicySpec {
    /// The namespaces this policy applies to, by their labels (`matchLabels`,
    /// `matchExpressions` with In, NotIn, Exists, DoesNotExist). `{}` selects every
    /// namespace; select one namespace by name with the label
    /// `kubernetes.io/metadata.name`.
    pub namespace_selector: LabelSelector,

    /// The projects runs may start, matched against `spec.projectName` as written (a name
    /// or an ARN): exact names, or glob patterns where `*` matches any characters and `?`
    /// one character, e.g. `team-a-*` or `arn:aws:codebuild:*:123456789012:project/team-a-*`.
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 512)))]
    pub projects: Vec<String>,

    /// The AWS Regions these projects may be started in (glob patterns, e.g. `eu-*`),
    /// compared with the run's `spec.operator.region`, or the operator's Region when the
    /// run names none. Unset: every Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 64)))]
    pub regions: Option<Vec<String>>,

    /// Which StartBuild members (everything in a CodeBuildRun's spec except `projectName`,
    /// `idempotencyToken` and `operator`) the runs may set, and which values some of them may
    /// take. Unset: no override at all; the runs may only name the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<OverrideRules>,

    /// An IAM role the operator assumes (STS AssumeRole, session name
    /// `codebuild-operator.<namespace>`, session tag `kubernetes-namespace`) to start,
    /// watch and stop the builds of the runs this policy allows, so each team's builds use
    /// its own role and account. Unset: the operator's own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$"))]
    pub role_arn: Option<String>,
}

/// The StartBuild overrides a policy allows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverrideRules {
    /// The members the runs may set, by their StartBuild names (`sourceVersion`,
    /// `environmentVariablesOverride`, ...), or `*` for all of them. Unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = override_member_names)]
    pub allowed: Option<Vec<String>>,

    /// Members the runs may not set, even when `allowed` lists them (or is `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = override_member_names)]
    pub denied: Option<Vec<String>>,

    /// The values `serviceRoleOverride` may take (glob patterns). Unset: any value, when
    /// the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub service_roles: Option<Vec<String>>,

    /// The values `imageOverride` may take (glob patterns, e.g.
    /// `aws/codebuild/standard:*`). Unset: any value, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub images: Option<Vec<String>>,

    /// The values `sourceLocationOverride` and the `location` of each
    /// `secondarySourcesOverride` may take (glob patterns, e.g.
    /// `https://github.com/my-org/*`). Unset: any value, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub source_locations: Option<Vec<String>>,
}

/// The value of `overrides.allowed` and `overrides.denied` that stands for every member.
pub const ALL_MEMBERS: &str = "*";

/// Members of the spec that are not overrides: the project itself, the idempotency token,
/// and the operator's own settings.
pub const NOT_OVERRIDES: &[&str] = &["projectName", "idempotencyToken", "operator"];

/// The StartBuild members a policy can allow or deny, read from the CodeBuildRun schema
/// itself (so a member added to the spec is covered), sorted.
pub fn override_members() -> Vec<String> {
    let schema = schemars::schema_for!(super::CodeBuildRunSpec);
    let mut members: Vec<String> = schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    members.retain(|m| !NOT_OVERRIDES.contains(&m.as_str()));
    members.sort();
    members
}

/// A list of member names: each item is a StartBuild member or `*`, so a typo is refused by
/// the apiserver with the valid names listed.
fn override_member_names(schema: &mut schemars::Schema) {
    let mut names: Vec<serde_json::Value> = vec![ALL_MEMBERS.into()];
    names.extend(override_members().into_iter().map(serde_json::Value::from));
    if let Some(items) = schema.get_mut("items").and_then(|i| i.as_object_mut()) {
        items.insert("enum".into(), serde_json::Value::Array(names));
    }
    schema.insert("maxItems".into(), 64.into());
    schema.insert("x-kubernetes-list-type".into(), "set".into());
}
