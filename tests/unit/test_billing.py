"""What a local run is billed for (``local/billing.py``): the job's records plus the replies this
process received that did not become a committed chunk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from longform_core.models import Manifest
from longform_core.sse import Usage

from longform.local.billing import Billed, BillingMeter


@dataclass
class Outcome:
    usage: Usage | None


class Replies:
    def __init__(self, *usages: Usage | None):
        self.usages = list(usages)

    def chat(self, body: dict[str, Any], **kwargs: Any) -> Outcome:
        return Outcome(self.usages.pop(0))

    def server_props(self) -> dict[str, Any]:
        return {"chat_template": "t"}


def manifest(chunks: int, prompt: int, output: int, cost: float | None = None) -> Manifest:
    return Manifest(
        job_id="j",
        model="m",
        chunks=chunks,
        prompt_tokens_total=prompt,
        completion_tokens_total=output,
        estimated_cost_usd=cost,
    )


def test_a_reply_not_kept_is_added_to_the_records() -> None:
    chunk = Usage(prompt_tokens=1000, completion_tokens=500, estimated_cost=0.001)
    probe = Usage(prompt_tokens=1400, completion_tokens=4, cached_tokens=1000, estimated_cost=0.0002)
    meter = BillingMeter(Replies(chunk, probe, None, Usage(completion_tokens=9, estimated=True)))
    meter.start_from(manifest(2, 3000, 1000, 0.002))  # two chunks asked by an earlier process
    for _ in range(4):
        meter.chat({})
    assert meter.server_props() == {"chat_template": "t"}  # the client's own, passed through
    total = meter.total(manifest(3, 4000, 1500, 0.003))
    assert total == Billed(
        requests=4, prompt_tokens=5400, cached_tokens=1000, output_tokens=1504, cost_usd=0.0032
    )


def test_a_chunk_committed_from_another_process_draft_is_not_counted_twice() -> None:
    meter = BillingMeter(Replies())
    meter.start_from(manifest(1, 1000, 500))
    # the chunk in flight was committed from its draft (no request here, usage estimated: prompt 0)
    assert meter.total(manifest(2, 1000, 900)) == Billed(requests=2, prompt_tokens=1000, output_tokens=900)
