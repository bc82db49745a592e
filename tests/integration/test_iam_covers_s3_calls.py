"""moto does not enforce IAM: every S3 call the functions really make, in whole jobs (drafts,
a crash resumed from its draft, a cancel through the API, the drop folder), is checked here
against that function's own policy statements in template.yaml."""

from __future__ import annotations

import fnmatch
import threading
from typing import Any

import pytest

from longform.local.cloud import BUCKET, LocalCloud
from longform.local.faults import kill_mid_stream
from longform.local.template import load_template

from ..unit.test_template import as_list, function_properties, policy_statements
from .conftest import CloudFactory, run_job

pytestmark = pytest.mark.integration

ACTIONS = {  # boto3 operation -> IAM action
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "ListObjectsV2": "s3:ListBucket",
}


def _resource(value: Any) -> str:
    sub = value["Fn::Sub"] if isinstance(value, dict) else value
    return str(sub).replace("${AWS::Partition}", "aws").replace("${JobsBucket}", BUCKET)


def allowed(template: dict[str, Any], function: str, action: str, arn: str) -> bool:
    """Whether an Allow of the function's inline statements covers the action on the ARN (the
    prefix conditions of ListBucket are checked by test_template_security)."""
    statements = [s for s, _ in policy_statements(function_properties(template, function)["Policies"])]
    return any(
        s["Effect"] == "Allow"
        and action in as_list(s["Action"])
        and any(fnmatch.fnmatchcase(arn, _resource(r)) for r in as_list(s["Resource"]))
        for s in statements
    )


class S3Calls:
    """The S3 calls each function makes, by the thread the handler runs on."""

    def __init__(self, cloud: LocalCloud):
        self.current = threading.local()
        self.calls: list[tuple[str, str, str]] = []  # (function, operation, key)
        runtime = cloud.runtime
        real_invoke = runtime.invoke

        def invoke(name_or_arn: str, event: dict[str, Any]) -> Any:
            self.current.function = name_or_arn.split(":function:")[-1].split(":")[0]
            try:
                return real_invoke(name_or_arn, event)
            finally:
                self.current.function = None

        runtime.invoke = invoke  # type: ignore[method-assign]
        real_call = runtime.call

        def call(logical_id: str, event: dict[str, Any]) -> Any:
            self.current.function = logical_id
            try:
                return real_call(logical_id, event)
            finally:
                self.current.function = None

        runtime.call = call  # type: ignore[method-assign]
        from longform_core.runtime import get_services

        get_services().store.s3.meta.events.register("before-parameter-build.s3", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        function = getattr(self.current, "function", None)
        if function:
            self.calls.append((function, model.name, str(params.get("Key") or params.get("Prefix") or "")))


def check(cloud: LocalCloud, calls: S3Calls) -> set[tuple[str, str]]:
    template = load_template(cloud.root / "template.yaml")
    denied = set()
    for function, operation, key in calls.calls:
        action = ACTIONS.get(operation)
        assert action is not None, f"{function} calls {operation}: add it to ACTIONS"
        arn = f"arn:aws:s3:::{BUCKET}" if action == "s3:ListBucket" else f"arn:aws:s3:::{BUCKET}/{key}"
        if not allowed(template, function, action, arn):
            denied.add((function, f"{action} {key}"))
    return denied


def test_every_s3_call_of_a_job_is_allowed_by_its_functions_policy(make_cloud: CloudFactory) -> None:
    drafts = {"draft_interval_seconds": 0.0, "draft_min_tokens": 100}
    with make_cloud(**drafts) as cloud, kill_mid_stream(after_tokens=450):
        calls = S3Calls(cloud)
        run_job(cloud, {"prompt": "Kelp. [emulator answer_tokens=2500]", "max_tokens_per_request": 1000})
        assert {op for f, op, _ in calls.calls if f == "GenerateChunkFunction"} >= {
            "GetObject",
            "PutObject",
            "DeleteObject",
        }
        # the drop folder, and a cancel through the API of a job in flight
        cloud.drop("kelp", "A note on kelp. [emulator answer_tokens=300]", suffix=".txt")
        job = cloud.submit({"prompt": "Long. [emulator answer_tokens=9000]", "max_tokens_per_request": 1000})
        from longform.local.apigw import api_event

        cloud.invoke("ApiFunction", api_event("GET", f"/generations/{job.job_id}/output"))
        cloud.invoke("ApiFunction", api_event("DELETE", f"/generations/{job.job_id}"))
        cloud.wait(job.job_id, timeout=120)
        functions = {f for f, _, _ in calls.calls}
        assert {"GenerateChunkFunction", "FinalizeFunction", "DropFolderFunction", "ApiFunction"} <= functions
        assert check(cloud, calls) == set()
