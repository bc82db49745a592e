"""Use cases of a batch: submit, split (a workflow task), the output (a workflow task), cancel, status.

::

    submit_batch   validate every line (parse_batch + the deployment's limits) -> batch-runs/{id}/
                   input.jsonl, items.json, batch.json (If-None-Match) -> StartExecution(batch
                   workflow, name = batch id). Same Idempotency-Key, or the same file with the
                   same options, is the same batch: nothing new starts.
    split_batch    SplitBatch task: every line becomes a job (submit.prepare_job: request.json and
                   a queued manifest, no execution); the Distributed Map then starts each line's
                   generation execution under the line's job id (statemachine/batch.asl.json)
    finalize_batch WriteOutput task (and cancel): commit the batch's terminal status, end any line
                   still open, write output.jsonl in input order, summary.json, the drop folder's
                   results/{name}.*, the "Batch Finished" event
    cancel_batch   DELETE /batches/{id}: flag the batch, cancel every running line (its partial
                   text kept), stop the workflow, write the output

A batch's lines are jobs like any other (``jobs/{id}/``: GET /generations/{id} shows one while it
runs, DELETE cancels one line alone). Their ids are ``{batch_id}-{index:06d}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .batch_models import (
    BatchCounts,
    BatchItem,
    BatchManifest,
    BatchSource,
    BatchStatus,
    BatchSummary,
    BatchTerminalStatus,
    BatchTokens,
    line_job_id,
)
from .batch_output import encode_line, not_started_status, output_line
from .batch_request import MAX_PROBLEMS_LISTED, BatchInvalid, LineProblem, content_digest, parse_batch
from .batch_store import BatchConflict, BatchKeys, BatchStore
from .cancel import cancel_job
from .errors import IdempotencyConflict, JobStateInvalid, LongformError, Problem, RequestInvalid
from .finalize import FinalizeTaskInput, describe_error, finalize_job
from .models import JobResult, Manifest, utcnow
from .services import MetricsSink, Services
from .submit import apply_deployment_limits, prepare_job

WORKERS = 16  # S3 requests in flight at once when a use case touches every line
OUTPUT_WINDOW = 64  # lines read ahead while the output is written in order
CANCEL_ERROR = "Cancelled"
COMMIT_ATTEMPTS = 5

T = TypeVar("T")
R = TypeVar("R")


class BatchNotFound(LongformError):
    """No batch with that id (or not the caller's)."""


class BatchTaskInput(BaseModel):
    """The SplitBatch task's input: the batch reference (the execution input)."""

    model_config = ConfigDict(extra="ignore")
    batch_id: str = Field(min_length=1, max_length=80)


class BatchOutputTaskInput(BaseModel):
    """The WriteOutput task's input: the whole state (a Catch leaves ``status`` and ``error``)."""

    model_config = ConfigDict(extra="ignore")
    batch_id: str = Field(min_length=1, max_length=80)
    status: Literal["failed", "cancelled"] | None = None
    error: dict[str, Any] | None = None


class SplitOutput(BaseModel):
    """What the Distributed Map reads: where the item list is, and how many lines run at once."""

    batch_id: str
    bucket: str
    items_key: str
    results_prefix: str
    max_concurrency: int
    lines: int


class BatchOutputTaskOutput(BaseModel):
    batch_id: str
    status: BatchStatus
    counts: BatchCounts
    output_key: str


class SubmittedBatch(BaseModel):
    batch_id: str
    execution_arn: str
    created: bool  # False when this submission was a duplicate of an earlier one
    status: BatchStatus
    lines: int
    max_concurrency: int


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


# ---- helpers ---------------------------------------------------------------------------------------


def batch_store(services: Services) -> BatchStore:
    return BatchStore(services.store.s3, services.store.bucket)


def batch_id_for(material: str, owner: str | None) -> str:
    """A batch id (also the execution name): deterministic for a key or a file, per owner."""
    return "b-" + hashlib.sha256(json.dumps([owner, material]).encode()).hexdigest()[:40]


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _in_parallel(fn: Callable[[T], R], items: Iterable[T], workers: int = WORKERS) -> list[R]:
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def _windows(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def owned(manifest: BatchManifest, as_owner: str | None) -> bool:
    return as_owner is None or manifest.owner == as_owner


def find_batch(
    batch_id: str, services: Services, *, as_owner: str | None = None
) -> tuple[BatchManifest, str]:
    got = batch_store(services).find_batch(batch_id)
    if got is None or not owned(got[0], as_owner):
        raise BatchNotFound(f"no batch {batch_id!r}")
    return got


# ---- submit ----------------------------------------------------------------------------------------


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
    settings = services.settings
    executions = services.require_batch_executions()
    cap = settings.batch_max_concurrency
    if max_concurrency is not None and not 1 <= max_concurrency <= cap:
        raise RequestInvalid(
            [
                Problem(
                    "max_concurrency",
                    f"must be between 1 and {cap} (BatchMaxConcurrency), got {max_concurrency}",
                )
            ]
        )
    concurrency = max_concurrency or cap
    defaults = {k: v for k, v in (defaults or {}).items() if v is not None}
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

    digest = content_digest(data)
    options = _fingerprint({"max_concurrency": concurrency, "defaults": defaults})
    batch_id = batch_id_for(idempotency_key or f"sha256={digest};options={options}", owner)
    store = batch_store(services)
    found = store.find_batch(batch_id)
    if found is None:
        items = [
            BatchItem(job_id=line_job_id(batch_id, index), custom_id=line.custom_id, line=line.line)
            for index, line in enumerate(lines)
        ]
        store.put_input(batch_id, data)
        store.put_items(batch_id, items)
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
        try:
            store.put_batch(manifest, only_if_new=True)
            created = True
        except BatchConflict:  # a concurrent duplicate wrote it first
            found = store.find_batch(batch_id)
            created = False
    else:
        created = False
    if found is not None:
        manifest = found[0]
        if manifest.input_sha256 != digest or manifest.options_fingerprint != options:
            raise IdempotencyConflict(
                f"idempotency key already used for batch {batch_id} with a different file or options"
            )
        if manifest.status != "queued" or manifest.cancel_requested:
            return SubmittedBatch(
                batch_id=batch_id,
                execution_arn=manifest.execution_arn or executions.arn_for(batch_id),
                created=False,
                status=manifest.status,
                lines=manifest.lines,
                max_concurrency=manifest.max_concurrency,
            )
    # a new batch, or a duplicate of one that crashed between batch.json and StartExecution
    arn, started = executions.start(batch_id, json.dumps({"batch_id": batch_id}))
    return SubmittedBatch(
        batch_id=batch_id,
        execution_arn=arn,
        created=created and started,
        status=manifest.status,
        lines=manifest.lines,
        max_concurrency=manifest.max_concurrency,
    )


# ---- split -----------------------------------------------------------------------------------------


def split_batch(task: BatchTaskInput, services: Services) -> SplitOutput:
    """Every line becomes a job (request.json + a queued manifest); safe to run again."""
    store = batch_store(services)
    manifest, etag = find_batch(task.batch_id, services)
    data = store.get_input(task.batch_id)
    lines = parse_batch(data, max_lines=len(data) + 1, max_bytes=len(data) + 1, defaults=manifest.defaults)
    items = store.get_items(task.batch_id)
    if len(items) != len(lines):
        raise JobStateInvalid(
            f"batch {task.batch_id}: items.json has {len(items)} lines, the input {len(lines)}"
        )

    def prepare(pair: tuple[BatchItem, Any]) -> None:
        item, line = pair
        try:
            request = apply_deployment_limits(line.request, services.settings)
        except RequestInvalid as exc:  # the deployment's limits changed since the batch was accepted
            prepare_job(line.request, item.job_id, services, owner=manifest.owner, batch_id=task.batch_id)
            error = {"Error": "RequestInvalid", "Cause": str(exc)}
            finalize_job(
                FinalizeTaskInput(job_id=item.job_id, status="failed", error=error),
                services,
                unless_ended=True,
            )
            return
        prepare_job(request, item.job_id, services, owner=manifest.owner, batch_id=task.batch_id)

    _in_parallel(prepare, list(zip(items, lines, strict=True)))
    for _ in range(COMMIT_ATTEMPTS):
        if manifest.status != "queued" or manifest.cancel_requested:
            break
        manifest.status = "running"
        manifest.started_at = utcnow()
        try:
            store.put_batch(manifest, if_match=etag)
            break
        except BatchConflict:
            manifest, etag = find_batch(task.batch_id, services)
    if manifest.cancel_requested:
        # a cancel that ran while the lines were being prepared may not have seen some of them
        _in_parallel(lambda item: _cancel_line(item, services), items)
    keys = BatchKeys(task.batch_id)
    return SplitOutput(
        batch_id=task.batch_id,
        bucket=store.bucket,
        items_key=keys.items,
        results_prefix=keys.map_results,
        max_concurrency=manifest.max_concurrency,
        lines=len(items),
    )


# ---- the output ------------------------------------------------------------------------------------


def _cancel_line(item: BatchItem, services: Services) -> None:
    manifest = services.store.find_manifest(item.job_id)
    if manifest is not None and not manifest.terminal:
        cancel_job(item.job_id, services)


def _fail_line(item: BatchItem, services: Services, reason: str) -> None:
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


def _read_line(
    item: BatchItem, services: Services
) -> tuple[Manifest | None, JobResult | None, str, str | None]:
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


def final_batch_status(task: BatchOutputTaskInput, manifest: BatchManifest) -> BatchTerminalStatus:
    if manifest.cancel_requested or task.status == "cancelled":
        return "cancelled"
    if task.status == "failed" or task.error:
        return "failed"
    return "completed"


def finalize_batch(
    task: BatchOutputTaskInput, services: Services, *, metrics: MetricsSink | None = None
) -> BatchSummary:
    """End the batch: commit its status, end any open line, then write every file derived from the lines.

    Like a job's finalize: the commit (``If-Match``) comes first and the files are derived from the
    lines alone, so of a cancel and the workflow's WriteOutput racing, both write the same output;
    ``summary.json`` is written last and, once there, is returned as it is (the event is not sent again).
    """
    store = batch_store(services)
    manifest, etag = find_batch(task.batch_id, services)
    for _ in range(COMMIT_ATTEMPTS):
        if manifest.terminal:
            break
        manifest.status = final_batch_status(task, manifest)
        manifest.finished_at = utcnow()
        manifest.error = describe_error(task.error) or manifest.error
        try:
            store.put_batch(manifest, if_match=etag)
            break
        except BatchConflict:
            manifest, etag = find_batch(task.batch_id, services)
    else:
        raise BatchConflict(f"batch {task.batch_id}: batch.json keeps changing under us")
    existing = store.get_summary(task.batch_id)
    if existing is not None:
        return existing
    items = store.get_items(task.batch_id)
    if manifest.status == "cancelled":
        _in_parallel(lambda item: _cancel_line(item, services), items)
    else:
        reason = f"the batch ended ({manifest.status}) before this line did"
        _in_parallel(lambda item: _fail_line(item, services, reason), items)
    summary = _write_outputs(manifest, items, services)
    if metrics is not None:
        metrics.add_metric(name=f"Batches{manifest.status.title()}", unit="Count", value=1)
        metrics.add_metric(name="BatchLinesFailed", unit="Count", value=summary.counts.failed)
    return summary


def _write_outputs(manifest: BatchManifest, items: list[BatchItem], services: Services) -> BatchSummary:
    store = batch_store(services)
    keys = BatchKeys(manifest.batch_id)
    counts = BatchCounts()
    tokens = BatchTokens()
    cost: float | None = None
    chunks = 0
    writer = store.output_writer(manifest.batch_id)
    batch_failed = manifest.status == "failed"
    try:
        for window in _windows(items, OUTPUT_WINDOW):
            read = _in_parallel(lambda item: _read_line(item, services), window)
            for item, (job, result, text, reasoning) in zip(window, read, strict=True):
                counts.add(result.status if result else not_started_status(job, batch_failed))
                if result is not None:
                    tokens.prompt += result.prompt_tokens_total
                    tokens.output += result.output_tokens
                    tokens.cached += result.cached_tokens
                    chunks += result.chunks
                    if result.estimated_cost_usd is not None:
                        cost = round((cost or 0.0) + result.estimated_cost_usd, 8)
                line = output_line(
                    item,
                    result,
                    text=text,
                    reasoning=reasoning,
                    manifest=job,
                    batch_error=(manifest.error or "failed") if batch_failed else None,
                )
                writer.write(encode_line(line))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    wall = (
        (manifest.finished_at - manifest.started_at).total_seconds()
        if manifest.finished_at and manifest.started_at
        else None
    )
    summary = BatchSummary(
        batch_id=manifest.batch_id,
        status=manifest.status,
        counts=counts,
        tokens=tokens,
        estimated_cost_usd=cost,
        chunks=chunks,
        created_at=manifest.created_at,
        started_at=manifest.started_at,
        finished_at=manifest.finished_at,
        wall_seconds=wall,
        lines_per_second=round(counts.done / wall, 3) if wall else None,
        output_key=keys.output,
        output_uri=f"s3://{store.bucket}/{keys.output}",
        source=manifest.source.describe() if manifest.source else None,
        error=manifest.error,
    )
    source = manifest.source
    if source is not None and source.kind == "s3" and source.name:
        store.write_source_results(manifest.batch_id, source.name, summary)
    if services.batch_publisher is not None:
        services.batch_publisher.publish_batch(
            finished_event_detail(summary),
            resources=[manifest.execution_arn] if manifest.execution_arn else [],
        )
    store.put_summary(summary)  # last: its presence says every file above is in place
    return summary


def finished_event_detail(summary: BatchSummary) -> dict[str, Any]:
    """``Batch Finished``: the counts and where the output is (no text)."""
    return {
        "batch_id": summary.batch_id,
        "status": summary.status,
        "counts": summary.counts.model_dump(),
        "tokens": summary.tokens.model_dump(),
        "estimated_cost_usd": summary.estimated_cost_usd,
        "output": {"key": summary.output_key, "uri": summary.output_uri},
        "summary_key": f"{BatchKeys(summary.batch_id).summary}",
        "error": summary.error,
    }


def write_output(
    task: BatchOutputTaskInput, services: Services, *, metrics: MetricsSink | None = None
) -> BatchOutputTaskOutput:
    """The WriteOutput task."""
    summary = finalize_batch(task, services, metrics=metrics)
    return BatchOutputTaskOutput(
        batch_id=summary.batch_id, status=summary.status, counts=summary.counts, output_key=summary.output_key
    )


# ---- cancel ----------------------------------------------------------------------------------------


def cancel_batch(batch_id: str, services: Services, *, as_owner: str | None = None) -> tuple[BatchView, bool]:
    """Stop the batch: every running line is cancelled with its partial text kept, lines not started
    are reported cancelled, the output is written. Returns the view and whether this call cancelled it."""
    store = batch_store(services)
    manifest, etag = find_batch(batch_id, services, as_owner=as_owner)
    if manifest.terminal:
        return get_batch(batch_id, services, as_owner=as_owner), False
    for _ in range(COMMIT_ATTEMPTS):
        if manifest.terminal or manifest.cancel_requested:
            break
        manifest.cancel_requested = True
        try:
            store.put_batch(manifest, if_match=etag)
            break
        except BatchConflict:
            manifest, etag = find_batch(batch_id, services)
    if manifest.terminal:
        return get_batch(batch_id, services, as_owner=as_owner), False
    items = store.get_items(batch_id)
    _in_parallel(lambda item: _cancel_line(item, services), items)
    if manifest.execution_arn and services.batch_executions is not None:
        services.batch_executions.stop(
            manifest.execution_arn, error=CANCEL_ERROR, cause="cancelled on request"
        )
    summary = finalize_batch(BatchOutputTaskInput(batch_id=batch_id, status="cancelled"), services)
    return get_batch(batch_id, services, as_owner=as_owner), summary.status == "cancelled"


# ---- status ----------------------------------------------------------------------------------------


def line_counts(
    items: list[BatchItem], services: Services
) -> tuple[BatchCounts, BatchTokens, float | None, int]:
    """Lines by status and the tokens so far, from every line's manifest (read in parallel)."""
    manifests = _in_parallel(lambda item: services.store.find_manifest(item.job_id), items, workers=32)
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
    store = batch_store(services)
    summary = store.get_summary(batch_id) if manifest.terminal else None
    view = batch_view(manifest, summary=summary)
    if summary is None:
        counts, tokens, cost, chunks = line_counts(store.get_items(batch_id), services)
        view.counts, view.tokens, view.estimated_cost_usd, view.chunks = counts, tokens, cost, chunks
    return view


def list_batches(
    limit: int, next_token: str | None, services: Services, *, as_owner: str | None = None
) -> tuple[list[BatchView], str | None]:
    """The most recent batches, newest first (the batch workflow's executions), without line counts."""
    names, following = services.require_batch_executions().recent(limit, next_token)
    store = batch_store(services)

    def view_of(batch_id: str) -> BatchView | None:
        found = store.find_batch(batch_id)
        if found is None or not owned(found[0], as_owner):
            return None
        return batch_view(found[0])

    views = _in_parallel(view_of, names, workers=8)
    return [v for v in views if v is not None], following
