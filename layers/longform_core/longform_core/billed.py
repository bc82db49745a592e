"""What the provider billed a job for, request by request, across every process and attempt.

A chunk record holds the usage of the one reply it kept. A provider also bills the requests whose
reply was not kept: the style probe, a reply a prefill rung ignored (the server started over), a
continue message asked again, a reply whose attempt died before its commit. So every reply that
reports its usage is recorded as it arrives, by the chunk invocation that asked it, in
``jobs/{id}/billed/{n:06d}-{request id}.json`` (``BilledRequest``; ``n`` is the chunk being asked),
before anything is kept. The chunk record that keeps a reply names it (``ChunkRecord.billed_request``).

A job's bill is then its committed chunks' usage (the manifest's totals) plus every recorded request
no committed chunk kept (``job_billed``): the same figure whichever process asks, however many
processes ran the job. A record that could not be written is logged and skipped (the chunk goes
on: failing it would ask, and bill, its reply again).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

from .models import ChunkRecord, Manifest, utcnow
from .objects import JSON

if TYPE_CHECKING:
    from .job_store import JobStore
    from .provider import StreamOutcome
    from .services import Services, StreamingProvider

logger = logging.getLogger(__name__)


def billed_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/billed/"


def billed_key(job_id: str, chunk_index: int, request_id: str) -> str:
    return f"{billed_prefix(job_id)}{chunk_index:06d}-{request_id}.json"


class BilledRequest(BaseModel):
    """One reply's usage as the provider reported it (``jobs/{id}/billed/{n:06d}-{id}.json``)."""

    job_id: str
    chunk_index: int  # the chunk being asked when it was sent
    request_id: str
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost_usd: float | None = None
    at: datetime


@dataclass(frozen=True)
class Billed:
    """Usage summed over requests."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def plus(self, other: Billed) -> Billed:
        return Billed(
            requests=self.requests + other.requests,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 8),
        )

    @classmethod
    def of_request(cls, record: BilledRequest) -> Billed:
        return cls(
            requests=1,
            prompt_tokens=record.prompt_tokens,
            cached_tokens=record.cached_tokens,
            output_tokens=record.completion_tokens,
            cost_usd=record.estimated_cost_usd or 0.0,
        )

    @classmethod
    def of_manifest(cls, manifest: Manifest | None) -> Billed:
        """What the job's committed chunks record (each chunk's kept request)."""
        if manifest is None:
            return cls()
        return cls(
            requests=manifest.chunks,
            prompt_tokens=manifest.prompt_tokens_total,
            cached_tokens=manifest.cached_tokens_total,
            output_tokens=manifest.completion_tokens_total,
            cost_usd=manifest.estimated_cost_usd or 0.0,
        )


class BilledProvider:
    """The provider client of one chunk invocation: every reply with reported usage is recorded
    (``BilledRequest``) before it is returned, named in the outcome (``billed_request``)."""

    def __init__(self, provider: StreamingProvider, store: JobStore, job_id: str, chunk_index: int):
        self._provider = provider
        self._store = store
        self._job_id = job_id
        self._chunk_index = chunk_index
        self.written = 0  # records stored (S3 PUTs: the infrastructure bill counts them)

    def chat(self, body: dict[str, Any], **kwargs: Any) -> StreamOutcome:
        outcome = self._provider.chat(body, **kwargs)
        usage = outcome.usage
        if usage is None or usage.estimated:
            return outcome
        record = BilledRequest(
            job_id=self._job_id,
            chunk_index=self._chunk_index,
            request_id=uuid.uuid4().hex[:16],
            prompt_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_tokens,
            completion_tokens=usage.completion_tokens,
            estimated_cost_usd=usage.estimated_cost,
            at=utcnow(),
        )
        key = billed_key(self._job_id, self._chunk_index, record.request_id)
        try:
            self._store.objects.put(key, record.model_dump_json(indent=1).encode(), JSON)
        except (ClientError, BotoCoreError, OSError) as exc:
            logger.warning("could not record a billed request (%s): the job's bill will miss it", exc)
            return outcome
        self.written += 1
        return replace(outcome, billed_request=record.request_id)

    def __getattr__(self, name: str) -> Any:  # server_props and the like: the client's own
        return getattr(self._provider, name)


def records_written(services: Services) -> int:
    """How many billed records this invocation's provider client stored."""
    provider = services.provider
    return provider.written if isinstance(provider, BilledProvider) else 0


def job_billed(manifest: Manifest | None, keys: Iterable[str], read: Callable[[str], bytes | None]) -> Billed:
    """Everything billed for a job: its committed chunks' usage, plus every recorded request that no
    committed chunk kept. ``keys``: the job's ``billed/`` objects; ``read``: an object's bytes."""
    total = Billed.of_manifest(manifest)
    if manifest is None:
        return total
    records = [r for r in (_parse(BilledRequest, read(k)) for k in keys) if r is not None]
    kept = set()
    for index in sorted({r.chunk_index for r in records if r.chunk_index < manifest.chunks}):
        chunk = _parse(ChunkRecord, read(f"jobs/{manifest.job_id}/chunks/{index:06d}.json"))
        if chunk is not None and chunk.billed_request:
            kept.add(chunk.billed_request)
    for record in records:
        if record.request_id not in kept:
            total = total.plus(Billed.of_request(record))
    return total


def _parse(model: type[Any], raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return model.model_validate_json(raw)
    except (ValidationError, ValueError):
        return None


def stored_billed(store: JobStore, manifest: Manifest | None) -> Billed:
    """``job_billed`` read from the jobs bucket."""
    if manifest is None:
        return Billed()
    keys: list[str] = []
    pages = store.s3.get_paginator("list_objects_v2").paginate(
        Bucket=store.bucket, Prefix=billed_prefix(manifest.job_id)
    )
    for page in pages:
        keys += [o["Key"] for o in page.get("Contents", [])]

    def read(key: str) -> bytes | None:
        found = store.objects.get(key)
        return None if found is None else found[0]

    return job_billed(manifest, keys, read)
