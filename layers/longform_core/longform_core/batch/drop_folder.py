"""The batch drop folder: an object created as ``batches/{name}.jsonl`` submits a batch.

::

    batches/{name}.jsonl   a batch (batch/request.py): OpenAI Batch lines, or {"custom_id", "prompt"}
      -> when the batch ends: results/{name}.jsonl (OpenAI Batch output shape) and
         results/{name}.batch.json (the summary)
      -> a bad batch: results/{name}.batch-error.json naming every bad line; nothing starts
         (not results/{name}.error.json: that is a bad requests/{name}.json's, ``results.py``)

The events are the drop folder's (``drop_folder.created_objects``: EventBridge ``Object Created``
or S3 notification records). Idempotency: the batch's key is the bucket, the key and a SHA-256 of
the bytes read, so a duplicate delivery or the same file uploaded again starts nothing new. The
batch belongs to the bucket, as the drop folder's jobs do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

from ..drop_folder import CreatedObject, created_objects, drop_folder_owner, idempotency_key
from ..errors import RequestInvalid
from ..services import MetricsSink, Services
from .models import BatchSource
from .request import whole_batch_problem
from .store import BATCH_UPLOAD_SUFFIX, BATCH_UPLOADS_PREFIX
from .submit import submit_batch

Action = Literal["started", "duplicate", "rejected", "ignored"]


class BatchDropOutcome(BaseModel):
    key: str
    action: Action
    name: str | None = None
    batch_id: str | None = None
    execution_arn: str | None = None
    lines: int | None = None
    error_key: str | None = None
    problems: list[dict[str, str]] | None = None
    reason: str | None = None


def batch_name(key: str) -> str | None:
    """``{name}`` of ``batches/{name}.jsonl`` (nested folders kept), else None."""
    if not key.startswith(BATCH_UPLOADS_PREFIX) or not key.lower().endswith(BATCH_UPLOAD_SUFFIX):
        return None
    name = key[len(BATCH_UPLOADS_PREFIX) : -len(BATCH_UPLOAD_SUFFIX)]
    return name if name and not name.endswith("/") else None


def handle_object(obj: CreatedObject, services: Services) -> BatchDropOutcome:
    batches = services.batches
    if obj.bucket != batches.bucket:
        return BatchDropOutcome(
            key=obj.key, action="ignored", reason=f"bucket {obj.bucket!r} is not the jobs bucket"
        )
    named = [(k, batch_name(k)) for k in obj.keys]
    candidates = [(k, n) for k, n in named if n is not None]
    if not candidates:
        return BatchDropOutcome(
            key=obj.key, action="ignored", reason=f"not a {BATCH_UPLOADS_PREFIX}{{name}}.jsonl"
        )
    cap = services.settings.batch_max_bytes
    for key, name in candidates:
        read = batches.read_upload(key, cap)
        if read is None:
            continue
        etag = read.etag
        try:
            if read.data is None:
                raise whole_batch_problem(f"the batch is {read.size} bytes; the limit is {cap}")
            batch = submit_batch(
                read.data,
                services,
                idempotency_key=idempotency_key(batches.bucket, key, read.data),
                owner=drop_folder_owner(batches.bucket),
                source=BatchSource(kind="s3", key=key, name=name, etag=etag),
            )
        except RequestInvalid as exc:
            body: dict[str, Any] = {**exc.to_dict(), "key": key, "etag": etag}
            written = batches.results.write_batch_error(name, body)
            return BatchDropOutcome(
                key=key,
                action="rejected",
                name=name,
                error_key=written,
                problems=[p.to_dict() for p in exc.problems],
            )
        if batch.created:
            batches.results.delete_batch_error(name)
        return BatchDropOutcome(
            key=key,
            action="started" if batch.created else "duplicate",
            name=name,
            batch_id=batch.batch_id,
            execution_arn=batch.execution_arn,
            lines=batch.lines,
        )
    return BatchDropOutcome(key=obj.key, action="ignored", reason="the object no longer exists")


METRIC_NAMES: dict[str, str] = {
    "started": "BatchDropFolderBatchesStarted",
    "duplicate": "BatchDropFolderDuplicates",
    "rejected": "BatchDropFolderBatchesRejected",
    "ignored": "BatchDropFolderObjectsIgnored",
}


def handle_event(
    event: Mapping[str, Any], services: Services, *, metrics: MetricsSink | None = None
) -> list[BatchDropOutcome]:
    objects, skipped = created_objects(event)
    outcomes = [BatchDropOutcome(key=s.key, action="ignored", reason=s.reason) for s in skipped]
    outcomes.extend(handle_object(obj, services) for obj in objects)
    if metrics is not None:
        for outcome in outcomes:
            metrics.add_metric(name=METRIC_NAMES[outcome.action], unit="Count", value=1)
    return outcomes
