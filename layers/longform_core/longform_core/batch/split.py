"""Split a batch: the SplitBatch task of the batch workflow (``statemachine/batch.asl.json``).

Every line becomes a job (``submit.prepare_job``: request.json and a queued manifest, no
execution); the Distributed Map then starts each line's generation execution under the line's job
id. Safe to run again: a line already prepared is left as it is.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..errors import JobStateInvalid, RequestInvalid
from ..finalize import FinalizeTaskInput, finalize_job
from ..models import utcnow
from ..services import Services
from ..submit import apply_deployment_limits, prepare_job
from .lines import cancel_line, in_parallel
from .models import BatchItem, BatchManifest
from .request import BatchLine, parse_batch
from .status import commit_batch, find_batch
from .store import BatchKeys


class BatchTaskInput(BaseModel):
    """The SplitBatch task's input: the batch reference (the execution input)."""

    model_config = ConfigDict(extra="ignore")
    batch_id: str = Field(min_length=1, max_length=80)


class SplitOutput(BaseModel):
    """What the Distributed Map reads: where the item list is, and how many lines run at once."""

    batch_id: str
    bucket: str
    items_key: str
    results_prefix: str
    max_concurrency: int
    lines: int


def _prepare_line(item: BatchItem, line: BatchLine, manifest: BatchManifest, services: Services) -> None:
    """The line's job, queued; failed at once when the deployment's limits changed since the batch was
    accepted (its request is stored all the same, so the output can name it)."""
    owner, batch_id = manifest.owner, manifest.batch_id
    try:
        request = apply_deployment_limits(line.request, services.settings)
    except RequestInvalid as exc:
        prepare_job(line.request, item.job_id, services, owner=owner, batch_id=batch_id)
        error = {"Error": "RequestInvalid", "Cause": str(exc)}
        finalize_job(
            FinalizeTaskInput(job_id=item.job_id, status="failed", error=error), services, unless_ended=True
        )
        return
    prepare_job(request, item.job_id, services, owner=owner, batch_id=batch_id)


def _mark_running(manifest: BatchManifest, etag: str, services: Services) -> BatchManifest:
    """batch.json: queued -> running (If-Match, tried again when a cancel wrote it meanwhile)."""

    def start(manifest: BatchManifest) -> bool:
        if manifest.status != "queued" or manifest.cancel_requested:
            return False
        manifest.status = "running"
        manifest.started_at = utcnow()
        return True

    return commit_batch((manifest, etag), services, start)[0]


def split_batch(task: BatchTaskInput, services: Services) -> SplitOutput:
    """Every line becomes a job (request.json + a queued manifest); safe to run again."""
    store = services.batches
    manifest, etag = find_batch(task.batch_id, services)
    data = store.get_input(task.batch_id)
    lines = parse_batch(data, max_lines=len(data) + 1, max_bytes=len(data) + 1, defaults=manifest.defaults)
    items = store.get_items(task.batch_id)
    if len(items) != len(lines):
        raise JobStateInvalid(
            f"batch {task.batch_id}: items.json has {len(items)} lines, the input {len(lines)}"
        )
    in_parallel(
        lambda pair: _prepare_line(pair[0], pair[1], manifest, services), list(zip(items, lines, strict=True))
    )
    manifest = _mark_running(manifest, etag, services)
    if manifest.cancel_requested:
        # a cancel that ran while the lines were being prepared may not have seen some of them
        in_parallel(lambda item: cancel_line(item, services), items)
    keys = BatchKeys(task.batch_id)
    return SplitOutput(
        batch_id=task.batch_id,
        bucket=store.bucket,
        items_key=keys.items,
        results_prefix=keys.map_results,
        max_concurrency=manifest.max_concurrency,
        lines=len(items),
    )
