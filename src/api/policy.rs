//! `CodeBuildRunPolicy`: which namespaces may start which CodeBuild projects, with which
//! StartBuild overrides, under whose AWS identity. Cluster-scoped, owned by cluster
//! administrators. Policies add up: a run is allowed when at least one policy allows all of
//! it; when none does, it is refused.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ComputeType, EnvironmentType, EnvironmentVariableType};

/// Grants the namespaces it selects the right to start the CodeBuild projects it names, in
/// the Regions it names, with the StartBuild overrides it allows. Enforced by the operator
/// when it runs with `--enforce-policies` (chart value `policy.enforce`): a CodeBuildRun
/// (or CodeBuildBatchRun) that no policy allows is refused with reason PolicyDenied and
/// nothing is started.
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
    status = "CodeBuildRunPolicyStatus",
    doc = "CodeBuildRunPolicy lets the namespaces it selects start the CodeBuild projects it names, with the overrides it allows, optionally under an IAM role of their own.",
    printcolumn(name = "Projects", type_ = "string", json_path = ".spec.projects"),
    printcolumn(name = "Role", type_ = "string", json_path = ".spec.roleArn"),
    printcolumn(
        name = "Unconstrained",
        type_ = "string",
        json_path = ".status.unconstrainedOverrides"
    ),
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

    /// Which StartBuild and StartBuildBatch members (everything in a CodeBuildRun's or a
    /// CodeBuildBatchRun's spec except `projectName`, `idempotencyToken` and `operator`) the
    /// runs and batch runs may set (`allowed`, `denied`), and which
    /// values the members that name a resource, a secret or a cost may take (the value
    /// rules, every other field). A value rule only narrows a member `allowed` lets runs
    /// set; an allowed member without a value rule may take any value, and the policy's
    /// `status.unconstrainedOverrides` lists the members that name a resource and have
    /// none. Patterns are globs: `*` matches any characters, `/` and `:` included, `?` one
    /// character; write account ids, Regions and bucket names literally and put `*` only
    /// where any text is harmless (usually at the end). Unset: no override at all; the runs
    /// may only name the project.
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

/// The StartBuild overrides a policy allows: which members runs may set, and which values
/// the members that name a resource, a secret or a cost may take (see
/// `CodeBuildRunPolicySpec::overrides`, whose words `kubectl explain` shows).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverrideRules {
    /// The members the runs may set, by their StartBuild or StartBuildBatch names
    /// (`sourceVersion`, `environmentVariablesOverride`, `buildBatchConfigOverride`, ...), or
    /// `*` for all of them. Unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = override_member_names)]
    pub allowed: Option<Vec<String>>,

    /// Members the runs may not set, even when `allowed` lists them (or is `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = override_member_names)]
    pub denied: Option<Vec<String>>,

    /// The values `serviceRoleOverride` (and a batch run's
    /// `buildBatchConfigOverride.serviceRole`) may take (globs), e.g.
    /// `arn:aws:iam::111111111111:role/team-a-ci-*`. Unset: any value, when the member is
    /// allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub service_roles: Option<Vec<String>>,

    /// The values `imageOverride` may take (globs), e.g. `aws/codebuild/standard:*`. Unset:
    /// any value, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub images: Option<Vec<String>>,

    /// The values `sourceLocationOverride` and the `location` of each
    /// `secondarySourcesOverride` may take (globs), e.g. `https://github.com/my-org/*`.
    /// Unset: any value, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub source_locations: Option<Vec<String>>,

    /// The source credentials `sourceAuthOverride` and the `auth` of each
    /// `secondarySourcesOverride` may use (globs): the `resource` (a CodeConnections
    /// connection or Secrets Manager secret ARN), or the type `OAUTH` for the account's
    /// OAuth connection, which names none; e.g.
    /// `arn:aws:codeconnections:us-east-1:111111111111:connection/0123abcd-*`. Unset: any,
    /// when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub source_auth_resources: Option<Vec<String>>,

    /// The names `environmentVariablesOverride` may set (globs), e.g. `STAGE`, `APP_*`. A
    /// variable the build's shell or tools read (`BASH_ENV`, `LD_PRELOAD`, `NODE_OPTIONS`,
    /// `PATH`, ...) changes what the project's buildspec runs, and a name the project
    /// already uses replaces its value. Unset: any name, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub environment_variable_names: Option<Vec<String>>,

    /// The types the variables of `environmentVariablesOverride` may have: PLAINTEXT (also
    /// a variable without a type), PARAMETER_STORE, SECRETS_MANAGER; e.g. `[PLAINTEXT]`,
    /// which keeps runs from reading any parameter or secret. Unset: every type, when the member is
    /// allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 3))]
    pub environment_variable_types: Option<Vec<EnvironmentVariableType>>,

    /// The Systems Manager parameters the PARAMETER_STORE variables of
    /// `environmentVariablesOverride` may read: globs over the variable's value, the
    /// parameter name or ARN, e.g. `/team-a/*`. Unset: any parameter
    /// the project's service role can read, when the member and the type are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub parameter_names: Option<Vec<String>>,

    /// The Secrets Manager secrets the SECRETS_MANAGER variables of
    /// `environmentVariablesOverride` may read: globs over the variable's whole value, `secret-id:json-key:version-stage:version-id` with the
    /// secret's name or ARN as `secret-id`, e.g. `team-a/*` or
    /// `arn:aws:secretsmanager:us-east-1:111111111111:secret:team-a/*`. Unset: any secret
    /// the project's service role can read, when the member and the type are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub secrets: Option<Vec<String>>,

    /// Where `artifactsOverride` and each `secondaryArtifactsOverride` may write (globs)
    /// over `<location>/<path>/`, the bucket and key prefix of an artifact of type S3 or one
    /// that names a location, e.g. `team-a-artifacts/*` (a whole bucket) or
    /// `shared-artifacts/team-a/*` (one prefix of a bucket). A value with a `..` path
    /// segment is refused. The object name (which the buildspec may set) is not checked: give each
    /// team its own bucket where a prefix is not boundary enough. Unset: any bucket the
    /// project's service role can write, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub artifact_locations: Option<Vec<String>>,

    /// Where `cacheOverride` may keep an S3 cache (globs) over its `location` with a
    /// trailing `/` (`bucket/` or `bucket/prefix/`), e.g. `build-cache/team-a/*`. A value
    /// with a `..` path segment is refused. LOCAL and NO_CACHE caches name no location.
    /// Unset: any bucket the project's service role can read and write, when the member is
    /// allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub cache_locations: Option<Vec<String>>,

    /// The CloudWatch Logs groups `logsConfigOverride.cloudWatchLogs.groupName` may name
    /// (globs), e.g. `/codebuild/team-a/*`. Unset: any group, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub log_groups: Option<Vec<String>>,

    /// Where `logsConfigOverride.s3Logs` may write (globs), over its `location` with a
    /// trailing `/` when S3 logs are ENABLED or a location is named, e.g.
    /// `build-logs/team-a/*`. A value with a `..` path segment is refused. Unset: any
    /// bucket, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub log_locations: Option<Vec<String>>,

    /// The Secrets Manager secrets `registryCredentialOverride.credential` may name (globs
    /// over the ARN or name), e.g.
    /// `arn:aws:secretsmanager:us-east-1:111111111111:secret:team-a/registry-*`. Unset: any,
    /// when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub registry_credentials: Option<Vec<String>>,

    /// The S3 objects `certificateOverride` may name (globs over `bucket/key`), e.g.
    /// `team-a-certs/*`. A value with a `..` path segment is refused. Unset: any object,
    /// when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub certificates: Option<Vec<String>>,

    /// The KMS keys `encryptionKeyOverride` may name (globs over the key ARN or
    /// `alias/<name>`), e.g. `arn:aws:kms:us-east-1:111111111111:alias/team-a-*`. Unset: any
    /// key, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub encryption_keys: Option<Vec<String>>,

    /// The reserved-capacity fleets `fleetOverride.fleetArn` (and each of a batch run's
    /// `buildBatchConfigOverride.restrictions.fleetsAllowed`) may name (globs), e.g.
    /// `arn:aws:codebuild:us-east-1:111111111111:fleet/team-a-*`. Unset: any fleet, when the
    /// member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub fleets: Option<Vec<String>>,

    /// The machine sizes `computeTypeOverride` may choose (and a batch run's
    /// `buildBatchConfigOverride.restrictions.computeTypesAllowed` may list), e.g.
    /// `[BUILD_GENERAL1_SMALL, BUILD_GENERAL1_MEDIUM]`. Unset: any, when the member is
    /// allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub compute_types: Option<Vec<ComputeType>>,

    /// The kinds of build environment `environmentTypeOverride` may choose, e.g.
    /// `[LINUX_CONTAINER, ARM_CONTAINER]`. Unset: any, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub environment_types: Option<Vec<EnvironmentType>>,

    /// The longest build `timeoutInMinutesOverride` may ask for, in minutes, e.g. `60`;
    /// for a batch run, its `buildTimeoutInMinutesOverride` (each build) and
    /// `buildBatchConfigOverride.timeoutInMins` (the whole batch). Unset: up to CodeBuild's
    /// 2160 for a build, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 2160))]
    pub max_timeout_in_minutes: Option<i32>,

    /// The longest wait in the queue `queuedTimeoutInMinutesOverride` may ask for, in
    /// minutes, e.g. `60`. Unset: up to CodeBuild's 480, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 480))]
    pub max_queued_timeout_in_minutes: Option<i32>,

    /// The most automatic retries `autoRetryLimitOverride` may ask for (each retry is a
    /// new, paid build), e.g. `1`. Unset: any, when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_auto_retry_limit: Option<i32>,

    /// Whether `privilegedModeOverride` may turn privileged mode on (a Docker daemon in the
    /// build, root on its host): `false` lets runs only turn it off. Unset: either, when
    /// the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged_mode: Option<bool>,

    /// Whether `debugSessionEnabled` may be `true` (a Session Manager shell in the running
    /// build, with its credentials): `false` lets runs only set `false`. Unset: either,
    /// when the member is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_sessions: Option<bool>,
}

/// What the operator found in a CodeBuildRunPolicy (written by the operator's leader).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodeBuildRunPolicyStatus {
    /// The `metadata.generation` of the policy this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The members this policy allows that name a resource, a secret or a code path, and
    /// that it allows without (all of) their value rules: runs may name any such resource
    /// the build's roles reach. Empty when every one is constrained.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unconstrained_overrides: Vec<String>,

    /// The warning, in words: each unconstrained member and the rules that would
    /// constrain it. Absent when there is nothing to warn about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The value of `overrides.allowed` and `overrides.denied` that stands for every member.
pub const ALL_MEMBERS: &str = "*";

/// Members of the spec that are not overrides: the project itself, the idempotency token,
/// and the operator's own settings.
pub const NOT_OVERRIDES: &[&str] = &["projectName", "idempotencyToken", "operator"];

/// The StartBuild and StartBuildBatch members a policy can allow or deny, read from the
/// CodeBuildRun and CodeBuildBatchRun schemas themselves (so a member added to a spec is
/// covered), sorted, each once.
pub fn override_members() -> Vec<String> {
    let schemas = [
        schemars::schema_for!(super::CodeBuildRunSpec),
        schemars::schema_for!(super::CodeBuildBatchRunSpec),
    ];
    let mut members: Vec<String> = schemas
        .iter()
        .filter_map(|schema| schema.get("properties").and_then(|p| p.as_object()))
        .flat_map(|p| p.keys().cloned())
        .collect();
    members.retain(|m| !NOT_OVERRIDES.contains(&m.as_str()));
    members.sort();
    members.dedup();
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
