"""OpenAI's Batch API as a thin translation onto longform's batch workflow (``batch/submit.py``: the
one batch submit path): create reads the uploaded input file and calls ``submit_batch``; retrieve, cancel
and list answer OpenAI's ``batch`` object made from the ``BatchView``.

What OpenAI has and longform does not keep is stored beside the batch, under the caller's files
prefix (``openai-files/{owner}/batches/{batch_id}.json``: the input file id, endpoint, window and
metadata). Status vocabulary::

    longform queued                      -> validating
    longform running                     -> in_progress (cancelling once a cancel is asked)
    longform running, every line ended   -> finalizing (the output is being written)
    longform completed / cancelled, no summary yet -> finalizing (the same: no output file yet)
    longform completed / failed / cancelled -> completed / failed / cancelled

``expired`` never happens: a longform batch has no window, every line runs to its own end.
``request_counts``: ``completed`` counts the lines that answered 200 (``succeeded``,
``context_exhausted``, ``incomplete``), ``failed`` the others (``failed``, ``cancelled``): the error
file's lines.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ..batch.cancel import cancel_batch
from ..batch.models import BATCH_ID_PATTERN, BatchSource
from ..batch.status import BatchView, get_batch, get_output, list_batches
from ..batch.submit import read_input_uri, submit_batch
from ..errors import BatchNotFound, Problem, RequestInvalid
from ..objects import JSON, Objects
from ..services import Services
from .files import FileNotFound, FileStore, batch_file_id, owner_prefix

ENDPOINTS = frozenset({"/v1/chat/completions"})
COMPLETION_WINDOWS = frozenset({"24h"})
METADATA_MAX_PAIRS = 16  # OpenAI's limits on metadata: 16 pairs, keys 64 and values 512 characters
LIST_SCAN = 100  # executions read per page while looking for the caller's batches


class BatchCreate(BaseModel):
    """``POST /v1/batches``."""

    input_file_id: str = Field(min_length=1, max_length=1024)
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None


def _problems(create: BatchCreate) -> list[Problem]:
    problems = []
    if create.endpoint not in ENDPOINTS:
        problems.append(Problem("endpoint", f"must be /v1/chat/completions, got {create.endpoint!r}"))
    if create.completion_window not in COMPLETION_WINDOWS:
        problems.append(Problem("completion_window", f"must be 24h, got {create.completion_window!r}"))
    meta = create.metadata or {}
    if len(meta) > METADATA_MAX_PAIRS or any(len(k) > 64 or len(v) > 512 for k, v in meta.items()):
        problems.append(Problem("metadata", "at most 16 pairs, keys of 64 and values of 512 characters"))
    return problems


class _Extras:
    """The OpenAI fields of the caller's batches, beside its files."""

    def __init__(self, services: Services, owner: str):
        self.objects: Objects = services.store.objects
        self.prefix = f"{owner_prefix(owner)}batches/"

    def put(self, batch_id: str, extras: dict[str, Any]) -> None:
        self.objects.put(f"{self.prefix}{batch_id}.json", json.dumps(extras).encode(), JSON)

    def get(self, batch_id: str) -> dict[str, Any]:
        got = self.objects.get(f"{self.prefix}{batch_id}.json")
        if got is None:  # a batch submitted by longform's own API, the CLI or the drop folder
            return {}
        data: dict[str, Any] = json.loads(got[0])
        return data


def _ts(value: Any) -> int | None:
    return int(value.timestamp()) if value is not None else None


def batch_object(view: BatchView, extras: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ``batch`` object of a longform batch."""
    counts = view.counts
    # the lines that answered 200 (batch/output.py): in the output file; the others in the error file
    ok = (counts.succeeded + counts.context_exhausted + counts.incomplete) if counts else 0
    bad = (counts.failed + counts.cancelled) if counts else 0
    status = {"queued": "validating", "running": "in_progress"}.get(view.status, view.status)
    if view.status == "running" and view.cancel_requested:
        status = "cancelling"
    elif view.status == "running" and counts is not None and counts.total and counts.done == counts.total:
        status = "finalizing"
    elif view.status in ("completed", "cancelled") and view.output_key is None:
        # the terminal status is committed before the output is written (batch/finalize.py):
        # until the summary says the output is in place, there is no output file to name
        status = "finalizing"
    ended = _ts(view.finished_at) if status == view.status else None
    tokens = view.tokens
    return {
        "id": view.batch_id,
        "object": "batch",
        "endpoint": extras.get("endpoint", "/v1/chat/completions"),
        "model": extras.get("model"),
        "errors": {"object": "list", "data": [{"code": "batch_failed", "message": view.error}]}
        if view.error
        else None,
        "input_file_id": extras.get("input_file_id", view.source or ""),
        "completion_window": extras.get("completion_window", "24h"),
        "status": status,
        "output_file_id": batch_file_id(view.batch_id, errors=False) if view.output_key and ok else None,
        "error_file_id": batch_file_id(view.batch_id, errors=True) if view.output_key and bad else None,
        "created_at": _ts(view.created_at),
        "in_progress_at": _ts(view.started_at),
        "expires_at": None,
        "finalizing_at": None,
        "completed_at": ended if status == "completed" else None,
        "failed_at": ended if status == "failed" else None,
        "expired_at": None,
        "cancelling_at": _ts(view.updated_at) if view.cancel_requested else None,
        "cancelled_at": ended if status == "cancelled" else None,
        "request_counts": {"total": view.lines, "completed": ok, "failed": bad},
        "usage": {
            "input_tokens": tokens.prompt,
            "input_tokens_details": {"cached_tokens": tokens.cached},
            "output_tokens": tokens.output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens.prompt + tokens.output,
        }
        if tokens is not None
        else None,
        "metadata": extras.get("metadata"),
    }


def create_batch(
    body: Any,
    services: Services,
    owner: str,
    idempotency_key: str | None,
) -> dict[str, Any]:
    """Validate, read the input file, submit it through the one batch submit path. ``input_file_id``
    may also be an ``s3://{bucket}/batch-inputs/...`` URI (an input larger than the API's body
    limit, as ``POST /batches`` takes it)."""
    try:
        create = BatchCreate.model_validate(body)
    except ValidationError as exc:
        raise RequestInvalid(
            [Problem(".".join(str(p) for p in e["loc"]) or "(body)", e["msg"]) for e in exc.errors()]
        ) from exc
    problems = _problems(create)
    if problems:
        raise RequestInvalid(problems)
    files = FileStore(services, owner)
    if create.input_file_id.startswith("s3://"):
        data, key = read_input_uri(create.input_file_id, services)
    else:
        try:
            data = files.content(create.input_file_id)
        except FileNotFound as exc:
            raise RequestInvalid([Problem("input_file_id", f"no such file: {create.input_file_id}")]) from exc
        key = f"{files.prefix}{create.input_file_id}/content"
    submitted = submit_batch(
        data, services, idempotency_key=idempotency_key, owner=owner, source=BatchSource(kind="api", key=key)
    )
    extras = create.model_dump(exclude_none=True)
    if submitted.created:
        _Extras(services, owner).put(submitted.batch_id, extras)
    return retrieve_batch(submitted.batch_id, services, owner)


def _check_id(batch_id: str) -> None:
    if not re.match(BATCH_ID_PATTERN, batch_id):
        raise BatchNotFound(f"no batch {batch_id!r}")


def retrieve_batch(batch_id: str, services: Services, owner: str) -> dict[str, Any]:
    _check_id(batch_id)
    view = get_batch(batch_id, services, as_owner=owner)
    return batch_object(view, _Extras(services, owner).get(batch_id))


def cancel(batch_id: str, services: Services, owner: str) -> dict[str, Any]:
    """Cancel (OpenAI answers the batch; cancelling one that already ended changes nothing)."""
    _check_id(batch_id)
    cancel_batch(batch_id, services, as_owner=owner)
    return retrieve_batch(batch_id, services, owner)


def list_page(services: Services, owner: str, after: str | None, limit: int) -> dict[str, Any]:
    """The caller's batches newest first, ``limit`` of them after the batch ``after`` (OpenAI's cursor)."""
    found: list[BatchView] = []
    token: str | None = None
    seen_after = after is None
    extras = _Extras(services, owner)
    while True:
        views, token = list_batches(LIST_SCAN, token, services, as_owner=owner)
        for view in views:
            if not seen_after:
                seen_after = view.batch_id == after
                continue
            found.append(view)
        if len(found) > limit or token is None:
            break
    page = [
        batch_object(get_batch(v.batch_id, services, as_owner=owner), extras.get(v.batch_id)) for v in found
    ]
    data = page[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(page) > limit,
    }


def batch_output(batch_id: str, services: Services, owner: str) -> tuple[bytes, int]:
    """The batch's output.jsonl (a batch of the caller's that has ended) and when it ended."""
    _check_id(batch_id)
    view, data = get_output(batch_id, services, as_owner=owner)
    return data, _ts(view.finished_at) or 0
