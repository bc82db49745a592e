"""The completion event: an EventBridge event on every terminal status."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .models import JobResult

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
else:
    EventBridgeClient = Any

EVENT_SOURCE = "longform"
DETAIL_TYPE = "Generation Finished"


def finished_event_detail(result: JobResult, *, bucket: str) -> dict[str, Any]:
    return {
        **result.ending_fields(),
        "prompt_tokens": result.prompt_tokens,
        "output_tokens": result.output_tokens,
        "estimated_cost_usd": result.estimated_cost_usd,
        "infrastructure_cost": (
            result.infrastructure_cost.model_dump() if result.infrastructure_cost is not None else None
        ),
        "output": {"bucket": bucket, "key": result.output_key, "uri": f"s3://{bucket}/{result.output_key}"},
        "result_key": f"jobs/{result.job_id}/result.json",
        "error": result.error,
    }


class CompletionPublisher:
    """Puts ``Generation Finished`` on an event bus (no text in the event, only where it is)."""

    def __init__(self, events: EventBridgeClient, *, bus_name: str, bucket: str):
        self.events = events
        self.bus_name = bus_name
        self.bucket = bucket

    def publish(self, result: JobResult) -> None:
        resp = self.events.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": DETAIL_TYPE,
                    "Detail": json.dumps(finished_event_detail(result, bucket=self.bucket), default=str),
                    "EventBusName": self.bus_name,
                    "Resources": [result.execution_arn] if result.execution_arn else [],
                }
            ]
        )
        if resp.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge rejected the completion event: {resp.get('Entries')}")


BATCH_DETAIL_TYPE = "Batch Finished"


class BatchFinishedPublisher:
    """Puts ``Batch Finished`` on an event bus: the batch's counts and where its output is (no text)."""

    def __init__(self, events: EventBridgeClient, *, bus_name: str):
        self.events = events
        self.bus_name = bus_name

    def publish_batch(self, detail: dict[str, Any], *, resources: list[str]) -> None:
        resp = self.events.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": BATCH_DETAIL_TYPE,
                    "Detail": json.dumps(detail, default=str),
                    "EventBusName": self.bus_name,
                    "Resources": resources,
                }
            ]
        )
        if resp.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge rejected the batch event: {resp.get('Entries')}")
