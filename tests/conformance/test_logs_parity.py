"""(5) CloudWatch Logs parity with moto: the events of a finished simulator build are put into
a moto stream of the same name (timestamps shifted to moto's acceptance window), then the
same reads go to both and the answers are compared: events, tokens at the end of a stream,
empty streams, unknown group or stream, bad tokens and limits, FilterLogEvents.

Tokens: both write `f/` or `b/` and 56 digits. Backward tokens are the same. moto's forward
token names the last event returned, the simulator's the position after it (as its backward
token names a position), so a non-empty page's forward token is moto's plus one; an empty
stream read from the head is the one case where that matters: moto answers `f/-0…01`, which
is not the service's form (its tokens are always digits), and the simulator answers `f/0…0`.
At the end of a stream both return the very token passed in, as the service does."""

import time

import pytest
from botocore.exceptions import ClientError

from helpers import create_project, follow_log, sim_env, unique


def position(token: str) -> int:
    return int(token.split("/", 1)[1])


def events_of(page: dict, shift: int = 0) -> list:
    return [(e["message"], e["timestamp"] - shift) for e in page["events"]]


@pytest.fixture(scope="module")
def project(sim):
    name = unique("logparity")
    create_project(sim, name)
    return name


@pytest.fixture(scope="module")
def copied(sim, sim_logs, moto_logs, project):
    """(group, stream, simulator events, shift): a finished build's stream, copied to moto with
    timestamps moved by `shift` ms to now (moto refuses events older than 14 days or more than
    2 hours ahead; the simulator's clock may have been advanced)."""
    build = sim.start_build(projectName=project, environmentVariablesOverride=sim_env(phase_seconds=2))["build"]
    deadline = time.monotonic() + 10
    while not (done := sim.batch_get_builds(ids=[build["id"]])["builds"][0])["buildComplete"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.1)
    group, stream = done["logs"]["groupName"], done["logs"]["streamName"]
    events, _, _ = follow_log(sim_logs, group, stream)
    assert len(events) > 20
    shift = int(time.time() * 1000) - events[0]["timestamp"]
    moto_logs.create_log_group(logGroupName=group)
    moto_logs.create_log_stream(logGroupName=group, logStreamName=stream)
    moto_logs.put_log_events(
        logGroupName=group, logStreamName=stream,
        logEvents=[{"timestamp": e["timestamp"] + shift, "message": e["message"]} for e in events],
    )
    return group, stream, events, shift


def both(sim_logs, moto_logs, sim_token, moto_token, **kwargs):
    ours = sim_logs.get_log_events(**kwargs, **({"nextToken": sim_token} if sim_token else {}))
    theirs = moto_logs.get_log_events(**kwargs, **({"nextToken": moto_token} if moto_token else {}))
    return ours, theirs


def test_the_copy_is_faithful(moto_logs, copied):
    group, stream, events, shift = copied
    theirs = moto_logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    assert events_of(theirs, shift) == [(e["message"], e["timestamp"]) for e in events]


def test_forward_pages_and_the_end_of_the_stream(sim_logs, moto_logs, copied):
    group, stream, events, shift = copied
    read = dict(logGroupName=group, logStreamName=stream, startFromHead=True, limit=7)
    ours_token = theirs_token = None
    seen = []
    while True:
        ours, theirs = both(sim_logs, moto_logs, ours_token, theirs_token, **read)
        assert events_of(ours) == events_of(theirs, shift)
        seen.extend(events_of(ours))
        if ours["nextForwardToken"] == ours_token:
            # The end: each returns the token it was given, unchanged.
            assert theirs["nextForwardToken"] == theirs_token
            assert ours["events"] == theirs["events"] == []
            break
        assert ours["nextBackwardToken"] == theirs["nextBackwardToken"]
        assert position(ours["nextForwardToken"]) == position(theirs["nextForwardToken"]) + 1
        ours_token, theirs_token = ours["nextForwardToken"], theirs["nextForwardToken"]
    assert seen == [(e["message"], e["timestamp"]) for e in events]
    # Asking again at the end changes nothing.
    again, again_moto = both(sim_logs, moto_logs, ours_token, theirs_token, **read)
    assert (again["nextForwardToken"], again_moto["nextForwardToken"]) == (ours_token, theirs_token)


def test_the_tail_then_backward_to_the_start(sim_logs, moto_logs, copied):
    group, stream, events, shift = copied
    read = dict(logGroupName=group, logStreamName=stream, limit=4)
    ours, theirs = both(sim_logs, moto_logs, None, None, **read)
    assert events_of(ours) == events_of(theirs, shift) == [(e["message"], e["timestamp"]) for e in events[-4:]]
    assert ours["nextBackwardToken"] == theirs["nextBackwardToken"]
    assert position(ours["nextForwardToken"]) == position(theirs["nextForwardToken"]) + 1 == len(events)
    ours_token, theirs_token = ours["nextBackwardToken"], theirs["nextBackwardToken"]
    while True:
        ours, theirs = both(sim_logs, moto_logs, ours_token, theirs_token, **read)
        assert events_of(ours) == events_of(theirs, shift)
        assert ours["nextBackwardToken"] == theirs["nextBackwardToken"]
        if ours["nextBackwardToken"] == ours_token:
            break
        ours_token, theirs_token = ours["nextBackwardToken"], theirs["nextBackwardToken"]
    # At the start both answer the same empty page with the same tokens.
    assert ours_token == "b/" + "0" * 56
    assert sim_logs.raw.json() == moto_logs.raw.json() == {
        "events": [], "nextForwardToken": "f/" + "0" * 56, "nextBackwardToken": "b/" + "0" * 56,
    }


def test_whole_stream_without_a_token(sim_logs, moto_logs, copied):
    group, stream, _, shift = copied
    ours, theirs = both(sim_logs, moto_logs, None, None, logGroupName=group, logStreamName=stream)
    assert events_of(ours) == events_of(theirs, shift)
    assert ours["nextBackwardToken"] == theirs["nextBackwardToken"]


def test_empty_stream(sim, sim_logs, moto_logs, project):
    # A stream that exists with nothing readable yet: the simulator's build delivers its lines
    # 10^5 s (10^7 x 0.01) after writing them.
    build = sim.start_build(
        projectName=project, environmentVariablesOverride=sim_env(phase_seconds=0, log_delay_seconds=10**7)
    )["build"]
    group, stream = build["logs"]["groupName"], build["logs"]["streamName"]
    moto_logs.create_log_stream(logGroupName=group, logStreamName=stream)
    zero = {"events": [], "nextForwardToken": "f/" + "0" * 56, "nextBackwardToken": "b/" + "0" * 56}
    # From the tail (the default) both answer exactly alike.
    both(sim_logs, moto_logs, None, None, logGroupName=group, logStreamName=stream)
    assert sim_logs.raw.json() == moto_logs.raw.json() == zero
    # From the head moto answers f/-0…01 (not a token the service writes); the simulator the
    # same tokens as from the tail. Both give their token back unchanged.
    ours, theirs = both(sim_logs, moto_logs, None, None, logGroupName=group, logStreamName=stream, startFromHead=True)
    assert sim_logs.raw.json() == zero
    assert theirs["nextForwardToken"] == "f/-" + "0" * 54 + "1"
    again, again_moto = both(
        sim_logs, moto_logs, ours["nextForwardToken"], theirs["nextForwardToken"],
        logGroupName=group, logStreamName=stream, startFromHead=True,
    )
    assert again["nextForwardToken"] == ours["nextForwardToken"]
    assert again_moto["nextForwardToken"] == theirs["nextForwardToken"]
    assert again["events"] == again_moto["events"] == []


def error_of(client, method, **kwargs):
    with pytest.raises(ClientError) as info:
        getattr(client, method)(**kwargs)
    err = info.value.response["Error"]
    return err["Code"], err["Message"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_unknown_group(sim_logs, moto_logs):
    kwargs = dict(logGroupName="/aws/codebuild/no-such-project", logStreamName="x")
    ours, theirs = error_of(sim_logs, "get_log_events", **kwargs), error_of(moto_logs, "get_log_events", **kwargs)
    assert ours == theirs == ("ResourceNotFoundException", "The specified log group does not exist.", 400)
    kwargs = dict(logGroupName="/aws/codebuild/no-such-project")
    ours, theirs = error_of(sim_logs, "filter_log_events", **kwargs), error_of(moto_logs, "filter_log_events", **kwargs)
    assert ours == theirs


def test_unknown_stream(sim_logs, moto_logs, copied):
    group = copied[0]
    kwargs = dict(logGroupName=group, logStreamName="no-such-stream")
    ours, theirs = error_of(sim_logs, "get_log_events", **kwargs), error_of(moto_logs, "get_log_events", **kwargs)
    assert ours[0] == theirs[0] == "ResourceNotFoundException"
    assert ours[2] == theirs[2] == 400
    # moto says "The specified log group does not exist." for a missing stream too; the
    # service names the stream, and so does the simulator.
    assert ours[1] == "The specified log stream does not exist."
    assert theirs[1] == "The specified log group does not exist."


@pytest.mark.parametrize("extra", [{"nextToken": "garbage"}, {"limit": 10001}])
def test_bad_token_and_limit(sim_logs, moto_logs, copied, extra):
    kwargs = dict(logGroupName=copied[0], logStreamName=copied[1], **extra)
    ours, theirs = error_of(sim_logs, "get_log_events", **kwargs), error_of(moto_logs, "get_log_events", **kwargs)
    assert ours == theirs
    assert ours[0] == "InvalidParameterException"


@pytest.mark.parametrize("pattern", ['"Phase complete"', "Running command", ""])
def test_filter_log_events_finds_the_same_events(sim_logs, moto_logs, copied, pattern):
    group, stream, _, shift = copied
    kwargs = dict(logGroupName=group, logStreamNames=[stream], filterPattern=pattern)
    ours, theirs = sim_logs.filter_log_events(**kwargs), moto_logs.filter_log_events(**kwargs)
    pick = lambda page, s: [(e["logStreamName"], e["message"], e["timestamp"] - s) for e in page["events"]]  # noqa: E731
    assert pick(ours, 0) == pick(theirs, shift)
    assert ours["events"]
    # The service has answered searchedLogStreams [] since May 2020 (botocore's model says
    # so); moto still lists the streams it searched.
    assert ours["searchedLogStreams"] == []
    assert theirs["searchedLogStreams"] == [{"logStreamName": stream, "searchedCompletely": True}]


def test_filter_log_events_invalid_token(sim_logs, moto_logs, copied):
    # moto: "AWS returns an empty list if it receives an invalid token".
    kwargs = dict(logGroupName=copied[0], nextToken="not-a-token")
    assert sim_logs.filter_log_events(**kwargs)["events"] == moto_logs.filter_log_events(**kwargs)["events"] == []
