"""Shared request builders for the conformance tests."""

import itertools
import time

ACCOUNT = "123456789012"

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{int(time.time() * 1000) % 10**8}-{next(_counter)}"


def project_spec(name: str) -> dict:
    """A CreateProject request both moto and the simulator accept."""
    return {
        "name": name,
        "description": "conformance project",
        "source": {
            "type": "GITHUB",
            "location": "https://github.com/example/repo.git",
            "buildspec": "buildspec.yml",
        },
        "artifacts": {
            "type": "S3",
            "location": "artifact-bucket",
            "path": "builds",
            "name": "out.zip",
            "packaging": "ZIP",
        },
        "environment": {
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
            "environmentVariables": [{"name": "FROM_PROJECT", "value": "1", "type": "PLAINTEXT"}],
        },
        "serviceRole": f"arn:aws:iam::{ACCOUNT}:role/codebuild-service",
    }


def create_project(client, name: str) -> dict:
    return client.create_project(**project_spec(name))["project"]


def sim_env(**variables) -> list:
    """environmentVariablesOverride entries for the simulator's reserved variables."""
    return [
        {"name": f"CODEBUILD_SIM_{k.upper()}", "value": str(v), "type": "PLAINTEXT"}
        for k, v in variables.items()
    ]


def build_uuid(build: dict) -> str:
    return build["id"].split(":", 1)[1]


def follow_log(logs, group: str, stream: str, token=None, **kwargs):
    """Reads a stream forward (from `token` or the head) until the forward token stops
    changing, as a log follower does; returns (events, last token, raw pages)."""
    events, pages = [], []
    while True:
        req = dict(logGroupName=group, logStreamName=stream, startFromHead=True, **kwargs)
        if token is not None:
            req["nextToken"] = token
        page = logs.get_log_events(**req)
        pages.append(logs.raw.json())
        events.extend(page["events"])
        if page["nextForwardToken"] == token:
            return events, token, pages
        token = page["nextForwardToken"]
