"""The sweeper through the local cloud: a job whose execution ended where no Catch reaches it.

moto's Step Functions emits no EventBridge events, so these tests build the "Step Functions
Execution Status Change" event from the real execution (``describe_execution``) and deliver it
themselves: directly to ``SweeperFunction``, and once through EventBridge to check that the
template's ``SweeperRule`` matches it.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from longform.local.aws import REGION
from longform.local.cloud import LocalCloud

from .conftest import CloudFactory, expected

pytestmark = pytest.mark.integration

REQUEST = {
    "prompt": "Write a field guide to coastal birds. [emulator answer_tokens=2200]",
    "max_tokens_per_request": 1_000,
}


def finalize_fails_for_good(function: str, event: dict[str, Any]) -> None:
    if function == "FinalizeFunction":
        raise RuntimeError("simulated: Finalize cannot run")


def chunks_fail_for_good(function: str, event: dict[str, Any]) -> None:
    if function == "GenerateChunkFunction":
        raise RuntimeError("simulated: the chunk function cannot run")


def status_change_event(cloud: LocalCloud, execution_arn: str) -> dict[str, Any]:
    """The event EventBridge delivers when the execution ends, built from describe_execution."""
    desc = cloud.sfn.describe_execution(executionArn=execution_arn)
    millis = lambda when: int(when.timestamp() * 1000) if when else None  # noqa: E731
    return {
        "version": "0",
        "id": "0d1f2e3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": execution_arn.split(":")[4],
        "time": (desc.get("stopDate") or desc["startDate"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [execution_arn],
        "detail": {
            "executionArn": desc["executionArn"],
            "stateMachineArn": desc["stateMachineArn"],
            "name": desc["name"],
            "status": desc["status"],
            "startDate": millis(desc["startDate"]),
            "stopDate": millis(desc.get("stopDate")),
            "input": desc.get("input"),
            "inputDetails": {"included": "input" in desc},
            "output": desc.get("output"),
            "outputDetails": None,
            "error": desc.get("error"),
            "cause": desc.get("cause"),
        },
    }


class FinishedEvents:
    """The "Generation Finished" events on the default bus (a rule -> an SQS queue)."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.url = self.sqs.create_queue(QueueName="finished")["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        events = boto3.client("events", region_name=REGION)
        pattern = {"source": ["longform"], "detail-type": ["Generation Finished"]}
        events.put_rule(Name="generation-finished", EventPattern=json.dumps(pattern))
        events.put_targets(
            Rule="generation-finished", Targets=[{"Id": "queue", "Arn": attributes["Attributes"]["QueueArn"]}]
        )

    def details(self) -> list[dict[str, Any]]:
        got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10)
        return [json.loads(m["Body"])["detail"] for m in got.get("Messages", [])]


def test_a_job_whose_finalize_fails_for_good_is_swept_to_failed_with_its_output(
    make_cloud: CloudFactory, emulator
) -> None:
    with make_cloud() as cloud:
        finished = FinishedEvents()
        cloud.fault_hook = finalize_fails_for_good
        job = cloud.submit(REQUEST)
        desc = cloud.wait(job.job_id, timeout=120)
        assert desc["status"] == "FAILED"
        assert cloud.states_entered(job.job_id)[-1] == "FinalizeFailed"
        finalizes = [i for i in cloud.invocations if i.function == "FinalizeFunction"]
        assert len(finalizes) == 5 and {i.error_type for i in finalizes} == {"RuntimeError"}
        # what the job looks like today without a sweeper: running forever, no result
        manifest = cloud.store.find_manifest(job.job_id)
        assert manifest is not None and manifest.status == "running" and manifest.chunks == 3
        assert cloud.store.get_result(job.job_id) is None
        assert finished.details() == []

        event = status_change_event(cloud, job.execution_arn)
        assert event["detail"]["status"] == "FAILED"
        outcome = cloud.invoke("SweeperFunction", event)
        assert (outcome["action"], outcome["job_id"], outcome["status"]) == (
            "finalized",
            job.job_id,
            "failed",
        )

        result = cloud.store.get_result(job.job_id)
        assert result is not None and result.status == "failed" and result.chunks == 3
        assert result.error == (
            "ExecutionFailed: FinalizeFailed: "
            "Could not assemble the job's output; every chunk is still in the jobs bucket."
        )
        assert cloud.store.get_text(result.output_key) == expected(REQUEST, emulator).answer
        manifest = cloud.store.find_manifest(job.job_id)
        assert manifest is not None and (manifest.status, manifest.error) == ("failed", result.error)
        (detail,) = finished.details()
        assert (detail["job_id"], detail["status"]) == (job.job_id, "failed")

        # the same event again (at-least-once delivery): nothing changes, nothing is published
        again = cloud.invoke("SweeperFunction", event)
        assert (again["action"], again["status"]) == ("already_ended", "failed")
        assert cloud.store.get_result(job.job_id) == result
        assert finished.details() == []


def test_a_job_that_ended_in_the_workflow_is_left_alone(make_cloud: CloudFactory) -> None:
    """The usual FAILED execution (JobFailed: Finalize ran, then the Fail state): nothing to do."""
    with make_cloud(extra_env={"PROVIDER_RETRY_BASE_SECONDS": "0.001"}) as cloud:
        cloud.fault_hook = chunks_fail_for_good
        job = cloud.submit({"prompt": "q"})
        assert cloud.wait(job.job_id, timeout=120)["status"] == "FAILED"
        result = cloud.store.get_result(job.job_id)
        assert result is not None and result.status == "failed"
        outcome = cloud.invoke("SweeperFunction", status_change_event(cloud, job.execution_arn))
        assert (outcome["action"], outcome["status"]) == ("already_ended", "failed")
        assert cloud.store.get_result(job.job_id) == result


def test_the_template_rule_delivers_the_status_change_to_the_sweeper(make_cloud: CloudFactory) -> None:
    """Through EventBridge: the SweeperRule the local cloud created from template.yaml (its
    stateMachineArn resolved) matches the event and invokes the function asynchronously."""
    with make_cloud() as cloud:
        cloud.fault_hook = finalize_fails_for_good
        job = cloud.submit({"prompt": "q"})
        assert cloud.wait(job.job_id, timeout=120)["status"] == "FAILED"
        cloud.fault_hook = None
        event = status_change_event(cloud, job.execution_arn)
        events = boto3.client("events", region_name=REGION)
        seen = len(cloud.deliveries)
        for state_machine in (
            "arn:aws:states:us-east-1:123456789012:stateMachine:other",
            cloud.state_machine_arn,
        ):
            detail = {**event["detail"], "stateMachineArn": state_machine}
            entry = {"Source": "aws.states", "DetailType": event["detail-type"], "Detail": json.dumps(detail)}
            assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
        cloud.wait_async()
        (delivery,) = [d for d in cloud.deliveries[seen:] if d.function == "SweeperFunction"]
        assert delivery.error_type is None
        assert (delivery.response["action"], delivery.response["status"]) == ("finalized", "failed")
        result = cloud.store.get_result(job.job_id)
        assert result is not None and result.status == "failed"
