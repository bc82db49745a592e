"""Submit a batch: the one batch submit path (``POST /batches``, ``POST /v1/batches``, the batch drop
folder, ``longform batch``).

::

    validate every line (parse_batch + the deployment's limits) -> batch-runs/{id}/input.jsonl,
    items.json, batch.json (If-None-Match) -> StartExecution(batch workflow, name = batch id)

Same Idempotency-Key, or the same file with the same options, is the same batch: nothing new starts.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from ..config import Settings
from ..errors import BatchConflict, BatchInvalid, IdempotencyConflict, LineProblem, Problem, RequestInvalid
from ..services import Services
from ..submit import apply_deployment_limits
from .models import BatchItem, BatchManifest, BatchSource, BatchStatus, line_job_id
from .request import MAX_PROBLEMS_LISTED, BatchLine, content_digest, parse_batch
from .store import BATCH_INPUTS_PREFIX


class SubmittedBatch(BaseModel):
    batch_id: str
    execution_arn: str
    created: bool  # False when this submission was a duplicate of an earlier one
    status: BatchStatus
    lines: int
    max_concurrency: int


def batch_id_for(material: str, owner: str | None) -> str:
    """A batch id (also the execution name): deterministic for a key or a file, per owner."""
    return "b-" + hashlib.sha256(json.dumps([owner, material]).encode()).hexdigest()[:40]


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _concurrency(max_concurrency: int | None, settings: Settings) -> int:
    cap = settings.batch_max_concurrency
    if max_concurrency is not None and not 1 <= max_concurrency <= cap:
        message = f"must be between 1 and {cap} (BatchMaxConcurrency), got {max_concurrency}"
        raise RequestInvalid([Problem("max_concurrency", message)])
    return max_concurrency or cap


def validate_batch(data: bytes, settings: Settings, defaults: dict[str, Any]) -> list[BatchLine]:
    """Every line parsed and within the deployment's limits, or ``BatchInvalid`` naming every problem."""
    lines = parse_batch(
        data, max_lines=settings.batch_max_lines, max_bytes=settings.batch_max_bytes, defaults=defaults
    )
    problems: list[LineProblem] = []
    for line in lines:
        try:
            apply_deployment_limits(line.request, settings)
        except RequestInvalid as exc:
            problems.extend(LineProblem(line.line, line.custom_id, p.field, p.message) for p in exc.problems)
    if problems:
        raise BatchInvalid(
            problems[:MAX_PROBLEMS_LISTED], not_listed=max(0, len(problems) - MAX_PROBLEMS_LISTED)
        )
    return lines


def _store_new(
    manifest: BatchManifest, data: bytes, lines: list[BatchLine], services: Services
) -> tuple[BatchManifest, bool]:
    """input.jsonl, items.json, then batch.json only if new: (the manifest stored, whether this call
    wrote it). A concurrent duplicate that wrote batch.json first wins."""
    store = services.batches
    items = [
        BatchItem(job_id=line_job_id(manifest.batch_id, index), custom_id=line.custom_id, line=line.line)
        for index, line in enumerate(lines)
    ]
    store.put_input(manifest.batch_id, data)
    store.put_items(manifest.batch_id, items)
    try:
        store.put_batch(manifest, only_if_new=True)
        return manifest, True
    except BatchConflict:
        found = store.find_batch(manifest.batch_id)
        return (manifest if found is None else found[0]), False


def _submitted(manifest: BatchManifest, arn: str, created: bool) -> SubmittedBatch:
    return SubmittedBatch(
        batch_id=manifest.batch_id,
        execution_arn=arn,
        created=created,
        status=manifest.status,
        lines=manifest.lines,
        max_concurrency=manifest.max_concurrency,
    )


def submit_batch(
    data: bytes,
    services: Services,
    *,
    idempotency_key: str | None = None,
    owner: str | None = None,
    source: BatchSource | None = None,
    max_concurrency: int | None = None,
    defaults: dict[str, Any] | None = None,
) -> SubmittedBatch:
    """Validate the whole batch, store it, start its workflow. ``BatchInvalid`` names every bad line."""
    executions = services.require_batch_executions()
    concurrency = _concurrency(max_concurrency, services.settings)
    defaults = {k: v for k, v in (defaults or {}).items() if v is not None}
    lines = validate_batch(data, services.settings, defaults)
    digest = content_digest(data)
    options = _fingerprint({"max_concurrency": concurrency, "defaults": defaults})
    batch_id = batch_id_for(idempotency_key or f"sha256={digest};options={options}", owner)
    found = services.batches.find_batch(batch_id)
    created = False
    if found is None:
        manifest = BatchManifest(
            batch_id=batch_id,
            owner=owner,
            source=source,
            lines=len(lines),
            input_sha256=digest,
            options_fingerprint=options,
            max_concurrency=concurrency,
            defaults=defaults,
            execution_arn=executions.arn_for(batch_id),
        )
        manifest, created = _store_new(manifest, data, lines, services)
    else:
        manifest = found[0]
    if not created:
        if manifest.input_sha256 != digest or manifest.options_fingerprint != options:
            raise IdempotencyConflict(
                f"idempotency key already used for batch {batch_id} with a different file or options"
            )
        if manifest.status != "queued" or manifest.cancel_requested:
            return _submitted(manifest, manifest.execution_arn or executions.arn_for(batch_id), False)
    # a new batch, or a duplicate of one that crashed between batch.json and StartExecution
    arn, started = executions.start(batch_id, json.dumps({"batch_id": batch_id}))
    return _submitted(manifest, arn, created and started)


def read_input_uri(uri: str, services: Services, *, field: str = "input_uri") -> tuple[bytes, str]:
    """The batch a ``s3://{jobs bucket}/batch-inputs/...`` URI names (a file larger than the API's
    body limit), read up to the batch size limit: its bytes and key. Problems name ``field``."""
    store = services.batches
    bucket_prefix = f"s3://{store.bucket}/"
    prefix = f"{bucket_prefix}{BATCH_INPUTS_PREFIX}"
    if not uri.startswith(prefix) or uri == prefix:
        raise RequestInvalid(
            [Problem(field, f"must name a file under {prefix} (the jobs bucket's batch inputs)")]
        )
    key = uri[len(bucket_prefix) :]
    cap = services.settings.batch_max_bytes
    read = store.read_upload(key, cap)
    if read is None:
        raise RequestInvalid([Problem(field, f"no such object: {uri}")])
    if read.data is None:
        raise RequestInvalid([Problem(field, f"the batch is {read.size} bytes; the limit is {cap}")])
    return read.data, key
