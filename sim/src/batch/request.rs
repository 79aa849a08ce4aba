//! StartBuildBatch requests: what is checked when the call arrives, the StartBuild request each
//! build of the batch is started with (the batch's overrides, then its batchspec entry's), and
//! the BuildBatch fields that do not change while it runs.

use super::spec::Entry;
use crate::lifecycle::ts;
use crate::overrides::{self, BuildIds, COMPUTE_TYPES, ENVIRONMENT_TYPES, Place};
use crate::protocol::{ApiError, ErrorKind};
use serde_json::{Map, Value, json};

/// StartBuildBatch members a build of the batch does not take (the rest are StartBuild's
/// members of the same name, bar `buildTimeoutInMinutesOverride`).
const BATCH_ONLY: [&str; 4] = [
    "buildBatchConfigOverride",
    "reportBuildBatchStatusOverride",
    "idempotencyToken",
    "buildTimeoutInMinutesOverride",
];

/// Source types that report build status to their provider (the model's documentation of
/// `reportBuildBatchStatusOverride`).
const STATUS_REPORTING_SOURCES: [&str; 3] = ["GITHUB", "GITHUB_ENTERPRISE", "BITBUCKET"];

const BATCH_REPORT_MODES: [&str; 2] = ["REPORT_INDIVIDUAL_BUILDS", "REPORT_AGGREGATED_BATCH"];

/// Validates the members the simulator checks before anything starts.
pub fn check(req: &Value) -> Result<(), ApiError> {
    overrides::check_project_member(req)?;
    overrides::int_range(
        req.get("buildTimeoutInMinutesOverride"),
        "buildTimeoutInMinutesOverride",
        5,
        2160,
    )?;
    overrides::check_shared_overrides(req)?;
    let Some(config) = req.get("buildBatchConfigOverride").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let member = "buildBatchConfigOverride";
    if !config.is_object() {
        return Err(serialization(&format!("{member} must be a structure")));
    }
    overrides::enum_check(
        config.get("batchReportMode"),
        &format!("{member}.batchReportMode"),
        &BATCH_REPORT_MODES,
    )?;
    if let Some(role) = config.get("serviceRole").and_then(Value::as_str)
        && role.is_empty()
    {
        return Err(ApiError::constraint(
            "",
            &format!("{member}.serviceRole"),
            "Member must have length greater than or equal to 1",
        ));
    }
    let restrictions = config.get("restrictions").unwrap_or(&Value::Null);
    for key in ["maximumBuildsAllowed"] {
        if restrictions
            .get(key)
            .is_some_and(|v| !v.is_null() && !v.is_i64())
        {
            return Err(serialization(&format!(
                "{member}.restrictions.{key} must be an integer"
            )));
        }
    }
    for key in ["computeTypesAllowed", "fleetsAllowed"] {
        let bad = restrictions.get(key).is_some_and(|v| {
            !v.is_null() && !v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        });
        if bad {
            return Err(serialization(&format!(
                "{member}.restrictions.{key} must be a list of strings"
            )));
        }
    }
    Ok(())
}

fn serialization(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Serialization, message)
}

/// The project's `buildBatchConfig` with the override's members over it; None when neither
/// is set.
pub fn batch_config(project: &Value, req: &Value) -> Option<Value> {
    let base = project.get("buildBatchConfig").filter(|v| v.is_object());
    let over = req
        .get("buildBatchConfigOverride")
        .filter(|v| v.is_object());
    let mut merged = base.cloned().or_else(|| over.map(|_| json!({})))?;
    if let (Some(m), Some(Value::Object(o))) = (merged.as_object_mut(), over) {
        for (k, v) in o.iter().filter(|(_, v)| !v.is_null()) {
            m.insert(k.clone(), v.clone());
        }
    }
    Some(merged)
}

/// What the request asks of this project that the service refuses: batch builds the project
/// is not configured for, or status reports its source cannot make. The wording is the
/// simulator's.
pub fn check_against_project(project: &Value, req: &Value, place: &Place) -> Result<(), ApiError> {
    let name = project["name"].as_str().unwrap_or_default();
    if batch_config(project, req).is_none() {
        return Err(ApiError::invalid(format!(
            "Batch builds are not enabled for project {}: set its buildBatchConfig or give buildBatchConfigOverride",
            place.project_arn(name)
        )));
    }
    if req
        .get("reportBuildBatchStatusOverride")
        .and_then(Value::as_bool)
        == Some(true)
    {
        let source = req
            .get("sourceTypeOverride")
            .and_then(Value::as_str)
            .or_else(|| project["source"]["type"].as_str())
            .unwrap_or_default();
        if !STATUS_REPORTING_SOURCES.contains(&source) {
            return Err(ApiError::invalid(format!(
                "reportBuildBatchStatusOverride is supported only for GITHUB, GITHUB_ENTERPRISE and BITBUCKET sources, not {source}"
            )));
        }
    }
    Ok(())
}

/// The StartBuild request every build of the batch starts from.
pub fn member_request(req: &Value) -> Value {
    let mut m = req.as_object().cloned().unwrap_or_default();
    if let Some(t) = m.get("buildTimeoutInMinutesOverride").cloned() {
        m.insert("timeoutInMinutesOverride".into(), t);
    }
    for key in BATCH_ONLY {
        m.remove(key);
    }
    Value::Object(m)
}

/// The request of the batch's DOWNLOAD_SOURCE build: it only fetches the source, so it
/// uploads no artifacts.
pub fn source_request(member: &Value) -> Value {
    let mut r = member.clone();
    r["artifactsOverride"] = json!({"type": "NO_ARTIFACTS"});
    r["secondaryArtifactsOverride"] = json!([]);
    r
}

/// The StartBuild request of one entry: its `env` and `buildspec` over the batch's.
pub fn entry_request(member: &Value, entry: &Entry) -> Value {
    let mut r = member.clone();
    let env = &entry.env;
    let overrides = [
        (
            "computeTypeOverride",
            env.compute_type.clone().map(Value::from),
        ),
        ("imageOverride", env.image.clone().map(Value::from)),
        (
            "environmentTypeOverride",
            env.env_type.clone().map(Value::from),
        ),
        (
            "privilegedModeOverride",
            env.privileged_mode.map(Value::from),
        ),
        (
            "fleetOverride",
            env.fleet.as_ref().map(|f| json!({"fleetArn": f})),
        ),
        (
            "buildspecOverride",
            entry.buildspec.clone().map(Value::from),
        ),
        ("debugSessionEnabled", entry.debug_session.map(Value::from)),
    ];
    for (key, value) in overrides {
        if let Some(v) = value {
            r[key] = v;
        }
    }
    if !env.variables.is_empty() {
        let mut vars: Vec<Value> = r["environmentVariablesOverride"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (name, value) in &env.variables {
            let var = json!({"name": name, "value": value, "type": "PLAINTEXT"});
            match vars.iter_mut().find(|v| v["name"] == json!(name)) {
                Some(slot) => *slot = var,
                None => vars.push(var),
            }
        }
        r["environmentVariablesOverride"] = json!(vars);
    }
    r
}

/// The first entry whose `env` names no known compute or environment type.
pub fn check_entries(entries: &[Entry]) -> Result<(), String> {
    for e in entries {
        if let Some(c) = e
            .env
            .compute_type
            .as_deref()
            .filter(|c| !COMPUTE_TYPES.contains(c))
        {
            return Err(format!("{}: {c} is not a compute type", e.identifier));
        }
        if let Some(t) = e
            .env
            .env_type
            .as_deref()
            .filter(|t| !ENVIRONMENT_TYPES.contains(t))
        {
            return Err(format!("{}: {t} is not an environment type", e.identifier));
        }
    }
    Ok(())
}

/// The ids of a new batch.
#[derive(Clone, Debug)]
pub struct BatchIds<'a> {
    pub project: &'a str,
    pub uuid: &'a str,
    pub number: i64,
    pub start: f64,
    pub initiator: &'a str,
}

/// The BuildBatch fields fixed when it starts: the build's fields the model's BuildBatch
/// shares (the batch's overrides over the project), under their BuildBatch names.
pub fn static_fields(
    project: &Value,
    req: &Value,
    ids: &BatchIds,
    place: &Place,
) -> Map<String, Value> {
    let member = member_request(req);
    let build_ids = BuildIds {
        project: ids.project,
        uuid: ids.uuid,
        build_number: ids.number,
        start: ids.start,
        initiator: ids.initiator,
    };
    let build = overrides::build_fields(project, &member, &build_ids, place);
    let id = build_ids.id();
    let mut b = Map::new();
    b.insert("id".into(), json!(id));
    b.insert("arn".into(), json!(place.build_batch_arn(&id)));
    b.insert("startTime".into(), json!(ts(ids.start)));
    for key in [
        "sourceVersion",
        "projectName",
        "source",
        "secondarySources",
        "secondarySourceVersions",
        "artifacts",
        "secondaryArtifacts",
        "cache",
        "environment",
        "serviceRole",
    ] {
        if let Some(v) = build.get(key) {
            b.insert(key.into(), v.clone());
        }
    }
    b.insert("logConfig".into(), log_config(project, req));
    b.insert(
        "buildTimeoutInMinutes".into(),
        build["timeoutInMinutes"].clone(),
    );
    for key in [
        "queuedTimeoutInMinutes",
        "initiator",
        "vpcConfig",
        "encryptionKey",
    ] {
        if let Some(v) = build.get(key) {
            b.insert(key.into(), v.clone());
        }
    }
    b.insert("buildBatchNumber".into(), json!(ids.number));
    if let Some(v) = build.get("fileSystemLocations") {
        b.insert("fileSystemLocations".into(), v.clone());
    }
    if let Some(config) = batch_config(project, req) {
        b.insert("buildBatchConfig".into(), config);
    }
    if let Some(debug) = req.get("debugSessionEnabled").filter(|v| v.is_boolean()) {
        b.insert("debugSessionEnabled".into(), debug.clone());
    }
    b
}

/// The project's `logsConfig` with `logsConfigOverride`'s members over it.
fn log_config(project: &Value, req: &Value) -> Value {
    let mut cfg = project
        .get("logsConfig")
        .cloned()
        .unwrap_or_else(|| json!({"cloudWatchLogs": {"status": "ENABLED"}}));
    if let (Some(c), Some(o)) = (
        cfg.as_object_mut(),
        req.get("logsConfigOverride").and_then(Value::as_object),
    ) {
        for (k, v) in o {
            c.insert(k.clone(), v.clone());
        }
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::spec::EntryEnv;

    const PLACE: Place<'static> = Place {
        region: "us-east-1",
        account: "123456789012",
    };

    fn project(extra: Value) -> Value {
        let input = overrides::quick_project_input("proj", "123456789012", Some(&extra));
        overrides::new_project(&input, &PLACE, 1000.0).unwrap_or_default()
    }

    #[test]
    fn validation() {
        assert!(check(&json!({})).is_err());
        assert!(check(&json!({"projectName": "p", "buildTimeoutInMinutesOverride": 4})).is_err());
        assert!(
            check(&json!({"projectName": "p", "timeoutInMinutesOverride": 4})).is_ok(),
            "not a member"
        );
        assert!(check(&json!({"projectName": "p", "computeTypeOverride": "HUGE"})).is_err());
        let bad_mode =
            json!({"projectName": "p", "buildBatchConfigOverride": {"batchReportMode": "LOUD"}});
        assert!(
            check(&bad_mode)
                .err()
                .is_some_and(|e| e.message.contains("batchReportMode"))
        );
        let bad_max = json!({"projectName": "p", "buildBatchConfigOverride": {"restrictions": {"maximumBuildsAllowed": "3"}}});
        assert_eq!(
            check(&bad_max).err().map(|e| e.kind),
            Some(ErrorKind::Serialization)
        );
        let fine = json!({"projectName": "p", "buildBatchConfigOverride": {
            "serviceRole": "r", "combineArtifacts": true, "timeoutInMins": 30,
            "restrictions": {"maximumBuildsAllowed": 3, "computeTypesAllowed": ["BUILD_GENERAL1_SMALL"]}}});
        assert!(check(&fine).is_ok());
    }

    #[test]
    fn batch_builds_must_be_enabled() {
        let plain = project(json!({}));
        let req = json!({"projectName": "proj"});
        let err = check_against_project(&plain, &req, &PLACE).err();
        assert!(err.is_some_and(|e| e.message.contains(
            "not enabled for project arn:aws:codebuild:us-east-1:123456789012:project/proj"
        )));
        let with_override =
            json!({"projectName": "proj", "buildBatchConfigOverride": {"serviceRole": "r"}});
        assert!(check_against_project(&plain, &with_override, &PLACE).is_ok());
        let enabled = project(
            json!({"buildBatchConfig": {"serviceRole": "r", "restrictions": {"maximumBuildsAllowed": 10}}}),
        );
        assert!(check_against_project(&enabled, &req, &PLACE).is_ok());
        assert_eq!(
            batch_config(
                &enabled,
                &json!({"buildBatchConfigOverride": {"combineArtifacts": true}})
            ),
            Some(
                json!({"serviceRole": "r", "restrictions": {"maximumBuildsAllowed": 10}, "combineArtifacts": true})
            )
        );
        let report = json!({"projectName": "proj", "reportBuildBatchStatusOverride": true});
        assert!(
            check_against_project(&enabled, &report, &PLACE).is_err(),
            "NO_SOURCE cannot report"
        );
        let github = json!({"projectName": "proj", "reportBuildBatchStatusOverride": true, "sourceTypeOverride": "GITHUB"});
        assert!(check_against_project(&enabled, &github, &PLACE).is_ok());
    }

    #[test]
    fn member_and_entry_requests() {
        let req = json!({
            "projectName": "proj", "idempotencyToken": "t", "buildTimeoutInMinutesOverride": 30,
            "buildBatchConfigOverride": {}, "reportBuildBatchStatusOverride": false,
            "environmentVariablesOverride": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "imageOverride": "img",
        });
        let member = member_request(&req);
        assert_eq!(
            member,
            json!({"projectName": "proj", "timeoutInMinutesOverride": 30, "imageOverride": "img",
                   "environmentVariablesOverride": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]})
        );
        assert!(overrides::check_start_request(&member).is_ok());
        let entry = Entry {
            identifier: "e".into(),
            buildspec: Some("other.yml".into()),
            env: EntryEnv {
                compute_type: Some("BUILD_GENERAL1_LARGE".into()),
                fleet: Some("f".into()),
                privileged_mode: Some(true),
                variables: vec![("B".into(), "20".into()), ("C".into(), "3".into())],
                ..EntryEnv::default()
            },
            debug_session: Some(false),
            ..Entry::default()
        };
        let r = entry_request(&member, &entry);
        assert_eq!(r["computeTypeOverride"], "BUILD_GENERAL1_LARGE");
        assert_eq!(r["imageOverride"], "img", "the batch's override stays");
        assert_eq!(r["fleetOverride"], json!({"fleetArn": "f"}));
        assert_eq!(r["privilegedModeOverride"], true);
        assert_eq!(r["buildspecOverride"], "other.yml");
        assert_eq!(r["debugSessionEnabled"], false);
        assert_eq!(
            r["environmentVariablesOverride"],
            json!([{"name": "A", "value": "1"},
                   {"name": "B", "value": "20", "type": "PLAINTEXT"},
                   {"name": "C", "value": "3", "type": "PLAINTEXT"}])
        );
        assert_eq!(
            source_request(&member)["artifactsOverride"],
            json!({"type": "NO_ARTIFACTS"})
        );
        let bad = Entry {
            identifier: "x".into(),
            env: EntryEnv {
                compute_type: Some("HUGE".into()),
                ..EntryEnv::default()
            },
            ..Entry::default()
        };
        assert_eq!(
            check_entries(&[entry, bad]),
            Err("x: HUGE is not a compute type".into())
        );
    }

    #[test]
    fn static_fields_use_batch_names() {
        let p = project(json!({"buildBatchConfig": {"serviceRole": "r"}}));
        let req = json!({"projectName": "proj", "buildTimeoutInMinutesOverride": 30, "debugSessionEnabled": true,
                         "logsConfigOverride": {"s3Logs": {"status": "ENABLED", "location": "b/p"}}});
        let ids = BatchIds {
            project: "proj",
            uuid: "u",
            number: 4,
            start: 1000.0,
            initiator: "me",
        };
        let f = static_fields(&p, &req, &ids, &PLACE);
        assert_eq!(f["id"], "proj:u");
        assert_eq!(
            f["arn"],
            "arn:aws:codebuild:us-east-1:123456789012:build-batch/proj:u"
        );
        assert_eq!(f["buildBatchNumber"], 4);
        assert_eq!(f["buildTimeoutInMinutes"], 30);
        assert_eq!(f["queuedTimeoutInMinutes"], 480);
        assert_eq!(f["logConfig"]["s3Logs"]["location"], "b/p");
        assert_eq!(f["logConfig"]["cloudWatchLogs"]["status"], "ENABLED");
        assert_eq!(f["buildBatchConfig"], json!({"serviceRole": "r"}));
        assert_eq!(f["debugSessionEnabled"], true);
        assert_eq!(f["artifacts"], json!({"location": ""}));
        for absent in ["logs", "timeoutInMinutes", "buildNumber", "debugSession"] {
            assert!(f.get(absent).is_none(), "{absent}");
        }
    }
}
