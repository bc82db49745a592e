"""Cancel a batch (``DELETE /batches/{id}``, ``POST /v1/batches/{id}/cancel``, ``longform batch``).

Flag the batch (``cancel_requested``, If-Match), cancel every running line (its partial text kept),
stop the workflow, write the output (``finalize.py``): lines not started are reported cancelled.
"""

from __future__ import annotations

from ..services import Services
from .finalize import BatchOutputTaskInput, finalize_batch
from .lines import cancel_line, in_parallel
from .models import BatchManifest
from .status import BatchView, commit_batch, find_batch, get_batch

CANCEL_ERROR = "Cancelled"


def _flag(batch_id: str, services: Services, as_owner: str | None) -> BatchManifest:
    """batch.json: ``cancel_requested`` (If-Match), unless the batch has ended."""
    found = find_batch(batch_id, services, as_owner=as_owner)

    def flag(manifest: BatchManifest) -> bool:
        if manifest.terminal or manifest.cancel_requested:
            return False
        manifest.cancel_requested = True
        return True

    return commit_batch(found, services, flag)[0]


def cancel_batch(batch_id: str, services: Services, *, as_owner: str | None = None) -> tuple[BatchView, bool]:
    """Stop the batch: every running line is cancelled with its partial text kept, lines not started
    are reported cancelled, the output is written. Returns the view and whether this call cancelled it."""
    manifest = _flag(batch_id, services, as_owner)
    if manifest.terminal:
        return get_batch(batch_id, services, as_owner=as_owner), False
    items = services.batches.get_items(batch_id)
    in_parallel(lambda item: cancel_line(item, services), items)
    if manifest.execution_arn and services.batch_executions is not None:
        services.batch_executions.stop(
            manifest.execution_arn, error=CANCEL_ERROR, cause="cancelled on request"
        )
    summary = finalize_batch(BatchOutputTaskInput(batch_id=batch_id, status="cancelled"), services)
    return get_batch(batch_id, services, as_owner=as_owner), summary.status == "cancelled"
