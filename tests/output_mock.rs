//! What a build produced, against a mocked apiserver and the fake CodeBuild (and CloudWatch
//! Logs): the failure tail read once, in the write that makes the build final, and never for
//! a build that succeeded; a missing log, a denial or throttling never fail the run; reports
//! read in batches of at most 100 ARNs, once each unless still GENERATING, into status.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_codebuild::types::{
    Build, CloudWatchLogsConfig, LogsConfigStatusType, LogsLocation, ReportStatusType, StatusType,
};
use aws_smithy_types::DateTime;
use codebuild_operator::api::{CodeBuildRun, FINALIZER};
use codebuild_operator::codebuild::{ApiError, ErrorKind};
use codebuild_operator::controller::{Context, Settings, reconcile};
use codebuild_operator::output::{ReportReader, TailLimits};
use codebuild_operator::tracker::Tracker;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{reflector, watcher};
use serde_json::{Value, json};
use support::apiserver::{FakeApiserver, fake_apiserver};
use support::fake::{FakeCodeBuild, build, run_json, test_report};

const GROUP: &str = "/aws/codebuild/p";
const STREAM: &str = "1";

struct Harness {
    api: FakeApiserver,
    aws: Arc<FakeCodeBuild>,
    tracker: Tracker<FakeCodeBuild>,
    reader: ReportReader<FakeCodeBuild>,
    ctx: Arc<Context<FakeCodeBuild>>,
}

fn harness(object: &Value, limits: TailLimits) -> Harness {
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let api = fake_apiserver(object.clone(), log.clone());
    let aws = Arc::new(FakeCodeBuild::logging_to(log));
    let tracker = Tracker::new(aws.clone(), "us-east-1");
    let reader = ReportReader::new(aws.clone(), "us-east-1");
    let recorder = Recorder::new(
        api.client.clone(),
        Reporter {
            controller: "test".into(),
            instance: None,
        },
    );
    let ctx = Context::new(
        api.client.clone(),
        aws.clone(),
        tracker.cache(),
        recorder,
        Settings::new("us-east-1").with_log_tail(limits),
    )
    .with_reports(reader.cache());
    Harness {
        api,
        aws,
        tracker,
        reader,
        ctx: Arc::new(ctx),
    }
}

/// A run whose status records build `p:1` running in BUILD.
fn running_run() -> Value {
    run_json(
        &[FINALIZER],
        json!({"buildId": "p:1", "buildStatus": "IN_PROGRESS", "currentPhase": "BUILD",
            "startAttempt": {"idempotencyToken": "t", "time": "2026-01-01T00:00:00Z",
                             "region": "us-east-1"}}),
    )
}

/// Build `p:1` as CodeBuild reports it once it ended with `status`.
fn ended(status: StatusType, logs: Option<LogsLocation>, reports: &[&str]) -> Build {
    let mut b = build("p:1", status, "COMPLETED", "uid-1");
    b.logs = logs;
    b.end_time = Some(DateTime::from_secs(
        DateTime::from(std::time::SystemTime::now()).secs(),
    ));
    if !reports.is_empty() {
        b.report_arns = Some(reports.iter().map(|r| r.to_string()).collect());
    }
    b
}

fn cloudwatch() -> Option<LogsLocation> {
    Some(
        LogsLocation::builder()
            .group_name(GROUP)
            .stream_name(STREAM)
            .deep_link("https://console.aws.amazon.com/cloudwatch/home#logEvent:group=x")
            .build(),
    )
}

/// The log of a build whose `make test` failed in BUILD, then ran POST_BUILD.
fn failing_log() -> Vec<String> {
    let c = "[Container] 2026/01/01 00:00:00.000001";
    let mut lines: Vec<String> = (0..30).map(|i| format!("output line {i}")).collect();
    lines.extend([
        format!("{c} Running command make test"),
        "\u{1b}[31mFAIL\u{1b}[0m src/parser.test.js".to_owned(),
        "make: *** [test] Error 2".to_owned(),
        format!("{c} Command did not exit successfully make test exit status 2"),
        format!("{c} Phase complete: BUILD State: FAILED"),
        format!("{c} Phase context status code: COMMAND_EXECUTION_ERROR Message: Error while executing command: make test. Reason: exit status 2"),
        format!("{c} Entering phase POST_BUILD"),
        format!("{c} Running command make package"),
        "packaging".to_owned(),
        format!("{c} Phase complete: POST_BUILD State: SUCCEEDED"),
        format!("{c} Phase context status code:  Message: "),
    ]);
    lines
}

impl Harness {
    /// The tracker observes CodeBuild's answer for the run `object`.
    async fn observe(&self, object: &Value) {
        let (store, mut writer) = reflector::store::<CodeBuildRun>();
        writer.apply_watcher_event(&watcher::Event::Apply(
            serde_json::from_value(object.clone()).unwrap(),
        ));
        self.tracker.follow(store);
        self.tracker.round().await;
    }

    async fn reconcile(&self, object: &Value) -> Result<(), String> {
        let run: CodeBuildRun = serde_json::from_value(object.clone()).unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            reconcile(Arc::new(run), self.ctx.clone()),
        )
        .await
        .map_err(|_| "reconcile timed out".to_owned())?
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    fn aws_calls(&self) -> Vec<String> {
        self.aws
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("aws "))
            .collect()
    }

    fn object(&self) -> Value {
        self.api.object.lock().unwrap().clone()
    }
}

fn succeeded_condition(status: &Value) -> Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Succeeded")
        .unwrap()
        .clone()
}

// === the failure tail ===

#[tokio::test]
async fn a_failed_build_gets_its_tail_in_the_write_that_makes_it_final() {
    let object = running_run();
    let h = harness(&object, TailLimits::DEFAULT);
    h.aws
        .builds
        .lock()
        .unwrap()
        .push(ended(StatusType::Failed, cloudwatch(), &[]));
    h.aws
        .logs
        .lock()
        .unwrap()
        .insert((GROUP.into(), STREAM.into()), failing_log());
    h.observe(&object).await;
    h.reconcile(&object).await.unwrap();

    assert_eq!(
        h.aws_calls(),
        vec![
            "aws BatchGetBuilds p:1".to_owned(),
            format!("aws GetLogEvents {GROUP} {STREAM} head=false limit=Some(120)"),
        ]
    );
    let statuses = h.api.statuses();
    assert_eq!(
        statuses.len(),
        1,
        "one write: the final status with its tail"
    );
    let status = &statuses[0];
    assert_eq!(status["buildStatus"], "FAILED");
    let lines: Vec<&str> = status["logTail"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 20, "{lines:#?}");
    assert!(
        lines[lines.len() - 1].contains("Phase context status code: COMMAND_EXECUTION_ERROR"),
        "the tail ends where BUILD failed: {lines:#?}"
    );
    assert!(
        lines.contains(&"FAIL src/parser.test.js"),
        "colours stripped: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Running command make test"))
    );
    assert!(
        !lines.iter().any(|l| l.contains("POST_BUILD")),
        "{lines:#?}"
    );
    assert_eq!(status["logTail"]["buildId"], "p:1");
    let succeeded = succeeded_condition(status);
    assert_eq!(succeeded["status"], "False");
    assert!(
        succeeded["message"]
            .as_str()
            .unwrap()
            .ends_with("; last log line: make: *** [test] Error 2"),
        "{succeeded}"
    );
    let failed = h
        .api
        .events()
        .into_iter()
        .find(|e| e["reason"] == "BuildFailed")
        .unwrap();
    assert!(
        failed["note"]
            .as_str()
            .unwrap()
            .contains("make: *** [test] Error 2"),
        "{failed}"
    );

    // Later reconciles (a restart, an edit) keep the tail and the message, and read nothing.
    let written = h.object();
    h.reconcile(&written).await.unwrap();
    assert_eq!(
        h.aws.log_reads.lock().unwrap().len(),
        1,
        "one GetLogEvents per failed build"
    );
    assert_eq!(
        h.api.statuses().len(),
        1,
        "nothing changed, nothing written"
    );
}

#[tokio::test]
async fn a_failed_status_write_does_not_read_the_tail_again() {
    let object = running_run();
    let h = harness(&object, TailLimits::DEFAULT);
    h.aws
        .builds
        .lock()
        .unwrap()
        .push(ended(StatusType::Fault, cloudwatch(), &[]));
    h.aws
        .logs
        .lock()
        .unwrap()
        .insert((GROUP.into(), STREAM.into()), vec!["the end".into()]);
    h.observe(&object).await;
    *h.api.conflicts.lock().unwrap() = 1;
    h.reconcile(&object).await.unwrap_err();
    h.reconcile(&object).await.unwrap();
    assert_eq!(h.aws.log_reads.lock().unwrap().len(), 1);
    let status = h.api.statuses().last().unwrap().clone();
    assert_eq!(status["logTail"]["lines"], json!(["the end"]));
    assert_eq!(status["buildStatus"], "FAULT");
}

#[tokio::test]
async fn builds_that_succeed_or_stop_cost_no_call_and_zero_lines_turn_it_off() {
    for (status, limits) in [
        (StatusType::Succeeded, TailLimits::DEFAULT),
        (StatusType::Stopped, TailLimits::DEFAULT),
        (
            StatusType::Failed,
            TailLimits {
                lines: 0,
                bytes: 4096,
            },
        ),
    ] {
        let object = running_run();
        let h = harness(&object, limits);
        h.aws
            .builds
            .lock()
            .unwrap()
            .push(ended(status.clone(), cloudwatch(), &[]));
        h.observe(&object).await;
        h.reconcile(&object).await.unwrap();
        assert_eq!(h.aws_calls(), vec!["aws BatchGetBuilds p:1"], "{status:?}");
        let written = h.api.statuses().last().unwrap().clone();
        assert!(written.get("logTail").is_none(), "{written}");
    }
}

#[tokio::test]
async fn a_denied_or_throttled_read_says_why_and_the_run_still_ends() {
    let cases = [
        (
            ErrorKind::AccessDenied,
            "AccessDeniedException",
            "AccessDenied",
        ),
        (ErrorKind::Throttled, "ThrottlingException", "Throttled"),
        (
            ErrorKind::ServiceUnavailable,
            "ServiceUnavailableException",
            "ServiceUnavailable",
        ),
    ];
    for (kind, code, reason) in cases {
        let object = running_run();
        let h = harness(&object, TailLimits::DEFAULT);
        h.aws
            .builds
            .lock()
            .unwrap()
            .push(ended(StatusType::TimedOut, cloudwatch(), &[]));
        *h.aws.logs_error.lock().unwrap() = Some(ApiError::new(kind, Some(code), "no"));
        h.observe(&object).await;
        h.reconcile(&object).await.unwrap();
        assert_eq!(
            h.aws.log_reads.lock().unwrap().len(),
            1,
            "{code}: one call, no retry"
        );
        let status = h.api.statuses().last().unwrap().clone();
        assert_eq!(status["buildStatus"], "TIMED_OUT");
        assert_eq!(status["logTail"]["reason"], reason, "{status}");
        assert!(
            status["logTail"]["message"]
                .as_str()
                .unwrap()
                .contains(code)
        );
        let succeeded = succeeded_condition(&status);
        assert_eq!(
            (succeeded["status"].as_str(), succeeded["reason"].as_str()),
            (Some("False"), Some("TIMED_OUT"))
        );
        assert!(h.api.events().iter().any(|e| e["reason"] == "BuildFailed"));
    }
}

#[tokio::test]
async fn logs_off_or_no_stream_say_why_without_a_call() {
    let s3_only = LogsLocation::builder()
        .cloud_watch_logs(
            CloudWatchLogsConfig::builder()
                .status(LogsConfigStatusType::Disabled)
                .build()
                .unwrap(),
        )
        .s3_logs_arn("arn:aws:s3:::logs-bucket/build-log/1.gz")
        .build();
    for (logs, reason) in [(Some(s3_only), "LogsDisabled"), (None, "NoLogStream")] {
        let object = running_run();
        let h = harness(&object, TailLimits::DEFAULT);
        h.aws
            .builds
            .lock()
            .unwrap()
            .push(ended(StatusType::Failed, logs, &[]));
        h.observe(&object).await;
        h.reconcile(&object).await.unwrap();
        assert!(h.aws.log_reads.lock().unwrap().is_empty());
        let status = h.api.statuses().last().unwrap().clone();
        assert_eq!(status["logTail"]["reason"], reason, "{status}");
        if reason == "LogsDisabled" {
            let message = status["logTail"]["message"].as_str().unwrap();
            assert!(
                message.contains("arn:aws:s3:::logs-bucket/build-log/1.gz"),
                "{message}"
            );
            assert_eq!(status["logs"]["cloudWatchLogs"]["status"], "DISABLED");
        }
    }
}

// === reports ===

/// Run `name` whose build `id` ended SUCCEEDED with `reports`.
fn finished_run(name: &str, id: &str, reports: &[String]) -> CodeBuildRun {
    serde_json::from_value(json!({
        "apiVersion": "codebuild.operator.dev/v1alpha1", "kind": "CodeBuildRun",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "spec": {"projectName": "p"},
        "status": {"buildId": id, "buildStatus": "SUCCEEDED", "buildComplete": true,
                   "endTime": k8s_openapi::jiff::Timestamp::now().to_string(),
                   "reportArns": reports,
                   "startAttempt": {"idempotencyToken": "t", "time": "2026-01-01T00:00:00Z",
                                    "region": "us-east-1"}},
    }))
    .unwrap()
}

fn arn(i: usize) -> String {
    format!("arn:aws:codebuild:us-east-1:123456789012:report/p-unit:{i:04}")
}

#[tokio::test]
async fn reports_are_read_in_batches_of_100_once_each_and_not_for_builds_without() {
    let h = harness(&running_run(), TailLimits::DEFAULT);
    let (store, mut writer) = reflector::store::<CodeBuildRun>();
    for i in 0..150 {
        let report = arn(i);
        writer.apply_watcher_event(&watcher::Event::Apply(finished_run(
            &format!("r{i}"),
            &format!("p:{i}"),
            std::slice::from_ref(&report),
        )));
        let status = if i == 7 {
            ReportStatusType::Generating
        } else {
            ReportStatusType::Failed
        };
        h.aws
            .reports
            .lock()
            .unwrap()
            .push(test_report(&report, status, 40, 43));
    }
    for i in 0..50 {
        writer.apply_watcher_event(&watcher::Event::Apply(finished_run(
            &format!("plain{i}"),
            &format!("q:{i}"),
            &[],
        )));
    }
    h.reader.follow(store);
    let mut woken = h.reader.triggers(None);

    let first = h.reader.round().await;
    assert_eq!((first.arns, first.calls, first.changed), (150, 2, 150));
    let sizes: Vec<usize> = h
        .aws
        .report_calls
        .lock()
        .unwrap()
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, vec![100, 50]);
    let mut owners = std::collections::BTreeSet::new();
    while let Ok(owner) = woken.try_recv() {
        owners.insert(owner.name);
    }
    assert_eq!(owners.len(), 150, "each run with reports woken once");

    // Answers stay cached until status holds them: only the GENERATING report is asked again.
    let second = h.reader.round().await;
    assert_eq!((second.arns, second.calls), (1, 1));
    assert_eq!(h.aws.report_calls.lock().unwrap()[2], vec![arn(7)]);
}

#[tokio::test]
async fn a_finished_run_gets_its_reports_and_the_tests_column() {
    let reports = [arn(1), arn(2)];
    let run = finished_run("r", "p:1", &reports);
    let mut object = serde_json::to_value(&run).unwrap();
    object["metadata"]["generation"] = json!(1);
    object["metadata"]["resourceVersion"] = json!("1");
    let h = harness(&object, TailLimits::DEFAULT);
    h.aws.reports.lock().unwrap().extend([
        test_report(&reports[0], ReportStatusType::Failed, 40, 43),
        test_report(&reports[1], ReportStatusType::Succeeded, 7, 7),
    ]);
    let (store, mut writer) = reflector::store::<CodeBuildRun>();
    writer.apply_watcher_event(&watcher::Event::Apply(run));
    h.reader.follow(store);
    h.reader.round().await;
    h.reconcile(&object).await.unwrap();
    let status = h.api.statuses().last().unwrap().clone();
    assert_eq!(status["reports"]["tests"], "47/50", "{status}");
    assert_eq!(status["reports"]["buildId"], "p:1");
    let items = status["reports"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["status"], "FAILED");
    assert_eq!(
        items[0]["testSummary"]["statusCounts"],
        json!({"FAILED": 3, "SUCCEEDED": 40})
    );
    assert!(h.aws.log_reads.lock().unwrap().is_empty());

    // Once status holds them the run costs nothing any more.
    let mut settled = serde_json::from_value::<CodeBuildRun>(h.object()).unwrap();
    settled.metadata.uid = Some("uid-r".into());
    let (store, mut writer) = reflector::store::<CodeBuildRun>();
    writer.apply_watcher_event(&watcher::Event::Apply(settled));
    let fresh = ReportReader::new(h.aws.clone(), "us-east-1");
    fresh.follow(store);
    let round = fresh.round().await;
    assert_eq!((round.arns, round.calls), (0, 0));
}

#[tokio::test]
async fn a_denied_batch_get_reports_is_said_in_status_and_not_hammered() {
    let reports = [arn(1)];
    let run = finished_run("r", "p:1", &reports);
    let mut object = serde_json::to_value(&run).unwrap();
    object["metadata"]["generation"] = json!(1);
    let h = harness(&object, TailLimits::DEFAULT);
    *h.aws.reports_error.lock().unwrap() = Some(ApiError::new(
        ErrorKind::AccessDenied,
        Some("AccessDeniedException"),
        "not authorized to perform codebuild:BatchGetReports",
    ));
    let (store, mut writer) = reflector::store::<CodeBuildRun>();
    writer.apply_watcher_event(&watcher::Event::Apply(run));
    h.reader.follow(store);
    h.reader.round().await;
    h.reader.round().await;
    assert_eq!(
        h.aws.report_calls.lock().unwrap().len(),
        1,
        "paused after a denial"
    );
    h.reconcile(&object).await.unwrap();
    let status = h.api.statuses().last().unwrap().clone();
    let message = status["reports"]["message"].as_str().unwrap();
    assert!(message.contains("codebuild:BatchGetReports"), "{message}");
    let mut by_reason = BTreeMap::new();
    for c in status["conditions"].as_array().unwrap() {
        by_reason.insert(c["type"].as_str().unwrap().to_owned(), c["status"].clone());
    }
    assert_eq!(
        by_reason["Succeeded"], "True",
        "a denial never fails the run"
    );
}
