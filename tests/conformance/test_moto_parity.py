"""(2) Where moto models a case, the simulator answers as moto does: the same requests go to
both and the answers are compared."""

import re

import pytest
from botocore.exceptions import ClientError

from helpers import create_project, project_spec, unique

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def error_of(client, method, **kwargs):
    with pytest.raises(ClientError) as info:
        getattr(client, method)(**kwargs)
    err = info.value.response["Error"]
    status = info.value.response["ResponseMetadata"]["HTTPStatusCode"]
    return err["Code"], err["Message"], status


@pytest.fixture(scope="module")
def shared_project(sim, moto):
    """A project created the same way on both."""
    name = unique("parity")
    create_project(sim, name)
    create_project(moto, name)
    return name


def both(sim, moto, method, **kwargs):
    return error_of(sim, method, **kwargs), error_of(moto, method, **kwargs)


def test_start_build_unknown_project(sim, moto):
    ours, theirs = both(sim, moto, "start_build", projectName="no-such-project")
    assert ours == theirs
    assert ours[0] == "ResourceNotFoundException"
    assert ours[1] == "Project cannot be found: arn:aws:codebuild:us-east-1:123456789012:project/no-such-project"


@pytest.mark.parametrize("method,kwargs", [
    ("batch_get_builds", {"ids": ["malformed"]}),
    ("batch_get_builds", {"ids": ["ok:id", "malformed"]}),
    ("stop_build", {"id": "malformed"}),
])
def test_malformed_build_id(sim, moto, method, kwargs):
    ours, theirs = both(sim, moto, method, **kwargs)
    assert ours == theirs == ("InvalidInputException", "Invalid build ID provided", 400)


@pytest.mark.parametrize("build_id", [
    "no-such-project:00000000-0000-0000-0000-000000000000",
    "parity-unknown:not-a-uuid",
])
def test_stop_unknown_well_formed_id(sim, moto, build_id):
    ours, theirs = both(sim, moto, "stop_build", id=build_id)
    assert ours == theirs == ("ResourceNotFoundException", f"Build {build_id} does not exist", 400)


def test_list_builds_unknown_project(sim, moto):
    ours, theirs = both(sim, moto, "list_builds_for_project", projectName="no-such-project")
    assert ours == theirs
    assert ours[0] == "ResourceNotFoundException"


def test_create_project_twice(sim, moto, shared_project):
    ours, theirs = both(
        sim, moto, "create_project", **project_spec(shared_project)
    )
    assert ours == theirs
    assert ours[0] == "ResourceAlreadyExistsException"


def test_create_project_bad_name(sim, moto):
    spec = {**project_spec("x"), "name": "bad name!"}
    ours, theirs = both(sim, moto, "create_project", **spec)
    assert ours == theirs


def test_delete_unknown_project_succeeds(sim, moto):
    # Neither answers an error (the real DeleteProject declares only InvalidInputException).
    sim.delete_project(name="no-such-project")
    moto.delete_project(name="no-such-project")
    assert sim.raw.json() == moto.raw.json() == {}


def test_id_and_arn_formats(sim, moto, shared_project):
    ours = sim.start_build(projectName=shared_project, sourceVersion="refs/heads/main")["build"]
    theirs = moto.start_build(projectName=shared_project, sourceVersion="refs/heads/main")["build"]
    for build in (ours, theirs):
        assert re.fullmatch(rf"{shared_project}:{UUID}", build["id"]), build["id"]
        assert build["arn"] == f"arn:aws:codebuild:us-east-1:123456789012:build/{build['id']}"
        assert build["projectName"] == shared_project
        assert build["buildStatus"] == "IN_PROGRESS"
        assert build["buildComplete"] is False
        assert isinstance(build["buildNumber"], int)


def test_start_build_field_names(sim, moto, shared_project):
    """The simulator returns at least the fields moto returns, at the top level and in the
    nested structures moto fills from the project."""
    # sourceVersion is given because moto always reports one (hard-coded "refs/heads/main");
    # the simulator reports sourceVersion only when the request or project sets it.
    sim.start_build(projectName=shared_project, sourceVersion="refs/heads/main")
    ours_raw_start = sim.raw.json()["build"]
    moto.start_build(projectName=shared_project, sourceVersion="refs/heads/main")
    theirs_raw_start = moto.raw.json()["build"]
    # Field names the simulator adds beyond moto: artifacts, logs.groupName/streamName,
    # debugSession (real service fields moto does not model).
    missing = set(theirs_raw_start) - set(ours_raw_start)
    assert missing == set(), missing
    for nested in ("environment", "logs", "cache"):
        missing = set(theirs_raw_start[nested]) - set(ours_raw_start[nested])
        assert missing == set(), (nested, missing)
    # moto's `source` is hard-coded (a CODECOMMIT repository whatever the project says), so
    # only its type-independent members are compared.
    assert {"type", "location", "buildspec"} <= set(ours_raw_start["source"])
    # Phase entries: moto's SUBMITTED phase has these members too.
    submitted_ours = ours_raw_start["phases"][0]
    submitted_theirs = theirs_raw_start["phases"][0]
    assert submitted_ours["phaseType"] == submitted_theirs["phaseType"] == "SUBMITTED"


def test_project_field_names(sim, moto, shared_project):
    ours = sim.batch_get_projects(names=[shared_project])["projects"][0]
    theirs = moto.batch_get_projects(names=[shared_project])["projects"][0]
    missing = set(theirs) - set(ours)
    assert missing == set(), missing
    for key in ("name", "arn", "source", "artifacts", "environment", "serviceRole", "description"):
        if key == "environment":
            # moto keeps the request as given; the simulator adds the service's defaults
            # (privilegedMode, imagePullCredentialsType).
            assert set(theirs[key]) <= set(ours[key])
        else:
            assert ours[key] == theirs[key], key
