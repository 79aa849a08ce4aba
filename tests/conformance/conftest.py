"""Fixtures: the simulator binary and moto_server as subprocesses, boto3 clients for both.

The simulator binary comes from $CODEBUILD_SIM_BIN or target/debug/codebuild-sim under the
repository root (build it with `cargo build -p codebuild-sim`). A missing binary FAILS the run.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
ACCESS_KEY = "AKIDCONFORMANCE"
# Simulated durations are multiplied by this: a default build (10 phases x 1 s) takes 0.1 s.
TIME_SCALE = 0.01
START_TIMEOUT_S = 30.0

# Dummy credentials for this test process only (subprocesses get their own environment).
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": "conformance-secret",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)
for _var in (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_CODEBUILD",
    "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
):
    os.environ.pop(_var, None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT_S}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _sim_binary() -> Path:
    path = Path(os.environ.get("CODEBUILD_SIM_BIN", REPO_ROOT / "target" / "debug" / "codebuild-sim"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


@contextlib.contextmanager
def launch_sim(extra_args=(), extra_env=None):
    """Runs the simulator binary with the conformance settings plus `extra_args` and
    `extra_env`; yields its base URL and stops it afterwards."""
    binary = _sim_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(
            f"simulator binary not found at {binary}: run `cargo build -p codebuild-sim` "
            "or set CODEBUILD_SIM_BIN"
        )
    env = {"PATH": os.environ.get("PATH", ""), "CODEBUILD_SIM_LOG": "warn", **(extra_env or {})}
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        log = open(Path(tmp) / "sim.log", "wb")
        proc = subprocess.Popen(
            [
                str(binary),
                "--port", "0",
                "--port-file", str(port_file),
                "--region", REGION,
                "--time-scale", str(TIME_SCALE),
                "--phase-seconds", "1",
                "--token-window-seconds", "300",
                "--seed", "20161006",
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not port_file.exists():
                if proc.poll() is not None:
                    pytest.fail(f"simulator exited early with code {proc.returncode}")
                if time.monotonic() > deadline:
                    pytest.fail("simulator did not write its port file in time")
                time.sleep(0.05)
            port = int(port_file.read_text().strip())
            _wait_for_port(port, proc, "simulator")
            yield f"http://127.0.0.1:{port}"
        finally:
            _stop(proc)
            log.close()


@pytest.fixture(scope="session")
def sim_url():
    with launch_sim() as url:
        yield url


@pytest.fixture(scope="session")
def moto_url():
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        _wait_for_port(port, proc, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


class RawCapture:
    """Keeps the raw body of the last response a client received (before botocore parses it)."""

    def __init__(self, client):
        self.last = None
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-parse.{service}", self._capture)

    def _capture(self, response_dict=None, **_kwargs):
        self.last = response_dict

    def json(self):
        body = self.last["body"]
        return json.loads(body) if body else {}


def client_for(url: str, service: str = "codebuild"):
    client = boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key="conformance-secret",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=15),
    )
    client.raw = RawCapture(client)
    return client


@pytest.fixture(scope="session")
def sim(sim_url):
    return client_for(sim_url)


@pytest.fixture(scope="session")
def moto(moto_url):
    return client_for(moto_url)


@pytest.fixture(scope="session")
def sim_logs(sim_url):
    """A CloudWatch Logs client pointed at the simulator (the CodeBuild port)."""
    return client_for(sim_url, "logs")


@pytest.fixture(scope="session")
def moto_logs(moto_url):
    return client_for(moto_url, "logs")


class Admin:
    """The simulator's /_sim admin API."""

    def __init__(self, base: str):
        self.base = base

    def request(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"{}")

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, body=None):
        return self.request("POST", path, body if body is not None else {})


@pytest.fixture(scope="session")
def admin(sim_url):
    return Admin(sim_url)


@pytest.fixture(autouse=True)
def _clear_faults(request):
    """Every test starts and ends without injected faults."""
    uses_sim = {"sim_url", "sim", "admin", "sim_logs"} & set(request.fixturenames)
    if uses_sim:
        admin = Admin(request.getfixturevalue("sim_url"))
        admin.post("/_sim/faults", {})
        yield
        admin.post("/_sim/faults", {})
    else:
        yield
