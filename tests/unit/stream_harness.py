"""Drive one chunk through the real provider client and the real commit path against a raw byte
stream: ``httpx.MockTransport`` serves the bytes (split where the test says), the job lives in moto
S3, ``generate_chunk`` does the rest. Shared by the wire tests and the hostile-stream property test."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from longform_core.chunk import ChunkTaskInput, ChunkTaskOutput, generate_chunk
from longform_core.config import Settings
from longform_core.errors import ProviderError
from longform_core.job_store import JobStore
from longform_core.models import ChunkRecord, Manifest
from longform_core.provider import ProviderClient
from longform_core.request import parse_request
from longform_core.retry import RetryPolicy
from longform_core.services import Services

BASE_URL = "https://provider.test/v1"


def event(obj: dict[str, Any] | str, *, eol: str = "\n") -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return f"data: {data}{eol}{eol}".encode()


def content_event(piece: str | None = None, *, finish: str | None = None, **top: Any) -> dict[str, Any]:
    delta: Any = {} if piece is None else {"content": piece}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m/1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **top,
    }


def usage(prompt: Any = 10, completion: Any = 5, **more: Any) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": 15, **more}


class RawProvider:
    """Answers every streamed request with ``body`` cut into ``pieces`` at ``splits``; a request
    without streaming (the client's second opinion on a stream that ended without a finish) gets
    ``plain_status`` (503 by default: the stream's own text then stands)."""

    def __init__(self, body: bytes, splits: Sequence[int] = (), plain_status: int = 503):
        self.body = body
        self.splits = sorted({s for s in splits if 0 < s < len(body)})
        self.plain_status = plain_status
        self.requests: list[dict[str, Any]] = []

    def pieces(self) -> Iterator[bytes]:
        start = 0
        for cut in [*self.splits, len(self.body)]:
            yield self.body[start:cut]
            start = cut

    def __call__(self, request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        self.requests.append(sent)
        if not sent.get("stream"):
            return httpx.Response(self.plain_status, json={"error": {"message": "busy"}})
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=self.pieces())


@dataclass
class ChunkRun:
    output: ChunkTaskOutput | None
    error: BaseException | None
    chunk: ChunkRecord | None
    manifest: Manifest


def first_chunk(text: str) -> RawProvider:
    """A stream that writes ``text`` and is cut for length: the chunk before the one under test."""
    final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}], "usage": usage(10, 12)}
    return RawProvider(event(content_event(text)) + event(final) + b"data: [DONE]\n\n")


def run_chunk(
    store: JobStore,
    provider: RawProvider,
    request: dict[str, Any] | None = None,
    *,
    attempts: int = 2,
    before: Sequence[RawProvider] = (),
) -> ChunkRun:
    """Run GenerateChunk for a fresh job: once per ``before`` provider (committed chunks, the job's
    text so far), then once against ``provider``, whose ProviderError is caught and returned."""
    job_id = uuid.uuid4().hex
    parsed = parse_request(request or {"prompt": "Write about lighthouses.", "max_tokens_per_request": 64})
    store.put_request(job_id, parsed)
    store.put_manifest(Manifest(job_id=job_id, model="m/1"))
    output: ChunkTaskOutput | None = None
    error: BaseException | None = None
    for serving in [*before, provider]:
        client = ProviderClient(
            httpx.Client(transport=httpx.MockTransport(serving)),
            base_url=BASE_URL,
            retry=RetryPolicy(max_attempts=attempts, base_delay=0.0),
            sleep=lambda _: None,
        )
        services = Services(
            settings=Settings(jobs_bucket=store.bucket, draft_checkpoints=False), store=store, provider=client
        )
        try:
            output = generate_chunk(ChunkTaskInput(job_id=job_id), services, remaining_ms=lambda: 600_000)
        except ProviderError as exc:
            if serving is not provider:
                raise
            error = exc
    manifest, _ = store.get_manifest(job_id)
    chunk = store.get_chunk(job_id, len(before)) if manifest.chunks > len(before) else None
    return ChunkRun(output, error, chunk, manifest)
