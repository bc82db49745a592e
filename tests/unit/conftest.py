"""Shared fixtures: moto-backed AWS clients with fake credentials (never real AWS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from longform_core.config import Settings
from longform_core.executions import StepFunctionsExecutions
from longform_core.job_store import JobKeys, JobStore
from longform_core.models import JobResult
from longform_core.services import Services
from moto import mock_aws

from longform.emulator.server import EmulatorServer
from longform.local.template import load_template

REGION = "us-east-1"
BUCKET = "longform-jobs-test"

# a trivial state machine and the role it needs, for tests that only need executions to start
PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def store(s3: Any) -> JobStore:
    return JobStore(s3, BUCKET)


@pytest.fixture
def sfn(aws: None) -> Any:
    return boto3.client("stepfunctions", region_name=REGION)


@pytest.fixture
def machine(sfn: Any) -> str:
    """A pass-through state machine: for tests that only need executions to start."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="longform-sfn", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    arn: str = sfn.create_state_machine(name="longform-test", definition=PASS_MACHINE, roleArn=role)[
        "stateMachineArn"
    ]
    return arn


class NoProvider:
    """A provider for use cases that never ask the model (submit, the drop folder, the API)."""

    def chat(
        self, body: dict[str, Any], *, deadline: float, stream: bool = True, on_progress: Any = None
    ) -> Any:
        raise AssertionError("this use case never calls the model")


@pytest.fixture
def services(store: JobStore, sfn: Any, machine: str) -> Services:
    """Services on moto S3 and a pass-through state machine, for the use cases that start jobs."""
    settings = Settings(
        jobs_bucket=store.bucket,
        default_model="default/model",
        state_machine_arn=machine,
        api_max_body_bytes=4096,
    )
    return Services(
        settings=settings,
        store=store,
        provider=NoProvider(),
        executions=StepFunctionsExecutions(sfn, machine),
    )


# ---- the emulator over real HTTP (the emulator's own tests reset it before each test) --------


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def client(emu: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    # the one template loader (the local cloud's): short tags (!Ref, !GetAtt, !Sub, !If ...) as the
    # long forms ({"Ref": ...}, {"Fn::GetAtt": [...]}, ...)
    return load_template(Path(__file__).resolve().parents[2] / "template.yaml")


def make_result(job_id: str, **overrides: Any) -> JobResult:
    """A finished job's result.json with plausible values; tests override what they look at."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    values: dict[str, Any] = {
        "job_id": job_id,
        "status": "succeeded",
        "finish_reason": "stop",
        "stop_reason": "stop",
        "model": "m/1",
        "chunks": 2,
        "prompt_tokens": 10,
        "prompt_tokens_total": 30,
        "output_tokens": 50,
        "cached_tokens": 0,
        "estimated_cost_usd": None,
        "context_length": None,
        "output_key": JobKeys(job_id).output,
        "reasoning_key": None,
        "output_chars": 5,
        "reasoning_chars": 0,
        "created_at": now,
        "started_at": now,
        "finished_at": now,
        "duration_seconds": 0.0,
        "chunk_durations_ms": [1, 2],
    }
    values.update(overrides)
    return JobResult(**values)


# the HTTP API harness's fixtures (tests/unit/api_harness.py)
from .api_harness import call, make_api  # noqa: E402, F401
