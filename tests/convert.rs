//! spec -> StartBuild on the wire, and Build on the wire -> status, through the real AWS SDK
//! with an in-memory HTTP client: nothing the user wrote is dropped, nothing CodeBuild
//! reports is lost. The same for a CodeBuildBatchRun: spec -> StartBuildBatch, BuildBatch
//! -> status, and the other batch calls on the wire.

use std::sync::{Arc, Mutex};

use aws_sdk_codebuild::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_smithy_http_client::test_util::infallible_client_fn;
use aws_smithy_types::body::SdkBody;
use codebuild_operator::api::{
    CodeBuildBatchRunSpec, CodeBuildRunSpec, MARKER_ENV_VAR, RetryBuildBatchType,
};
use codebuild_operator::codebuild::{AwsBuildApi, AwsSettings, BatchApi, BuildApi, Target};
use codebuild_operator::convert::{
    batch_info, build_info, start_build_batch_input, start_build_input,
};
use serde_json::{Value, json};

const FULL_SPEC: &str = include_str!("fixtures/start-build-full.json");
const FULL_BUILD: &str = include_str!("fixtures/build-full.json");
const FULL_BATCH_SPEC: &str = include_str!("fixtures/start-build-batch-full.json");
const FULL_BATCH: &str = include_str!("fixtures/build-batch-full.json");

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

// === batch builds ===

fn batch_response() -> &'static str {
    Box::leak(format!("{{\"buildBatch\": {FULL_BATCH}}}").into_boxed_str())
}

/// `expected` and `body` hold the same members with the same values.
fn same_members(expected: &Value, body: &Value) {
    let (expected, body) = (expected.as_object().unwrap(), body.as_object().unwrap());
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

#[tokio::test]
async fn a_start_build_batch_json_is_a_spec_and_reaches_the_wire_unchanged() {
    let fixture: Value = serde_json::from_str(FULL_BATCH_SPEC).unwrap();
    let spec: CodeBuildBatchRunSpec = serde_json::from_value(fixture.clone())
        .expect("a StartBuildBatch JSON is a valid batch spec");
    // Nothing of the JSON is dropped by the spec type.
    let mut back = serde_json::to_value(&spec).unwrap();
    assert_eq!(back, fixture, "the spec gives back the JSON it was given");
    let token = spec.idempotency_token.clone().unwrap();
    let input = start_build_batch_input(&spec, &token, "uid-123").unwrap();

    let (api, seen) = sdk(batch_response());
    api.start_build_batch(&Target::region("us-east-1"), input)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let (target, body) = &seen[0];
    assert_eq!(target, "CodeBuild_20161006.StartBuildBatch");
    // The wire request is the fixture plus the marker variable, member for member.
    back["environmentVariablesOverride"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": MARKER_ENV_VAR, "value": "uid-123", "type": "PLAINTEXT"}));
    same_members(&back, body);
}

#[test]
fn the_full_batch_fixture_covers_every_member_of_the_service_model() {
    let model: Value = serde_json::from_str(include_str!("data/codebuild-model.json")).unwrap();
    let mut missing = Vec::new();
    let spec: Value = serde_json::from_str(FULL_BATCH_SPEC).unwrap();
    covers(&model, "StartBuildBatchInput", &spec, "", &mut missing);
    assert!(missing.is_empty(), "the fixture does not set: {missing:?}");
    assert_eq!(
        spec.as_object().unwrap().len(),
        31,
        "31 StartBuildBatch members"
    );
}

#[tokio::test]
async fn every_mirrored_batch_field_reaches_status() {
    let (api, _) = sdk(batch_response());
    let batch = api
        .stop_build_batch(&Target::region("us-east-1"), "my-app:x")
        .await
        .unwrap();
    let info = serde_json::to_value(batch_info(&batch)).unwrap();
    let expected: Value =
        serde_json::from_str(include_str!("fixtures/build-batch-full.status.json")).unwrap();
    assert_eq!(
        info, expected,
        "status mirror of fixtures/build-batch-full.json"
    );
    for field in [
        "id",
        "arn",
        "buildBatchNumber",
        "buildBatchStatus",
        "currentPhase",
        "complete",
        "startTime",
        "endTime",
        "sourceVersion",
        "resolvedSourceVersion",
        "phases",
        "buildGroups",
        "builds",
        "artifacts",
        "secondaryArtifacts",
        "reportArns",
    ] {
        assert!(info.get(field).is_some(), "{field} missing from status");
    }
    // The service's values outside the model's enums arrive as CodeBuild spelt them.
    let groups = info["buildGroups"].as_array().unwrap();
    assert_eq!(groups[3]["currentBuildSummary"]["buildStatus"], "PENDING");
    assert_eq!(
        groups[1]["currentBuildSummary"]["primaryArtifact"]["type"],
        "s3"
    );
    assert_eq!(info["phases"][2]["phaseStatus"], "CLIENT_ERROR");
    assert_eq!(
        groups[1]["currentBuildSummary"]["buildId"],
        "my-app:11111111-1111-4111-8111-111111111111"
    );
    assert_eq!(info["builds"], "2/3", "linux and windows ended; docs waits");
    // Never the batch's environment (variable values).
    assert!(!info.to_string().contains("super-secret-plaintext"));
}

#[tokio::test]
async fn the_batch_calls_reach_the_wire_as_the_model_names_them() {
    let (api, seen) = sdk(batch_response());
    let t = Target::region("us-east-1");
    api.stop_build_batch(&t, "p:1").await.unwrap();
    api.retry_build_batch(
        &t,
        "p:1",
        RetryBuildBatchType::RetryFailedBuilds,
        "tok-retry-1",
    )
    .await
    .unwrap();
    let (api_list, seen_list) = sdk(r#"{"ids": ["p:2", "p:1"], "nextToken": "n"}"#);
    let page = api_list
        .list_build_batches_for_project(&t, "p", Some("m".into()))
        .await
        .unwrap();
    assert_eq!(page.ids, ["p:2", "p:1"]);
    assert_eq!(page.next_token.as_deref(), Some("n"));
    let (api_get, seen_get) = sdk(r#"{"buildBatches": [], "buildBatchesNotFound": ["p:9"]}"#);
    let found = api_get
        .batch_get_build_batches(&t, vec!["p:9".into()])
        .await
        .unwrap();
    assert_eq!(found.not_found, ["p:9"]);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, "CodeBuild_20161006.StopBuildBatch");
    assert_eq!(seen[0].1, json!({"id": "p:1"}));
    assert_eq!(seen[1].0, "CodeBuild_20161006.RetryBuildBatch");
    assert_eq!(
        seen[1].1,
        json!({"id": "p:1", "retryType": "RETRY_FAILED_BUILDS", "idempotencyToken": "tok-retry-1"})
    );
    let list = &seen_list.lock().unwrap()[0];
    assert_eq!(list.0, "CodeBuild_20161006.ListBuildBatchesForProject");
    assert_eq!(
        list.1,
        json!({"projectName": "p", "sortOrder": "DESCENDING", "maxResults": 100, "nextToken": "m"})
    );
    let get = &seen_get.lock().unwrap()[0];
    assert_eq!(get.0, "CodeBuild_20161006.BatchGetBuildBatches");
    assert_eq!(get.1, json!({"ids": ["p:9"]}));
}
