"""Committing a chunk: the reply filed and guarded, stored as its record, the manifest moved on
(``Manifest`` methods, on the attempt's own copy), then the running text written.

The order is the fence between attempts: the record is stored first (an attempt of this chunk
that stored its record earlier wins, and its record is the one committed), the manifest is put
against the version the attempt read (a cancel or another attempt that committed first makes it
fail), and only then is ``output.md`` written.
"""

from __future__ import annotations

from pydantic import BaseModel

from .billed import records_written
from .chunk_filing import Filed, Guarded, file_reply, loop_guards, repeated_again
from .chunk_job import ChunkJob, Reply
from .continuation import chunk_finish, job_budget, next_step
from .errors import ProviderUnavailable
from .infra_cost import InfraPrices, record_chunk
from .models import CONTINUE_FINISHES, ChunkRecord, FinishReason, TextState
from .services import MetricsSink, Services


class ChunkTaskOutput(BaseModel):
    """What GenerateChunk returns to the state machine (``$.chunk``): small, no text."""

    job_id: str
    chunk_index: int
    finish_reason: FinishReason
    chunks: int
    output_tokens: int
    replayed: bool = False


def commit(services: Services, job: ChunkJob, reply: Reply, metrics: MetricsSink | None) -> ChunkTaskOutput:
    """Store the chunk, commit the manifest, then write the running text."""
    settings, store, outcome = services.settings, services.store, reply.outcome
    finish = chunk_finish(outcome.finish_reason, outcome.ended_by)
    if not outcome.has_text and finish == "length":
        # tokens counted, no text added: no progress, not an outage; another round would say the same
        finish = "no_progress"
    elif not outcome.has_text and finish != "stop":
        # (a "stop" that adds nothing is a normal end: the answer was already complete)
        raise ProviderUnavailable("the provider finished without producing any text")
    filed = file_reply(
        job,
        reply.rung,
        reply.trimmed,
        outcome.content,
        outcome.reasoning,
        sent_prefill=reply.sent_prefill,
        final=finish not in CONTINUE_FINISHES,
    )
    if finish == "stop" and reply.fresh_turn and repeated_again(job, reply, filed):
        finish = "length"  # asked twice and it only repeated the answer: no end the model reached
    tokens = (outcome.usage.completion_tokens if outcome.usage else 0) or outcome.deltas
    guarded = loop_guards(
        settings,
        job,
        filed,
        finish,
        fresh_turn=reply.fresh_turn,
        tokens=tokens,
        raw_chars=len(outcome.content),
    )
    # the fence: an attempt of this chunk that stored its record first (a retry overlapping a
    # stale attempt, or an attempt that died before its commit) wins; its record is the one
    # committed, and this attempt's own text is dropped, so the stored chunk is the committed one
    chunk = store.put_chunk(
        chunk_record(job, reply, filed, guarded, billed_records=records_written(services))
    )
    manifest = job.next_manifest()
    if reply.style_source is not None:
        manifest.record_style_source(reply.style_source)
    record_chunk(
        manifest.infra,
        chunk,
        memory_mb=InfraPrices.from_env().chunk_memory_mb,
        style_known=manifest.prefill_style not in (None, "none"),
        style_source=manifest.prefill_style_source,
    )
    manifest.record_chunk(
        chunk,
        TextState.after_chunk(chunk, answer_before=job.answer_so_far, reasoning_before=job.reasoning_so_far),
        learned_context=reply.learned_context,
        max_tokens_per_request=job.request.max_tokens_per_request or settings.max_tokens_per_request,
    )
    budget = job_budget(job.request, settings, manifest)
    reported, stop_reason = next_step(
        chunk.finish_reason, manifest, budget, max_reasoning_only_chunks=settings.max_reasoning_only_chunks
    )
    manifest.record_outcome(reported, stop_reason, detail=guarded.detail)
    # the commit. Only a committed chunk reaches output.md: a chunk that loses the race with a
    # cancel (which finalizes the job) fails here and writes nothing more. A crash between the
    # commit and the write leaves output.md short, which the next reader rebuilds from the chunks.
    store.put_manifest(manifest, if_match=job.etag)
    reasoning = job.reasoning_so_far + chunk.reasoning
    store.write_running_text(
        manifest.job_id, answer=job.answer_so_far + chunk.text, reasoning=reasoning if reasoning else None
    )
    if metrics is not None:
        _count(metrics, chunk)
    return ChunkTaskOutput(
        job_id=manifest.job_id,
        chunk_index=chunk.index,
        finish_reason=reported,
        chunks=manifest.chunks,
        output_tokens=manifest.completion_tokens_total,
    )


def chunk_record(
    job: ChunkJob, reply: Reply, filed: Filed, guarded: Guarded, *, billed_records: int = 0
) -> ChunkRecord:
    """The record of the chunk this reply makes: its text after the guards, its usage, how it was
    asked (style, ladder, seam), and the fence (the manifest version it continues, the text state after)."""
    outcome, usage, text, seam = reply.outcome, reply.outcome.usage, filed.text, filed.seam
    return ChunkRecord(
        job_id=job.manifest.job_id,
        index=job.manifest.chunks,
        text=guarded.answer,
        text_lead=text.lead if guarded.answer or not job.answer_so_far else "",
        reasoning=filed.reasoning,
        finish_reason=guarded.finish,
        provider_finish_reason=outcome.finish_reason,
        max_tokens=reply.max_tokens,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage and usage.completion_tokens else outcome.deltas,
        cached_tokens=usage.cached_tokens if usage else 0,
        estimated_cost_usd=usage.estimated_cost if usage else None,
        usage_estimated=usage is None,
        completion_counted=usage is not None and not usage.completion_tokens,
        model=outcome.model,
        started_at=reply.started_at,
        duration_ms=reply.duration_ms,
        ttft_ms=int(outcome.ttft_seconds * 1000) if outcome.ttft_seconds is not None else None,
        attempts=outcome.attempts,
        context_retries=reply.context_retries,
        detail=outcome.detail,
        streamed=outcome.streamed,
        echo=reply.echo.verdict,
        echo_stripped_chars=reply.echo.stripped_chars,
        prefill_style=reply.rung.style if reply.sent_prefill else "none",
        prefill_ladder=list(reply.steps),
        prefill_trimmed_chars=len(reply.trimmed),
        discarded_completion_tokens=reply.discarded_tokens,
        billed_request=outcome.billed_request,
        billed_records=billed_records,
        seam_overlap_chars=seam.overlap_chars,
        seam_preamble=seam.preamble,
        seam_whitespace=seam.whitespace,
        seam_held=seam.held,
        repeat_dropped_chars=guarded.repeat_dropped,
        draft_checkpoints=reply.drafts_written,
        from_draft=reply.from_draft,
        lone_surrogates=outcome.lone_surrogates,
        base_etag=job.etag,
        format_after=text.reasoning_format,
        phase_after=text.phase,
        held_after=text.held,
    )


def _count(metrics: MetricsSink, chunk: ChunkRecord) -> None:
    metrics.add_metric(name="ChunksGenerated", unit="Count", value=1)
    metrics.add_metric(name="OutputTokens", unit="Count", value=chunk.completion_tokens)
    metrics.add_metric(name="ChunkDurationMs", unit="Milliseconds", value=chunk.duration_ms)
    if chunk.context_retries:
        metrics.add_metric(name="ContextRetries", unit="Count", value=chunk.context_retries)
    if chunk.finish_reason in ("deadline", "interrupted"):
        metrics.add_metric(name=f"Chunks{chunk.finish_reason.capitalize()}", unit="Count", value=1)
