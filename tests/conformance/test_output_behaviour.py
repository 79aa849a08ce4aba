"""(6) What builds write, through boto3: log lines appear as the build's phases run, a
follower reads every line once and in order, faults reach the logs endpoint, and an SDK
configured with AWS_ENDPOINT_URL_CLOUDWATCH_LOGS finds it on the CodeBuild port."""

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, TIME_SCALE
from helpers import create_project, follow_log, sim_env, unique

# 1000 s x 0.01 = 10 s per phase: each phase runs until the test moves the clock.
PHASE = 1000 * TIME_SCALE


@pytest.fixture(scope="module")
def project(sim):
    name = unique("follow")
    create_project(sim, name)
    return name


def test_lines_appear_as_the_phases_run(sim, sim_logs, admin, project):
    build = sim.start_build(
        projectName=project, timeoutInMinutesOverride=480,
        environmentVariablesOverride=sim_env(phase_seconds=1000, log_lines=5),
    )["build"]
    stream = build["id"].split(":", 1)[1]
    group = f"/aws/codebuild/{project}"
    assert "groupName" not in build["logs"]
    with pytest.raises(ClientError) as info:
        sim_logs.get_log_events(logGroupName=group, logStreamName=stream)
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"

    seen, token, phases_seen = [], None, []
    for phase in ["DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD", "UPLOAD_ARTIFACTS"]:
        # Into the middle of the next phase (PROVISIONING ends after three phases).
        admin.post("/_sim/clock", {"advanceSeconds": (3.5 if phase == "DOWNLOAD_SOURCE" else 1) * PHASE})
        current = sim.batch_get_builds(ids=[build["id"]])["builds"][0]
        assert current["currentPhase"] == phase
        assert current["logs"]["streamName"] == stream
        new, token, _ = follow_log(sim_logs, group, stream, token)
        assert new, phase
        seen.extend(new)
        phases_seen.append(phase)
        # Nothing from a phase that has not started yet.
        assert not any("Entering phase" in e["message"] and e["message"].split("Entering phase ")[1].strip()
                       not in phases_seen for e in new)
    admin.post("/_sim/clock", {"advanceSeconds": 2 * PHASE})
    done = sim.batch_get_builds(ids=[build["id"]])["builds"][0]
    assert done["buildComplete"] and done["buildStatus"] == "SUCCEEDED"
    rest, end, _ = follow_log(sim_logs, group, stream, token)
    seen.extend(rest)
    everything, _, _ = follow_log(sim_logs, group, stream)
    assert [e["message"] for e in seen] == [e["message"] for e in everything], "every line once, in order"
    assert end == f"f/{len(everything):056d}"
    outputs = [e for e in everything if not e["message"].startswith("[Container]")]
    assert len(outputs) == 4 * 5


def test_faults_reach_the_logs_endpoint(sim, sim_logs, admin, project):
    build = sim.start_build(projectName=project, environmentVariablesOverride=sim_env(phase_seconds=0))["build"]
    read = dict(logGroupName=f"/aws/codebuild/{project}", logStreamName=build["id"].split(":", 1)[1], limit=1)
    before = admin.get("/_sim/counters")
    admin.post("/_sim/faults", {"throttleFraction": 1.0, "service": "logs"})
    with pytest.raises(ClientError) as info:
        sim_logs.get_log_events(**read)
    assert info.value.response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    sim.batch_get_builds(ids=[build["id"]])  # CodeBuild is not affected
    admin.post("/_sim/faults", {"serverErrorFraction": 1.0, "service": "logs"})
    with pytest.raises(ClientError) as info:
        sim_logs.filter_log_events(logGroupName=read["logGroupName"])
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert info.value.response["Error"]["Code"] == "ServiceUnavailableException"
    after = admin.get("/_sim/counters")
    assert after["throttled"] == before["throttled"] + 1
    assert after["serverErrors"] == before["serverErrors"] + 1
    assert after["calls"]["GetLogEvents"] == before["calls"].get("GetLogEvents", 0) + 1
    assert after["calls"]["FilterLogEvents"] == before["calls"].get("FilterLogEvents", 0) + 1
    assert admin.get("/_sim/faults")["service"] == "logs"


def test_unknown_fault_service_is_refused(admin):
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as info:
        admin.post("/_sim/faults", {"service": "s3"})
    assert info.value.code == 400


def test_sdk_finds_logs_through_the_service_endpoint_variable(sim, sim_url, project, monkeypatch):
    build = sim.start_build(projectName=project, environmentVariablesOverride=sim_env(phase_seconds=0))["build"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", sim_url)
    logs = boto3.session.Session().client(
        "logs", region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )
    assert logs.meta.endpoint_url == sim_url
    page = logs.get_log_events(
        logGroupName=f"/aws/codebuild/{project}", logStreamName=build["id"].split(":", 1)[1], limit=1,
    )
    assert page["nextForwardToken"].startswith("f/")
