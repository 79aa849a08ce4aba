"""(1) botocore parses every simulator response for all seven operations, and a strict
validator finds no violations of the CodeBuild service model, for builds in every state."""


import pytest
from botocore.exceptions import ClientError

from helpers import create_project, project_spec, sim_env, unique
from validator import error_violations, violations

LONG = {"phase_seconds": 10**9}  # with --time-scale 0.01: 10^7 s per phase, never ends here
INSTANT = {"phase_seconds": 0}


def call(client, operation, method, **kwargs):
    """Calls through boto3 (botocore parses the answer) and validates the raw JSON."""
    parsed = getattr(client, method)(**kwargs)
    raw = client.raw.json()
    assert violations(operation, raw) == [], raw
    return parsed, raw


def get_build(sim, build_id):
    parsed, raw = call(sim, "BatchGetBuilds", "batch_get_builds", ids=[build_id])
    assert len(parsed["builds"]) == 1
    return parsed["builds"][0], raw["builds"][0]


@pytest.fixture(scope="module")
def project(sim):
    name = unique("model")
    parsed = sim.create_project(
        **{
            **project_spec(name),
            "secondarySources": [
                {"type": "S3", "location": "bucket/extra.zip", "sourceIdentifier": "extra"}
            ],
            "logsConfig": {
                "cloudWatchLogs": {"status": "ENABLED", "groupName": "custom-group"},
                "s3Logs": {"status": "ENABLED", "location": "log-bucket/prefix"},
            },
        }
    )
    assert violations("CreateProject", sim.raw.json()) == []
    assert parsed["project"]["name"] == name
    return name


def test_project_operations(sim):
    name = unique("projops")
    create_project(sim, name)
    assert violations("CreateProject", sim.raw.json()) == []
    parsed, raw = call(sim, "BatchGetProjects", "batch_get_projects", names=[name, "missing-project"])
    assert [p["name"] for p in parsed["projects"]] == [name]
    assert parsed["projectsNotFound"] == ["missing-project"]
    call(sim, "DeleteProject", "delete_project", name=name)
    parsed, _ = call(sim, "BatchGetProjects", "batch_get_projects", names=[name])
    assert parsed["projects"] == []


def test_in_progress_build(sim, project):
    parsed, raw = call(
        sim,
        "StartBuild",
        "start_build",
        projectName=project,
        sourceVersion="main",
        environmentVariablesOverride=sim_env(**LONG) + [{"name": "X", "value": "y"}],
        artifactsOverride={"type": "S3", "location": "other-bucket", "name": "x.zip", "overrideArtifactName": True},
        secondaryArtifactsOverride=[
            {"type": "S3", "location": "b2", "artifactIdentifier": "second", "name": "s.zip"}
        ],
        cacheOverride={"type": "LOCAL", "modes": ["LOCAL_SOURCE_CACHE"]},
        logsConfigOverride={"cloudWatchLogs": {"status": "ENABLED"}},
        timeoutInMinutesOverride=30,
        debugSessionEnabled=True,
    )
    build = parsed["build"]
    assert build["buildStatus"] == "IN_PROGRESS"
    assert build["buildComplete"] is False
    assert "endTime" not in raw["build"]
    assert build["artifacts"]["location"] == "arn:aws:s3:::other-bucket/x.zip"
    b, raw_b = get_build(sim, build["id"])
    assert raw_b["phases"][-1].keys() == {"phaseType", "startTime"}
    assert b["currentPhase"] == raw_b["phases"][-1]["phaseType"]


def test_succeeded_build(sim, project):
    parsed, _ = call(
        sim, "StartBuild", "start_build", projectName=project,
        environmentVariablesOverride=sim_env(**INSTANT, export="IMAGE=abc,TAG=1"),
    )
    b, raw = get_build(sim, parsed["build"]["id"])
    assert b["buildStatus"] == "SUCCEEDED" and b["buildComplete"] is True
    assert b["currentPhase"] == "COMPLETED"
    assert raw["phases"][-1] == {"phaseType": "COMPLETED", "startTime": raw["endTime"]}
    assert b["exportedEnvironmentVariables"] == [
        {"name": "IMAGE", "value": "abc"},
        {"name": "TAG", "value": "1"},
    ]
    assert len(b["resolvedSourceVersion"]) == 40


@pytest.mark.parametrize(
    "phase,status", [("BUILD", "FAILED"), ("INSTALL", "FAULT"), ("PRE_BUILD", "TIMED_OUT"), ("DOWNLOAD_SOURCE", "FAILED")]
)
def test_failed_build(sim, project, phase, status):
    parsed, _ = call(
        sim, "StartBuild", "start_build", projectName=project,
        environmentVariablesOverride=sim_env(**INSTANT, fail_phase=phase, status=status),
    )
    b, _ = get_build(sim, parsed["build"]["id"])
    assert b["buildStatus"] == status
    failing = [p for p in b["phases"] if p.get("phaseStatus") == status]
    assert [p["phaseType"] for p in failing] == [phase]
    assert failing[0]["contexts"][0]["message"]
    assert "exportedEnvironmentVariables" not in b


def test_timeout_build(sim, project):
    # 5 minutes x 0.01 = 3 s of build time; phases of 1000 s x 0.01 = 10 s: PROVISIONING never ends.
    parsed, _ = call(
        sim, "StartBuild", "start_build", projectName=project,
        timeoutInMinutesOverride=5, environmentVariablesOverride=sim_env(phase_seconds=1000),
    )
    sim_admin_advance(sim, 20)
    b, _ = get_build(sim, parsed["build"]["id"])
    assert b["buildStatus"] == "TIMED_OUT"


def sim_admin_advance(sim, seconds):
    import json
    import urllib.request

    req = urllib.request.Request(
        sim.meta.endpoint_url + "/_sim/clock",
        data=json.dumps({"advanceSeconds": seconds}).encode(),
        method="POST",
    )
    urllib.request.urlopen(req, timeout=10).read()


def test_stopped_build(sim, project):
    parsed, _ = call(
        sim, "StartBuild", "start_build", projectName=project, environmentVariablesOverride=sim_env(**LONG)
    )
    stopped, raw = call(sim, "StopBuild", "stop_build", id=parsed["build"]["id"])
    assert stopped["build"]["buildStatus"] == "STOPPED"
    assert [p["phaseType"] for p in raw["build"]["phases"] if p.get("phaseStatus") == "STOPPED"]
    b, _ = get_build(sim, parsed["build"]["id"])
    assert b["buildStatus"] == "STOPPED"


def test_retried_builds(sim, project):
    parsed, _ = call(
        sim, "StartBuild", "start_build", projectName=project, autoRetryLimitOverride=2,
        environmentVariablesOverride=sim_env(**INSTANT, fail_phase="BUILD", succeed_on_retry=2),
    )
    first, _ = get_build(sim, parsed["build"]["id"])
    chain = [first]
    while "nextAutoRetry" in chain[-1]["autoRetryConfig"]:
        nxt, _ = get_build(sim, chain[-1]["autoRetryConfig"]["nextAutoRetry"])
        chain.append(nxt)
    assert [b["buildStatus"] for b in chain] == ["FAILED", "FAILED", "SUCCEEDED"]
    assert [b["autoRetryConfig"]["autoRetryNumber"] for b in chain] == [0, 1, 2]
    assert chain[1]["autoRetryConfig"]["previousAutoRetry"] == chain[0]["id"]
    assert len({b["id"] for b in chain}) == 3


def test_list_builds_for_project(sim, project):
    parsed, raw = call(sim, "ListBuildsForProject", "list_builds_for_project", projectName=project)
    assert parsed["ids"]
    parsed, _ = call(
        sim, "ListBuildsForProject", "list_builds_for_project", projectName=project, sortOrder="ASCENDING"
    )
    assert parsed["ids"]


def test_many_builds_in_one_batch_get(sim, project):
    """Every build the simulator holds, in whatever state, validates."""
    all_ids = sim.list_builds_for_project(projectName=project)["ids"]
    parsed, raw = call(sim, "BatchGetBuilds", "batch_get_builds", ids=all_ids[:100] + [f"{project}:missing"])
    assert parsed["buildsNotFound"] == [f"{project}:missing"]
    states = {b["buildStatus"] for b in parsed["builds"]}
    assert {"IN_PROGRESS", "SUCCEEDED", "FAILED", "STOPPED"} <= states


@pytest.mark.parametrize(
    "operation,method,kwargs",
    [
        ("StartBuild", "start_build", {"projectName": "no-such-project"}),
        ("StopBuild", "stop_build", {"id": "malformed"}),
        ("StopBuild", "stop_build", {"id": "no-such-project:00000000-0000-0000-0000-000000000000"}),
        ("BatchGetBuilds", "batch_get_builds", {"ids": ["malformed"]}),
        ("ListBuildsForProject", "list_builds_for_project", {"projectName": "no-such-project"}),
        ("CreateProject", "create_project", {"name": "bad name", "source": {"type": "NO_SOURCE"},
                                              "artifacts": {"type": "NO_ARTIFACTS"},
                                              "environment": {"type": "LINUX_CONTAINER", "image": "i",
                                                              "computeType": "BUILD_GENERAL1_SMALL"},
                                              "serviceRole": "r"}),
        ("BatchGetProjects", "batch_get_projects", {"names": [f"p{i}" for i in range(101)]}),
    ],
)
def test_errors_are_declared_by_the_model(sim, operation, method, kwargs):
    with pytest.raises(ClientError) as info:
        getattr(sim, method)(**kwargs)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error_violations(operation, sim.raw.json()) == []
    assert info.value.response["Error"]["Code"] == sim.raw.json()["__type"]


def test_timestamps_are_epoch_numbers(sim, admin, project):
    start = admin.get("/_sim/clock")["now"]  # other tests may have advanced the sim clock
    parsed, raw = call(
        sim, "StartBuild", "start_build", projectName=project, environmentVariablesOverride=sim_env(**INSTANT)
    )
    assert isinstance(raw["build"]["startTime"], float)
    assert abs(parsed["build"]["startTime"].timestamp() - start) < 60
