"""Batch builds against botocore's CodeBuild model: botocore parses every answer of
StartBuildBatch, BatchGetBuildBatches, StopBuildBatch, RetryBuildBatch,
ListBuildBatchesForProject and ListBuildBatches, and the strict validator finds no violation
in any state a batch and its build groups reach — bar the values the service itself answers
outside the model's enums (SERVICE_VALUES, from the AWS CLI's documented batch answers).
The builds of a batch (BatchGetBuilds, with buildBatchArn) validate too.

moto 5.2.1 does not model batch builds: its CodeBuild responses have none of these
operations and its server answers them with HTTP 500 (NotImplementedError), so there is no
parity to check."""

import pytest
from botocore.exceptions import ClientError

from helpers import ACCOUNT, project_spec, sim_env, unique
from validator import error_violations, service_model, violations

# What the service answers outside the model's enums, as its documented answers show:
# a group waiting for its dependencies is PENDING; IN_PROGRESS ends CLIENT_ERROR when a build
# failed; a retry ends the FAILED phase with RETRY; resolved artifact types are lower case.
SERVICE_VALUES = {
    ("BuildSummary", "buildStatus"): {"PENDING"},
    ("BuildBatchPhase", "phaseStatus"): {"CLIENT_ERROR", "RETRY"},
    ("ResolvedArtifact", "type"): {"no_artifacts", "s3", "codepipeline"},
}

BATCH_OPERATIONS = [
    "StartBuildBatch",
    "BatchGetBuildBatches",
    "StopBuildBatch",
    "RetryBuildBatch",
    "ListBuildBatchesForProject",
    "ListBuildBatches",
]

# With --time-scale 0.01 a phase of 300 s lasts 3 s of the sim clock (a build 30 s, within its
# 60-minute timeout, 36 s scaled): a batch only moves when a test advances the clock.
SLOW = sim_env(phase_seconds=300)

GRAPH = """version: 0.2
batch:
  build-graph:
    - identifier: first
      env:
        variables:
          CODEBUILD_SIM_FAIL_PHASE: FAIL_FIRST
          CODEBUILD_SIM_SUCCEED_ON_RETRY: '1'
    - identifier: second
      depend-on: [first]
phases:
  build:
    commands:
      - make
"""


def ok_graph():
    return GRAPH.replace("          CODEBUILD_SIM_FAIL_PHASE: FAIL_FIRST\n", "").replace(
        "          CODEBUILD_SIM_SUCCEED_ON_RETRY: '1'\n", ""
    ).replace("      env:\n        variables:\n", "")


def call(client, operation, method, **kwargs):
    parsed = getattr(client, method)(**kwargs)
    raw = client.raw.json()
    assert violations(operation, raw, service_values=SERVICE_VALUES) == [], raw
    return parsed, raw


def get_batch(sim, batch_id):
    parsed, raw = call(sim, "BatchGetBuildBatches", "batch_get_build_batches", ids=[batch_id])
    assert parsed["buildBatchesNotFound"] == []
    return parsed["buildBatches"][0], raw["buildBatches"][0]


def advance(admin, seconds):
    admin.post("/_sim/clock", {"advanceSeconds": seconds})


def groups(batch):
    return {g["identifier"]: g for g in batch.get("buildGroups", [])}


def check_members(sim, batch):
    """The builds of the batch's groups validate as Builds and name the batch."""
    ids = [
        s["arn"].split("build/", 1)[1]
        for g in batch.get("buildGroups", [])
        for s in [g.get("currentBuildSummary")] + g.get("priorBuildSummaryList", [])
        if s and s["buildStatus"] not in ("PENDING", "STOPPED")
    ]
    if ids:
        parsed, _ = call(sim, "BatchGetBuilds", "batch_get_builds", ids=ids)
        assert all(b["buildBatchArn"] == batch["arn"] for b in parsed["builds"])


@pytest.fixture(scope="module")
def project(sim):
    name = unique("batch")
    sim.create_project(
        **{
            **project_spec(name),
            "buildBatchConfig": {
                "serviceRole": f"arn:aws:iam::{ACCOUNT}:role/batch",
                "restrictions": {"maximumBuildsAllowed": 10},
            },
        }
    )
    return name


def start(sim, project, spec, **kwargs):
    env = kwargs.pop("environmentVariablesOverride", SLOW)
    parsed, raw = call(
        sim, "StartBuildBatch", "start_build_batch",
        projectName=project, buildspecOverride=spec, environmentVariablesOverride=env, **kwargs,
    )
    return parsed["buildBatch"]


def test_every_operation_is_served(sim):
    ops = set(service_model().operation_names)
    assert set(BATCH_OPERATIONS) <= ops
    sim.list_build_batches()
    assert violations("ListBuildBatches", sim.raw.json()) == []


def test_start_build_batch_takes_every_member_of_the_model(sim, project):
    request = {
        "projectName": project,
        "secondarySourcesOverride": [{"type": "S3", "location": "bucket/extra.zip", "sourceIdentifier": "extra"}],
        "secondarySourcesVersionOverride": [{"sourceIdentifier": "extra", "sourceVersion": "v1"}],
        "sourceVersion": "main",
        "artifactsOverride": {"type": "S3", "location": "out-bucket", "name": "out.zip"},
        "secondaryArtifactsOverride": [{"type": "S3", "location": "b2", "artifactIdentifier": "second"}],
        "environmentVariablesOverride": SLOW + [{"name": "X", "value": "y", "type": "PLAINTEXT"}],
        "sourceTypeOverride": "GITHUB",
        "sourceLocationOverride": "https://github.com/example/other.git",
        "sourceAuthOverride": {"type": "OAUTH"},
        "gitCloneDepthOverride": 1,
        "gitSubmodulesConfigOverride": {"fetchSubmodules": False},
        "buildspecOverride": ok_graph(),
        "insecureSslOverride": False,
        "reportBuildBatchStatusOverride": True,
        "environmentTypeOverride": "LINUX_CONTAINER",
        "imageOverride": "aws/codebuild/standard:7.0",
        "computeTypeOverride": "BUILD_GENERAL1_MEDIUM",
        "certificateOverride": "bucket/cert.pem",
        "cacheOverride": {"type": "LOCAL", "modes": ["LOCAL_SOURCE_CACHE"]},
        "serviceRoleOverride": f"arn:aws:iam::{ACCOUNT}:role/other",
        "privilegedModeOverride": True,
        "buildTimeoutInMinutesOverride": 30,
        "queuedTimeoutInMinutesOverride": 60,
        "encryptionKeyOverride": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k",
        "idempotencyToken": unique("every-member"),
        "logsConfigOverride": {"cloudWatchLogs": {"status": "ENABLED", "groupName": "batch-logs"}},
        "registryCredentialOverride": {"credential": "arn:aws:secretsmanager:us-east-1:1:secret:x", "credentialProvider": "SECRETS_MANAGER"},
        "imagePullCredentialsTypeOverride": "SERVICE_ROLE",
        "buildBatchConfigOverride": {
            "serviceRole": f"arn:aws:iam::{ACCOUNT}:role/batch2",
            "combineArtifacts": True,
            "restrictions": {"maximumBuildsAllowed": 5, "computeTypesAllowed": ["BUILD_GENERAL1_MEDIUM"], "fleetsAllowed": []},
            "timeoutInMins": 600,
            "batchReportMode": "REPORT_AGGREGATED_BATCH",
        },
        "debugSessionEnabled": True,
    }
    members = set(service_model().operation_model("StartBuildBatch").input_shape.members)
    assert set(request) == members, set(request) ^ members
    parsed, raw = call(sim, "StartBuildBatch", "start_build_batch", **request)
    b = raw["buildBatch"]
    assert b["buildBatchStatus"] == "IN_PROGRESS" and b["currentPhase"] == "SUBMITTED"
    assert b["buildTimeoutInMinutes"] == 30 and b["queuedTimeoutInMinutes"] == 60
    assert b["buildBatchConfig"]["restrictions"]["maximumBuildsAllowed"] == 5
    assert b["environment"]["computeType"] == "BUILD_GENERAL1_MEDIUM"
    assert b["logConfig"]["cloudWatchLogs"]["groupName"] == "batch-logs"
    assert b["debugSessionEnabled"] is True
    assert b["arn"] == f"arn:aws:codebuild:us-east-1:{ACCOUNT}:build-batch/{b['id']}"
    assert parsed["buildBatch"]["startTime"].timestamp() == pytest.approx(b["startTime"])


def test_a_graph_in_every_state(sim, admin, project):
    batch = start(sim, project, ok_graph())
    advance(admin, 5)
    b, _ = get_batch(sim, batch["id"])
    assert b["currentPhase"] == "DOWNLOAD_BATCHSPEC"
    assert groups(b)["DOWNLOAD_SOURCE"]["currentBuildSummary"]["buildStatus"] == "IN_PROGRESS"
    check_members(sim, b)
    advance(admin, 40)
    b, raw = get_batch(sim, batch["id"])
    assert b["currentPhase"] == "IN_PROGRESS"
    assert groups(b)["second"]["currentBuildSummary"]["buildStatus"] == "PENDING"
    assert violations("BatchGetBuildBatches", {"buildBatches": [raw]}) != [], "PENDING is outside the model"
    check_members(sim, b)
    advance(admin, 1000)
    b, raw = get_batch(sim, batch["id"])
    assert b["buildBatchStatus"] == "SUCCEEDED" and b["complete"] is True
    assert [p["phaseType"] for p in raw["phases"]] == [
        "SUBMITTED", "DOWNLOAD_BATCHSPEC", "IN_PROGRESS", "COMBINE_ARTIFACTS", "SUCCEEDED"
    ]
    assert len(b["resolvedSourceVersion"]) == 40
    check_members(sim, b)


def test_a_failure_and_its_retry(sim, admin, project):
    batch = start(sim, project, GRAPH.replace("FAIL_FIRST", "BUILD"))
    advance(admin, 1500)
    b, raw = get_batch(sim, batch["id"])
    assert b["buildBatchStatus"] == "FAILED"
    assert raw["phases"][2]["phaseStatus"] == "CLIENT_ERROR"
    assert groups(b)["second"]["currentBuildSummary"]["buildStatus"] == "STOPPED"
    check_members(sim, b)
    parsed, raw = call(
        sim, "RetryBuildBatch", "retry_build_batch",
        id=batch["id"], retryType="RETRY_FAILED_BUILDS", idempotencyToken=unique("retry"),
    )
    retried_phase = raw["buildBatch"]["phases"][3]
    assert (retried_phase["phaseType"], retried_phase["phaseStatus"]) == ("FAILED", "RETRY")
    assert "priorBuildSummaryList" in groups(parsed["buildBatch"])["first"]
    advance(admin, 1500)
    b, _ = get_batch(sim, batch["id"])
    assert b["buildBatchStatus"] == "SUCCEEDED"
    assert groups(b)["first"]["priorBuildSummaryList"][0]["buildStatus"] == "FAILED"
    check_members(sim, b)


def test_stopped_batch(sim, admin, project):
    batch = start(sim, project, ok_graph())
    advance(admin, 45)
    parsed, raw = call(sim, "StopBuildBatch", "stop_build_batch", id=batch["id"])
    b = parsed["buildBatch"]
    assert b["buildBatchStatus"] == "STOPPED" and b["currentPhase"] == "STOPPED"
    assert {g["currentBuildSummary"]["buildStatus"] for g in b["buildGroups"][1:]} == {"STOPPED"}
    check_members(sim, b)


@pytest.mark.parametrize(
    "spec,extra,code",
    [
        ("version: 0.2\nphases:\n  build:\n    commands:\n      - make\n", {}, "YAML_FILE_ERROR"),
        (
            ok_graph(),
            {"buildBatchConfigOverride": {"restrictions": {"maximumBuildsAllowed": 1}}},
            "CLIENT_ERROR",
        ),
    ],
)
def test_failing_in_download_batchspec(sim, admin, project, spec, extra, code):
    batch = start(sim, project, spec, **extra)
    advance(admin, 1500)
    b, raw = get_batch(sim, batch["id"])
    assert b["buildBatchStatus"] == "FAILED"
    assert raw["phases"][1]["phaseStatus"] == "FAILED"
    assert raw["phases"][1]["contexts"][0]["statusCode"] == code
    check_members(sim, b)


def test_timed_out_batch(sim, admin, project):
    batch = start(sim, project, ok_graph(), buildBatchConfigOverride={"timeoutInMins": 1})
    advance(admin, 200)
    b, _ = get_batch(sim, batch["id"])
    assert b["buildBatchStatus"] == "TIMED_OUT"


def test_matrix_with_combined_s3_artifacts(sim, admin, project):
    spec = "batch:\n  build-matrix:\n    dynamic:\n      env:\n        variables:\n          TARGET: [a, b]\n"
    batch = start(
        sim, project, spec,
        artifactsOverride={"type": "S3", "location": "bucket", "name": "out.zip"},
        buildBatchConfigOverride={"combineArtifacts": True},
    )
    advance(admin, 1500)
    b, raw = get_batch(sim, batch["id"])
    assert b["buildBatchStatus"] == "SUCCEEDED"
    art = groups(raw)["TARGET_a"]["currentBuildSummary"]["primaryArtifact"]
    assert art == {"type": "s3", "location": "arn:aws:s3:::bucket/out.zip", "identifier": "TARGET_a"}
    check_members(sim, b)


def test_list_and_paginate(sim, project):
    ids = [start(sim, project, ok_graph())["id"] for _ in range(3)]
    pages = sim.get_paginator("list_build_batches_for_project").paginate(
        projectName=project, PaginationConfig={"PageSize": 2}
    )
    seen = []
    for page in pages:
        assert violations("ListBuildBatchesForProject", sim.raw.json()) == []
        seen.extend(page["ids"])
    assert seen[:3] == ids[::-1]
    parsed, _ = call(
        sim, "ListBuildBatchesForProject", "list_build_batches_for_project",
        projectName=project, filter={"status": "STOPPED"}, sortOrder="ASCENDING",
    )
    assert all(i not in parsed["ids"] for i in ids)
    parsed, _ = call(sim, "ListBuildBatches", "list_build_batches", maxResults=1)
    assert len(parsed["ids"]) == 1 and "nextToken" in parsed
    parsed, raw = call(sim, "BatchGetBuildBatches", "batch_get_build_batches", ids=[ids[0], f"{project}:missing"])
    assert raw["buildBatchesNotFound"] == [f"{project}:missing"]


def test_idempotent_start(sim, project):
    token = unique("token")
    a = start(sim, project, ok_graph(), idempotencyToken=token)
    b = start(sim, project, ok_graph(), idempotencyToken=token)
    assert a["id"] == b["id"]
    with pytest.raises(ClientError) as info:
        start(sim, project, ok_graph(), idempotencyToken=token, sourceVersion="other")
    assert info.value.response["Error"]["Code"] == "InvalidInputException"
    assert error_violations("StartBuildBatch", sim.raw.json()) == []


@pytest.mark.parametrize(
    "operation,method,kwargs",
    [
        ("StartBuildBatch", "start_build_batch", {"projectName": "no-such-project"}),
        ("StopBuildBatch", "stop_build_batch", {"id": "no-such-project:00000000-0000-0000-0000-000000000000"}),
        ("RetryBuildBatch", "retry_build_batch", {"id": "no-such-project:00000000-0000-0000-0000-000000000000"}),
        ("ListBuildBatchesForProject", "list_build_batches_for_project", {"projectName": "no-such-project"}),
        ("BatchGetBuildBatches", "batch_get_build_batches", {"ids": [f"p:{i}" for i in range(101)]}),
        ("ListBuildBatches", "list_build_batches", {"nextToken": "garbage"}),
        ("RetryBuildBatch", "retry_build_batch", {"id": "p:x", "retryType": "RETRY_SOME"}),
    ],
)
def test_errors_are_declared_by_the_model(sim, operation, method, kwargs):
    with pytest.raises(ClientError) as info:
        getattr(sim, method)(**kwargs)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error_violations(operation, sim.raw.json()) == []


def test_refusals_of_a_project_and_a_running_batch(sim, project):
    plain = unique("nobatch")
    sim.create_project(**project_spec(plain))
    with pytest.raises(ClientError) as info:
        sim.start_build_batch(projectName=plain, buildspecOverride=ok_graph())
    assert info.value.response["Error"]["Code"] == "InvalidInputException"
    assert "not enabled" in info.value.response["Error"]["Message"]
    running = start(sim, project, ok_graph())
    with pytest.raises(ClientError) as info:
        sim.retry_build_batch(id=running["id"])
    assert info.value.response["Error"]["Code"] == "InvalidInputException"
    assert error_violations("RetryBuildBatch", sim.raw.json()) == []


def test_counters_and_call_log(admin, project, sim):
    before = admin.get("/_sim/counters")
    start(sim, project, ok_graph())
    after = admin.get("/_sim/counters")
    assert after["calls"]["StartBuildBatch"] == before["calls"].get("StartBuildBatch", 0) + 1
    last = admin.get("/_sim/batch-starts")["batchStarts"][-1]
    assert last["operation"] == "StartBuildBatch" and last["accessKeyId"] == "AKIDCONFORMANCE"


def test_moto_has_no_batches(moto):
    from moto.codebuild.responses import CodeBuildResponse

    for operation in BATCH_OPERATIONS:
        method = "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")
        assert not hasattr(CodeBuildResponse, method), f"moto now models {operation}: add parity tests"
    with pytest.raises(ClientError) as info:
        moto.start_build_batch(projectName="any")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
