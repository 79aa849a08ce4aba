//! Pure JSON shaping: CreateProject input -> Project, and project + StartBuild overrides ->
//! the static fields of a Build, shaped as the service shows them.

use crate::lifecycle::ts;
use crate::protocol::ApiError;
use serde_json::{Map, Value, json};

/// Where a build lives, for ARNs and links.
#[derive(Clone, Debug)]
pub struct Place<'a> {
    pub region: &'a str,
    pub account: &'a str,
}

impl Place<'_> {
    pub fn project_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:codebuild:{}:{}:project/{name}",
            self.region, self.account
        )
    }

    pub fn build_batch_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:codebuild:{}:{}:build-batch/{id}",
            self.region, self.account
        )
    }

    pub fn build_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:codebuild:{}:{}:build/{id}",
            self.region, self.account
        )
    }

    /// The project name in a project ARN of this region/account, or `name` itself.
    pub fn project_name<'n>(&self, name_or_arn: &'n str) -> Option<&'n str> {
        if name_or_arn.starts_with("arn:") {
            let prefix = self.project_arn("");
            name_or_arn.strip_prefix(prefix.as_str())
        } else {
            Some(name_or_arn)
        }
    }

    fn default_kms_key(&self) -> String {
        format!("arn:aws:kms:{}:{}:alias/aws/s3", self.region, self.account)
    }
}

/// Members of CreateProjectInput copied into the Project unchanged.
const PROJECT_MEMBERS: [&str; 21] = [
    "name",
    "description",
    "source",
    "secondarySources",
    "sourceVersion",
    "secondarySourceVersions",
    "artifacts",
    "secondaryArtifacts",
    "cache",
    "environment",
    "serviceRole",
    "timeoutInMinutes",
    "queuedTimeoutInMinutes",
    "encryptionKey",
    "tags",
    "vpcConfig",
    "logsConfig",
    "fileSystemLocations",
    "buildBatchConfig",
    "concurrentBuildLimit",
    "autoRetryLimit",
];

const SOURCE_TYPES: [&str; 9] = [
    "CODECOMMIT",
    "CODEPIPELINE",
    "GITHUB",
    "GITLAB",
    "GITLAB_SELF_MANAGED",
    "S3",
    "BITBUCKET",
    "GITHUB_ENTERPRISE",
    "NO_SOURCE",
];
const GIT_SOURCE_TYPES: [&str; 6] = [
    "CODECOMMIT",
    "GITHUB",
    "GITLAB",
    "GITLAB_SELF_MANAGED",
    "BITBUCKET",
    "GITHUB_ENTERPRISE",
];
const ARTIFACT_TYPES: [&str; 3] = ["CODEPIPELINE", "S3", "NO_ARTIFACTS"];
pub const ENVIRONMENT_TYPES: [&str; 12] = [
    "WINDOWS_CONTAINER",
    "LINUX_CONTAINER",
    "LINUX_GPU_CONTAINER",
    "ARM_CONTAINER",
    "WINDOWS_SERVER_2019_CONTAINER",
    "WINDOWS_SERVER_2022_CONTAINER",
    "LINUX_LAMBDA_CONTAINER",
    "ARM_LAMBDA_CONTAINER",
    "LINUX_EC2",
    "ARM_EC2",
    "WINDOWS_EC2",
    "MAC_ARM",
];
pub const COMPUTE_TYPES: [&str; 12] = [
    "BUILD_GENERAL1_SMALL",
    "BUILD_GENERAL1_MEDIUM",
    "BUILD_GENERAL1_LARGE",
    "BUILD_GENERAL1_XLARGE",
    "BUILD_GENERAL1_2XLARGE",
    "BUILD_LAMBDA_1GB",
    "BUILD_LAMBDA_2GB",
    "BUILD_LAMBDA_4GB",
    "BUILD_LAMBDA_8GB",
    "BUILD_LAMBDA_10GB",
    "ATTRIBUTE_BASED_COMPUTE",
    "CUSTOM_INSTANCE_TYPE",
];

pub fn enum_check(value: Option<&Value>, member: &str, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        Some(v) => {
            let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            Err(ApiError::constraint(
                &shown,
                member,
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                ),
            ))
        }
    }
}

pub fn int_range(value: Option<&Value>, member: &str, min: i64, max: i64) -> Result<(), ApiError> {
    let Some(v) = value.filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let n = v.as_i64().ok_or_else(|| {
        ApiError::new(
            crate::protocol::ErrorKind::Serialization,
            format!("{member} must be an integer"),
        )
    })?;
    if n < min {
        return Err(ApiError::constraint(
            &n.to_string(),
            member,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(ApiError::constraint(
            &n.to_string(),
            member,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn valid_project_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    (2..=255).contains(&name.len())
        && first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Validates a project name as CreateProject does (moto's message).
pub fn check_project_name(name: &str) -> Result<(), ApiError> {
    if valid_project_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "Only alphanumeric characters, dash, and underscore are supported",
        ))
    }
}

/// Builds the stored Project from a CreateProject request.
pub fn new_project(input: &Value, place: &Place, now: f64) -> Result<Value, ApiError> {
    let name = input
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::null_member("name"))?;
    check_project_name(name)?;
    for member in ["source", "artifacts", "environment", "serviceRole"] {
        if input.get(member).is_none_or(Value::is_null) {
            return Err(ApiError::null_member(member));
        }
    }
    let source = &input["source"];
    if source.get("type").is_none_or(Value::is_null) {
        return Err(ApiError::null_member("source.type"));
    }
    enum_check(source.get("type"), "source.type", &SOURCE_TYPES)?;
    if input["artifacts"].get("type").is_none_or(Value::is_null) {
        return Err(ApiError::null_member("artifacts.type"));
    }
    enum_check(
        input["artifacts"].get("type"),
        "artifacts.type",
        &ARTIFACT_TYPES,
    )?;
    for member in ["type", "image", "computeType"] {
        if input["environment"].get(member).is_none_or(Value::is_null) {
            return Err(ApiError::null_member(&format!("environment.{member}")));
        }
    }
    enum_check(
        input["environment"].get("type"),
        "environment.type",
        &ENVIRONMENT_TYPES,
    )?;
    enum_check(
        input["environment"].get("computeType"),
        "environment.computeType",
        &COMPUTE_TYPES,
    )?;
    int_range(input.get("timeoutInMinutes"), "timeoutInMinutes", 5, 2160)?;
    int_range(
        input.get("queuedTimeoutInMinutes"),
        "queuedTimeoutInMinutes",
        5,
        480,
    )?;

    let mut p = Map::new();
    for m in PROJECT_MEMBERS {
        if let Some(v) = input.get(m).filter(|v| !v.is_null()) {
            p.insert(m.into(), v.clone());
        }
    }
    p.insert("arn".into(), json!(place.project_arn(name)));
    p.entry("cache")
        .or_insert_with(|| json!({"type": "NO_CACHE"}));
    p.entry("timeoutInMinutes").or_insert(json!(60));
    p.entry("queuedTimeoutInMinutes").or_insert(json!(480));
    p.entry("encryptionKey")
        .or_insert_with(|| json!(place.default_kms_key()));
    p.entry("logsConfig").or_insert_with(|| {
        json!({"cloudWatchLogs": {"status": "ENABLED"}, "s3Logs": {"status": "DISABLED", "encryptionDisabled": false}})
    });
    if let Some(env) = p.get_mut("environment").and_then(Value::as_object_mut) {
        env.entry("environmentVariables").or_insert(json!([]));
        env.entry("privilegedMode").or_insert(json!(false));
        env.entry("imagePullCredentialsType")
            .or_insert(json!("CODEBUILD"));
    }
    let badge = input
        .get("badgeEnabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    p.insert("badge".into(), json!({ "badgeEnabled": badge }));
    p.insert("created".into(), json!(ts(now)));
    p.insert("lastModified".into(), json!(ts(now)));
    p.insert("projectVisibility".into(), json!("PRIVATE"));
    Ok(Value::Object(p))
}

/// A CreateProject request with working defaults, for quick setup (admin API, --project).
/// Members in `extra` (an object) replace the defaults.
pub fn quick_project_input(name: &str, account: &str, extra: Option<&Value>) -> Value {
    let mut base = json!({
        "name": name,
        "source": {
            "type": "NO_SOURCE",
            "buildspec": "version: 0.2\nphases:\n  build:\n    commands:\n      - echo simulated\n"
        },
        "artifacts": {"type": "NO_ARTIFACTS"},
        "environment": {
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL"
        },
        "serviceRole": format!("arn:aws:iam::{account}:role/codebuild-sim-service-role"),
    });
    if let (Some(b), Some(Value::Object(e))) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// Validates a StartBuild request's members that the simulator checks.
pub fn check_start_request(req: &Value) -> Result<(), ApiError> {
    check_project_member(req)?;
    int_range(
        req.get("timeoutInMinutesOverride"),
        "timeoutInMinutesOverride",
        5,
        2160,
    )?;
    check_shared_overrides(req)
}

/// `projectName` is present and not empty (StartBuild and StartBuildBatch).
pub fn check_project_member(req: &Value) -> Result<(), ApiError> {
    match req.get("projectName") {
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(Value::String(_)) => {
            return Err(ApiError::constraint(
                "",
                "projectName",
                "Member must have length greater than or equal to 1",
            ));
        }
        _ => return Err(ApiError::null_member("projectName")),
    }
    Ok(())
}

/// Validates the override members StartBuild and StartBuildBatch share.
pub fn check_shared_overrides(req: &Value) -> Result<(), ApiError> {
    int_range(
        req.get("queuedTimeoutInMinutesOverride"),
        "queuedTimeoutInMinutesOverride",
        5,
        480,
    )?;
    int_range(
        req.get("gitCloneDepthOverride"),
        "gitCloneDepthOverride",
        0,
        i64::MAX,
    )?;
    enum_check(
        req.get("sourceTypeOverride"),
        "sourceTypeOverride",
        &SOURCE_TYPES,
    )?;
    enum_check(
        req.get("environmentTypeOverride"),
        "environmentTypeOverride",
        &ENVIRONMENT_TYPES,
    )?;
    enum_check(
        req.get("computeTypeOverride"),
        "computeTypeOverride",
        &COMPUTE_TYPES,
    )?;
    if let Some(a) = req.get("artifactsOverride").filter(|v| !v.is_null()) {
        if a.get("type").is_none_or(Value::is_null) {
            return Err(ApiError::null_member("artifactsOverride.type"));
        }
        enum_check(a.get("type"), "artifactsOverride.type", &ARTIFACT_TYPES)?;
    }
    if let Some(list) = req.get("environmentVariablesOverride") {
        let items = list
            .as_array()
            .ok_or_else(|| ApiError::invalid("environmentVariablesOverride must be a list"))?;
        for (i, item) in items.iter().enumerate() {
            let name = item.get("name").and_then(Value::as_str);
            if name.is_none_or(str::is_empty) {
                return Err(ApiError::null_member(&format!(
                    "environmentVariablesOverride.{}.member.name",
                    i + 1
                )));
            }
            if item.get("value").and_then(Value::as_str).is_none() {
                return Err(ApiError::null_member(&format!(
                    "environmentVariablesOverride.{}.member.value",
                    i + 1
                )));
            }
            enum_check(
                item.get("type"),
                &format!("environmentVariablesOverride.{}.member.type", i + 1),
                &["PLAINTEXT", "PARAMETER_STORE", "SECRETS_MANAGER"],
            )?;
        }
    }
    Ok(())
}

fn str_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn set_if(m: &mut Map<String, Value>, key: &str, v: Option<&Value>) {
    if let Some(v) = v.filter(|v| !v.is_null()) {
        m.insert(key.into(), v.clone());
    }
}

/// Project environment variables with the override merged over them (same name replaces,
/// new names are appended), each with a `type`.
pub fn merged_env_vars(project: &Value, req: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = project["environment"]["environmentVariables"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for v in req["environmentVariablesOverride"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = v.get("name");
        match out.iter_mut().find(|e| e.get("name") == name) {
            Some(slot) => *slot = v.clone(),
            None => out.push(v.clone()),
        }
    }
    for v in &mut out {
        if let Some(o) = v.as_object_mut() {
            o.entry("type").or_insert(json!("PLAINTEXT"));
        }
    }
    out
}

/// The buildspec a build runs: `buildspecOverride`, else the project's `source.buildspec`.
pub fn merged_buildspec<'v>(project: &'v Value, req: &'v Value) -> Option<&'v str> {
    req.get("buildspecOverride")
        .and_then(Value::as_str)
        .or_else(|| project["source"]["buildspec"].as_str())
}

/// Name/value pairs of the merged environment (for the reserved variables).
pub fn env_pairs(vars: &[Value]) -> Vec<(String, String)> {
    vars.iter()
        .filter_map(|v| {
            Some((
                str_of(v, "name")?.to_string(),
                v.get("value")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// BuildArtifacts for a ProjectArtifacts: `location` as an S3 ARN.
pub fn build_artifacts(art: &Value, project: &str, uuid: &str, place: &Place) -> Value {
    let kind = str_of(art, "type").unwrap_or("NO_ARTIFACTS");
    let location = match kind {
        "S3" => {
            let mut parts: Vec<String> = Vec::new();
            if let Some(bucket) = str_of(art, "location") {
                parts.push(bucket.trim_end_matches('/').to_string());
            }
            if let Some(path) = str_of(art, "path") {
                parts.push(path.trim_matches('/').to_string());
            }
            if str_of(art, "namespaceType") == Some("BUILD_ID") {
                parts.push(uuid.to_string());
            }
            parts.push(str_of(art, "name").unwrap_or(project).to_string());
            format!("arn:aws:s3:::{}", parts.join("/"))
        }
        "CODEPIPELINE" => format!(
            "arn:aws:s3:::codepipeline-{}-{}/{project}/{uuid}",
            place.region, place.account
        ),
        _ => String::new(),
    };
    let mut m = Map::new();
    m.insert("location".into(), json!(location));
    for key in [
        "overrideArtifactName",
        "encryptionDisabled",
        "artifactIdentifier",
        "bucketOwnerAccess",
    ] {
        set_if(&mut m, key, art.get(key));
    }
    Value::Object(m)
}

/// Logs for a build from the project's logsConfig with the override applied.
pub fn build_logs(project: &Value, req: &Value, name: &str, uuid: &str, place: &Place) -> Value {
    let mut cfg = project
        .get("logsConfig")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(o) = req.get("logsConfigOverride").and_then(Value::as_object) {
        for (k, v) in o {
            cfg[k] = v.clone();
        }
    }
    let mut m = Map::new();
    let cw = cfg
        .get("cloudWatchLogs")
        .cloned()
        .unwrap_or_else(|| json!({"status": "ENABLED"}));
    if str_of(&cw, "status").unwrap_or("ENABLED") == "ENABLED" {
        let group = str_of(&cw, "groupName")
            .map_or_else(|| format!("/aws/codebuild/{name}"), str::to_string);
        let stream = str_of(&cw, "streamName")
            .map_or_else(|| uuid.to_string(), |prefix| format!("{prefix}/{uuid}"));
        m.insert("groupName".into(), json!(group));
        m.insert("streamName".into(), json!(stream));
        m.insert(
            "deepLink".into(),
            json!(format!(
                "https://console.aws.amazon.com/cloudwatch/home?region={}#logEvent:group={group};stream={stream}",
                place.region
            )),
        );
        m.insert(
            "cloudWatchLogsArn".into(),
            json!(format!(
                "arn:aws:logs:{}:{}:log-group:{group}:log-stream:{stream}",
                place.region, place.account
            )),
        );
    }
    m.insert("cloudWatchLogs".into(), cw);
    let s3 = cfg
        .get("s3Logs")
        .cloned()
        .unwrap_or_else(|| json!({"status": "DISABLED", "encryptionDisabled": false}));
    if str_of(&s3, "status") == Some("ENABLED")
        && let Some(loc) = str_of(&s3, "location")
    {
        let loc = loc.trim_end_matches('/');
        m.insert(
            "s3DeepLink".into(),
            json!(format!(
                "https://s3.console.aws.amazon.com/s3/object/{loc}/{uuid}.gz?region={}",
                place.region
            )),
        );
        m.insert(
            "s3LogsArn".into(),
            json!(format!("arn:aws:s3:::{loc}/{uuid}.gz")),
        );
    }
    m.insert("s3Logs".into(), s3);
    Value::Object(m)
}

/// A fake 40-hex commit for git sources: `sourceVersion` itself when it is one, else a
/// stable digest of location and version.
pub fn resolved_source_version(source: &Value, source_version: Option<&str>) -> Option<String> {
    let kind = str_of(source, "type")?;
    if !GIT_SOURCE_TYPES.contains(&kind) {
        return None;
    }
    if let Some(v) = source_version
        && v.len() == 40
        && v.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Some(v.to_ascii_lowercase());
    }
    let seed = format!(
        "{}#{}",
        str_of(source, "location").unwrap_or(""),
        source_version.unwrap_or("HEAD")
    );
    // FNV-1a, five rounds with different offsets: 5 x 8 hex digits.
    let mut out = String::with_capacity(40);
    for round in 0u32..5 {
        let mut h: u32 = 0x811c_9dc5 ^ round.wrapping_mul(0x9e37_79b9);
        for b in seed.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        out.push_str(&format!("{h:08x}"));
    }
    Some(out)
}

/// Ids of a new build.
#[derive(Clone, Debug)]
pub struct BuildIds<'a> {
    pub project: &'a str,
    pub uuid: &'a str,
    pub build_number: i64,
    pub start: f64,
    pub initiator: &'a str,
}

impl BuildIds<'_> {
    pub fn id(&self) -> String {
        format!("{}:{}", self.project, self.uuid)
    }
}

/// The static fields of a Build (everything that does not change with time).
pub fn build_fields(
    project: &Value,
    req: &Value,
    ids: &BuildIds,
    place: &Place,
) -> Map<String, Value> {
    let mut b = Map::new();
    let id = ids.id();
    b.insert("id".into(), json!(id));
    b.insert("arn".into(), json!(place.build_arn(&id)));
    b.insert("buildNumber".into(), json!(ids.build_number));
    b.insert("startTime".into(), json!(ts(ids.start)));
    b.insert("projectName".into(), json!(ids.project));
    b.insert("initiator".into(), json!(ids.initiator));

    // Source.
    let mut source = project.get("source").cloned().unwrap_or_else(|| json!({}));
    let source_overrides = [
        ("sourceTypeOverride", "type"),
        ("sourceLocationOverride", "location"),
        ("gitCloneDepthOverride", "gitCloneDepth"),
        ("gitSubmodulesConfigOverride", "gitSubmodulesConfig"),
        ("buildspecOverride", "buildspec"),
        ("insecureSslOverride", "insecureSsl"),
        ("reportBuildStatusOverride", "reportBuildStatus"),
        ("buildStatusConfigOverride", "buildStatusConfig"),
        ("sourceAuthOverride", "auth"),
    ];
    if let Some(s) = source.as_object_mut() {
        for (from, to) in source_overrides {
            set_if(s, to, req.get(from));
        }
    }
    let source_version = str_of(req, "sourceVersion").or_else(|| str_of(project, "sourceVersion"));
    if let Some(v) = source_version {
        b.insert("sourceVersion".into(), json!(v));
    }
    b.insert("source".into(), source);
    let secondary_sources = req
        .get("secondarySourcesOverride")
        .filter(|v| !v.is_null())
        .or_else(|| project.get("secondarySources"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    b.insert("secondarySources".into(), secondary_sources);
    let secondary_versions = req
        .get("secondarySourcesVersionOverride")
        .filter(|v| !v.is_null())
        .or_else(|| project.get("secondarySourceVersions"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    b.insert("secondarySourceVersions".into(), secondary_versions);

    // Artifacts.
    let artifacts = req
        .get("artifactsOverride")
        .filter(|v| !v.is_null())
        .or_else(|| project.get("artifacts"))
        .cloned()
        .unwrap_or_else(|| json!({"type": "NO_ARTIFACTS"}));
    b.insert(
        "artifacts".into(),
        build_artifacts(&artifacts, ids.project, ids.uuid, place),
    );
    let secondary_artifacts: Vec<Value> = req
        .get("secondaryArtifactsOverride")
        .filter(|v| !v.is_null())
        .or_else(|| project.get("secondaryArtifacts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| build_artifacts(a, ids.project, ids.uuid, place))
        .collect();
    b.insert("secondaryArtifacts".into(), json!(secondary_artifacts));

    // Cache.
    let cache = req
        .get("cacheOverride")
        .filter(|v| !v.is_null())
        .or_else(|| project.get("cache"))
        .cloned()
        .unwrap_or_else(|| json!({"type": "NO_CACHE"}));
    b.insert("cache".into(), cache);

    // Environment.
    let mut env = project
        .get("environment")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(e) = env.as_object_mut() {
        for (from, to) in [
            ("environmentTypeOverride", "type"),
            ("imageOverride", "image"),
            ("computeTypeOverride", "computeType"),
            ("certificateOverride", "certificate"),
            ("privilegedModeOverride", "privilegedMode"),
            (
                "imagePullCredentialsTypeOverride",
                "imagePullCredentialsType",
            ),
            ("registryCredentialOverride", "registryCredential"),
            ("fleetOverride", "fleet"),
        ] {
            set_if(e, to, req.get(from));
        }
        e.insert(
            "environmentVariables".into(),
            json!(merged_env_vars(project, req)),
        );
    }
    b.insert("environment".into(), env);

    for (key, over) in [
        ("serviceRole", "serviceRoleOverride"),
        ("encryptionKey", "encryptionKeyOverride"),
        ("timeoutInMinutes", "timeoutInMinutesOverride"),
        ("queuedTimeoutInMinutes", "queuedTimeoutInMinutesOverride"),
    ] {
        set_if(
            &mut b,
            key,
            req.get(over)
                .filter(|v| !v.is_null())
                .or_else(|| project.get(key)),
        );
    }
    b.entry("timeoutInMinutes").or_insert(json!(60));
    b.entry("queuedTimeoutInMinutes").or_insert(json!(480));
    b.entry("encryptionKey")
        .or_insert_with(|| json!(place.default_kms_key()));
    b.insert(
        "logs".into(),
        build_logs(project, req, ids.project, ids.uuid, place),
    );
    set_if(&mut b, "vpcConfig", project.get("vpcConfig"));
    set_if(
        &mut b,
        "fileSystemLocations",
        project.get("fileSystemLocations"),
    );
    let debug = req
        .get("debugSessionEnabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    b.insert("debugSession".into(), json!({ "sessionEnabled": debug }));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACE: Place<'static> = Place {
        region: "eu-west-1",
        account: "111122223333",
    };

    fn project() -> Value {
        let input = quick_project_input(
            "proj",
            "111122223333",
            Some(&json!({
                "source": {"type": "GITHUB", "location": "https://github.com/o/r"},
                "artifacts": {"type": "S3", "location": "bucket", "path": "out", "name": "art.zip", "namespaceType": "BUILD_ID"},
                "environment": {"type": "LINUX_CONTAINER", "image": "img", "computeType": "BUILD_GENERAL1_SMALL",
                    "environmentVariables": [{"name": "A", "value": "1"}, {"name": "B", "value": "2", "type": "PLAINTEXT"}]}
            })),
        );
        new_project(&input, &PLACE, 1000.0).unwrap_or_default()
    }

    #[test]
    fn project_defaults() {
        let p = project();
        assert_eq!(
            p["arn"],
            "arn:aws:codebuild:eu-west-1:111122223333:project/proj"
        );
        assert_eq!(p["timeoutInMinutes"], 60);
        assert_eq!(p["cache"]["type"], "NO_CACHE");
        assert_eq!(p["badge"]["badgeEnabled"], false);
    }

    #[test]
    fn project_validation() {
        let bad = json!({"name": "proj"});
        assert_eq!(
            new_project(&bad, &PLACE, 0.0).map_err(|e| e.message),
            Err("1 validation error detected: Value null at 'source' failed to satisfy constraint: Member must not be null".to_string())
        );
        assert!(check_project_name("a b").is_err());
        assert!(check_project_name("ok-name_1").is_ok());
    }

    #[test]
    fn overrides_are_merged() {
        let req = json!({
            "projectName": "proj",
            "environmentVariablesOverride": [{"name": "B", "value": "20"}, {"name": "C", "value": "3", "type": "PARAMETER_STORE"}],
            "imageOverride": "other",
            "sourceVersion": "main",
            "timeoutInMinutesOverride": 15,
            "artifactsOverride": {"type": "S3", "location": "b2", "name": "x", "overrideArtifactName": true},
        });
        let ids = BuildIds {
            project: "proj",
            uuid: "u-1",
            build_number: 3,
            start: 1000.5,
            initiator: "me",
        };
        let b = Value::Object(build_fields(&project(), &req, &ids, &PLACE));
        assert_eq!(b["id"], "proj:u-1");
        assert_eq!(
            b["arn"],
            "arn:aws:codebuild:eu-west-1:111122223333:build/proj:u-1"
        );
        assert_eq!(b["environment"]["image"], "other");
        assert_eq!(
            b["environment"]["environmentVariables"],
            json!([
                {"name": "A", "value": "1", "type": "PLAINTEXT"},
                {"name": "B", "value": "20", "type": "PLAINTEXT"},
                {"name": "C", "value": "3", "type": "PARAMETER_STORE"}
            ])
        );
        assert_eq!(b["timeoutInMinutes"], 15);
        assert_eq!(b["queuedTimeoutInMinutes"], 480);
        assert_eq!(b["sourceVersion"], "main");
        assert_eq!(
            b["artifacts"],
            json!({"location": "arn:aws:s3:::b2/x", "overrideArtifactName": true})
        );
        assert_eq!(b["logs"]["groupName"], "/aws/codebuild/proj");
        assert_eq!(b["logs"]["streamName"], "u-1");
        assert_eq!(
            b["logs"]["deepLink"],
            "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logEvent:group=/aws/codebuild/proj;stream=u-1"
        );
    }

    #[test]
    fn project_artifacts_with_build_id_namespace() {
        let req = json!({"projectName": "proj"});
        let ids = BuildIds {
            project: "proj",
            uuid: "u-2",
            build_number: 1,
            start: 0.0,
            initiator: "me",
        };
        let b = build_fields(&project(), &req, &ids, &PLACE);
        assert_eq!(
            b["artifacts"]["location"],
            "arn:aws:s3:::bucket/out/u-2/art.zip"
        );
    }

    #[test]
    fn resolved_versions() {
        let git = json!({"type": "GITHUB", "location": "x"});
        let a = resolved_source_version(&git, Some("main")).unwrap_or_default();
        assert_eq!(a.len(), 40);
        assert_eq!(Some(a), resolved_source_version(&git, Some("main")));
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            resolved_source_version(&git, Some(sha)).as_deref(),
            Some(sha)
        );
        assert_eq!(resolved_source_version(&json!({"type": "S3"}), None), None);
    }

    #[test]
    fn start_request_validation() {
        assert!(check_start_request(&json!({})).is_err());
        assert!(
            check_start_request(&json!({"projectName": "p", "timeoutInMinutesOverride": 3}))
                .is_err()
        );
        assert!(check_start_request(&json!({"projectName": "p", "environmentVariablesOverride": [{"name": "", "value": "x"}]})).is_err());
        assert!(
            check_start_request(&json!({"projectName": "p", "computeTypeOverride": "HUGE"}))
                .is_err()
        );
        assert!(check_start_request(&json!({"projectName": "p"})).is_ok());
    }
}
