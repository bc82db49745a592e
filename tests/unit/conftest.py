"""Shared fixtures: moto-backed AWS clients with fake credentials (never real AWS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import cfn_yaml
from longform_core.job_store import JobStore
from moto import mock_aws

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


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    # cfn_yaml understands the short tags (!Ref, !GetAtt, !Sub, !If ...); the JSON round trip turns
    # its node classes into plain dicts and lists.
    loaded: dict[str, Any] = json.loads(
        json.dumps(cfn_yaml.load(str(Path(__file__).resolve().parents[2] / "template.yaml")))
    )
    return loaded
