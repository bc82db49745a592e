"""End a batch: the WriteOutput task of the batch workflow, and the end of a cancel.

Commit the batch's terminal status, end any line still open, write ``output.jsonl`` in input order
(``output.py``: one line per input line), ``summary.json``, the drop folder's ``results/{name}.*``
and the "Batch Finished" event.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import BatchConflict
from ..finalize import describe_error
from ..models import utcnow
from ..services import MetricsSink, Services
from .lines import cancel_line, fail_line, in_parallel, read_line, windows
from .models import (
    BatchCounts,
    BatchItem,
    BatchManifest,
    BatchStatus,
    BatchSummary,
    BatchTerminalStatus,
    BatchTokens,
)
from .output import encode_line, not_started_status, output_line
from .status import commit_batch, find_batch
from .store import BatchKeys

OUTPUT_WINDOW = 64  # lines read ahead while the output is written in order


class BatchOutputTaskInput(BaseModel):
    """The WriteOutput task's input: the whole state (a Catch leaves ``status`` and ``error``)."""

    model_config = ConfigDict(extra="ignore")
    batch_id: str = Field(min_length=1, max_length=80)
    status: Literal["failed", "cancelled"] | None = None
    error: dict[str, Any] | None = None


class BatchOutputTaskOutput(BaseModel):
    batch_id: str
    status: BatchStatus
    counts: BatchCounts
    output_key: str


def final_batch_status(task: BatchOutputTaskInput, manifest: BatchManifest) -> BatchTerminalStatus:
    if manifest.cancel_requested or task.status == "cancelled":
        return "cancelled"
    if task.status == "failed" or task.error:
        return "failed"
    return "completed"


def _commit_end(task: BatchOutputTaskInput, services: Services) -> BatchManifest:
    """batch.json: its terminal status (If-Match; a batch that has ended keeps its own)."""

    def end(manifest: BatchManifest) -> bool:
        if manifest.terminal:
            return False
        manifest.status = final_batch_status(task, manifest)
        manifest.finished_at = utcnow()
        manifest.error = describe_error(task.error) or manifest.error
        return True

    manifest, settled = commit_batch(find_batch(task.batch_id, services), services, end)
    if not settled:
        raise BatchConflict(f"batch {task.batch_id}: batch.json keeps changing under us")
    return manifest


def finalize_batch(
    task: BatchOutputTaskInput, services: Services, *, metrics: MetricsSink | None = None
) -> BatchSummary:
    """End the batch: commit its status, end any open line, then write every file derived from the lines.

    Like a job's finalize: the commit (``If-Match``) comes first and the files are derived from the
    lines alone, so of a cancel and the workflow's WriteOutput racing, both write the same output;
    ``summary.json`` is written last and, once there, is returned as it is (the event is not sent again).
    """
    manifest = _commit_end(task, services)
    existing = services.batches.get_summary(task.batch_id)
    if existing is not None:
        return existing
    items = services.batches.get_items(task.batch_id)
    if manifest.status == "cancelled":
        in_parallel(lambda item: cancel_line(item, services), items)
    else:
        reason = f"the batch ended ({manifest.status}) before this line did"
        in_parallel(lambda item: fail_line(item, services, reason), items)
    summary = _write_outputs(manifest, items, services)
    if metrics is not None:
        metrics.add_metric(name=f"Batches{manifest.status.title()}", unit="Count", value=1)
        metrics.add_metric(name="BatchLinesFailed", unit="Count", value=summary.counts.failed)
    return summary


class _Totals:
    """The counts, tokens, cost and chunks of the lines, added up while the output is written."""

    def __init__(self) -> None:
        self.counts = BatchCounts()
        self.tokens = BatchTokens()
        self.cost: float | None = None
        self.chunks = 0


def _write_lines(manifest: BatchManifest, items: list[BatchItem], services: Services) -> _Totals:
    """output.jsonl in input order, in bounded memory (``OUTPUT_WINDOW`` lines read ahead)."""
    totals = _Totals()
    writer = services.batches.output_writer(manifest.batch_id)
    batch_failed = manifest.status == "failed"
    try:
        for window in windows(items, OUTPUT_WINDOW):
            read = in_parallel(lambda item: read_line(item, services), window)
            for item, (job, result, text, reasoning) in zip(window, read, strict=True):
                totals.counts.add(result.status if result else not_started_status(job, batch_failed))
                if result is not None:
                    totals.tokens.prompt += result.prompt_tokens_total
                    totals.tokens.output += result.output_tokens
                    totals.tokens.cached += result.cached_tokens
                    totals.chunks += result.chunks
                    if result.estimated_cost_usd is not None:
                        totals.cost = round((totals.cost or 0.0) + result.estimated_cost_usd, 8)
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
    return totals


def _write_outputs(manifest: BatchManifest, items: list[BatchItem], services: Services) -> BatchSummary:
    store = services.batches
    keys = BatchKeys(manifest.batch_id)
    totals = _write_lines(manifest, items, services)
    wall = (
        (manifest.finished_at - manifest.started_at).total_seconds()
        if manifest.finished_at and manifest.started_at
        else None
    )
    summary = BatchSummary(
        batch_id=manifest.batch_id,
        status=manifest.status,
        counts=totals.counts,
        tokens=totals.tokens,
        estimated_cost_usd=totals.cost,
        chunks=totals.chunks,
        created_at=manifest.created_at,
        started_at=manifest.started_at,
        finished_at=manifest.finished_at,
        wall_seconds=wall,
        lines_per_second=round(totals.counts.done / wall, 3) if wall else None,
        output_key=keys.output,
        output_uri=f"s3://{store.bucket}/{keys.output}",
        source=manifest.source.describe() if manifest.source else None,
        error=manifest.error,
    )
    source = manifest.source
    if source is not None and source.kind == "s3" and source.name:
        store.results.write_batch(source.name, output_key=keys.output, summary=summary)
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
