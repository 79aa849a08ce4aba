//! The AWS adapter (`AwsBuildApi`, the real SDK over HTTP) against the CodeBuild simulator
//! and against moto: wire compatibility, error classification, batching limits.
//!
//! moto runs as `python3 -m moto.server` (pip `moto[server]`, pinned in
//! tests/conformance/requirements.txt). It must be installed: this test fails, never skips,
//! when it is missing.

use aws_sdk_codebuild::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_sdk_codebuild::types::{
    ArtifactsType, ComputeType, EnvironmentType, ProjectArtifacts, ProjectEnvironment,
    ProjectSource, SourceType,
};
use codebuild_operator::api::CodeBuildRunSpec;
use codebuild_operator::codebuild::{
    AssumedRole, AwsBuildApi, AwsSettings, BuildApi, ErrorKind, LogRead, Target,
};
use codebuild_operator::convert::start_build_input;
use codebuild_sim::{Server, SimConfig};
use serde_json::json;

mod support;

use support::moto::start_moto;

fn sdk_config() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .behavior_version(BehaviorVersion::latest())
        .build()
}

fn api(endpoint: &str) -> AwsBuildApi {
    AwsBuildApi::from_sdk_config(
        sdk_config(),
        AwsSettings {
            endpoint_url: Some(endpoint.to_owned()),
            sts_endpoint_url: None,
            operation_timeout: None,
            logs_endpoint_url: Some(endpoint.to_owned()),
        },
    )
}

fn spec(project: &str) -> CodeBuildRunSpec {
    serde_json::from_value(json!({"projectName": project, "sourceVersion": "main"})).unwrap()
}

#[tokio::test]
async fn adapter_against_the_simulator() {
    let sim = Server::start(SimConfig {
        projects: vec!["my-app".into()],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let api = api(&sim.endpoint());

    let input = start_build_input(&spec("my-app"), "tok-1", "uid-1").unwrap();
    let build = api
        .start_build(&Target::region("us-east-1"), input.clone())
        .await
        .unwrap();
    let id = build.id.clone().unwrap();
    assert!(id.starts_with("my-app:"), "{id}");
    // Same token inside the window: the same build.
    let again = api
        .start_build(&Target::region("us-east-1"), input)
        .await
        .unwrap();
    assert_eq!(again.id.as_deref(), Some(id.as_str()));

    let batch = api
        .batch_get_builds(
            &Target::region("us-east-1"),
            vec![
                id.clone(),
                "my-app:00000000-0000-0000-0000-000000000000".into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(batch.builds.len(), 1);
    assert_eq!(
        batch.not_found,
        vec!["my-app:00000000-0000-0000-0000-000000000000".to_owned()]
    );

    let page = api
        .list_builds_for_project(&Target::region("us-east-1"), "my-app", None)
        .await
        .unwrap();
    assert_eq!(page.ids, vec![id.clone()]);

    let stopped = api
        .stop_build(&Target::region("us-east-1"), &id)
        .await
        .unwrap();
    assert_eq!(
        stopped
            .build_status
            .map(|s| s.as_str().to_owned())
            .as_deref(),
        Some("STOPPED")
    );

    // Errors are classified.
    let missing = api
        .start_build(
            &Target::region("us-east-1"),
            start_build_input(&spec("nope"), "t", "u").unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::ProjectNotFound, "{missing}");
    assert!(
        missing.message.contains("Project cannot be found"),
        "{missing}"
    );
    let too_many = api
        .batch_get_builds(
            &Target::region("us-east-1"),
            (0..101).map(|i| format!("my-app:{i}")).collect(),
        )
        .await
        .unwrap_err();
    assert_eq!(too_many.kind, ErrorKind::InvalidInput, "{too_many}");

    sim.state().set_faults(codebuild_sim::Faults {
        throttle_fraction: 1.0,
        ..Default::default()
    });
    let throttled = api
        .batch_get_builds(&Target::region("us-east-1"), vec![id.clone()])
        .await
        .unwrap_err();
    assert_eq!(throttled.kind, ErrorKind::Throttled, "{throttled}");
    sim.state().set_faults(codebuild_sim::Faults {
        server_error_fraction: 1.0,
        ..Default::default()
    });
    let failed = api
        .batch_get_builds(&Target::region("us-east-1"), vec![id.clone()])
        .await
        .unwrap_err();
    assert_eq!(failed.kind, ErrorKind::ServiceUnavailable, "{failed}");
    sim.state().set_faults(codebuild_sim::Faults {
        drop_fraction: 1.0,
        ..Default::default()
    });
    let dropped = api
        .batch_get_builds(&Target::region("us-east-1"), vec![id])
        .await
        .unwrap_err();
    assert_eq!(dropped.kind, ErrorKind::Network, "{dropped}");
}

#[tokio::test]
async fn adapter_reads_a_builds_log_and_reports_from_the_simulator() {
    let sim = Server::start(SimConfig {
        projects: vec!["my-app".into()],
        phase_seconds: 0.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let api = api(&sim.endpoint());
    let target = Target::region("us-east-1");
    let mut spec = spec("my-app");
    spec.environment_variables_override = Some(
        serde_json::from_value(json!([
            {"name": "CODEBUILD_SIM_FAIL_PHASE", "value": "BUILD"},
            {"name": "CODEBUILD_SIM_REPORTS", "value": "unit:TEST:succeeded=3,failed=1"},
        ]))
        .unwrap(),
    );
    let build = api
        .start_build(
            &target,
            start_build_input(&spec, "tok-out", "uid-out").unwrap(),
        )
        .await
        .unwrap();
    let id = build.id.unwrap();
    sim.state().advance_clock(5.0);
    let stored = sim.state().log_events(&id).unwrap();
    assert!(stored.len() > 10, "{stored:?}");
    let logs = api
        .batch_get_builds(&target, vec![id.clone()])
        .await
        .unwrap()
        .builds[0]
        .logs
        .clone()
        .unwrap();
    let (group, stream) = (logs.group_name.unwrap(), logs.stream_name.unwrap());

    // The tail: the newest 3 events, then the forward token reads on (nothing more), and at
    // the end of the stream the same token comes back.
    let read = |next_token: Option<String>, head: bool, limit: Option<i32>| LogRead {
        group: group.clone(),
        stream: stream.clone(),
        start_from_head: head,
        next_token,
        limit,
    };
    let tail = api
        .get_log_events(&target, read(None, false, Some(3)))
        .await
        .unwrap();
    let messages: Vec<&str> = tail.events.iter().map(|e| e.message.as_str()).collect();
    let expected: Vec<&str> = stored[stored.len() - 3..]
        .iter()
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(messages, expected);
    let token = tail.next_forward_token.unwrap();
    let end = api
        .get_log_events(&target, read(Some(token.clone()), true, None))
        .await
        .unwrap();
    assert!(end.events.is_empty());
    assert_eq!(
        end.next_forward_token,
        Some(token),
        "the same token at the end"
    );
    let whole = api
        .get_log_events(&target, read(None, true, None))
        .await
        .unwrap();
    assert_eq!(whole.events.len(), stored.len());
    let missing = api
        .get_log_events(
            &target,
            LogRead {
                stream: "nope".into(),
                ..read(None, true, None)
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        missing.code.as_deref(),
        Some("ResourceNotFoundException"),
        "{missing}"
    );

    let arns = api
        .batch_get_builds(&target, vec![id])
        .await
        .unwrap()
        .builds[0]
        .report_arns
        .clone()
        .unwrap();
    let reports = api.batch_get_reports(&target, arns.clone()).await.unwrap();
    assert_eq!(reports.reports.len(), 1);
    let summary = codebuild_operator::convert::report_summary(&reports.reports[0]);
    assert_eq!(summary.arn, arns[0]);
    assert_eq!(summary.test_summary.unwrap().total, Some(4));
    let unknown = format!("{}-gone", arns[0]);
    let batch = api
        .batch_get_reports(&target, vec![unknown.clone()])
        .await
        .unwrap();
    assert_eq!(batch.not_found, vec![unknown]);
    let too_many = api
        .batch_get_reports(
            &target,
            (0..101).map(|i| format!("{}{i}", arns[0])).collect(),
        )
        .await
        .unwrap_err();
    assert_eq!(too_many.kind, ErrorKind::InvalidInput, "{too_many}");
}

#[tokio::test]
async fn adapter_against_moto() {
    let moto = start_moto();
    let endpoint = format!("http://127.0.0.1:{}", moto.port());
    // Set up a project with the SDK directly (the operator never creates projects).
    let client = aws_sdk_codebuild::Client::from_conf(
        aws_sdk_codebuild::config::Builder::from(&sdk_config())
            .endpoint_url(&endpoint)
            .build(),
    );
    client
        .create_project()
        .name("my-app")
        .source(
            ProjectSource::builder()
                .r#type(SourceType::Github)
                .location("https://github.com/example/app.git")
                .build()
                .unwrap(),
        )
        .artifacts(
            ProjectArtifacts::builder()
                .r#type(ArtifactsType::S3)
                .location("artifact-bucket")
                .build()
                .unwrap(),
        )
        .environment(
            ProjectEnvironment::builder()
                .r#type(EnvironmentType::LinuxContainer)
                .image("aws/codebuild/standard:7.0")
                .compute_type(ComputeType::BuildGeneral1Small)
                .build()
                .unwrap(),
        )
        .service_role("arn:aws:iam::123456789012:role/codebuild")
        .send()
        .await
        .unwrap();

    let api = api(&endpoint);
    let build = api
        .start_build(
            &Target::region("us-east-1"),
            start_build_input(&spec("my-app"), "tok", "uid").unwrap(),
        )
        .await
        .unwrap();
    let id = build.id.clone().unwrap();
    assert!(id.starts_with("my-app:"), "{id}");
    assert!(
        build
            .arn
            .unwrap()
            .starts_with("arn:aws:codebuild:us-east-1:")
    );
    let batch = api
        .batch_get_builds(&Target::region("us-east-1"), vec![id.clone()])
        .await
        .unwrap();
    assert_eq!(batch.builds[0].id.as_deref(), Some(id.as_str()));
    let page = api
        .list_builds_for_project(&Target::region("us-east-1"), "my-app", None)
        .await
        .unwrap();
    assert!(page.ids.contains(&id));

    let missing = api
        .start_build(
            &Target::region("us-east-1"),
            start_build_input(&spec("nope"), "t", "u").unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::ProjectNotFound, "{missing}");
    assert_eq!(missing.code.as_deref(), Some("ResourceNotFoundException"));
    let malformed = api
        .batch_get_builds(&Target::region("us-east-1"), vec!["not-a-build-id".into()])
        .await
        .unwrap_err();
    assert_eq!(malformed.kind, ErrorKind::InvalidInput, "{malformed}");
    assert_eq!(malformed.message, "Invalid build ID provided");
}

/// Tenant roles: each target with a role is called with the credentials STS (moto) issued
/// for that role, cached per role and namespace; without a role, with the operator's own.
#[tokio::test]
async fn tenant_roles_are_assumed_through_sts() {
    let moto = start_moto();
    let moto_endpoint = format!("http://127.0.0.1:{}", moto.port());
    let sim = Server::start(SimConfig {
        projects: vec!["my-app".into()],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // A loaded configuration (time source, sleep, identity cache), as the operator has.
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDOPERATOR",
            "operator-secret",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let api = AwsBuildApi::from_sdk_config(
        config.clone(),
        AwsSettings {
            endpoint_url: Some(sim.endpoint()),
            sts_endpoint_url: Some(moto_endpoint.clone()),
            operation_timeout: None,
            logs_endpoint_url: None,
        },
    );
    let tenant = |namespace: &str, role: &str| {
        Target::with_role(
            "us-east-1",
            Some(AssumedRole {
                role_arn: format!("arn:aws:iam::123456789012:role/{role}"),
                namespace: namespace.into(),
            }),
        )
    };
    let targets = [
        tenant("team-a", "team-a-builds"),
        tenant("team-a", "team-a-builds"),
        tenant("team-b", "team-b-builds"),
        Target::region("us-east-1"),
    ];
    let mut ids = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let input =
            start_build_input(&spec("my-app"), &format!("tok-{i}"), &format!("uid-{i}")).unwrap();
        let build = api.start_build(target, input).await.unwrap();
        ids.push(build.id.unwrap());
    }
    // Watching a tenant's build uses the tenant's role too.
    api.batch_get_builds(&targets[2], vec![ids[2].clone()])
        .await
        .unwrap();

    let keys: Vec<String> = sim
        .state()
        .starts()
        .iter()
        .map(|s| s.access_key_id.clone().expect("signed request"))
        .collect();
    assert_eq!(keys.len(), 4);
    assert!(
        keys[0].starts_with("ASIA"),
        "temporary credentials: {keys:?}"
    );
    assert_eq!(
        keys[0], keys[1],
        "credentials are cached per role: {keys:?}"
    );
    assert_ne!(
        keys[0], keys[2],
        "each role has its own credentials: {keys:?}"
    );
    assert_eq!(
        keys[3], "AKIDOPERATOR",
        "no role: the operator's own identity"
    );

    // moto knows whom it issued each key to.
    assert_eq!(
        moto.caller_arn(&keys[0]).await,
        "arn:aws:sts::123456789012:assumed-role/team-a-builds/codebuild-operator.team-a"
    );
    assert_eq!(
        moto.caller_arn(&keys[2]).await,
        "arn:aws:sts::123456789012:assumed-role/team-b-builds/codebuild-operator.team-b"
    );
}
