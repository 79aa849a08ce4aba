//! Runs and policies shared by the end-to-end policy tests: one policy that sets every value
//! rule, a run every rule allows, and per rule a run it refuses.

use serde_json::{Value, json};

/// A policy for the namespaces `selector` selects that allows every member (but the
/// buildspec) of `projects` and sets every value rule.
pub fn every_rule_spec(selector: Value, projects: Value) -> Value {
    json!({
        "namespaceSelector": selector,
        "projects": projects,
        "overrides": {
            "allowed": ["*"],
            "denied": ["buildspecOverride"],
            "serviceRoles": ["arn:aws:iam::111111111111:role/team-a-*"],
            "images": ["aws/codebuild/standard:*"],
            "sourceLocations": ["https://github.com/team-a/*"],
            "sourceAuthResources": [
                "OAUTH", "arn:aws:codeconnections:us-east-1:111111111111:connection/team-a-*",
            ],
            "environmentVariableNames": ["STAGE", "APP_*"],
            "parameterNames": ["/team-a/*"],
            "secrets": ["team-a/*"],
            "artifactLocations": ["team-a-artifacts/*", "shared/team-a/*"],
            "cacheLocations": ["build-cache/team-a/*"],
            "logGroups": ["/codebuild/team-a/*"],
            "logLocations": ["build-logs/team-a/*"],
            "registryCredentials": ["arn:aws:secretsmanager:us-east-1:111111111111:secret:team-a/*"],
            "certificates": ["team-a-certs/*"],
            "encryptionKeys": ["arn:aws:kms:us-east-1:111111111111:alias/team-a-*"],
            "fleets": ["arn:aws:codebuild:us-east-1:111111111111:fleet/team-a-*"],
            "computeTypes": ["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM"],
            "environmentTypes": ["LINUX_CONTAINER", "ARM_CONTAINER"],
            "maxTimeoutInMinutes": 60,
            "maxQueuedTimeoutInMinutes": 60,
            "maxAutoRetryLimit": 1,
            "privilegedMode": false,
            "debugSessions": false,
        },
    })
}

/// A run of `project` that sets every member, each with a value [`every_rule_spec`] allows.
pub fn every_member_allowed(project: &str) -> Value {
    json!({
        "projectName": project,
        "sourceVersion": "main",
        "serviceRoleOverride": "arn:aws:iam::111111111111:role/team-a-ci",
        "imageOverride": "aws/codebuild/standard:7.0",
        "sourceLocationOverride": "https://github.com/team-a/web",
        "sourceAuthOverride": {"type": "CODECONNECTIONS",
            "resource": "arn:aws:codeconnections:us-east-1:111111111111:connection/team-a-gh"},
        "secondarySourcesOverride": [
            {"type": "GITHUB", "sourceIdentifier": "lib", "location": "https://github.com/team-a/lib",
             "auth": {"type": "OAUTH"}},
            {"type": "NO_SOURCE"},
        ],
        "environmentVariablesOverride": [
            {"name": "STAGE", "value": "test"},
            {"name": "APP_DB", "value": "/team-a/db", "type": "PARAMETER_STORE"},
            {"name": "APP_TOKEN", "value": "team-a/token:key::", "type": "SECRETS_MANAGER"},
            {"name": "APP_PLAIN", "value": "/team-b/not-a-reference", "type": "PLAINTEXT"},
        ],
        "artifactsOverride": {"type": "S3", "location": "shared", "path": "team-a/web"},
        "secondaryArtifactsOverride": [
            {"type": "S3", "location": "team-a-artifacts", "artifactIdentifier": "x"},
            {"type": "NO_ARTIFACTS", "artifactIdentifier": "y"},
        ],
        "cacheOverride": {"type": "S3", "location": "build-cache/team-a"},
        "logsConfigOverride": {
            "cloudWatchLogs": {"status": "ENABLED", "groupName": "/codebuild/team-a/web"},
            "s3Logs": {"status": "ENABLED", "location": "build-logs/team-a/"},
        },
        "registryCredentialOverride": {"credentialProvider": "SECRETS_MANAGER",
            "credential": "arn:aws:secretsmanager:us-east-1:111111111111:secret:team-a/hub"},
        "certificateOverride": "team-a-certs/ca.pem",
        "encryptionKeyOverride": "arn:aws:kms:us-east-1:111111111111:alias/team-a-build",
        "fleetOverride": {"fleetArn": "arn:aws:codebuild:us-east-1:111111111111:fleet/team-a-big"},
        "computeTypeOverride": "BUILD_GENERAL1_MEDIUM",
        "environmentTypeOverride": "ARM_CONTAINER",
        "timeoutInMinutesOverride": 60,
        "queuedTimeoutInMinutesOverride": 30,
        "autoRetryLimitOverride": 1,
        "privilegedModeOverride": false,
        "debugSessionEnabled": false,
    })
}

/// `{"projectName": project}` with `overrides` added.
pub fn project_with(project: &str, overrides: Value) -> Value {
    let mut spec = json!({"projectName": project});
    spec.as_object_mut()
        .unwrap()
        .extend(overrides.as_object().unwrap().clone());
    spec
}

/// Per rule, a run it refuses and a part of the refusal (the whole gap is computed by the
/// library and compared with kubectl's).
pub fn every_rule_refusals(policy: &str) -> Vec<(&'static str, Value, String)> {
    let gap =
        |what: &str, value: &str| format!("policy \"{policy}\" does not allow {what} \"{value}\"");
    let cap = |member: &str, value: &str| {
        format!("policy \"{policy}\" does not allow {member} {value} (at most")
    };
    let s3 = |location: &str, path: &str| json!({"type": "S3", "location": location, "path": path});
    let var = |name: &str, value: &str, t: &str| json!([{"name": name, "value": value, "type": t}]);
    vec![
        (
            "role",
            json!({"serviceRoleOverride": "arn:aws:iam::111111111111:role/admin"}),
            gap(
                "serviceRoleOverride",
                "arn:aws:iam::111111111111:role/admin",
            ),
        ),
        (
            "image",
            json!({"imageOverride": "evil/miner"}),
            gap("imageOverride", "evil/miner"),
        ),
        (
            "source",
            json!({"sourceLocationOverride": "https://github.com/team-b/x"}),
            gap("sourceLocationOverride", "https://github.com/team-b/x"),
        ),
        (
            "source-auth",
            json!({"sourceAuthOverride": {"type": "SECRETS_MANAGER", "resource": "team-b/gh"}}),
            gap("sourceAuthOverride", "team-b/gh"),
        ),
        (
            "secondary-auth",
            json!({"secondarySourcesOverride": [
            {"type": "GITHUB", "location": "https://github.com/team-a/ok", "auth": {"type": "OAUTH"}},
            {"type": "GITHUB", "location": "https://github.com/team-a/ok",
             "auth": {"type": "CODECONNECTIONS", "resource": "arn:aws:codeconnections:us-east-1:111111111111:connection/team-b"}}]}),
            gap(
                "secondarySourcesOverride auth",
                "arn:aws:codeconnections:us-east-1:111111111111:connection/team-b",
            ),
        ),
        (
            "variable-name",
            json!({"environmentVariablesOverride": [{"name": "STAGE", "value": "x"}, {"name": "BASH_ENV", "value": "$(id)"}]}),
            gap("environmentVariablesOverride name", "BASH_ENV"),
        ),
        (
            "parameter",
            json!({"environmentVariablesOverride": var("APP_DB", "/team-b/db", "PARAMETER_STORE")}),
            gap("environmentVariablesOverride parameter", "/team-b/db"),
        ),
        (
            "secret",
            json!({"environmentVariablesOverride": var("APP_DB", "team-b/db:password::", "SECRETS_MANAGER")}),
            gap(
                "environmentVariablesOverride secret",
                "team-b/db:password::",
            ),
        ),
        (
            "artifacts",
            json!({"artifactsOverride": s3("team-b-artifacts", "x")}),
            gap("artifactsOverride location", "team-b-artifacts/x/"),
        ),
        (
            "artifacts-no-bucket",
            json!({"artifactsOverride": {"type": "S3", "path": "team-a"}}),
            gap("artifactsOverride location", "/team-a/"),
        ),
        (
            "artifacts-dot-segment",
            json!({"artifactsOverride": s3("shared", "team-a/../team-b")}),
            format!(
                "{} (a location may not hold",
                gap("artifactsOverride location", "shared/team-a/../team-b/")
            ),
        ),
        (
            "secondary-artifacts",
            json!({"secondaryArtifactsOverride": [s3("team-a-artifacts", "ok"), s3("team-b-artifacts", "")]}),
            gap("secondaryArtifactsOverride location", "team-b-artifacts/"),
        ),
        (
            "cache",
            json!({"cacheOverride": {"type": "S3", "location": "build-cache/team-b"}}),
            gap("cacheOverride location", "build-cache/team-b/"),
        ),
        (
            "log-group",
            json!({"logsConfigOverride": {"cloudWatchLogs": {"status": "ENABLED", "groupName": "/codebuild/team-b"}}}),
            gap("logsConfigOverride log group", "/codebuild/team-b"),
        ),
        (
            "log-bucket",
            json!({"logsConfigOverride": {"s3Logs": {"status": "ENABLED", "location": "team-b-logs"}}}),
            gap("logsConfigOverride S3 location", "team-b-logs/"),
        ),
        (
            "registry",
            json!({"registryCredentialOverride": {"credential": "team-b/hub", "credentialProvider": "SECRETS_MANAGER"}}),
            gap("registryCredentialOverride", "team-b/hub"),
        ),
        (
            "certificate",
            json!({"certificateOverride": "team-b-certs/ca.pem"}),
            gap("certificateOverride", "team-b-certs/ca.pem"),
        ),
        (
            "certificate-dot-segment",
            json!({"certificateOverride": "team-a-certs/../team-b-certs/ca.pem"}),
            "(a location may not hold a \"..\" segment)".to_owned(),
        ),
        (
            "key",
            json!({"encryptionKeyOverride": "alias/team-b"}),
            gap("encryptionKeyOverride", "alias/team-b"),
        ),
        (
            "fleet",
            json!({"fleetOverride": {"fleetArn": "arn:aws:codebuild:us-east-1:111111111111:fleet/team-b"}}),
            gap(
                "fleetOverride",
                "arn:aws:codebuild:us-east-1:111111111111:fleet/team-b",
            ),
        ),
        (
            "compute",
            json!({"computeTypeOverride": "BUILD_GENERAL1_2XLARGE"}),
            gap("computeTypeOverride", "BUILD_GENERAL1_2XLARGE"),
        ),
        (
            "environment-type",
            json!({"environmentTypeOverride": "LINUX_GPU_CONTAINER"}),
            gap("environmentTypeOverride", "LINUX_GPU_CONTAINER"),
        ),
        (
            "timeout",
            json!({"timeoutInMinutesOverride": 600}),
            cap("timeoutInMinutesOverride", "600"),
        ),
        (
            "queued-timeout",
            json!({"queuedTimeoutInMinutesOverride": 480}),
            cap("queuedTimeoutInMinutesOverride", "480"),
        ),
        (
            "retries",
            json!({"autoRetryLimitOverride": 10}),
            cap("autoRetryLimitOverride", "10"),
        ),
        (
            "privileged",
            json!({"privilegedModeOverride": true}),
            format!(
                "policy \"{policy}\" does not allow privilegedModeOverride true (privilegedMode is false)"
            ),
        ),
        (
            "debug",
            json!({"debugSessionEnabled": true}),
            format!(
                "policy \"{policy}\" does not allow debugSessionEnabled true (debugSessions is false)"
            ),
        ),
        (
            "buildspec-denied",
            json!({"buildspecOverride": "version: 0.2"}),
            format!("policy \"{policy}\" does not allow buildspecOverride"),
        ),
    ]
}
