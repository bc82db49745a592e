"""Every file in events/ goes through its handler in-process (moto S3 + the emulator)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from longform_core.job_store import Manifest
from longform_core.request import parse_request

from longform.local.cloud import LocalCloud, LocalLambdaContext

from .conftest import CloudFactory, expected

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events"
JOB = "example-job-0001"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def seed(cloud: LocalCloud) -> None:
    request = parse_request(load("request.json"))
    cloud.store.put_request(JOB, request)
    cloud.store.put_manifest(Manifest(job_id=JOB, model=request.model or "m"))


def invoke(cloud: LocalCloud, function: str, event: dict[str, Any]) -> Any:
    context = LocalLambdaContext(cloud.specs[function], cloud.timeout_for(function))
    return cloud._handlers[function](event, context)


def test_every_event_file_is_used() -> None:
    names = {p.name for p in EVENTS.glob("*.json")}
    assert names == {
        "generate_chunk.json",
        "finalize.json",
        "finalize_context_exhausted.json",
        "finalize_failed.json",
        "execution_input.json",
        "request.json",
    }


def test_request_event_is_a_valid_request() -> None:
    request = parse_request(load("request.json"))
    assert request.max_chunks == 50


def test_generate_chunk_then_finalize_events(make_cloud: CloudFactory, emulator) -> None:
    with make_cloud() as cloud:
        seed(cloud)
        out = invoke(cloud, "GenerateChunkFunction", load("generate_chunk.json"))
        assert out["job_id"] == JOB
        assert out["finish_reason"] == "stop"
        assert out["chunk_index"] == 0
        result = invoke(cloud, "FinalizeFunction", load("finalize.json"))
        assert result["status"] == "succeeded"
        text = cloud.store.get_text(result["output_key"])
        want = expected(load("request.json"), emulator, model="longform/emulated-writer").answer
        assert text == want


@pytest.mark.parametrize(
    ("name", "status"),
    [("finalize_context_exhausted.json", "context_exhausted"), ("finalize_failed.json", "failed")],
)
def test_finalize_after_a_catch(make_cloud: CloudFactory, name: str, status: str) -> None:
    with make_cloud() as cloud:
        seed(cloud)
        invoke(cloud, "GenerateChunkFunction", load("generate_chunk.json"))
        result = invoke(cloud, "FinalizeFunction", load(name))
        assert result["status"] == status
        stored = cloud.store.get_result(JOB)
        assert stored is not None and stored.status == status
        if status == "failed":
            assert stored.error == "ProviderUnavailable: provider answered HTTP 503 after 4 attempts"


def test_execution_input_starts_the_state_machine(make_cloud: CloudFactory) -> None:
    with make_cloud() as cloud:
        seed(cloud)
        cloud.sfn.start_execution(
            stateMachineArn=cloud.state_machine_arn, name=JOB, input=json.dumps(load("execution_input.json"))
        )
        desc = cloud.wait(JOB, timeout=60)
        assert desc["status"] == "SUCCEEDED"


def test_a_malformed_event_is_rejected_by_the_parser(make_cloud: CloudFactory) -> None:
    with make_cloud() as cloud, pytest.raises(Exception, match="job_id"):
        invoke(cloud, "GenerateChunkFunction", {"job_id": "../../etc/passwd"})
