"""The HTTP API test harness: the API handler on moto S3 + a pass-through state machine, with
injected services (no environment), and jobs seeded as the workflow leaves them. The fixtures are
registered in tests/unit/conftest.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from longform_core import api
from longform_core.api.route_helpers import caller_owner
from longform_core.config import Settings
from longform_core.job_store import JobStore
from longform_core.models import Manifest, utcnow
from longform_core.request import parse_request
from longform_core.runtime import build_services
from longform_core.services import Services

from longform.local.apigw import TEST_IDENTITY, api_event, body_of
from longform.local.lambda_runtime import LambdaContext

from .conftest import BUCKET

REQUEST = {"prompt": "Write a long essay about tide clocks.", "max_output_tokens": 5000}
# the owner of the jobs the test identity submits (api_event's default caller)
OWNER = caller_owner(TEST_IDENTITY, "IAM")


@dataclass
class Api:
    services: Services
    sfn: Any
    machine: str

    @property
    def store(self) -> JobStore:
        return self.services.store

    def handle(self, event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """One event through the API with these services."""
        response: dict[str, Any] = api.handle(
            event, LambdaContext("ApiFunction", 28.0), services=self.services, **kwargs
        )  # type: ignore[arg-type]
        return response

    def __call__(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.handle(api_event(method, path, **kwargs))

    def executions(self) -> list[dict[str, Any]]:
        return list(self.sfn.list_executions(stateMachineArn=self.machine)["executions"])

    def keys(self) -> list[str]:
        contents = self.store.s3.list_objects_v2(Bucket=self.store.bucket).get("Contents", [])
        return sorted(o["Key"] for o in contents)


ApiFactory = Callable[..., Api]


@pytest.fixture
def make_api(s3: Any, sfn: Any, machine: str) -> ApiFactory:
    """The API on moto S3 (``s3``: the bucket) and the pass-through state machine; ``settings``
    override the defaults."""

    def factory(**settings: Any) -> Api:
        # the clients as the Lambda container builds them (SigV4 presigning included), no environment
        services = build_services(
            Settings(jobs_bucket=BUCKET, state_machine_arn=machine, default_model="default/model", **settings)
        )
        return Api(services, sfn, machine)

    return factory


@pytest.fixture
def call(make_api: ApiFactory) -> Api:
    return make_api()


def problems(response: dict[str, Any]) -> dict[str, str]:
    body = body_of(response)
    assert set(body) >= {"error", "message", "problems"}
    assert "Traceback" not in json.dumps(body)
    return {p["field"]: p["message"] for p in body["problems"]}


def seed(
    store: JobStore,
    job_id: str,
    *,
    status: str = "running",
    text: str = "",
    committed: int | None = None,
    owner: str | None = OWNER,
) -> Manifest:
    """A job as the workflow leaves it: request, manifest and the running output.md (the test
    identity's job unless ``owner`` says otherwise)."""
    store.put_request(job_id, parse_request(REQUEST))
    manifest = Manifest(
        job_id=job_id,
        model="m/1",
        status=status,  # type: ignore[arg-type]
        chunks=2 if text else 0,
        answer_chars=len(text) if committed is None else committed,
        started_at=utcnow(),
        finished_at=utcnow() if status in ("succeeded", "failed", "cancelled", "context_exhausted") else None,
        owner=owner,
    )
    if text:
        store.write_running_text(job_id, answer=text, reasoning=None)
    store.put_manifest(manifest)
    return manifest
