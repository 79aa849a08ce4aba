//! spec -> StartBuild on the wire, and Build on the wire -> status, through the real AWS SDK
//! with an in-memory HTTP client: nothing the user wrote is dropped, nothing CodeBuild
//! reports is lost.

use std::sync::{Arc, Mutex};

use aws_sdk_codebuild::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_smithy_http_client::test_util::infallible_client_fn;
use aws_smithy_types::body::SdkBody;
use codebuild_operator::api::{CodeBuildRunSpec, MARKER_ENV_VAR};
use codebuild_operator::codebuild::{AwsBuildApi, AwsSettings, BuildApi, Target};
use codebuild_operator::convert::{build_info, start_build_input};
use serde_json::{Value, json};

const FULL_SPEC: &str = include_str!("fixtures/start-build-full.json");
const FULL_BUILD: &str = include_str!("fixtures/build-full.json");

/// The requests an SDK client sent: (X-Amz-Target, JSON body).
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// An SDK whose HTTP client records each request body and answers with `response`.
fn sdk(response: &'static str) -> (AwsBuildApi, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let http = infallible_client_fn(move |req| {
        let target = req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body =
            serde_json::from_slice(req.body().bytes().unwrap_or_default()).unwrap_or(Value::Null);
        log.lock().unwrap().push((target, body));
        http::Response::builder()
            .status(200)
            .header("content-type", "application/x-amz-json-1.1")
            .body(SdkBody::from(response))
            .unwrap()
    });
    let config = aws_config::SdkConfig::builder()
        .http_client(http)
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKID", "SECRET", None, None, "test",
        )))
        .behavior_version(BehaviorVersion::latest())
        .build();
    (
        AwsBuildApi::from_sdk_config(config, AwsSettings::default()),
        seen,
    )
}

fn start_build_response() -> &'static str {
    Box::leak(format!("{{\"build\": {FULL_BUILD}}}").into_boxed_str())
}

#[tokio::test]
async fn every_spec_member_reaches_the_wire_unchanged() {
    let fixture: Value = serde_json::from_str(FULL_SPEC).unwrap();
    let spec: CodeBuildRunSpec =
        serde_json::from_value(fixture.clone()).expect("a StartBuild JSON is a valid spec");
    let token = spec.idempotency_token.clone().unwrap();
    let input = start_build_input(&spec, &token, "uid-123").unwrap();

    let (api, seen) = sdk(start_build_response());
    api.start_build(&Target::region("us-east-1"), input)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let (target, body) = &seen[0];
    assert_eq!(target, "CodeBuild_20161006.StartBuild");

    // The wire request is the fixture plus the marker variable, member for member.
    let mut expected = fixture.clone();
    expected["environmentVariablesOverride"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": MARKER_ENV_VAR, "value": "uid-123", "type": "PLAINTEXT"}));
    let expected = expected.as_object().unwrap();
    let body = body.as_object().unwrap();
    for (member, value) in expected {
        assert_eq!(
            body.get(member),
            Some(value),
            "member {member} differs on the wire"
        );
    }
    for member in body.keys() {
        assert!(
            expected.contains_key(member),
            "unexpected member {member} on the wire"
        );
    }
}

#[test]
fn the_full_fixture_covers_every_member_of_the_service_model() {
    // The fixture above is only a proof if it sets every member, nested ones included.
    let model: Value = serde_json::from_str(include_str!("data/codebuild-model.json")).unwrap();
    let fixture: Value = serde_json::from_str(FULL_SPEC).unwrap();
    let mut missing = Vec::new();
    covers(&model, "StartBuildInput", &fixture, "", &mut missing);
    assert!(missing.is_empty(), "the fixture does not set: {missing:?}");
}

fn covers(model: &Value, shape: &str, value: &Value, path: &str, missing: &mut Vec<String>) {
    let s = &model["shapes"][shape];
    match s["type"].as_str().unwrap() {
        "structure" => {
            for (member, member_shape) in s["members"].as_object().unwrap() {
                let p = format!("{path}.{member}");
                match value.get(member) {
                    Some(v) => covers(model, member_shape.as_str().unwrap(), v, &p, missing),
                    None => missing.push(p),
                }
            }
        }
        "list" => {
            let items = value.as_array().unwrap();
            if items.is_empty() {
                missing.push(format!("{path}[]"));
            }
            for item in items {
                covers(
                    model,
                    s["member"].as_str().unwrap(),
                    item,
                    &format!("{path}[]"),
                    missing,
                );
            }
        }
        _ => {}
    }
}

#[test]
fn the_marker_replaces_a_user_variable_of_the_same_name() {
    let spec: CodeBuildRunSpec = serde_json::from_value(json!({
        "projectName": "p",
        "environmentVariablesOverride": [{"name": MARKER_ENV_VAR, "value": "forged"}]
    }))
    .unwrap();
    let input = start_build_input(&spec, "t", "real-uid").unwrap();
    let vars = input.environment_variables_override.unwrap();
    assert_eq!(vars.len(), 1);
    assert_eq!(vars[0].value, "real-uid");
    assert_eq!(input.idempotency_token.as_deref(), Some("t"));
}

#[tokio::test]
async fn every_listed_build_field_reaches_status() {
    let (api, _) = sdk(start_build_response());
    let input = start_build_input(
        &serde_json::from_value(json!({"projectName": "p"})).unwrap(),
        "t",
        "u",
    )
    .unwrap();
    let build = api
        .start_build(&Target::region("us-east-1"), input)
        .await
        .unwrap();
    let info = serde_json::to_value(build_info(&build)).unwrap();
    let expected: Value =
        serde_json::from_str(include_str!("fixtures/build-full.status.json")).unwrap();
    assert_eq!(info, expected, "status mirror of fixtures/build-full.json");
    // Every Build member that the status promises is present.
    for field in [
        "buildId",
        "buildArn",
        "buildNumber",
        "buildStatus",
        "currentPhase",
        "startTime",
        "endTime",
        "phases",
        "artifacts",
        "secondaryArtifacts",
        "logs",
        "resolvedSourceVersion",
        "exportedEnvironmentVariables",
        "reportArns",
        "autoRetryConfig",
        "sourceVersion",
        "buildComplete",
    ] {
        assert!(info.get(field).is_some(), "{field} missing from status");
    }
    // Never the build's environment (variable values), never log contents.
    let text = info.to_string();
    assert!(
        !text.contains("super-secret-plaintext"),
        "an environment value leaked into status"
    );
}

#[tokio::test]
async fn empty_strings_from_codebuild_are_left_out_of_status() {
    // CodeBuild answers `"artifacts": {"location": ""}` for NO_ARTIFACTS and empty contexts
    // for successful phases.
    let response = r#"{"build": {"id": "p:1", "buildStatus": "IN_PROGRESS", "artifacts": {"location": ""},
        "secondaryArtifacts": [{"location": ""}], "reportArns": [], "exportedEnvironmentVariables": [],
        "phases": [{"phaseType": "SUBMITTED", "phaseStatus": "SUCCEEDED", "contexts": [{"statusCode": "", "message": ""}]}]}}"#;
    let (api, _) = sdk(response);
    let input = start_build_input(
        &serde_json::from_value(json!({"projectName": "p"})).unwrap(),
        "t",
        "u",
    )
    .unwrap();
    let info = serde_json::to_value(build_info(
        &api.start_build(&Target::region("us-east-1"), input)
            .await
            .unwrap(),
    ))
    .unwrap();
    assert!(info.get("artifacts").is_none(), "{info}");
    assert!(info["phases"][0].get("contexts").is_none(), "{info}");
    for list in [
        "secondaryArtifacts",
        "reportArns",
        "exportedEnvironmentVariables",
    ] {
        assert!(info.get(list).is_none(), "{list}: {info}");
    }
}
