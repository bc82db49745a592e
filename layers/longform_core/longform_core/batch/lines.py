"""A batch's lines as jobs: what every use case does to all of them, in parallel.

A line is a normal job (``jobs/{id}/``, id ``{batch_id}-{index:06d}``): these read, cancel or end
it through the job half's own use cases (``cancel.cancel_job``, ``finalize.finalize_job``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..cancel import cancel_job
from ..errors import JobStateInvalid
from ..finalize import FinalizeTaskInput, finalize_job
from ..models import JobResult, Manifest
from ..services import Services
from .models import BatchCounts, BatchItem, BatchTokens

WORKERS = 16  # S3 requests in flight at once when a use case touches every line
COMMIT_ATTEMPTS = 5  # If-Match commits of batch.json (or of a line's end) before giving up

T = TypeVar("T")
R = TypeVar("R")


def in_parallel(fn: Callable[[T], R], items: Iterable[T], workers: int = WORKERS) -> list[R]:
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def windows(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def cancel_line(item: BatchItem, services: Services) -> None:
    """Cancel the line's job unless it has ended (its partial text kept)."""
    manifest = services.store.find_manifest(item.job_id)
    if manifest is not None and not manifest.terminal:
        cancel_job(item.job_id, services)


def fail_line(item: BatchItem, services: Services, reason: str) -> None:
    """End a line still open when its batch ended otherwise: its execution stopped, status failed."""
    manifest = services.store.find_manifest(item.job_id)
    if manifest is None or manifest.terminal:
        return
    if manifest.execution_arn and services.executions is not None:
        services.executions.stop(manifest.execution_arn, error="BatchEnded", cause=reason)
    error = {"Error": "BatchEnded", "Cause": reason}
    for _ in range(COMMIT_ATTEMPTS):
        with contextlib.suppress(JobStateInvalid):
            finalize_job(
                FinalizeTaskInput(job_id=item.job_id, status="failed", error=error),
                services,
                unless_ended=True,
            )
            return


def read_line(
    item: BatchItem, services: Services
) -> tuple[Manifest | None, JobResult | None, str, str | None]:
    """The line's manifest and, once it has ended, its result, text and reasoning."""
    store = services.store
    manifest = store.find_manifest(item.job_id)
    if manifest is None or not manifest.terminal:
        return manifest, None, "", None
    result = store.get_result(item.job_id)
    if result is None:  # a finalize stopped after its commit: derive its files again
        _, result = finalize_job(FinalizeTaskInput(job_id=item.job_id), services)
        assert result is not None
    text = store.get_text(result.output_key) or ""
    reasoning = store.get_text(result.reasoning_key) if result.reasoning_key else None
    return manifest, result, text, reasoning


def line_counts(
    items: list[BatchItem], services: Services
) -> tuple[BatchCounts, BatchTokens, float | None, int]:
    """Lines by status and the tokens so far, from every line's manifest (read in parallel)."""
    manifests = in_parallel(lambda item: services.store.find_manifest(item.job_id), items, workers=32)
    counts = BatchCounts()
    tokens = BatchTokens()
    cost: float | None = None
    chunks = 0
    for manifest in manifests:
        if manifest is None:
            counts.add("queued")
            continue
        counts.add(manifest.status)
        tokens.prompt += manifest.prompt_tokens_total
        tokens.output += manifest.completion_tokens_total
        tokens.cached += manifest.cached_tokens_total
        chunks += manifest.chunks
        if manifest.estimated_cost_usd is not None:
            cost = round((cost or 0.0) + manifest.estimated_cost_usd, 8)
    return counts, tokens, cost, chunks
