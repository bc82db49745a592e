"""A batch's status: ``GET /batches/{id}``, ``longform batch``; the listing; finding a caller's batch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, Field

from ..errors import BatchConflict, BatchNotFound
from ..services import Services
from .lines import COMMIT_ATTEMPTS, in_parallel, line_counts
from .models import BatchCounts, BatchManifest, BatchStatus, BatchSummary, BatchTokens


class BatchView(BaseModel):
    """``GET /batches/{id}``, ``longform batch``: the batch and its lines by status, while it runs too."""

    batch_id: str
    status: BatchStatus
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    lines: int
    max_concurrency: int
    counts: BatchCounts | None = Field(default=None, description="lines by status (not in listings)")
    tokens: BatchTokens | None = None
    estimated_cost_usd: float | None = None
    chunks: int | None = None
    cancel_requested: bool = False
    source: str | None = None
    error: str | None = None
    output_key: str | None = Field(
        default=None, description="batch-runs/{id}/output.jsonl once the batch has ended"
    )


def owned(manifest: BatchManifest, as_owner: str | None) -> bool:
    return as_owner is None or manifest.owner == as_owner


def find_batch(
    batch_id: str, services: Services, *, as_owner: str | None = None
) -> tuple[BatchManifest, str]:
    """The batch's manifest and ETag; ``BatchNotFound`` when there is none (or not the caller's)."""
    got = services.batches.find_batch(batch_id)
    if got is None or not owned(got[0], as_owner):
        raise BatchNotFound(f"no batch {batch_id!r}")
    return got


def commit_batch(
    found: tuple[BatchManifest, str], services: Services, change: Callable[[BatchManifest], bool]
) -> tuple[BatchManifest, bool]:
    """batch.json changed by ``change`` and put with If-Match, read again and changed again after a
    conflict. ``change`` edits the manifest in place and says whether there is anything to write
    (False: the manifest as it stands is the answer). (the manifest last read or written, settled:
    False after ``COMMIT_ATTEMPTS`` conflicts in a row)."""
    manifest, etag = found
    for _ in range(COMMIT_ATTEMPTS):
        if not change(manifest):
            return manifest, True
        try:
            services.batches.put_batch(manifest, if_match=etag)
            return manifest, True
        except BatchConflict:
            manifest, etag = find_batch(manifest.batch_id, services)
    return manifest, False


def batch_view(manifest: BatchManifest, *, summary: BatchSummary | None = None) -> BatchView:
    view = BatchView(
        batch_id=manifest.batch_id,
        status=manifest.status,
        created_at=manifest.created_at,
        started_at=manifest.started_at,
        updated_at=manifest.updated_at,
        finished_at=manifest.finished_at,
        lines=manifest.lines,
        max_concurrency=manifest.max_concurrency,
        cancel_requested=manifest.cancel_requested,
        source=manifest.source.describe() if manifest.source else None,
        error=manifest.error,
    )
    if summary is not None:
        view.counts = summary.counts
        view.tokens = summary.tokens
        view.estimated_cost_usd = summary.estimated_cost_usd
        view.chunks = summary.chunks
        view.output_key = summary.output_key
    return view


def get_batch(batch_id: str, services: Services, *, as_owner: str | None = None) -> BatchView:
    """The batch's view: counts by status and tokens so far (every line's manifest while it runs;
    the summary, one read, once it has ended)."""
    manifest, _ = find_batch(batch_id, services, as_owner=as_owner)
    store = services.batches
    summary = store.get_summary(batch_id) if manifest.terminal else None
    view = batch_view(manifest, summary=summary)
    if summary is None:
        counts, tokens, cost, chunks = line_counts(store.get_items(batch_id), services)
        view.counts, view.tokens, view.estimated_cost_usd, view.chunks = counts, tokens, cost, chunks
    return view


def output_url(view: BatchView, services: Services, *, expires_in: int) -> str | None:
    """A presigned GET of the batch's output.jsonl once it has ended (None while it runs)."""
    if view.output_key is None:
        return None
    return services.batches.presigned_output_url(view.batch_id, expires_in=expires_in)


def get_output(batch_id: str, services: Services, *, as_owner: str | None = None) -> tuple[BatchView, bytes]:
    """The batch's view and its output.jsonl; ``BatchNotFound`` while it has none."""
    view = get_batch(batch_id, services, as_owner=as_owner)
    data = services.batches.get_output(batch_id) if view.output_key else None
    if data is None:
        raise BatchNotFound(f"batch {batch_id} has no output yet")
    return view, data


def list_batches(
    limit: int, next_token: str | None, services: Services, *, as_owner: str | None = None
) -> tuple[list[BatchView], str | None]:
    """The most recent batches, newest first (the batch workflow's executions), without line counts."""
    names, following = services.require_batch_executions().recent(limit, next_token)
    store = services.batches

    def view_of(batch_id: str) -> BatchView | None:
        found = store.find_batch(batch_id)
        if found is None or not owned(found[0], as_owner):
            return None
        return batch_view(found[0])

    views = in_parallel(view_of, names, workers=8)
    return [v for v in views if v is not None], following
