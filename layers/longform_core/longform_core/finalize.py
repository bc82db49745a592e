"""Use case: end a job: assemble ``output.md`` / ``reasoning.md`` from its chunks, write ``result.json``.

Run by the workflow's Finalize task (after the loop, or after a Catch) and by cancel.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from .job_store import JobKeys, assemble_chunks
from .models import FinishReason, JobId, JobResult, JobStatus, Manifest, TerminalStatus, utcnow
from .reasoning import clean_reasoning
from .services import MetricsSink, Services

ERROR_TEXT_MAX = 2000


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
    """Assemble the output from the chunks and write ``result.json``; commit the terminal manifest.

    Returns the manifest as committed and the result. With ``unless_ended`` a job that has already
    ended is left as it is (and returned as it is).
    """
    store = services.store
    manifest, etag = store.get_manifest(task.job_id)
    if unless_ended and manifest.terminal:
        return manifest, store.get_result(task.job_id)
    request = store.get_request(task.job_id)
    chunks = store.read_chunks(manifest)  # read once: the text and the durations
    answer, raw_reasoning = assemble_chunks(chunks, answer_start=request.answer_start())
    if manifest.held_text:  # the job ended (budget, error) with a partial tag held back: keep it
        if manifest.reasoning_phase == "reasoning":
            raw_reasoning += manifest.held_text
        else:
            answer += manifest.held_text
    reasoning = clean_reasoning(raw_reasoning)  # the answer is kept clean chunk by chunk

    status, error = final_status(task, manifest)
    keys = JobKeys(task.job_id)
    finished_at = utcnow()
    result = JobResult.from_manifest(
        manifest,
        chunks,
        status=status,
        error=error,
        context_length=manifest.context_length or request.context_length or services.settings.context_length,
        output_key=keys.output,
        reasoning_key=keys.reasoning if reasoning else None,
        output_chars=len(answer),
        reasoning_chars=len(reasoning),
        finished_at=finished_at,
    )
    store.write_final(task.job_id, answer=answer, reasoning=reasoning or None, result=result)
    if manifest.source is not None:
        store.write_source_results(manifest.source, answer=answer, result=result)
    manifest.status = status
    manifest.finished_at = finished_at
    manifest.error = result.error
    if manifest.stop_reason is None:
        manifest.stop_reason = result.stop_reason
    # the final output is cleaned (no blank lines after a think block): lengths now describe it
    manifest.answer_chars = len(answer)
    manifest.reasoning_chars = len(reasoning)
    store.put_manifest(manifest, if_match=etag)
    if services.publisher is not None:
        services.publisher.publish(result)
    if metrics is not None:
        metrics.add_metric(name=f"Jobs{status.title().replace('_', '')}", unit="Count", value=1)
    return manifest, result


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
    return f"{name}: {cause}"[:ERROR_TEXT_MAX]
