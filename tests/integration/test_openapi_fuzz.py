"""schemathesis against docs/openapi.json on the local API (`longform serve`): no server error and no
response outside the schema, for generated valid and invalid requests on every route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from longform.local.aws import quiet_moto_logs
from longform.local.cloud import CloudConfig, LocalCloud
from longform.local.serve import LocalApi

pytestmark = pytest.mark.integration


@schemathesis.serializer("application/jsonl")
def _jsonl(ctx: object, value: object) -> bytes:
    """POST /batches takes JSONL: a generated string is sent as the body as it is."""
    return value.encode() if isinstance(value, str) else str(value).encode()


SCHEMA = schemathesis.openapi.from_path(Path(__file__).resolve().parents[2] / "docs" / "openapi.json")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def _short_answers(emulator) -> None:
    """Short answers keep the jobs that generated requests start cheap (runs after the reset)."""
    emulator.configure(answer_tokens=40)


@pytest.fixture(scope="module")
def api_url(emulator) -> Iterator[str]:
    config = CloudConfig(provider_base_url=emulator.base_url, retry_sleep_scale=0.001)
    with quiet_moto_logs(), LocalCloud(config) as cloud, LocalApi(cloud, port=0) as api:
        yield api.url


@SCHEMA.parametrize()
# derandomize: CI replays the same generated cases on every run (explore with --hypothesis-seed)
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case, api_url: str) -> None:
    case.call_and_validate(base_url=api_url, checks=CHECKS)
