"""(3) Simulator behaviour through boto3: idempotency, the 100-id limit, buildsNotFound,
sortOrder and nextToken, stop persistence, fault injection and counters."""

import time

import pytest
from botocore.exceptions import ClientError, HTTPClientError

from conftest import ACCESS_KEY, TIME_SCALE
from helpers import create_project, sim_env, unique

LONG = sim_env(phase_seconds=100000)
INSTANT = sim_env(phase_seconds=0)


@pytest.fixture
def project(sim):
    name = unique("behave")
    create_project(sim, name)
    return name


def code_of(exc_info):
    return exc_info.value.response["Error"]["Code"], exc_info.value.response["Error"]["Message"]


def test_idempotency_token(sim, admin, project):
    token = unique("token")
    kwargs = dict(projectName=project, idempotencyToken=token, environmentVariablesOverride=LONG)
    first = sim.start_build(**kwargs)["build"]
    again = sim.start_build(**kwargs)["build"]
    assert again["id"] == first["id"]
    assert again["buildNumber"] == first["buildNumber"]

    with pytest.raises(ClientError) as info:
        sim.start_build(**{**kwargs, "sourceVersion": "other"})
    code, message = code_of(info)
    assert code == "InvalidInputException"
    assert "mismatch" in message

    # The window is 300 s x time scale; past it the same token starts a new build.
    admin.post("/_sim/clock", {"advanceSeconds": 300 * TIME_SCALE + 1})
    later = sim.start_build(**kwargs)["build"]
    assert later["id"] != first["id"]

    starts = [s for s in admin.get("/_sim/starts")["starts"] if s["idempotencyToken"] == token]
    assert [s["replayed"] for s in starts] == [False, True, False, False]
    assert starts[2]["error"] == "InvalidInputException"
    assert all(s["accessKeyId"] == ACCESS_KEY for s in starts)
    assert starts[0]["request"]["projectName"] == project


def test_batch_get_builds_limit_and_not_found(sim, project):
    ids = [sim.start_build(projectName=project, environmentVariablesOverride=INSTANT)["build"]["id"] for _ in range(3)]
    unknown = [f"{project}:00000000-0000-0000-0000-{i:012d}" for i in range(97)]
    got = sim.batch_get_builds(ids=[ids[2], unknown[0], ids[0]] + unknown[1:] + [ids[1]])
    assert len(unknown) + len(ids) == 100
    assert [b["id"] for b in got["builds"]] == [ids[2], ids[0], ids[1]]
    assert got["buildsNotFound"] == unknown

    with pytest.raises(ClientError) as info:
        sim.batch_get_builds(ids=ids + unknown + [f"{project}:one-too-many"])
    code, message = code_of(info)
    assert code == "InvalidInputException"
    assert message.startswith("1 validation error detected: Value '[")
    assert message.endswith(
        "at 'ids' failed to satisfy constraint: Member must have length less than or equal to 100"
    )


def test_list_builds_sort_order_and_pages(sim, project):
    ids = [sim.start_build(projectName=project, environmentVariablesOverride=INSTANT)["build"]["id"] for _ in range(105)]
    first = sim.list_builds_for_project(projectName=project)
    assert first["ids"] == list(reversed(ids))[:100]
    second = sim.list_builds_for_project(projectName=project, nextToken=first["nextToken"])
    assert second["ids"] == list(reversed(ids))[100:]
    assert "nextToken" not in second

    ascending = sim.get_paginator("list_builds_for_project").paginate(projectName=project, sortOrder="ASCENDING")
    pages = [p["ids"] for p in ascending]
    assert [len(p) for p in pages] == [100, 5]
    assert sum(pages, []) == ids

    with pytest.raises(ClientError) as info:
        sim.list_builds_for_project(projectName=project, nextToken="not-a-token")
    assert code_of(info)[0] == "InvalidInputException"


def test_build_numbers_are_sequential(sim, project):
    numbers = [sim.start_build(projectName=project, environmentVariablesOverride=INSTANT)["build"]["buildNumber"] for _ in range(3)]
    assert numbers == [1, 2, 3]


def test_stop_stays_stopped(sim, admin, project):
    build = sim.start_build(projectName=project, environmentVariablesOverride=LONG)["build"]
    stopped = sim.stop_build(id=build["id"])["build"]
    assert stopped["buildStatus"] == "STOPPED"
    assert stopped["buildComplete"] is True
    assert stopped["currentPhase"] == "COMPLETED"
    # Past the build's natural end (10 phases x 1000 s): still stopped.
    admin.post("/_sim/clock", {"advanceSeconds": 20000})
    later = sim.batch_get_builds(ids=[build["id"]])["builds"][0]
    assert later["buildStatus"] == "STOPPED"
    assert later["endTime"] == stopped["endTime"]
    # Stopping again returns the build unchanged.
    again = sim.stop_build(id=build["id"])["build"]
    assert again == later


def test_stop_finished_build_is_unchanged(sim, project):
    build = sim.start_build(projectName=project, environmentVariablesOverride=INSTANT)["build"]
    done = sim.batch_get_builds(ids=[build["id"]])["builds"][0]
    assert done["buildStatus"] == "SUCCEEDED"
    assert sim.stop_build(id=build["id"])["build"] == done


def test_build_runs_through_phases_in_real_time(sim, project):
    # Default phase length 1 s x 0.01 = 10 ms: the build is over in about 0.1 s.
    build = sim.start_build(projectName=project)["build"]
    assert build["buildStatus"] == "IN_PROGRESS"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        b = sim.batch_get_builds(ids=[build["id"]])["builds"][0]
        if b["buildComplete"]:
            break
        time.sleep(0.05)
    assert b["buildStatus"] == "SUCCEEDED"
    assert [p["phaseType"] for p in b["phases"]][-1] == "COMPLETED"
    assert b["endTime"] > b["startTime"]


def test_throttling_fault_and_counters(sim, admin, project):
    before = admin.get("/_sim/counters")
    admin.post("/_sim/faults", {"throttleFraction": 1.0, "operation": "BatchGetBuilds"})
    with pytest.raises(ClientError) as info:
        sim.batch_get_builds(ids=[f"{project}:x"])
    assert code_of(info) == ("ThrottlingException", "Rate exceeded")
    # Other operations are not affected by a scoped fault.
    sim.list_builds_for_project(projectName=project)
    after = admin.get("/_sim/counters")
    assert after["throttled"] == before["throttled"] + 1
    assert after["calls"]["BatchGetBuilds"] == before["calls"].get("BatchGetBuilds", 0) + 1
    assert after["calls"]["ListBuildsForProject"] == before["calls"].get("ListBuildsForProject", 0) + 1
    assert after["totalCalls"] == before["totalCalls"] + 2


def test_server_error_fault(sim, admin, project):
    admin.post("/_sim/faults", {"serverErrorFraction": 1.0, "serverErrorStatus": 503})
    with pytest.raises(ClientError) as info:
        sim.list_builds_for_project(projectName=project)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    admin.post("/_sim/faults", {"serverErrorFraction": 1.0})
    with pytest.raises(ClientError) as info:
        sim.list_builds_for_project(projectName=project)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert code_of(info)[0] == "InternalFailure"


def test_dropped_connection_fault(sim, admin, project):
    before = admin.get("/_sim/counters")["dropped"]
    admin.post("/_sim/faults", {"dropFraction": 1.0, "operation": "StartBuild"})
    with pytest.raises(HTTPClientError):
        sim.start_build(projectName=project)
    assert admin.get("/_sim/counters")["dropped"] == before + 1


def test_latency_fault(sim, admin, project):
    admin.post("/_sim/faults", {"latencyMs": 300})
    started = time.monotonic()
    sim.list_builds_for_project(projectName=project)
    assert time.monotonic() - started >= 0.3


def test_account_limit(sim, admin, project):
    admin.post("/_sim/faults", {"maxConcurrentBuilds": 0})
    with pytest.raises(ClientError) as info:
        sim.start_build(projectName=project)
    assert code_of(info) == ("AccountLimitExceededException", "Cannot have more than 0 active builds for the account")


def test_project_arn_as_project_name(sim, project):
    arn = f"arn:aws:codebuild:us-east-1:123456789012:project/{project}"
    build = sim.start_build(projectName=arn, environmentVariablesOverride=INSTANT)["build"]
    assert build["projectName"] == project
    assert sim.list_builds_for_project(projectName=arn)["ids"] == [build["id"]]


def test_overrides_are_reflected(sim, project):
    b = sim.start_build(
        projectName=project,
        environmentVariablesOverride=INSTANT + [{"name": "FROM_PROJECT", "value": "2"}],
        imageOverride="custom:latest",
        computeTypeOverride="BUILD_GENERAL1_LARGE",
        serviceRoleOverride="arn:aws:iam::123456789012:role/other",
        queuedTimeoutInMinutesOverride=10,
    )["build"]
    env = b["environment"]
    assert env["image"] == "custom:latest"
    assert env["computeType"] == "BUILD_GENERAL1_LARGE"
    by_name = {v["name"]: v["value"] for v in env["environmentVariables"]}
    assert by_name["FROM_PROJECT"] == "2"
    assert b["serviceRole"] == "arn:aws:iam::123456789012:role/other"
    assert b["queuedTimeoutInMinutes"] == 10
    assert b["artifacts"]["location"] == "arn:aws:s3:::artifact-bucket/builds/out.zip"
    uuid = b["id"].split(":", 1)[1]
    assert b["logs"]["groupName"] == f"/aws/codebuild/{project}"
    assert b["logs"]["streamName"] == uuid
    assert b["logs"]["deepLink"] == (
        "https://console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        f"#logEvent:group=/aws/codebuild/{project};stream={uuid}"
    )
