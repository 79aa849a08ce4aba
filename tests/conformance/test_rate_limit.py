"""The binary's per-operation rate limits (`--rate-limit`, CODEBUILD_SIM_RATE_LIMITS and
`/_sim/rate-limits`): calls past an operation's bucket get ThrottlingException as botocore
reads it, other operations pass, and the counters name the operation."""

import pytest
from botocore.exceptions import ClientError

from conftest import Admin, client_for, launch_sim
from helpers import create_project, unique
from validator import error_violations, violations


def throttled(client, method, **kwargs):
    with pytest.raises(ClientError) as info:
        getattr(client, method)(**kwargs)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert info.value.response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    return client.raw.json()


def test_flag_limits_one_operation():
    # 0.01 calls per second: the two-call burst is all a test sees.
    with launch_sim(["--rate-limit", "StartBuild=0.6/m,burst=2", "--rate-limit", "*=1000/s"]) as url:
        sim, admin = client_for(url), Admin(url)
        name = unique("rate")
        create_project(sim, name)
        for _ in range(2):
            sim.start_build(projectName=name)
            assert violations("StartBuild", sim.raw.json()) == []
        body = throttled(sim, "start_build", projectName=name)
        assert error_violations("StartBuild", body) == []
        assert sim.list_builds_for_project(projectName=name)["ids"]
        counters = admin.get("/_sim/counters")
        assert counters["rateLimited"] == {"StartBuild": 1}
        assert counters["throttledByOperation"] == {"StartBuild": 1}
        assert len(admin.get("/_sim/starts")["starts"]) == 2
        assert admin.get("/_sim/rate-limits") == {
            "StartBuild": {"ratePerSecond": 0.01, "burst": 2},
            "*": {"ratePerSecond": 1000.0},
        }


def test_env_var_and_runtime_changes():
    env = {"CODEBUILD_SIM_RATE_LIMITS": "BatchGetBuilds=0.001/s,burst=1;ListBuildsForProject=5"}
    with launch_sim(extra_env=env) as url:
        sim, admin = client_for(url), Admin(url)
        sim.batch_get_builds(ids=["p:x"])
        throttled(sim, "batch_get_builds", ids=["p:x"])
        admin.post("/_sim/rate-limits", {})
        sim.batch_get_builds(ids=["p:x"])
        admin.post("/_sim/rate-limits", {"BatchGetBuilds": {"ratePerSecond": 0, "burst": 0}})
        throttled(sim, "batch_get_builds", ids=["p:x"])
        admin.post("/_sim/reset")
        assert admin.get("/_sim/rate-limits")["BatchGetBuilds"] == {"ratePerSecond": 0.001, "burst": 1}


def test_bad_flag_is_refused():
    import subprocess

    from conftest import _sim_binary

    done = subprocess.run(
        [str(_sim_binary()), "--rate-limit", "StartBuild=fast"],
        capture_output=True, text=True, timeout=30, env={"CODEBUILD_SIM_LOG": "error"},
    )
    assert done.returncode != 0
    assert "rate limit 'StartBuild=fast'" in done.stderr
