"""(4) What builds write: botocore's `logs` model parses every CloudWatch Logs response the
simulator gives (GetLogEvents, FilterLogEvents, their errors), and its `codebuild` model every
new CodeBuild response (BatchGetReports, Build.logs in each logs configuration, reportArns);
the strict validator finds no violations."""

import json
import re
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import TIME_SCALE
from helpers import build_uuid, create_project, follow_log, sim_env, unique
from validator import error_violations, violations

INSTANT = {"phase_seconds": 0}
# 1000 s x 0.01 = 10 s per phase: the build stays where the clock leaves it.
SLOW = {"phase_seconds": 1000}
TOKEN = re.compile(r"^[fb]/\d{56}$")


def logs_call(logs, operation, method, **kwargs):
    parsed = getattr(logs, method)(**kwargs)
    raw = logs.raw.json()
    assert violations(operation, raw, "logs") == [], raw
    return parsed, raw


def cb_call(sim, operation, method, **kwargs):
    parsed = getattr(sim, method)(**kwargs)
    raw = sim.raw.json()
    assert violations(operation, raw) == [], raw
    return parsed, raw


@pytest.fixture(scope="module")
def project(sim):
    name = unique("output")
    create_project(sim, name)
    return name


@pytest.fixture(scope="module")
def logged(sim, project):
    """A finished build with a few hundred lines spread over 20 ms phases: (group, stream,
    build)."""
    build = sim.start_build(
        projectName=project, environmentVariablesOverride=sim_env(phase_seconds=2, log_lines=60)
    )["build"]
    deadline = time.monotonic() + 10
    while not (done := sim.batch_get_builds(ids=[build["id"]])["builds"][0])["buildComplete"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.1)  # lines are readable 10 ms (flush) + 2 ms (delivery) after they are written
    return done["logs"]["groupName"], done["logs"]["streamName"], done


def test_get_log_events_responses(sim_logs, logged):
    group, stream, _ = logged
    events, end, pages = follow_log(sim_logs, group, stream, limit=50)
    assert len(events) > 250
    for raw in pages:
        assert violations("GetLogEvents", raw, "logs") == [], raw
        assert TOKEN.match(raw["nextForwardToken"]) and TOKEN.match(raw["nextBackwardToken"])
    assert all(e["ingestionTime"] >= e["timestamp"] for e in events)
    assert all(e["message"].endswith("\n") for e in events)
    tail, raw = logs_call(sim_logs, "GetLogEvents", "get_log_events", logGroupName=group, logStreamName=stream, limit=3)
    assert [e["message"] for e in tail["events"]] == [e["message"] for e in events[-3:]]
    back, _ = logs_call(
        sim_logs, "GetLogEvents", "get_log_events", logGroupName=group, logStreamName=stream,
        nextToken=tail["nextBackwardToken"], limit=4,
    )
    assert [e["message"] for e in back["events"]] == [e["message"] for e in events[-7:-3]]
    t0, t1 = events[10]["timestamp"], events[100]["timestamp"]
    ranged, _ = logs_call(
        sim_logs, "GetLogEvents", "get_log_events", logGroupIdentifier=group, logStreamName=stream,
        startFromHead=True, startTime=t0, endTime=t1,
    )
    assert ranged["events"] and all(t0 <= e["timestamp"] < t1 for e in ranged["events"])


def test_filter_log_events_responses(sim_logs, logged):
    group, stream, _ = logged
    parsed, raw = logs_call(
        sim_logs, "FilterLogEvents", "filter_log_events", logGroupName=group, logStreamNames=[stream],
        filterPattern='"Phase complete"',
    )
    assert [e["message"].split("Phase complete: ")[1].split()[0] for e in parsed["events"]] == [
        "DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD", "UPLOAD_ARTIFACTS",
    ]
    assert raw["searchedLogStreams"] == []
    token, seen = None, []
    while True:
        kwargs = {"nextToken": token} if token else {}
        page, _ = logs_call(
            sim_logs, "FilterLogEvents", "filter_log_events", logGroupName=group, logStreamNamePrefix=stream,
            limit=100, **kwargs,
        )
        seen.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            break
    assert len(seen) > 250
    assert all(e["logStreamName"] == stream and len(e["eventId"]) == 56 for e in seen)


def test_long_and_unicode_lines(sim, sim_logs, project):
    build = sim.start_build(
        projectName=project,
        environmentVariablesOverride=sim_env(**INSTANT, log_lines=6, log_line_bytes=262118, log_unicode="true"),
    )["build"]
    time.sleep(0.2)
    done = sim.batch_get_builds(ids=[build["id"]])["builds"][0]
    events, _, pages = follow_log(sim_logs, done["logs"]["groupName"], done["logs"]["streamName"])
    for raw in pages:
        assert violations("GetLogEvents", raw, "logs") == []
        assert sum(len(e["message"].encode()) + 26 for e in raw["events"]) <= 1_048_576
    output = [e["message"] for e in events if not e["message"].startswith("[Container]")]
    assert len(output) == 4 * 6
    assert all(len(m.encode()) == 262118 and "\x1b[" in m and not m.isascii() for m in output)


@pytest.mark.parametrize(
    "method,kwargs,code",
    [
        ("get_log_events", {"logGroupName": "/aws/codebuild/no-such-project", "logStreamName": "x"}, "ResourceNotFoundException"),
        ("get_log_events", {"logStreamName": "no-such-stream"}, "ResourceNotFoundException"),
        ("get_log_events", {"logStreamName": "{stream}", "limit": 10001}, "InvalidParameterException"),
        ("get_log_events", {"logStreamName": "{stream}", "nextToken": "garbage"}, "InvalidParameterException"),
        ("filter_log_events", {"logGroupName": "/aws/codebuild/no-such-project"}, "ResourceNotFoundException"),
        ("filter_log_events", {"logStreamNames": ["a"], "logStreamNamePrefix": "a"}, "InvalidParameterException"),
        ("filter_log_events", {"filterPattern": "{ $.level = \"x\" }"}, "InvalidParameterException"),
    ],
)
def test_logs_errors_are_declared_by_the_model(sim_logs, logged, method, kwargs, code):
    group, stream, _ = logged
    kwargs = {k: (v.replace("{stream}", stream) if isinstance(v, str) else v) for k, v in kwargs.items()}
    kwargs.setdefault("logGroupName", group)
    with pytest.raises(ClientError) as info:
        getattr(sim_logs, method)(**kwargs)
    operation = "GetLogEvents" if method == "get_log_events" else "FilterLogEvents"
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error_violations(operation, sim_logs.raw.json(), "logs") == []


def test_unknown_logs_operation(sim_url):
    req = urllib.request.Request(
        sim_url + "/", data=b"{}", method="POST",
        headers={"X-Amz-Target": "Logs_20140328.PutLogEvents", "Content-Type": "application/x-amz-json-1.1"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 400
    assert json.loads(info.value.read())["__type"] == "UnknownOperationException"


@pytest.mark.parametrize(
    "logs_config,present,absent",
    [
        ({}, {"groupName", "streamName", "deepLink", "cloudWatchLogsArn"}, {"s3DeepLink", "s3LogsArn"}),
        (
            {"cloudWatchLogs": {"status": "DISABLED"}, "s3Logs": {"status": "ENABLED", "location": "log-bucket/p"}},
            {"s3DeepLink", "s3LogsArn"},
            {"groupName", "streamName", "deepLink", "cloudWatchLogsArn"},
        ),
        (
            {"cloudWatchLogs": {"status": "ENABLED", "groupName": "ci", "streamName": "runs"}},
            {"groupName", "streamName", "deepLink", "cloudWatchLogsArn"},
            {"s3LogsArn"},
        ),
        ({"cloudWatchLogs": {"status": "DISABLED"}}, set(), {"groupName", "deepLink", "s3LogsArn"}),
    ],
)
def test_build_logs_member(sim, project, logs_config, present, absent):
    kwargs = {"logsConfigOverride": logs_config} if logs_config else {}
    started, _ = cb_call(sim, "StartBuild", "start_build", projectName=project,
                         environmentVariablesOverride=sim_env(**INSTANT), **kwargs)
    got, _ = cb_call(sim, "BatchGetBuilds", "batch_get_builds", ids=[started["build"]["id"]])
    logs = got["builds"][0]["logs"]
    assert present <= set(logs), logs
    assert not absent & set(logs), logs
    if "streamName" in present:
        assert logs["streamName"].endswith(build_uuid(started["build"]))


def test_build_logs_while_provisioning(sim, project):
    """As the service (and moto) answer since 2022: no names, a deepLink and an ARN that name
    group and stream "null", until PROVISIONING has finished."""
    started, raw = cb_call(sim, "StartBuild", "start_build", projectName=project,
                           environmentVariablesOverride=sim_env(**SLOW))
    assert raw["build"]["logs"] == {
        "deepLink": "https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEvent:group=null;stream=null",
        "cloudWatchLogsArn": "arn:aws:logs:us-east-1:123456789012:log-group:null:log-stream:null",
        "cloudWatchLogs": {"status": "ENABLED"},
        "s3Logs": {"status": "DISABLED", "encryptionDisabled": False},
    }


def test_reports_generating_then_final(sim, admin, project):
    spec = "unit:TEST:succeeded=40,failed=2,skipped=1,durationMs=1520;cov:CODE_COVERAGE:lines=812/1000,branches=120/200"
    # 480 minutes x 0.01 = 288 s: the build does not time out before it ends at 100 s.
    build = sim.start_build(
        projectName=project, timeoutInMinutesOverride=480, environmentVariablesOverride=sim_env(**SLOW, reports=spec)
    )["build"]
    phase = 1000 * TIME_SCALE
    admin.post("/_sim/clock", {"advanceSeconds": 8 * phase + 1})  # POST_BUILD has ended
    got, raw = cb_call(sim, "BatchGetBuilds", "batch_get_builds", ids=[build["id"]])
    arns = got["builds"][0]["reportArns"]
    assert len(arns) == 2 and got["builds"][0]["buildStatus"] == "IN_PROGRESS"
    reports, _ = cb_call(sim, "BatchGetReports", "batch_get_reports", reportArns=arns)
    assert [r["status"] for r in reports["reports"]] == ["GENERATING", "GENERATING"]
    admin.post("/_sim/clock", {"advanceSeconds": 3 * phase + 1})  # ended, and settled
    reports, _ = cb_call(sim, "BatchGetReports", "batch_get_reports", reportArns=arns + [arns[0] + "-missing"])
    unit, cov = reports["reports"]
    assert (unit["type"], unit["status"]) == ("TEST", "FAILED")
    assert unit["testSummary"] == {
        "total": 43, "durationInNanoSeconds": 1_520_000_000,
        "statusCounts": {"SUCCEEDED": 40, "FAILED": 2, "SKIPPED": 1, "ERROR": 0, "UNKNOWN": 0},
    }
    assert (cov["type"], cov["status"]) == ("CODE_COVERAGE", "SUCCEEDED")
    assert cov["codeCoverageSummary"]["lineCoveragePercentage"] == 81.2
    assert reports["reportsNotFound"] == [arns[0] + "-missing"]
    assert unit["executionId"] == build["arn"]


def test_batch_get_reports_not_found_and_limit(sim):
    missing = [f"arn:aws:codebuild:us-east-1:123456789012:report/x-y:{i}" for i in range(100)]
    parsed, raw = cb_call(sim, "BatchGetReports", "batch_get_reports", reportArns=missing)
    assert raw == {"reportsNotFound": missing}
    with pytest.raises(ClientError) as info:
        sim.batch_get_reports(reportArns=missing + ["one-more"])
    assert info.value.response["Error"]["Code"] == "InvalidInputException"
    assert error_violations("BatchGetReports", sim.raw.json()) == []
