"""Every file in events/ goes through its handler in-process (moto S3 + the emulator)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from longform_core.api.route_helpers import caller_owner
from longform_core.models import Manifest
from longform_core.request import parse_request
from longform_core.submit import job_id_for

from longform.local.cloud import BUCKET, LocalCloud

from .conftest import CloudFactory, expected

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events"
JOB = "example-job-0001"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


# the caller the API events carry (alice, an IAM principal): the owner of the jobs they reach
EVENT_OWNER = caller_owner(load("api_get_generation.json")["requestContext"]["identity"], "IAM")


def seed(cloud: LocalCloud) -> None:
    request = parse_request(load("request.json"))
    cloud.store.put_request(JOB, request)
    cloud.store.put_manifest(Manifest(job_id=JOB, model=request.model or "m", owner=EVENT_OWNER))


def invoke(cloud: LocalCloud, function: str, event: dict[str, Any]) -> Any:
    return cloud.invoke(function, event)


def test_every_event_file_is_used() -> None:
    names = {p.name for p in EVENTS.glob("*.json")}
    assert names == {
        "generate_chunk.json",
        "finalize.json",
        "finalize_context_exhausted.json",
        "finalize_failed.json",
        "finalize_incomplete.json",
        "execution_input.json",
        "request.json",
        "s3_object_created.json",
        "s3_notification.json",
        "api_post_generations.json",
        "api_get_generation.json",
        "api_get_output.json",
        "api_delete_generation.json",
        "api_list_generations.json",
        "sweeper_execution_failed.json",
        "api_key_authorizer_bearer.json",
        "sweeper_execution_aborted.json",
        "s3_batch_object_created.json",
        "batch_split.json",
        "batch_output.json",
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


def test_finalize_after_a_budget_stop_is_incomplete(make_cloud: CloudFactory, emulator) -> None:
    """The loop ended on the job's own budget: ``incomplete`` (``max_output_tokens``), text kept."""
    raw = {**load("request.json"), "max_output_tokens": 100}
    with make_cloud() as cloud:
        cloud.store.put_request(JOB, parse_request(raw))
        cloud.store.put_manifest(Manifest(job_id=JOB, model=raw["model"], owner=EVENT_OWNER))
        out = invoke(cloud, "GenerateChunkFunction", load("generate_chunk.json"))
        assert (out["finish_reason"], out["output_tokens"]) == ("budget", 100)
        result = invoke(cloud, "FinalizeFunction", load("finalize_incomplete.json"))
        assert result["status"] == "incomplete"
        stored = cloud.store.get_result(JOB)
        assert stored is not None
        assert (stored.status, stored.incomplete_reason, stored.error) == (
            "incomplete",
            "max_output_tokens",
            None,
        )
        text = cloud.store.get_text(stored.output_key)
        want = expected(raw, emulator, model="longform/emulated-writer").answer
        assert text and want.startswith(text) and len(text) < len(want)


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


def _upload_without_trigger(cloud: LocalCloud, key: str, body: bytes) -> None:
    """Put an object under requests/ without the rule firing: the sample event is the delivery."""
    boto3.client("events", region_name="us-east-1").disable_rule(Name="DropFolderRule")
    cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=body)


@pytest.mark.parametrize(
    ("name", "key", "body"),
    [
        # EventBridge "Object Created", as the deployed rule delivers it
        ("s3_object_created.json", "requests/examples/lighthouse-lenses.json", None),
        # an S3 notification record: the key arrives URL-encoded ("+" for a space)
        ("s3_notification.json", "requests/notes/lighthouse lenses.txt", b"A note on lighthouse lenses."),
    ],
)
def test_s3_events_start_a_job_whose_results_appear(
    make_cloud: CloudFactory, emulator, name: str, key: str, body: bytes | None
) -> None:
    event = load(name)
    raw = (EVENTS / "request.json").read_bytes() if body is None else body
    with make_cloud() as cloud:
        _upload_without_trigger(cloud, key, raw)
        (outcome,) = invoke(cloud, "DropFolderFunction", event)["outcomes"]
        stem = key.removeprefix("requests/").rsplit(".", 1)[0]
        assert outcome["action"] == "started"
        assert outcome["key"] == key
        assert outcome["name"] == stem
        assert cloud.wait(outcome["job_id"], timeout=60)["status"] == "SUCCEEDED"
        request = load("request.json") if body is None else {"prompt": body.decode()}
        want = expected(request, emulator).answer
        assert cloud.store.get_text(f"results/{stem}.md") == want
        result = json.loads(cloud.store.get_text(f"results/{stem}.json"))
        assert result["status"] == "succeeded"
        assert result["job_id"] == outcome["job_id"]
        # the same event delivered again starts nothing new
        (again,) = invoke(cloud, "DropFolderFunction", event)["outcomes"]
        assert again["action"] == "duplicate" and again["job_id"] == outcome["job_id"]
        assert len(cloud.sfn.list_executions(stateMachineArn=cloud.state_machine_arn)["executions"]) == 1


# ---- the HTTP API's proxy events (ApiFunction) ---------------------------------------------------


def test_api_post_event_starts_the_job(make_cloud: CloudFactory, emulator) -> None:
    with make_cloud() as cloud:
        response = invoke(cloud, "ApiFunction", load("api_post_generations.json"))
        assert response["statusCode"] == 202
        body = json.loads(response["body"])
        assert body["job_id"] == job_id_for("example-order-0001", EVENT_OWNER)
        assert response["multiValueHeaders"]["Location"] == [f"/v1/generations/{body['job_id']}"]
        assert cloud.wait(body["job_id"], timeout=60)["status"] == "SUCCEEDED"
        want = expected(load("request.json"), emulator).answer
        assert cloud.store.get_text(f"jobs/{body['job_id']}/output.md") == want


def test_api_get_events_read_status_and_output(make_cloud: CloudFactory, emulator) -> None:
    with make_cloud() as cloud:
        seed(cloud)
        view = invoke(cloud, "ApiFunction", load("api_get_generation.json"))
        assert view["statusCode"] == 200
        assert json.loads(view["body"])["job_id"] == JOB
        assert json.loads(view["body"])["status"] == "queued"
        invoke(cloud, "GenerateChunkFunction", load("generate_chunk.json"))
        invoke(cloud, "FinalizeFunction", load("finalize.json"))
        output = invoke(cloud, "ApiFunction", load("api_get_output.json"))
        assert output["statusCode"] == 200
        page = json.loads(output["body"])
        assert page["text"] == expected(load("request.json"), emulator).answer
        assert page["complete"] is True


def test_api_delete_event_cancels_the_job(make_cloud: CloudFactory) -> None:
    with make_cloud() as cloud:
        seed(cloud)
        response = invoke(cloud, "ApiFunction", load("api_delete_generation.json"))
        assert response["statusCode"] == 200
        assert json.loads(response["body"])["status"] == "cancelled"
        result = cloud.store.get_result(JOB)
        assert result is not None and result.status == "cancelled"


def test_api_list_event_lists_the_jobs(make_cloud: CloudFactory) -> None:
    with make_cloud() as cloud:
        job_id = json.loads(invoke(cloud, "ApiFunction", load("api_post_generations.json"))["body"])["job_id"]
        cloud.submit(load("request.json"))  # submitted in-process: no caller's, so not listed
        cloud.wait(job_id, timeout=60)
        response = invoke(cloud, "ApiFunction", load("api_list_generations.json"))
        assert response["statusCode"] == 200
        page = json.loads(response["body"])
        assert [item["job_id"] for item in page["items"]] == [job_id]
        assert page["items"][0]["status"] == "succeeded"


# ---- the sweeper: Step Functions status-change events (SweeperFunction) ---------------------------


@pytest.mark.parametrize(
    ("name", "error"),
    [
        (
            "sweeper_execution_failed.json",
            "ExecutionFailed: FinalizeFailed: Could not assemble the job's output",
        ),
        ("sweeper_execution_aborted.json", "ExecutionAborted: the execution was aborted outside longform"),
    ],
)
def test_sweeper_events_end_a_job_left_running(
    make_cloud: CloudFactory, emulator, name: str, error: str
) -> None:
    event = load(name)
    with make_cloud() as cloud:
        assert event["detail"]["stateMachineArn"] == cloud.state_machine_arn  # the local cloud's
        seed(cloud)
        invoke(cloud, "GenerateChunkFunction", load("generate_chunk.json"))
        outcome = invoke(cloud, "SweeperFunction", event)
        assert (outcome["action"], outcome["job_id"], outcome["status"]) == ("finalized", JOB, "failed")
        result = cloud.store.get_result(JOB)
        assert result is not None and result.status == "failed"
        assert (result.error or "").startswith(error)
        want = expected(load("request.json"), emulator, model="longform/emulated-writer").answer
        assert cloud.store.get_text(result.output_key) == want
        # delivered again (EventBridge delivers at least once): the ended job is left as it is
        again = invoke(cloud, "SweeperFunction", event)
        assert (again["action"], again["status"]) == ("already_ended", "failed")
        assert cloud.store.get_result(JOB) == result


# ---- batches: the batch drop folder's event, the batch workflow's two tasks ------------------------


def test_batch_events_submit_split_and_write_the_output(make_cloud: CloudFactory, emulator) -> None:
    from longform.local import batch as local_batch

    event = load("s3_batch_object_created.json")
    key = event["detail"]["object"]["key"]
    data = (EVENTS / "batch.jsonl").read_bytes()
    batch_id = load("batch_split.json")["batch_id"]
    with make_cloud() as cloud:
        boto3.client("events", region_name="us-east-1").disable_rule(Name="BatchDropFolderRule")
        cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        (outcome,) = invoke(cloud, "BatchDropFolderFunction", event)["outcomes"]
        assert (outcome["action"], outcome["batch_id"], outcome["lines"]) == ("started", batch_id, 2)
        assert local_batch.wait(cloud, batch_id, timeout=120)["status"] == "SUCCEEDED"
        # the tasks again, as the events give them: idempotent, the same answers
        split = invoke(cloud, "BatchSplitFunction", load("batch_split.json"))
        assert (split["batch_id"], split["lines"], split["items_key"]) == (
            batch_id,
            2,
            f"batch-runs/{batch_id}/items.json",
        )
        output = invoke(cloud, "BatchOutputFunction", load("batch_output.json"))
        assert (output["status"], output["counts"]["succeeded"]) == ("completed", 2)
        lines = [json.loads(line) for line in data.decode().splitlines()]
        got = [
            json.loads(line) for line in cloud.store.get_text("results/examples/companies.jsonl").splitlines()
        ]
        requests = [lines[0]["body"], lines[1]]
        assert [g["response"]["body"]["choices"][0]["message"]["content"] for g in got] == [
            expected(r, emulator).answer for r in requests
        ]


def test_api_key_authorizer_event_maps_a_bearer_token_to_the_usage_plans_key(
    make_cloud: CloudFactory,
) -> None:
    with make_cloud() as cloud:
        event = load("api_key_authorizer_bearer.json")
        answer = invoke(cloud, "ApiKeyAuthorizerFunction", event)
    assert answer["usageIdentifierKey"] == "example-api-key-0123456789"
    assert answer["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}
    ]
