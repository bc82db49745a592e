"""What a job is billed for (``longform_core.billed``): every reply with reported usage recorded as it
arrives, and the bill = the committed chunks' usage + every recorded request no committed chunk kept."""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from longform_core.billed import Billed, BilledProvider, BilledRequest, billed_key, job_billed
from longform_core.models import ChunkRecord, Manifest
from longform_core.provider import StreamOutcome
from longform_core.sse import Usage

AT = datetime(2026, 1, 1, tzinfo=UTC)


def outcome(usage: Usage | None) -> StreamOutcome:
    return StreamOutcome("text", "", "length", "finished", usage, 3, "m", 1, None)


class Replies:
    def __init__(self, *usages: Usage | None):
        self.usages = list(usages)

    def chat(self, body: dict[str, Any], **kwargs: Any) -> StreamOutcome:
        return outcome(self.usages.pop(0))

    def server_props(self) -> dict[str, Any]:
        return {"chat_template": "t"}


class Bucket:
    """The object layer of a store: a dict; ``fail`` makes a put raise like a full disk."""

    def __init__(self, fail: bool = False):
        self.data: dict[str, bytes] = {}
        self.fail = fail

    def put(self, key: str, body: bytes, content_type: str) -> str:
        if self.fail:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.data[key] = body
        return "etag"


class Store:
    def __init__(self, fail: bool = False):
        self.objects = Bucket(fail)


def manifest(chunks: int, prompt: int, output: int, cost: float | None = None) -> Manifest:
    return Manifest(
        job_id="j",
        model="m",
        chunks=chunks,
        prompt_tokens_total=prompt,
        completion_tokens_total=output,
        estimated_cost_usd=cost,
    )


def chunk(index: int, kept: str | None) -> bytes:
    record = ChunkRecord(
        job_id="j",
        index=index,
        text="t",
        finish_reason="length",
        max_tokens=10,
        started_at=AT,
        duration_ms=1,
        billed_request=kept,
    )
    return record.model_dump_json().encode()


def request(index: int, rid: str, prompt: int, output: int, cost: float | None = None) -> bytes:
    where = {"job_id": "j", "chunk_index": index, "request_id": rid, "at": AT}
    usage = {"prompt_tokens": prompt, "completion_tokens": output, "estimated_cost_usd": cost}
    return BilledRequest.model_validate(where | usage).model_dump_json().encode()


def test_every_reply_with_reported_usage_is_recorded_and_named_in_its_outcome() -> None:
    store = Store()
    kept = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=10, estimated_cost=0.001)
    probe = Usage(prompt_tokens=1400, completion_tokens=4)
    provider = BilledProvider(
        Replies(kept, probe, None, Usage(completion_tokens=9, estimated=True)),
        store,
        "j",
        3,  # type: ignore[arg-type]
    )
    first, second, unreported, estimated = (provider.chat({}, deadline=0.0) for _ in range(4))
    assert provider.server_props() == {"chat_template": "t"}  # the client's own, passed through
    assert unreported.billed_request is None and estimated.billed_request is None  # nothing to bill
    assert first.billed_request and second.billed_request and first.billed_request != second.billed_request
    assert first.content == "text" and first.usage == kept
    assert sorted(store.objects.data) == sorted(
        billed_key("j", 3, o.billed_request or "") for o in (first, second)
    )
    record = BilledRequest.model_validate_json(store.objects.data[billed_key("j", 3, first.billed_request)])
    assert (record.chunk_index, record.prompt_tokens, record.cached_tokens) == (3, 1000, 10)
    assert (record.completion_tokens, record.estimated_cost_usd) == (500, 0.001)


def test_a_record_that_cannot_be_written_leaves_the_reply_as_it_was() -> None:
    provider = BilledProvider(Replies(Usage(prompt_tokens=5, completion_tokens=2)), Store(fail=True), "j", 0)  # type: ignore[arg-type]
    reply = provider.chat({}, deadline=0.0)
    assert reply.content == "text" and reply.billed_request is None


def test_the_bill_adds_the_requests_no_committed_chunk_kept() -> None:
    objects = {
        "jobs/j/chunks/000000.json": chunk(0, "a"),
        "jobs/j/chunks/000001.json": chunk(1, "c"),
        "jobs/j/chunks/000002.json": chunk(2, None),  # an old record, or committed from a draft
        "jobs/j/billed/000000-a.json": request(0, "a", 10, 100, 0.001),
        "jobs/j/billed/000001-b.json": request(1, "b", 120, 100, 0.002),  # discarded
        "jobs/j/billed/000001-c.json": request(1, "c", 120, 100, 0.002),
        "jobs/j/billed/000001-p.json": request(1, "p", 150, 4),  # the style probe
        "jobs/j/billed/000003-d.json": request(3, "d", 400, 7),  # chunk 3's attempt died
        "jobs/j/billed/000003-x.json": b"{not json",  # a torn record is skipped
    }
    keys = [k for k in objects if "/billed/" in k]
    total = job_billed(manifest(3, 330, 300, 0.005), keys, objects.get)
    assert total == Billed(requests=6, prompt_tokens=1000, output_tokens=411, cost_usd=0.007)
    assert job_billed(manifest(3, 330, 300, 0.005), [], objects.get) == Billed(3, 330, 0, 300, 0.005)
    assert job_billed(None, keys, objects.get) == Billed()


def test_a_chunk_rewritten_by_a_later_attempt_leaves_the_first_reply_unkept() -> None:
    """Chunk 1's record was stored by an attempt whose manifest commit never happened: the next
    attempt stored its own; the first reply was billed and not kept."""
    objects = {
        "jobs/j/chunks/000001.json": chunk(1, "second"),
        "jobs/j/billed/000001-first.json": request(1, "first", 50, 20),
        "jobs/j/billed/000001-second.json": request(1, "second", 50, 20),
    }
    keys = [k for k in objects if "/billed/" in k]
    assert job_billed(manifest(2, 60, 40), keys, objects.get) == Billed(3, 110, 0, 60, 0.0)


@given(st.lists(st.tuples(st.integers(0, 4), st.booleans(), st.integers(0, 10**6)), max_size=12))
def test_the_bill_is_the_records_plus_the_unkept_requests(requests: list[tuple[int, bool, int]]) -> None:
    """Three committed chunks (a chunk that kept no recorded reply was committed from a draft: its
    usage is in the manifest only), any number of recorded requests for chunks 0-4."""
    objects = {f"jobs/j/chunks/{i:06d}.json": chunk(i, None) for i in range(3)}
    kept_prompt, taken = 0, set()
    for n, (index, keep, prompt) in enumerate(requests):
        rid = f"r{n}"
        objects[billed_key("j", index, rid)] = request(index, rid, prompt, 1)
        if keep and index < 3 and index not in taken:  # a committed chunk keeps one reply
            taken.add(index)
            objects[f"jobs/j/chunks/{index:06d}.json"] = chunk(index, rid)
            kept_prompt += prompt
    keys = [k for k in objects if "/billed/" in k]
    total = job_billed(manifest(3, kept_prompt, 3), keys, objects.get)
    assert total.prompt_tokens == sum(prompt for _, _, prompt in requests)
    assert total.requests == 3 + len(requests) - len(taken)
    assert total.output_tokens == 3 + len(requests) - len(taken)
