"""Use case: end a job: assemble ``output.md`` / ``reasoning.md`` from its chunks, write ``result.json``.

Run by the workflow's Finalize task (after the loop, or after a Catch) and by cancel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from .errors import bounded
from .infra_cost import record_finalize
from .job_status import incomplete_reason
from .job_store import JobKeys, assemble_chunks
from .models import (
    ChunkRecord,
    FinishReason,
    IncompleteReason,
    JobId,
    JobResult,
    JobStatus,
    Manifest,
    TerminalStatus,
    TextState,
    utcnow,
)
from .prefill import starts_over
from .reasoning import clean_reasoning
from .request import GenerationRequest
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


@dataclass(frozen=True)
class Ending:
    """How a job ends: its one terminal status, and what explains it."""

    status: TerminalStatus
    error: str | None = None  # failed: the error
    incomplete_reason: IncompleteReason | None = None  # incomplete: which rule stopped it
    detail: str | None = None  # incomplete: what was seen, in one line


def final_status(
    task: FinalizeTaskInput, manifest: Manifest, request: GenerationRequest | None = None
) -> Ending:
    """The job's one terminal status (``job_status.py`` says what each means)."""
    if manifest.status == "cancelled" or task.status == "cancelled":
        return Ending("cancelled")
    if task.status == "context_exhausted" or manifest.stop_reason == "context_exhausted":
        return Ending("context_exhausted")
    if task.status == "failed" or task.error:
        return Ending("failed", error=describe_error(task.error))
    reason = incomplete_reason(manifest.stop_reason)
    if reason is not None:
        detail = manifest.stop_detail or _incomplete_detail(manifest, request)
        return Ending("incomplete", incomplete_reason=reason, detail=detail)
    return Ending("succeeded")


def _incomplete_detail(manifest: Manifest, request: GenerationRequest | None) -> str:
    """What stopped the job, when the chunk that stopped it did not say (a budget, mostly)."""
    tokens = f"{manifest.completion_tokens_total:,} tokens generated"
    stop = manifest.stop_reason
    if stop == "max_output_tokens":
        limit = f" ({request.max_output_tokens:,} tokens)" if request and request.max_output_tokens else ""
        return f"the max_output_tokens budget{limit} was reached: {tokens}; the text is not finished"
    if stop == "max_chunks":
        limit = f" ({request.max_chunks:,} chunks)" if request else ""
        return f"the max_chunks budget{limit} was reached: {tokens}; the text is not finished"
    if stop == "max_cost":
        limit = f" (${request.max_cost_usd})" if request and request.max_cost_usd else ""
        cost = f"${manifest.estimated_cost_usd}" if manifest.estimated_cost_usd is not None else "unknown"
        return f"the max_cost_usd budget{limit} was reached: {cost} estimated; the text is not finished"
    if stop == "reasoning_loop":
        return (
            f"the model produced only reasoning for {manifest.reasoning_only_streak} chunks in a row; "
            "stopped so it would not run forever"
        )
    if stop == "repetition":
        return "the model kept repeating one passage; stopped so it would not run forever"
    return "the continuation added no text; stopped so it would not loop"


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
    ending = final_status(task, manifest, request)
    if ending.status == "cancelled":
        kept = _keep_chunk_in_flight(services, manifest, etag, chunks, request)
        if kept is not None:
            chunks.append(kept)
    answer, reasoning = _final_text(manifest, chunks, request.answer_start())
    manifest.record_end(
        ending.status,
        now=utcnow(),
        error=ending.error,
        incomplete_reason=ending.incomplete_reason,
        detail=ending.detail,
        context_length=request.context_length or services.settings.context_length,
        # the final output is cleaned (no blank lines after a think block): lengths now describe it
        answer_chars=len(answer),
        reasoning_chars=len(reasoning),
    )
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


def _keep_chunk_in_flight(
    services: Services, manifest: Manifest, etag: str, chunks: list[ChunkRecord], request: GenerationRequest
) -> ChunkRecord | None:
    """Cancel: the chunk that was generating is kept from its last draft checkpoint, as a chunk of
    the job (``cancelled_draft``), committed with the cancel. Those tokens were generated and paid
    for. Only a draft written against this very manifest version counts (the fence of attempts);
    one that shows a server starting its answer over is not a continuation and is left out. If the
    attempt stored its finished chunk first, that record is the one kept (``put_chunk``)."""
    store = services.store
    draft = store.get_draft(manifest.job_id, manifest.chunks)
    if draft is None or draft.base_etag != etag or not (draft.answer_text or draft.reasoning_text):
        return None
    answer, reasoning = assemble_chunks(chunks, answer_start=request.answer_start())
    if draft.check_start and starts_over(
        answer_so_far=answer,
        reasoning_so_far=reasoning,
        raw_content=draft.content,
        raw_reasoning=draft.reasoning,
        content=draft.answer_text,
        reasoning=draft.reasoning_text,
        completion_tokens=draft.tokens,
        echo_seen=manifest.prefill_echo,
    ):
        return None
    chunk = store.put_chunk(
        ChunkRecord(
            job_id=manifest.job_id,
            index=manifest.chunks,
            text=draft.answer_text,
            reasoning=draft.reasoning_text,
            finish_reason="interrupted",
            max_tokens=draft.max_tokens,
            completion_tokens=draft.tokens,
            usage_estimated=True,
            model=draft.model,
            started_at=draft.started_at,
            duration_ms=max(0, int((draft.updated_at - draft.started_at).total_seconds() * 1000)),
            detail=f"cancelled while generating: kept from draft checkpoint {draft.sequence} of attempt "
            f"{draft.attempt_id} ({draft.updated_at.isoformat()}); the reply was not finished",
            prefill_style=draft.prefill_style if manifest.chunks or request.answer_start() else "none",
            draft_checkpoints=draft.sequence,
            from_draft=True,
            cancelled_draft=True,
            base_etag=etag,
            format_after=manifest.reasoning_format,
            phase_after=manifest.reasoning_phase,
        )
    )
    manifest.record_chunk(
        chunk,
        TextState.after_chunk(chunk, answer_before=answer, reasoning_before=reasoning),
        learned_context=None,
        max_tokens_per_request=manifest.max_tokens_per_request
        or request.max_tokens_per_request
        or services.settings.max_tokens_per_request,
    )
    return chunk


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
        store.results.write_job(manifest.source.name, answer=answer, result=result)
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
