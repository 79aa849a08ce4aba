use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn run(namespace: &str, project: &str, created_secs_ago: i64) -> CodeBuildRun {
    let created = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(created_secs_ago);
    serde_json::from_value(serde_json::json!({
        "apiVersion": "codebuild.operator.dev/v1alpha1", "kind": "CodeBuildRun",
        "metadata": {"name": "secret-run-name", "namespace": namespace,
                     "creationTimestamp": created.to_string()},
        "spec": {"projectName": project},
    }))
    .unwrap()
}

fn build(status: &str, ran_secs: i64) -> BuildInfo {
    let start = Timestamp::from_second(1_764_547_200).unwrap();
    BuildInfo {
        build_id: Some("p:1".into()),
        build_status: Some(status.into()),
        start_time: Some(Time(start)),
        end_time: Some(Time(
            start + k8s_openapi::jiff::SignedDuration::from_secs(ran_secs),
        )),
        ..Default::default()
    }
}

#[track_caller]
fn assert_has(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn encodes_every_family_with_fixed_labels() {
    let m = Metrics::new();
    m.reconciled(Duration::from_millis(3), Ok(()));
    m.reconciled(Duration::from_millis(3), Err("Throttled"));
    m.aws_call("StartBuild", "eu-west-1", Duration::from_millis(40), Ok(()));
    m.aws_call(
        "BatchGetBuilds",
        "mars-north-1",
        Duration::from_millis(7),
        Err("Throttled"),
    );
    m.aws_throttled("BatchGetBuilds", "us-east-1");
    m.build_started(&run("team-a", "app", 4));
    m.build_finished(&run("team-a", "app", 600), &build("SUCCEEDED", 90));
    m.build_finished(&run("team-a", "app", 600), &build("something new", 5));
    m.tracker_round(Duration::from_millis(20), 3, 2);
    m.set_poll_interval(Duration::from_millis(1500));
    m.set_leader(true);
    m.set_ready(true);
    let text = m.encode().unwrap();
    assert_has(
        &text,
        &[
            &format!(
                "codebuild_operator_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
            "codebuild_operator_reconciles_total{outcome=\"success\"} 1",
            "codebuild_operator_reconciles_total{outcome=\"error\"} 1",
            "codebuild_operator_reconcile_errors_total{category=\"Throttled\"} 1",
            "codebuild_operator_reconcile_duration_seconds_count 2",
            "codebuild_operator_aws_calls_total{operation=\"StartBuild\",outcome=\"success\",region=\"eu-west-1\"} 1",
            "codebuild_operator_aws_calls_total{operation=\"BatchGetBuilds\",outcome=\"Throttled\",region=\"other\"} 1",
            "codebuild_operator_aws_call_duration_seconds_bucket{le=\"0.04\",operation=\"StartBuild\",outcome=\"success\",region=\"eu-west-1\"} 1",
            "codebuild_operator_aws_call_duration_seconds_sum{operation=\"StartBuild\",outcome=\"success\",region=\"eu-west-1\"} 0.04",
            "codebuild_operator_aws_throttled_requests_total{operation=\"BatchGetBuilds\",region=\"us-east-1\"} 1",
            "codebuild_operator_builds_started_total 1",
            "codebuild_operator_build_start_latency_seconds_count 1",
            "codebuild_operator_build_start_latency_seconds_bucket{le=\"3.0\"} 0",
            "codebuild_operator_build_start_latency_seconds_bucket{le=\"5.0\"} 1",
            "codebuild_operator_builds_finished_total{status=\"SUCCEEDED\"} 1",
            "codebuild_operator_builds_finished_total{status=\"OTHER\"} 1",
            "codebuild_operator_builds_finished_total{status=\"FAULT\"} 0",
            "codebuild_operator_build_duration_seconds_sum{status=\"SUCCEEDED\"} 90.0",
            "codebuild_operator_build_duration_seconds_bucket{le=\"120.0\",status=\"SUCCEEDED\"} 1",
            "codebuild_operator_build_duration_seconds_count{status=\"TIMED_OUT\"} 0",
            "codebuild_operator_builds_in_flight 2",
            "codebuild_operator_tracker_round_duration_seconds_count 1",
            "codebuild_operator_tracker_round_builds_sum 3",
            "codebuild_operator_tracker_poll_interval_seconds 1.5",
            "codebuild_operator_leader 1",
            "codebuild_operator_ready 1",
            "# EOF",
        ],
    );
    // Without per-run labels nothing about the runs leaks.
    for leak in ["team-a", "app\"", "secret-run-name", "mars"] {
        assert!(!text.contains(leak), "{leak} in\n{text}");
    }
}

#[test]
fn per_run_labels_are_opt_in() {
    let m = Metrics::with_run_labels(PerRunLabels {
        namespace: true,
        project: true,
    });
    let before = m.encode().unwrap();
    assert!(
        !before.contains("codebuild_operator_builds_started_total"),
        "no unlabelled series to pre-create:\n{before}"
    );
    m.build_started(&run("team-a", "app", 1));
    m.build_finished(&run("team-a", "app", 1), &build("FAILED", 30));
    m.count_runs([&run("team-b", "lib", 1)]);
    let text = m.encode().unwrap();
    assert_has(
        &text,
        &[
            "codebuild_operator_builds_started_total{run_namespace=\"team-a\",project=\"app\"} 1",
            "codebuild_operator_build_start_latency_seconds_count{run_namespace=\"team-a\",project=\"app\"} 1",
            "codebuild_operator_builds_finished_total{status=\"FAILED\",run_namespace=\"team-a\",project=\"app\"} 1",
            "codebuild_operator_build_duration_seconds_count{status=\"FAILED\",run_namespace=\"team-a\",project=\"app\"} 1",
            "codebuild_operator_runs{state=\"starting\",run_namespace=\"team-b\",project=\"lib\"} 1",
        ],
    );
    assert!(!text.contains("secret-run-name"));
}

#[test]
fn a_build_without_times_is_counted_but_not_timed() {
    let m = Metrics::new();
    let mut b = build("STOPPED", 10);
    b.end_time = None;
    m.build_finished(&run("n", "p", 1), &b);
    let text = m.encode().unwrap();
    assert_has(
        &text,
        &[
            "codebuild_operator_builds_finished_total{status=\"STOPPED\"} 1",
            "codebuild_operator_build_duration_seconds_count{status=\"STOPPED\"} 0",
        ],
    );
}

#[cfg(target_os = "linux")]
#[test]
fn process_metrics_are_exported_unprefixed() {
    let text = Metrics::new().encode().unwrap();
    assert_has(
        &text,
        &[
            "# TYPE process_cpu_seconds counter",
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
            "process_threads ",
        ],
    );
}
