"""The S3 drop folder and the completion event, end to end on the local cloud.

An upload under requests/ goes the way it goes on AWS: the bucket's events reach EventBridge, the
template's DropFolderRule matches requests/ and invokes DropFolderFunction asynchronously (retried
twice on an error), the job runs through the real state machine, and Finalize writes results/ and
puts "Generation Finished" on the default bus (observed here through a rule -> SQS queue).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from longform_core.cancel import cancel_job
from longform_core.runtime import get_services

from longform.local.aws import REGION
from longform.local.cloud import BUCKET, LocalCloud

from .conftest import CloudFactory, expected

pytestmark = pytest.mark.integration


def prompt(tokens: int, topic: str = "the history of tide tables") -> str:
    return f"Write about {topic}. [emulator answer_tokens={tokens}]"


def started(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    (outcome,) = outcomes
    assert outcome["action"] == "started", outcome
    return outcome


def executions(cloud: LocalCloud) -> list[dict[str, Any]]:
    return list(cloud.sfn.list_executions(stateMachineArn=cloud.state_machine_arn)["executions"])


def results(cloud: LocalCloud, name: str) -> tuple[str | None, dict[str, Any] | None]:
    text = cloud.store.get_text(f"results/{name}.md")
    raw = cloud.store.get_text(f"results/{name}.json")
    return text, (json.loads(raw) if raw is not None else None)


def result_keys(cloud: LocalCloud) -> list[str]:
    page = cloud.s3.list_objects_v2(Bucket=BUCKET, Prefix="results/")
    return sorted(o["Key"] for o in page.get("Contents", []))


class FinishedEvents:
    """A rule on the default bus for source "longform", delivering to an SQS queue."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.url = self.sqs.create_queue(QueueName="finished")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events = boto3.client("events", region_name=REGION)
        pattern = {"source": ["longform"], "detail-type": ["Generation Finished"]}
        events.put_rule(Name="generation-finished", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="generation-finished", Targets=[{"Id": "queue", "Arn": arn}])
        self.received: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        while True:
            got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10)
            messages = got.get("Messages", [])
            if not messages:
                return self.received
            for message in messages:
                self.received.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def for_job(self, job_id: str) -> list[dict[str, Any]]:
        return [e for e in self.drain() if e["detail"]["job_id"] == job_id]


@pytest.fixture
def cloud(make_cloud: CloudFactory) -> Iterator[LocalCloud]:
    with make_cloud() as c:
        yield c


@pytest.fixture
def finished(cloud: LocalCloud) -> FinishedEvents:
    return FinishedEvents()


# ---- uploads become jobs -------------------------------------------------------------------------


def test_a_json_request_becomes_results_md_and_json(
    cloud: LocalCloud, finished: FinishedEvents, emulator
) -> None:
    request = {"prompt": prompt(2_500), "max_tokens_per_request": 1_000}
    outcome = started(cloud.drop("essays/tides", json.dumps(request)))
    assert outcome["name"] == "essays/tides"
    assert cloud.wait(outcome["job_id"], timeout=120)["status"] == "SUCCEEDED"
    text, result = results(cloud, "essays/tides")
    assert text == expected(request, emulator).answer  # the uncapped answer, byte for byte
    assert result is not None
    assert result["status"] == "succeeded"
    assert result["finish_reason"] == "stop"
    assert result["chunks"] == 3
    assert result["job_id"] == outcome["job_id"]
    assert result_keys(cloud) == ["results/essays/tides.json", "results/essays/tides.md"]
    # the job knows where it came from, and the completion event says where its output is
    view = cloud.store.find_manifest(outcome["job_id"])
    assert view.source.key == "requests/essays/tides.json"
    (event,) = finished.for_job(outcome["job_id"])
    assert event["detail"]["status"] == "succeeded"


@pytest.mark.parametrize("suffix", [".txt", ".md"])
def test_a_prompt_file_runs_with_the_defaults(cloud: LocalCloud, emulator, suffix: str) -> None:
    text = f"# Lenses\n\n{prompt(400, 'Fresnel lenses')}\n"
    outcome = started(cloud.drop("notes/2025/lenses", text.encode(), suffix=suffix))
    assert outcome["name"] == "notes/2025/lenses"
    cloud.wait(outcome["job_id"], timeout=60)
    answer, result = results(cloud, "notes/2025/lenses")
    assert answer == expected({"prompt": text}, emulator).answer
    assert result is not None and result["status"] == "succeeded"
    assert result["model"] == "longform/emulated-writer"  # the deployment's default


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (b'{"prompt": "Write.", ', {"(body)"}),
        (b"", {"(body)"}),
        (
            json.dumps(
                {"messages": [{"role": "robot", "content": ""}], "max_chunks": 0, "colour": 1}
            ).encode(),
            {"messages[0].role", "max_chunks", "colour", "messages[0].content", "messages"},
        ),
    ],
    ids=["bad-json", "empty", "bad-fields"],
)
def test_a_bad_request_names_every_problem_and_starts_nothing(
    cloud: LocalCloud, body: bytes, fields: set[str]
) -> None:
    (outcome,) = cloud.drop("inbox/bad", body)
    assert outcome["action"] == "rejected"
    raw = cloud.store.get_text("results/inbox/bad.error.json")
    assert raw is not None
    error = json.loads(raw)
    assert error["key"] == "requests/inbox/bad.json"
    assert {p["field"] for p in error["problems"]} == fields
    assert error["message"].startswith(f"invalid request ({len(fields)} problem(s))")
    assert executions(cloud) == []
    assert cloud.s3.list_objects_v2(Bucket=BUCKET, Prefix="jobs/").get("KeyCount", 0) == 0
    assert result_keys(cloud) == ["results/inbox/bad.error.json"]


def test_duplicate_deliveries_and_reuploads(cloud: LocalCloud, emulator) -> None:
    request = {"prompt": prompt(300)}
    body = json.dumps(request)
    first = started(cloud.drop("twice", body))
    # EventBridge delivers at least once: the very same event again
    (delivery,) = cloud.deliveries
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:DropFolderFunction"
    cloud.invoke_async(arn, delivery.event)
    cloud.wait_async()
    assert cloud.deliveries[-1].response["outcomes"][0]["action"] == "duplicate"
    # the same bytes uploaded again (a new version, a new event): still the same job
    (again,) = cloud.drop("twice", body)
    assert again["action"] == "duplicate" and again["job_id"] == first["job_id"]
    cloud.wait(first["job_id"])
    assert len(executions(cloud)) == 1
    # ... even once the job has finished
    (late,) = cloud.drop("twice", body)
    assert late["action"] == "duplicate" and late["job_id"] == first["job_id"]
    assert len(executions(cloud)) == 1
    text, result = results(cloud, "twice")
    assert result is not None and result["status"] == "succeeded"
    assert text == expected(request, emulator).answer
    # different content under the same name is a new job, whose results replace the old ones
    changed = {"prompt": prompt(200, "tide gauges")}
    second = started(cloud.drop("twice", json.dumps(changed)))
    assert second["job_id"] != first["job_id"]
    cloud.wait(second["job_id"])
    assert len(executions(cloud)) == 2
    text, result = results(cloud, "twice")
    assert result is not None and result["job_id"] == second["job_id"]
    assert text == expected(changed, emulator).answer


def test_a_fixed_request_clears_its_error_file(cloud: LocalCloud) -> None:
    assert cloud.drop("fixme", b'{"prompt": ""}')[0]["action"] == "rejected"
    assert result_keys(cloud) == ["results/fixme.error.json"]
    outcome = started(cloud.drop("fixme", json.dumps({"prompt": prompt(100)})))
    cloud.wait(outcome["job_id"])
    assert result_keys(cloud) == ["results/fixme.json", "results/fixme.md"]


def test_other_keys_are_not_requests(cloud: LocalCloud) -> None:
    # outside requests/ the rule does not even fire
    cloud.s3.put_object(Bucket=BUCKET, Key="inbox/essay.json", Body=b"{}")
    cloud.s3.put_object(Bucket=BUCKET, Key="results/x.json", Body=b"{}")
    cloud.wait_async()
    assert cloud.deliveries == []
    # under requests/, files that are not requests are delivered and ignored
    (outcome,) = cloud.drop("photo", b"\x89PNG", suffix=".png")
    assert outcome["action"] == "ignored"
    assert "'.png'" in outcome["reason"]
    assert executions(cloud) == []
    assert result_keys(cloud) == ["results/x.json"]


def test_a_failed_delivery_is_retried_and_starts_one_job(cloud: LocalCloud) -> None:
    attempts = {"n": 0}

    def crash_after_submit(function: str, event: dict[str, Any]) -> Any:
        if function != "DropFolderFunction":
            return None
        attempts["n"] += 1
        if attempts["n"] == 1:

            def crash() -> None:
                raise ConnectionError("the response was lost")

            return crash
        return None

    cloud.fault_hook = crash_after_submit
    (outcome,) = cloud.drop("flaky", json.dumps({"prompt": prompt(100)}))
    (delivery,) = cloud.deliveries
    assert delivery.attempts == 2 and delivery.error_type is None
    # the first attempt had started the job before it crashed: the retry found it
    assert outcome["action"] == "duplicate"
    cloud.wait(outcome["job_id"])
    assert len(executions(cloud)) == 1


# ---- the completion event ------------------------------------------------------------------------


def check_event(event: dict[str, Any], cloud: LocalCloud, job_id: str, status: str) -> dict[str, Any]:
    assert event["source"] == "longform"
    assert event["detail-type"] == "Generation Finished"
    detail: dict[str, Any] = event["detail"]
    result = cloud.store.get_result(job_id)
    assert result is not None
    assert detail["job_id"] == job_id
    assert detail["status"] == status == result.status
    assert detail["finish_reason"] == result.finish_reason
    assert detail["output_tokens"] == result.output_tokens
    assert detail["prompt_tokens"] == result.prompt_tokens
    assert detail["chunks"] == result.chunks
    assert detail["output"] == {
        "bucket": BUCKET,
        "key": f"jobs/{job_id}/output.md",
        "uri": f"s3://{BUCKET}/jobs/{job_id}/output.md",
    }
    assert detail["result_key"] == f"jobs/{job_id}/result.json"
    return detail


def test_succeeded_emits_one_event(cloud: LocalCloud, finished: FinishedEvents) -> None:
    job = cloud.submit({"prompt": prompt(1_500), "max_tokens_per_request": 1_000})
    cloud.wait(job.job_id)
    (event,) = finished.for_job(job.job_id)
    detail = check_event(event, cloud, job.job_id, "succeeded")
    assert detail["finish_reason"] == "stop"
    assert detail["output_tokens"] == 1_500
    assert detail["error"] is None


def test_context_exhausted_emits_one_event(make_cloud: CloudFactory, emulator) -> None:
    emulator.configure(context_length=4_000)
    with make_cloud() as cloud:
        finished = FinishedEvents()
        job = cloud.submit({"prompt": prompt(20_000), "max_tokens_per_request": 1_500})
        cloud.wait(job.job_id)
        (event,) = finished.for_job(job.job_id)
        detail = check_event(event, cloud, job.job_id, "context_exhausted")
        assert detail["finish_reason"] == "context_exhausted"
        assert detail["output_tokens"] > 0


def test_failed_emits_one_event(cloud: LocalCloud, finished: FinishedEvents, emulator) -> None:
    emulator.configure(api_key="a-key-the-cloud-does-not-have")
    job = cloud.submit({"prompt": prompt(500)})
    assert cloud.wait(job.job_id)["status"] == "FAILED"
    (event,) = finished.for_job(job.job_id)
    detail = check_event(event, cloud, job.job_id, "failed")
    assert "ProviderAuthenticationFailed" in detail["error"]


def test_cancelled_emits_one_event(cloud: LocalCloud, finished: FinishedEvents, emulator) -> None:
    emulator.configure(token_delay=0.002)
    job = cloud.submit({"prompt": prompt(6_000), "max_tokens_per_request": 300})
    deadline = time.monotonic() + 60
    while (manifest := cloud.store.find_manifest(job.job_id)) is None or manifest.chunks < 2:
        assert time.monotonic() < deadline, "the job never got going"
        time.sleep(0.05)
    view, cancelled = cancel_job(job.job_id, get_services())
    assert cancelled and view.status == "cancelled"
    # AWS ends a stopped execution ABORTED; moto's interpreter ends it FAILED when the chunk in
    # flight then fails (its write finds the output finalized), but never goes on to Finalize
    assert cloud.wait(job.job_id)["status"] in ("ABORTED", "FAILED")
    assert "Finalize" not in cloud.states_entered(job.job_id)
    (event,) = finished.for_job(job.job_id)
    detail = check_event(event, cloud, job.job_id, "cancelled")
    assert 0 < detail["output_tokens"] < 6_000


def test_a_dropped_job_emits_one_event_and_no_upload_event_leaks(
    cloud: LocalCloud, finished: FinishedEvents
) -> None:
    outcome = started(cloud.drop("evented", json.dumps({"prompt": prompt(200)})))
    cloud.wait(outcome["job_id"])
    events = finished.drain()
    assert [e["detail"]["job_id"] for e in events] == [outcome["job_id"]]  # S3's own events don't match
    check_event(events[0], cloud, outcome["job_id"], "succeeded")
