//! The value rules of `CodeBuildRunPolicy.spec.overrides`: for each StartBuild (or
//! StartBuildBatch) member that names a resource, a secret or a cost, which field of
//! [`OverrideRules`] constrains it and which values of the run it constrains (the
//! "subjects"). The members the two requests share are judged by the same rules; the
//! batch's own (`buildTimeoutInMinutesOverride`, `buildBatchConfigOverride`) by the rules
//! that bound the same things for a build ([`Overrides`] gives each kind's subjects).
//!
//! Each [`Constraint`] is one rule applied to one member. Its subjects are defined twice,
//! side by side: in Rust over the typed spec ([`Constraint::subjects`], what the controller
//! decides with) and in CEL over the admission request's `object.spec`
//! ([`Constraint::subjects_cel`], what the apiserver decides with). The end-to-end tests send
//! every rule through both and compare the answers.

use serde::Serialize;

use crate::api::{
    CacheType, CodeBuildBatchRunSpec, CodeBuildRunSpec, EnvironmentVariable,
    EnvironmentVariableType, LogsConfigStatusType, OverrideRules, ProjectArtifacts, SourceAuth,
};

use super::glob;

/// One value rule applied to one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Constraint {
    /// `artifactsOverride` against `artifactLocations`.
    ArtifactsLocation,
    /// `autoRetryLimitOverride` against `maxAutoRetryLimit`.
    AutoRetryLimit,
    /// `buildBatchConfigOverride.restrictions.computeTypesAllowed` against `computeTypes`.
    BatchComputeTypes,
    /// `buildBatchConfigOverride.restrictions.fleetsAllowed` against `fleets`.
    BatchFleets,
    /// `buildBatchConfigOverride.serviceRole` against `serviceRoles`.
    BatchServiceRole,
    /// `buildBatchConfigOverride.timeoutInMins` against `maxTimeoutInMinutes`.
    BatchTimeout,
    /// `buildTimeoutInMinutesOverride` against `maxTimeoutInMinutes`.
    BuildTimeout,
    /// `cacheOverride` against `cacheLocations`.
    CacheLocation,
    /// `certificateOverride` against `certificates`.
    Certificate,
    /// `computeTypeOverride` against `computeTypes`.
    ComputeType,
    /// `debugSessionEnabled` against `debugSessions`.
    DebugSession,
    /// `encryptionKeyOverride` against `encryptionKeys`.
    EncryptionKey,
    /// `environmentTypeOverride` against `environmentTypes`.
    EnvironmentType,
    /// The names of `environmentVariablesOverride` against `environmentVariableNames`.
    VariableNames,
    /// The types of `environmentVariablesOverride` against `environmentVariableTypes`.
    VariableTypes,
    /// The PARAMETER_STORE values of `environmentVariablesOverride` against
    /// `parameterNames`.
    VariableParameters,
    /// The SECRETS_MANAGER values of `environmentVariablesOverride` against `secrets`.
    VariableSecrets,
    /// `fleetOverride` against `fleets`.
    Fleet,
    /// `imageOverride` against `images`.
    Image,
    /// The CloudWatch Logs group of `logsConfigOverride` against `logGroups`.
    LogGroup,
    /// The S3 logs location of `logsConfigOverride` against `logLocations`.
    LogLocation,
    /// `privilegedModeOverride` against `privilegedMode`.
    PrivilegedMode,
    /// `queuedTimeoutInMinutesOverride` against `maxQueuedTimeoutInMinutes`.
    QueuedTimeout,
    /// `registryCredentialOverride` against `registryCredentials`.
    RegistryCredential,
    /// `secondaryArtifactsOverride` against `artifactLocations`.
    SecondaryArtifactsLocation,
    /// The locations of `secondarySourcesOverride` against `sourceLocations`.
    SecondarySourceLocation,
    /// The credentials of `secondarySourcesOverride` against `sourceAuthResources`.
    SecondarySourceAuth,
    /// `serviceRoleOverride` against `serviceRoles`.
    ServiceRole,
    /// `sourceAuthOverride` against `sourceAuthResources`.
    SourceAuth,
    /// `sourceLocationOverride` against `sourceLocations`.
    SourceLocation,
    /// `timeoutInMinutesOverride` against `maxTimeoutInMinutes`.
    Timeout,
}

/// Every constraint, in member order, and for one member in the order its rules are
/// checked (the first that refuses names the member's gap).
pub const CONSTRAINTS: &[Constraint] = &[
    Constraint::ArtifactsLocation,
    Constraint::AutoRetryLimit,
    Constraint::BatchComputeTypes,
    Constraint::BatchFleets,
    Constraint::BatchServiceRole,
    Constraint::BatchTimeout,
    Constraint::BuildTimeout,
    Constraint::CacheLocation,
    Constraint::Certificate,
    Constraint::ComputeType,
    Constraint::DebugSession,
    Constraint::EncryptionKey,
    Constraint::EnvironmentType,
    Constraint::VariableNames,
    Constraint::VariableTypes,
    Constraint::VariableParameters,
    Constraint::VariableSecrets,
    Constraint::Fleet,
    Constraint::Image,
    Constraint::LogGroup,
    Constraint::LogLocation,
    Constraint::PrivilegedMode,
    Constraint::QueuedTimeout,
    Constraint::RegistryCredential,
    Constraint::SecondaryArtifactsLocation,
    Constraint::SecondarySourceLocation,
    Constraint::SecondarySourceAuth,
    Constraint::ServiceRole,
    Constraint::SourceAuth,
    Constraint::SourceLocation,
    Constraint::Timeout,
];

/// How a constraint judges its member, as a policy sets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check<'a> {
    /// Every subject matches one of these globs.
    Patterns(&'a [String]),
    /// Every subject (an S3 bucket and key or prefix) matches one of these globs and has no
    /// `..` path segment.
    Paths(&'a [String]),
    /// Every subject is one of these values (an enumeration of the API).
    OneOf(Vec<&'static str>),
    /// The member (a number) is at most this.
    AtMost(i32),
    /// The member (a boolean) is not `true`.
    NotTrue,
}

/// The segment an S3 key may not hold where a location rule applies: SDKs and tools that
/// clean paths read `a/../b` as `b`.
pub const DOT_SEGMENT: &str = "..";

/// The CEL (RE2) expression that finds a `..` segment, as [`has_dot_segment`] does.
pub const DOT_SEGMENT_REGEX: &str = r"(^|/)\.\.(/|$)";

/// Whether `path` has a `..` segment (between slashes or at either end).
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| segment == DOT_SEGMENT)
}

/// `location` as the prefix everything is written under: with a trailing `/`.
fn s3_prefix(location: String) -> String {
    if location.ends_with('/') {
        location
    } else {
        location + "/"
    }
}

impl Constraint {
    /// The StartBuild member this constrains.
    pub fn member(self) -> &'static str {
        use Constraint as C;
        match self {
            C::ArtifactsLocation => "artifactsOverride",
            C::AutoRetryLimit => "autoRetryLimitOverride",
            C::BatchComputeTypes | C::BatchFleets | C::BatchServiceRole | C::BatchTimeout => {
                "buildBatchConfigOverride"
            }
            C::BuildTimeout => "buildTimeoutInMinutesOverride",
            C::CacheLocation => "cacheOverride",
            C::Certificate => "certificateOverride",
            C::ComputeType => "computeTypeOverride",
            C::DebugSession => "debugSessionEnabled",
            C::EncryptionKey => "encryptionKeyOverride",
            C::EnvironmentType => "environmentTypeOverride",
            C::VariableNames | C::VariableTypes | C::VariableParameters | C::VariableSecrets => {
                "environmentVariablesOverride"
            }
            C::Fleet => "fleetOverride",
            C::Image => "imageOverride",
            C::LogGroup | C::LogLocation => "logsConfigOverride",
            C::PrivilegedMode => "privilegedModeOverride",
            C::QueuedTimeout => "queuedTimeoutInMinutesOverride",
            C::RegistryCredential => "registryCredentialOverride",
            C::SecondaryArtifactsLocation => "secondaryArtifactsOverride",
            C::SecondarySourceLocation | C::SecondarySourceAuth => "secondarySourcesOverride",
            C::ServiceRole => "serviceRoleOverride",
            C::SourceAuth => "sourceAuthOverride",
            C::SourceLocation => "sourceLocationOverride",
            C::Timeout => "timeoutInMinutesOverride",
        }
    }

    /// The field of `spec.overrides` that holds the rule.
    pub fn rule(self) -> &'static str {
        use Constraint as C;
        match self {
            C::ArtifactsLocation | C::SecondaryArtifactsLocation => "artifactLocations",
            C::AutoRetryLimit => "maxAutoRetryLimit",
            C::BatchComputeTypes => "computeTypes",
            C::BatchFleets => "fleets",
            C::BatchServiceRole => "serviceRoles",
            C::BatchTimeout | C::BuildTimeout => "maxTimeoutInMinutes",
            C::CacheLocation => "cacheLocations",
            C::Certificate => "certificates",
            C::ComputeType => "computeTypes",
            C::DebugSession => "debugSessions",
            C::EncryptionKey => "encryptionKeys",
            C::EnvironmentType => "environmentTypes",
            C::VariableNames => "environmentVariableNames",
            C::VariableTypes => "environmentVariableTypes",
            C::VariableParameters => "parameterNames",
            C::VariableSecrets => "secrets",
            C::Fleet => "fleets",
            C::Image => "images",
            C::LogGroup => "logGroups",
            C::LogLocation => "logLocations",
            C::PrivilegedMode => "privilegedMode",
            C::QueuedTimeout => "maxQueuedTimeoutInMinutes",
            C::RegistryCredential => "registryCredentials",
            C::SecondarySourceLocation | C::SourceLocation => "sourceLocations",
            C::SecondarySourceAuth | C::SourceAuth => "sourceAuthResources",
            C::ServiceRole => "serviceRoles",
            C::Timeout => "maxTimeoutInMinutes",
        }
    }

    /// How a refusal names the refused value: the member, and which part of it.
    pub fn what(self) -> &'static str {
        use Constraint as C;
        match self {
            C::ArtifactsLocation => "artifactsOverride location",
            C::BatchComputeTypes => "buildBatchConfigOverride computeTypesAllowed",
            C::BatchFleets => "buildBatchConfigOverride fleetsAllowed",
            C::BatchServiceRole => "buildBatchConfigOverride serviceRole",
            C::BatchTimeout => "buildBatchConfigOverride timeoutInMins",
            C::CacheLocation => "cacheOverride location",
            C::VariableNames => "environmentVariablesOverride name",
            C::VariableTypes => "environmentVariablesOverride type",
            C::VariableParameters => "environmentVariablesOverride parameter",
            C::VariableSecrets => "environmentVariablesOverride secret",
            C::LogGroup => "logsConfigOverride log group",
            C::LogLocation => "logsConfigOverride S3 location",
            C::SecondaryArtifactsLocation => "secondaryArtifactsOverride location",
            C::SecondarySourceAuth => "secondarySourcesOverride auth",
            other => other.member(),
        }
    }

    /// How `rules` judges the member; None when it sets no such rule (any value).
    pub fn check(self, rules: &OverrideRules) -> Option<Check<'_>> {
        use Constraint as C;
        fn globs(patterns: &Option<Vec<String>>) -> Option<Check<'_>> {
            patterns.as_deref().map(Check::Patterns)
        }
        fn paths(patterns: &Option<Vec<String>>) -> Option<Check<'_>> {
            patterns.as_deref().map(Check::Paths)
        }
        let flag = |allowed: Option<bool>| (allowed == Some(false)).then_some(Check::NotTrue);
        match self {
            C::ArtifactsLocation | C::SecondaryArtifactsLocation => {
                paths(&rules.artifact_locations)
            }
            C::AutoRetryLimit => rules.max_auto_retry_limit.map(Check::AtMost),
            C::BatchComputeTypes | C::ComputeType => (rules.compute_types.as_ref())
                .map(|l| Check::OneOf(l.iter().map(|t| t.as_str()).collect())),
            C::BatchFleets | C::Fleet => globs(&rules.fleets),
            C::BatchServiceRole | C::ServiceRole => globs(&rules.service_roles),
            C::BatchTimeout | C::BuildTimeout | C::Timeout => {
                rules.max_timeout_in_minutes.map(Check::AtMost)
            }
            C::CacheLocation => paths(&rules.cache_locations),
            C::Certificate => paths(&rules.certificates),
            C::DebugSession => flag(rules.debug_sessions),
            C::EncryptionKey => globs(&rules.encryption_keys),
            C::EnvironmentType => (rules.environment_types.as_ref())
                .map(|l| Check::OneOf(l.iter().map(|t| t.as_str()).collect())),
            C::VariableNames => globs(&rules.environment_variable_names),
            C::VariableTypes => (rules.environment_variable_types.as_ref())
                .map(|l| Check::OneOf(l.iter().map(|t| t.as_str()).collect())),
            C::VariableParameters => globs(&rules.parameter_names),
            C::VariableSecrets => globs(&rules.secrets),
            C::Image => globs(&rules.images),
            C::LogGroup => globs(&rules.log_groups),
            C::LogLocation => paths(&rules.log_locations),
            C::PrivilegedMode => flag(rules.privileged_mode),
            C::QueuedTimeout => rules.max_queued_timeout_in_minutes.map(Check::AtMost),
            C::RegistryCredential => globs(&rules.registry_credentials),
            C::SecondarySourceLocation | C::SourceLocation => globs(&rules.source_locations),
            C::SecondarySourceAuth | C::SourceAuth => globs(&rules.source_auth_resources),
        }
    }

    /// Whether a policy that allows the member should set this rule: the member names a
    /// resource or a secret (or, for variable names, changes what runs), so without the rule
    /// a run may name any the build's roles reach. Caps and enumerations are a platform
    /// team's choice, never a warning; parameters and secrets only matter when the
    /// variable types allow them.
    pub fn expected(self, rules: &OverrideRules) -> bool {
        use Constraint as C;
        let type_allowed = |t: EnvironmentVariableType| {
            rules
                .environment_variable_types
                .as_ref()
                .is_none_or(|types| types.contains(&t))
        };
        match self {
            C::AutoRetryLimit
            | C::BatchComputeTypes
            | C::BatchTimeout
            | C::BuildTimeout
            | C::ComputeType
            | C::DebugSession
            | C::EnvironmentType
            | C::PrivilegedMode
            | C::QueuedTimeout
            | C::Timeout
            | C::VariableTypes => false,
            C::VariableParameters => type_allowed(EnvironmentVariableType::ParameterStore),
            C::VariableSecrets => type_allowed(EnvironmentVariableType::SecretsManager),
            _ => true,
        }
    }

    /// The values of `spec` this constrains, in the order they appear (for a list member,
    /// item by item); empty when the member is unset or names nothing this rule is about.
    /// Numbers and booleans (caps) have none: see [`Constraint::number`] and
    /// [`Constraint::flag`].
    pub fn subjects(self, spec: &CodeBuildRunSpec) -> Vec<String> {
        use Constraint as C;
        let one = |value: &Option<String>| value.iter().cloned().collect();
        let variables = spec.environment_variables_override.iter().flatten();
        let of_type = |t: EnvironmentVariableType| {
            let values = variables.clone().filter(move |v| v.type_ == Some(t));
            values.map(|v| v.value.clone()).collect::<Vec<String>>()
        };
        let logs = spec.logs_config_override.as_ref();
        let secondary = spec.secondary_sources_override.iter().flatten();
        match self {
            C::ArtifactsLocation => spec
                .artifacts_override
                .iter()
                .filter_map(artifact)
                .collect(),
            C::SecondaryArtifactsLocation => (spec.secondary_artifacts_override.iter().flatten())
                .filter_map(artifact)
                .collect(),
            C::CacheLocation => (spec.cache_override.iter())
                .filter(|c| c.type_ == CacheType::S3 || c.location.is_some())
                .map(|c| s3_prefix(c.location.clone().unwrap_or_default()))
                .collect(),
            C::Certificate => one(&spec.certificate_override),
            C::ComputeType => (spec.compute_type_override.iter())
                .map(|t| t.as_str().to_owned())
                .collect(),
            C::EncryptionKey => one(&spec.encryption_key_override),
            C::EnvironmentType => (spec.environment_type_override.iter())
                .map(|t| t.as_str().to_owned())
                .collect(),
            C::VariableNames => variables.clone().map(|v| v.name.clone()).collect(),
            C::VariableTypes => variables.clone().map(variable_type).collect(),
            C::VariableParameters => of_type(EnvironmentVariableType::ParameterStore),
            C::VariableSecrets => of_type(EnvironmentVariableType::SecretsManager),
            C::Fleet => (spec.fleet_override.iter())
                .filter_map(|f| f.fleet_arn.clone())
                .collect(),
            C::Image => one(&spec.image_override),
            C::LogGroup => (logs.and_then(|l| l.cloud_watch_logs.as_ref()))
                .and_then(|c| c.group_name.clone())
                .into_iter()
                .collect(),
            C::LogLocation => (logs.and_then(|l| l.s3_logs.as_ref()))
                .filter(|s| s.status == LogsConfigStatusType::Enabled || s.location.is_some())
                .map(|s| s3_prefix(s.location.clone().unwrap_or_default()))
                .into_iter()
                .collect(),
            C::RegistryCredential => (spec.registry_credential_override.iter())
                .map(|r| r.credential.clone())
                .collect(),
            C::SecondarySourceLocation => secondary.filter_map(|s| s.location.clone()).collect(),
            C::SecondarySourceAuth => secondary
                .filter_map(|s| s.auth.as_ref())
                .map(auth)
                .collect(),
            C::ServiceRole => one(&spec.service_role_override),
            C::SourceAuth => spec.source_auth_override.iter().map(auth).collect(),
            C::SourceLocation => one(&spec.source_location_override),
            C::AutoRetryLimit
            | C::DebugSession
            | C::PrivilegedMode
            | C::QueuedTimeout
            | C::Timeout => Vec::new(),
            // Members of StartBuildBatch only: see `Overrides for CodeBuildBatchRunSpec`.
            C::BatchComputeTypes
            | C::BatchFleets
            | C::BatchServiceRole
            | C::BatchTimeout
            | C::BuildTimeout => Vec::new(),
        }
    }

    /// The number a cap constrains, if set.
    pub fn number(self, spec: &CodeBuildRunSpec) -> Option<i64> {
        match self {
            Constraint::AutoRetryLimit => spec.auto_retry_limit_override,
            Constraint::QueuedTimeout => spec.queued_timeout_in_minutes_override,
            Constraint::Timeout => spec.timeout_in_minutes_override,
            _ => None,
        }
        .map(i64::from)
    }

    /// The boolean a flag constrains, if set.
    pub fn flag(self, spec: &CodeBuildRunSpec) -> Option<bool> {
        match self {
            Constraint::DebugSession => spec.debug_session_enabled,
            Constraint::PrivilegedMode => spec.privileged_mode_override,
            _ => None,
        }
    }

    /// The number a cap constrains, in CEL over `object.spec` (the member is set and not
    /// null).
    pub fn value_cel(self) -> String {
        let o = format!("object.spec.{}", self.member());
        match self {
            Constraint::BatchTimeout => format!(
                "((has({o}.timeoutInMins) && {o}.timeoutInMins != null) ? {o}.timeoutInMins : 0)"
            ),
            _ => o,
        }
    }

    /// [`Constraint::subjects`] in CEL, over `object.spec`: a list of strings. Only used
    /// where the member is set and not null; every optional field may be absent or null.
    pub fn subjects_cel(self) -> String {
        use Constraint as C;
        let o = format!("object.spec.{}", self.member());
        let set = |x: &str, field: &str| format!("(has({x}.{field}) && {x}.{field} != null)");
        let or_empty = |x: &str, field: &str| format!("({} ? {x}.{field} : \"\")", set(x, field));
        let prefix = ".map(s, s.endsWith(\"/\") ? s : s + \"/\")";
        let of_type = |t: EnvironmentVariableType| {
            format!(
                "{o}.filter(v, {} && v.type == \"{t}\").map(v, v.value)",
                set("v", "type")
            )
        };
        let artifacts = |list: &str| {
            format!(
                "{list}.filter(a, a.type == \"S3\" || {}).map(a, {} + \"/\" + {}){prefix}",
                set("a", "location"),
                or_empty("a", "location"),
                or_empty("a", "path"),
            )
        };
        let auth = |a: &str| format!("{} ? {a}.resource : {a}.type", set(a, "resource"));
        match self {
            C::ArtifactsLocation => artifacts(&format!("[{o}]")),
            C::SecondaryArtifactsLocation => artifacts(&o),
            C::CacheLocation => format!(
                "[{o}].filter(c, c.type == \"S3\" || {}).map(c, {}){prefix}",
                set("c", "location"),
                or_empty("c", "location")
            ),
            C::Certificate
            | C::ComputeType
            | C::EncryptionKey
            | C::EnvironmentType
            | C::Image
            | C::ServiceRole
            | C::SourceLocation => format!("[{o}]"),
            C::VariableNames => format!("{o}.map(v, v.name)"),
            C::VariableTypes => {
                format!("{o}.map(v, {} ? v.type : \"PLAINTEXT\")", set("v", "type"))
            }
            C::VariableParameters => of_type(EnvironmentVariableType::ParameterStore),
            C::VariableSecrets => of_type(EnvironmentVariableType::SecretsManager),
            C::Fleet => format!(
                "[{o}].filter(f, {}).map(f, f.fleetArn)",
                set("f", "fleetArn")
            ),
            C::LogGroup => format!(
                "[{o}].filter(l, {} && {}).map(l, l.cloudWatchLogs.groupName)",
                set("l", "cloudWatchLogs"),
                set("l.cloudWatchLogs", "groupName")
            ),
            C::LogLocation => format!(
                "[{o}].filter(l, {}).map(l, l.s3Logs).filter(x, x.status == \"ENABLED\" || {})\
                 .map(x, {}){prefix}",
                set("l", "s3Logs"),
                set("x", "location"),
                or_empty("x", "location")
            ),
            C::RegistryCredential => format!("[{o}.credential]"),
            C::SecondarySourceLocation => {
                format!("{o}.filter(s, {}).map(s, s.location)", set("s", "location"))
            }
            C::SecondarySourceAuth => format!(
                "{o}.filter(s, {}).map(s, {})",
                set("s", "auth"),
                auth("s.auth")
            ),
            C::SourceAuth => format!("[{o}].map(a, {})", auth("a")),
            C::BatchComputeTypes | C::BatchFleets | C::BatchServiceRole => {
                batch_config_subjects_cel(self, &o)
            }
            C::AutoRetryLimit
            | C::BatchTimeout
            | C::BuildTimeout
            | C::DebugSession
            | C::PrivilegedMode
            | C::QueuedTimeout
            | C::Timeout => "[]".to_owned(),
        }
    }

    /// The first subject of `spec` that `check` refuses, and whether for a `..` segment.
    pub fn refused_subject<S: Overrides + ?Sized>(
        self,
        check: &Check<'_>,
        spec: &S,
    ) -> Option<Refused> {
        spec.subjects(self).into_iter().find_map(|s| match check {
            Check::Paths(_) if has_dot_segment(&s) => Some(Refused::DotSegment(s)),
            Check::Patterns(p) | Check::Paths(p) => {
                (!glob::any_matches(p, &s)).then_some(Refused::Value(s))
            }
            Check::OneOf(values) => (!values.contains(&s.as_str())).then_some(Refused::Value(s)),
            Check::AtMost(_) | Check::NotTrue => None,
        })
    }
}

/// A spec the policies rule on: a CodeBuildRun's (StartBuild) or a CodeBuildBatchRun's
/// (StartBuildBatch). Each gives the values a constraint reads of it.
pub trait Overrides: Serialize {
    /// `spec.projectName`.
    fn project_name(&self) -> &str;
    /// The values of this spec `constraint` constrains ([`Constraint::subjects`]).
    fn subjects(&self, constraint: Constraint) -> Vec<String>;
    /// The number a cap constrains, if set.
    fn number(&self, constraint: Constraint) -> Option<i64>;
    /// The boolean a flag constrains, if set.
    fn flag(&self, constraint: Constraint) -> Option<bool>;
}

impl Overrides for CodeBuildRunSpec {
    fn project_name(&self) -> &str {
        &self.project_name
    }

    fn subjects(&self, constraint: Constraint) -> Vec<String> {
        constraint.subjects(self)
    }

    fn number(&self, constraint: Constraint) -> Option<i64> {
        constraint.number(self)
    }

    fn flag(&self, constraint: Constraint) -> Option<bool> {
        constraint.flag(self)
    }
}

/// The members StartBuildBatch shares with StartBuild are read as a CodeBuildRun's are
/// (`start_build_members`); its own through the constraints that name them.
impl Overrides for CodeBuildBatchRunSpec {
    fn project_name(&self) -> &str {
        &self.project_name
    }

    fn subjects(&self, constraint: Constraint) -> Vec<String> {
        let config = self.build_batch_config_override.as_ref();
        let restrictions = config.and_then(|c| c.restrictions.as_ref());
        match constraint {
            Constraint::BatchComputeTypes => {
                (restrictions.and_then(|r| r.compute_types_allowed.clone())).unwrap_or_default()
            }
            Constraint::BatchFleets => {
                (restrictions.and_then(|r| r.fleets_allowed.clone())).unwrap_or_default()
            }
            Constraint::BatchServiceRole => config
                .and_then(|c| c.service_role.clone())
                .into_iter()
                .collect(),
            shared => shared.subjects(&self.start_build_members()),
        }
    }

    fn number(&self, constraint: Constraint) -> Option<i64> {
        match constraint {
            Constraint::BuildTimeout => self.build_timeout_in_minutes_override.map(i64::from),
            Constraint::BatchTimeout => (self.build_batch_config_override.as_ref())
                .and_then(|c| c.timeout_in_mins)
                .map(i64::from),
            shared => shared.number(&self.start_build_members()),
        }
    }

    fn flag(&self, constraint: Constraint) -> Option<bool> {
        constraint.flag(&self.start_build_members())
    }
}

/// [`Constraint::subjects_cel`] of the constraints on `buildBatchConfigOverride` (`o`).
fn batch_config_subjects_cel(constraint: Constraint, o: &str) -> String {
    let set = |x: &str, field: &str| format!("(has({x}.{field}) && {x}.{field} != null)");
    let restricted = |field: &str| {
        format!(
            "({} && {} ? {o}.restrictions.{field} : [])",
            set(o, "restrictions"),
            set(&format!("{o}.restrictions"), field)
        )
    };
    match constraint {
        Constraint::BatchComputeTypes => restricted("computeTypesAllowed"),
        Constraint::BatchFleets => restricted("fleetsAllowed"),
        _ => format!(
            "[{o}].filter(c, {}).map(c, c.serviceRole)",
            set("c", "serviceRole")
        ),
    }
}

/// A refused subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The value matches no allowed pattern (or value).
    Value(String),
    /// The value has a `..` path segment.
    DotSegment(String),
}

/// The bucket and prefix an artifact writes under, when it is of type S3 or names a
/// location: `<location>/<path>/`.
fn artifact(a: &ProjectArtifacts) -> Option<String> {
    (a.type_ == crate::api::ArtifactsType::S3 || a.location.is_some()).then(|| {
        let location = a.location.as_deref().unwrap_or_default();
        let path = a.path.as_deref().unwrap_or_default();
        s3_prefix(format!("{location}/{path}"))
    })
}

fn variable_type(v: &EnvironmentVariable) -> String {
    v.type_
        .unwrap_or(EnvironmentVariableType::Plaintext)
        .as_str()
        .to_owned()
}

/// The credential a source auth names: its resource, or its type when it names none
/// (`OAUTH`: the account's connection).
fn auth(a: &SourceAuth) -> String {
    a.resource
        .clone()
        .unwrap_or_else(|| a.type_.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::override_members;

    #[test]
    fn constraints_are_in_member_order_and_name_real_members() {
        let members = override_members();
        let mut sorted = CONSTRAINTS.to_vec();
        sorted.sort_by_key(|c| members.iter().position(|m| m == c.member()));
        assert_eq!(sorted, CONSTRAINTS, "CONSTRAINTS out of member order");
        for c in CONSTRAINTS {
            assert!(members.iter().any(|m| m == c.member()), "{c:?}");
        }
        // Every rule field exists in the policy schema.
        let schema = serde_json::to_value(schemars::schema_for!(OverrideRules)).unwrap();
        for c in CONSTRAINTS {
            assert!(schema["properties"].get(c.rule()).is_some(), "{}", c.rule());
        }
        // And every field of the schema but allowed/denied is some constraint's rule.
        for field in schema["properties"].as_object().unwrap().keys() {
            assert!(
                field == "allowed"
                    || field == "denied"
                    || CONSTRAINTS.iter().any(|c| c.rule() == field),
                "{field} is no constraint's rule"
            );
        }
    }

    #[test]
    fn dot_segments() {
        for path in ["..", "../x", "a/..", "a/../b", "b/a/../"] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in ["a..b", "a/...", "a/..b/c", ".../x", "a/./b", ""] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }

    #[test]
    fn subjects_of_locations() {
        let spec: CodeBuildRunSpec = serde_json::from_value(serde_json::json!({
            "projectName": "p",
            "artifactsOverride": {"type": "S3", "location": "bucket", "path": "team-a"},
            "secondaryArtifactsOverride": [
                {"type": "S3", "location": "b2"},
                {"type": "NO_ARTIFACTS"},
                {"type": "CODEPIPELINE", "location": "named", "path": "p/"},
                {"type": "S3", "path": "no-bucket"},
            ],
            "cacheOverride": {"type": "S3", "location": "cache/team-a"},
            "logsConfigOverride": {
                "cloudWatchLogs": {"status": "ENABLED", "groupName": "/g"},
                "s3Logs": {"status": "ENABLED", "location": "logs/"},
            },
            "environmentVariablesOverride": [
                {"name": "A", "value": "1"},
                {"name": "B", "value": "/p", "type": "PARAMETER_STORE"},
                {"name": "C", "value": "s:k::", "type": "SECRETS_MANAGER"},
            ],
            "sourceAuthOverride": {"type": "OAUTH"},
            "secondarySourcesOverride": [
                {"type": "GITHUB", "auth": {"type": "CODECONNECTIONS", "resource": "arn:c"}},
                {"type": "NO_SOURCE"},
            ],
        }))
        .unwrap();
        let s = |c: Constraint| c.subjects(&spec);
        assert_eq!(s(Constraint::ArtifactsLocation), ["bucket/team-a/"]);
        assert_eq!(
            s(Constraint::SecondaryArtifactsLocation),
            ["b2/", "named/p/", "/no-bucket/"]
        );
        assert_eq!(s(Constraint::CacheLocation), ["cache/team-a/"]);
        assert_eq!(s(Constraint::LogGroup), ["/g"]);
        assert_eq!(s(Constraint::LogLocation), ["logs/"]);
        assert_eq!(s(Constraint::VariableNames), ["A", "B", "C"]);
        assert_eq!(
            s(Constraint::VariableTypes),
            ["PLAINTEXT", "PARAMETER_STORE", "SECRETS_MANAGER"]
        );
        assert_eq!(s(Constraint::VariableParameters), ["/p"]);
        assert_eq!(s(Constraint::VariableSecrets), ["s:k::"]);
        assert_eq!(s(Constraint::SourceAuth), ["OAUTH"]);
        assert_eq!(s(Constraint::SecondarySourceAuth), ["arn:c"]);
        assert!(s(Constraint::Fleet).is_empty());
    }
}
