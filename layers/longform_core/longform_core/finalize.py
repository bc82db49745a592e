"""Use case: end a job: assemble ``output.md`` / ``reasoning.md`` from its chunks, write ``result.json``.

Run by the workflow's Finalize task (after the loop, or after a Catch) and by cancel.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from .errors import bounded
from .infra_cost import record_finalize
from .job_store import JobKeys, assemble_chunks
from .models import ChunkRecord, FinishReason, JobId, JobResult, JobStatus, Manifest, TerminalStatus, utcnow
from .reasoning import clean_reasoning
from .services import MetricsSink, Services


class FinalizeTaskInput(BaseModel):
    """The whole state at Finalize: the job reference plus whatever the loop left there."""

    model_config = ConfigDict(extra="ignore")
    job_id: JobId
    status: str | None = None  # set by the ContextExhausted / ChunkFailed Pass states, or cancel
    error: dict[str, Any] | None = None  # {"Error": ..., "Cause": ...} from a Catch
    chunk: dict[str, Any] | None = None


class FinalizeTaskOutput(BaseModel):
    job_id: str
    status: JobStatus
    finish_reason: FinishReason | None
    chunks: int
    output_tokens: int
    output_key: str


def final_status(task: FinalizeTaskInput, manifest: Manifest) -> tuple[TerminalStatus, str | None]:
    """The job's one terminal status (and the error that explains a failure)."""
    if manifest.status == "cancelled" or task.status == "cancelled":
        return "cancelled", None
    if task.status == "context_exhausted" or manifest.stop_reason == "context_exhausted":
        return "context_exhausted", None
    if task.status == "failed" or task.error:
        return "failed", describe_error(task.error)
    if manifest.stop_reason == "no_progress":
        return "failed", (
            "the continuation added no text (a length cut without any, or only text the answer "
            "already holds); stopped so it would not loop "
            f"(output kept: {manifest.answer_chars} characters)"
        )
    if manifest.stop_reason == "repetition":
        return "failed", (
            "the model kept repeating one passage; stopped so it would not run forever "
            f"(output kept: {manifest.answer_chars} characters)"
        )
    if manifest.stop_reason == "reasoning_loop":
        return "failed", (
            f"the model produced only reasoning for {manifest.reasoning_only_streak} chunks in a row; "
            "stopped so it would not run forever"
        )
    return "succeeded", None


def finalize(
    task: FinalizeTaskInput, services: Services, *, metrics: MetricsSink | None = None
) -> FinalizeTaskOutput:
    """The Finalize task: end the job (see :func:`finalize_job`)."""
    manifest, result = finalize_job(task, services, metrics=metrics)
    return FinalizeTaskOutput(
        job_id=task.job_id,
        status=manifest.status,
        finish_reason=result.finish_reason if result else None,
        chunks=manifest.chunks,
        output_tokens=manifest.completion_tokens_total,
        output_key=JobKeys(task.job_id).output,
    )


def finalize_job(
    task: FinalizeTaskInput,
    services: Services,
    *,
    metrics: MetricsSink | None = None,
    unless_ended: bool = False,
) -> tuple[Manifest, JobResult | None]:
    """End the job: commit its terminal manifest first, then derive every other file from it.

    The commit (``If-Match``) decides: of a finalize and a cancel racing, the loser fails there
    having written nothing, so ``result.json``, ``results/*`` and the event can never contradict
    the manifest. Everything after the commit is derived from the committed manifest and the
    chunks alone, so a run that crashed half-way and runs again writes the same bytes.

    A job that has already ended is returned as it is with ``unless_ended`` (cancel); otherwise its
    files are derived again (an earlier run may have crashed after its commit) and the event is
    published only when ``result.json`` was not there yet (it is written last).
    """
    store = services.store
    manifest, etag = store.get_manifest(task.job_id)
    if manifest.terminal:
        existing = store.get_result(task.job_id)
        if unless_ended or existing is not None:
            return manifest, existing
        return manifest, _write_outputs(manifest, services, metrics=metrics)
    request = store.get_request(task.job_id)
    chunks = store.read_chunks(manifest)  # read once: the text and the durations
    answer, reasoning = _final_text(manifest, chunks, request.answer_start())
    status, error = final_status(task, manifest)
    manifest.status = status
    manifest.finished_at = utcnow()
    manifest.error = error or manifest.error
    if manifest.stop_reason is None and status == "failed":
        manifest.stop_reason = "error"
    manifest.context_length = (
        manifest.context_length or request.context_length or services.settings.context_length
    )
    # the final output is cleaned (no blank lines after a think block): lengths now describe it
    manifest.answer_chars = len(answer)
    manifest.reasoning_chars = len(reasoning)
    record_finalize(
        manifest.infra,
        chunks=len(chunks),
        reasoning=bool(reasoning),
        source_results=manifest.source is not None,
        caught=task.status in ("context_exhausted", "failed") or bool(task.error),
    )
    store.put_manifest(manifest, if_match=etag)  # the commit: the one true status
    return manifest, _write_outputs(
        manifest, services, chunks=chunks, text=(answer, reasoning), metrics=metrics
    )


def _final_text(manifest: Manifest, chunks: list[ChunkRecord], answer_start: str) -> tuple[str, str]:
    answer, raw_reasoning = assemble_chunks(chunks, answer_start=answer_start)
    if manifest.held_text:  # the job ended (budget, error) with a partial tag held back: keep it
        if manifest.reasoning_phase == "reasoning":
            raw_reasoning += manifest.held_text
        else:
            answer += manifest.held_text
    return answer, clean_reasoning(raw_reasoning)  # the answer is kept clean chunk by chunk


def _write_outputs(
    manifest: Manifest,
    services: Services,
    *,
    chunks: list[ChunkRecord] | None = None,
    text: tuple[str, str] | None = None,
    metrics: MetricsSink | None = None,
) -> JobResult:
    """output.md, reasoning.md, results/*, the event, then result.json: all from the terminal manifest."""
    store = services.store
    if chunks is None or text is None:
        chunks = store.read_chunks(manifest)
        text = _final_text(manifest, chunks, store.get_request(manifest.job_id).answer_start())
    answer, reasoning = text
    keys = JobKeys(manifest.job_id)
    result = JobResult.from_manifest(
        manifest,
        chunks,
        output_key=keys.output,
        reasoning_key=keys.reasoning if reasoning else None,
        output_chars=len(answer),
        reasoning_chars=len(reasoning),
    )
    store.write_running_text(manifest.job_id, answer=answer, reasoning=reasoning or None)
    if manifest.source is not None:
        store.write_source_results(manifest.source, answer=answer, result=result)
    if services.publisher is not None:
        services.publisher.publish(result)
    store.put_result(result)  # last: its presence says every file above is in place
    if metrics is not None:
        metrics.add_metric(name=f"Jobs{result.status.title().replace('_', '')}", unit="Count", value=1)
    return result


def describe_error(error: dict[str, Any] | None) -> str | None:
    """``Name: message`` of a Catch's error (a Lambda error's cause is JSON with ``errorMessage``)."""
    if not error:
        return None
    name = error.get("Error") or "Error"
    cause = error.get("Cause") or ""
    try:
        parsed = json.loads(cause)
    except (TypeError, ValueError):
        parsed = None
    if isinstance(parsed, dict) and parsed.get("errorMessage"):
        cause = parsed["errorMessage"]
    return bounded(f"{name}: {cause}")
