"""The Step Functions task entry points: generate one chunk, finalize a job.

Handlers in ``functions/*/app.py`` are thin: Powertools decorators and one call into here.
Inputs and outputs are small pydantic models: text never travels through the state machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from .config import Settings
from .continuation import (
    build_body,
    chunk_deadline,
    chunk_finish,
    estimate_prompt_tokens,
    job_budget,
    next_step,
    output_budget_left,
    plan_max_tokens,
    shrink_after_context_error,
)
from .echo import EchoResult, SentPrefill, strip_echo
from .errors import ContextExhausted, ContextWindowExceeded, JobStateInvalid, ProviderUnavailable
from .job_store import (
    CONTINUE_FINISHES,
    ChunkRecord,
    JobKeys,
    JobResult,
    JobStatus,
    JobStore,
    Manifest,
    assemble_chunks,
    utcnow,
)
from .provider import StreamOutcome
from .reasoning import ThinkTagSplitter, build_prefill, clean_reasoning
from .request import GenerationRequest

# context-window 400s one chunk may answer by shrinking: with numbers one or two are enough; a
# wording without numbers is answered by halving, which needs up to log2(cap) tries
MAX_CONTEXT_RETRIES = 24


class StreamingProvider(Protocol):
    def chat(self, body: dict[str, Any], *, deadline: float, stream: bool = True) -> StreamOutcome: ...


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


class ChunkTaskInput(BaseModel):
    """What the state machine passes to GenerateChunk: only the job reference."""

    model_config = ConfigDict(extra="ignore")
    job_id: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_-]+$")


class ChunkTaskOutput(BaseModel):
    """What GenerateChunk returns to the state machine (``$.chunk``): small, no text."""

    job_id: str
    chunk_index: int
    finish_reason: str  # stop | length | deadline | interrupted | budget | reasoning_loop | ...
    chunks: int
    output_tokens: int
    replayed: bool = False


class FinalizeTaskInput(BaseModel):
    """The whole state at Finalize: the job reference plus whatever the loop left there."""

    model_config = ConfigDict(extra="ignore")
    job_id: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_-]+$")
    status: str | None = None  # set by the ContextExhausted / ChunkFailed Pass states
    error: dict[str, Any] | None = None  # {"Error": ..., "Cause": ...} from a Catch
    chunk: dict[str, Any] | None = None


class FinalizeTaskOutput(BaseModel):
    job_id: str
    status: JobStatus
    finish_reason: str | None
    chunks: int
    output_tokens: int
    output_key: str


class Publisher(Protocol):
    def publish(self, result: JobResult) -> None: ...


@dataclass
class Services:
    """Everything the entry points need, created once per container and passed in."""

    settings: Settings
    store: JobStore
    provider: StreamingProvider
    clock: Callable[[], float] = time.monotonic
    publisher: Publisher | None = None  # the completion event (finalize)
    sfn: Any = None  # Step Functions client (submit, cancel)


def generate_chunk(
    task: ChunkTaskInput,
    services: Services,
    *,
    remaining_ms: Callable[[], int],
    metrics: MetricsSink | None = None,
) -> ChunkTaskOutput:
    """Generate, store and commit the next continuation chunk of a job."""
    settings, store = services.settings, services.store
    request = store.get_request(task.job_id)
    manifest, etag = store.get_manifest(task.job_id)

    if manifest.terminal:
        raise JobStateInvalid(f"job {task.job_id} already ended ({manifest.status})")
    if manifest.stop_reason == "context_exhausted":
        raise ContextExhausted(f"job {task.job_id}: the context window was already exhausted")
    if manifest.last_finish_reason is not None and manifest.stop_reason is not None:
        # a retry after the commit of the job's last chunk: report it again, do nothing
        return _replay(manifest)

    budget = job_budget(request, settings, manifest)
    answer_start = request.answer_start()
    answer_so_far, reasoning_so_far = store.read_running_text(manifest, answer_start=answer_start)
    if manifest.chunks == 0 and not answer_so_far and answer_start:
        answer_so_far = answer_start
    in_reasoning = manifest.reasoning_phase == "reasoning"
    # the model's own text: the blank lines after its think block are kept out of output.md
    # (answer_lead) but belong to the prefill
    prefill_answer = manifest.answer_lead + answer_so_far + ("" if in_reasoning else manifest.held_text)
    prefill_reasoning = reasoning_so_far + (manifest.held_text if in_reasoning else "")
    prefill = build_prefill(
        answer=prefill_answer,
        reasoning=prefill_reasoning,
        reasoning_format=manifest.reasoning_format,
        reasoning_open=in_reasoning,
    )
    prompt_estimate, exact = estimate_prompt_tokens(manifest, request, prefill)
    max_tokens = plan_max_tokens(budget, manifest, prompt_tokens=prompt_estimate, prompt_exact=exact)
    left = output_budget_left(budget, manifest)
    if left is not None and left <= 0:
        return _commit_stop_without_chunk(store, manifest, etag, "max_output_tokens")
    if max_tokens < 1:
        _record_context(store, manifest, etag, budget.context_length)
        raise ContextExhausted(
            f"job {task.job_id}: no room left in the {budget.context_length}-token context "
            f"(prompt ~{prompt_estimate} tokens)"
        )

    model = request.model or settings.default_model
    deadline = chunk_deadline(services.clock(), remaining_ms(), settings.deadline_margin_seconds)
    started_at = utcnow()
    started = services.clock()
    context_retries = 0
    learned_context = manifest.context_length
    stream = request.stream if request.stream is not None else settings.provider_stream
    while True:
        body = build_body(
            request, model=model, prefill=prefill, max_tokens=max_tokens, prefill_style=settings.prefill_style
        )
        try:
            outcome = services.provider.chat(body, deadline=deadline, stream=stream)
            break
        except ContextWindowExceeded as exc:
            context_retries += 1
            if exc.limit.context_length:
                learned_context = exc.limit.context_length
            shrunk = shrink_after_context_error(
                exc.limit,
                sent_max_tokens=max_tokens,
                estimated_prompt=prompt_estimate if exact else None,
            )
            if shrunk < 1 or context_retries > MAX_CONTEXT_RETRIES:
                _record_context(store, manifest, etag, learned_context)
                raise ContextExhausted(
                    f"job {task.job_id}: nothing more fits in the context window: {exc}"
                ) from exc
            max_tokens = shrunk

    duration_ms = int((services.clock() - started) * 1000)
    echo = strip_echo(
        SentPrefill(prefill, reasoning=prefill_reasoning, answer=prefill_answer),
        content=outcome.content,
        reasoning=outcome.reasoning,
        first_delta=outcome.first_delta,
        echo_seen=manifest.prefill_echo,
    )
    if echo.stripped:
        outcome = replace(outcome, content=echo.content, reasoning=echo.reasoning)
    no_new_tokens = outcome.usage is None or not outcome.usage.completion_tokens
    if (
        not outcome.has_text
        and no_new_tokens
        and chunk_finish(outcome.finish_reason, outcome.ended_by) == "length"
    ):
        # cut for length before a single new token although max_tokens >= 1: the only limit left
        # is the context (llama.cpp stops a full context this way, without an error)
        _record_context(store, manifest, etag, learned_context)
        raise ContextExhausted(
            f"job {task.job_id}: the provider stopped for length without adding text: the context is full"
        )
    return _commit_chunk(
        services,
        request=request,
        manifest=manifest,
        etag=etag,
        outcome=outcome,
        answer_so_far=answer_so_far,
        reasoning_so_far=reasoning_so_far,
        max_tokens=max_tokens,
        started_at=started_at,
        duration_ms=duration_ms,
        context_retries=context_retries,
        learned_context=learned_context,
        echo=echo,
        metrics=metrics,
    )


def _replay(manifest: Manifest) -> ChunkTaskOutput:
    return ChunkTaskOutput(
        job_id=manifest.job_id,
        chunk_index=max(0, manifest.chunks - 1),
        finish_reason=manifest.last_finish_reason or "stop",
        chunks=manifest.chunks,
        output_tokens=manifest.completion_tokens_total,
        replayed=True,
    )


def _record_context(store: JobStore, manifest: Manifest, etag: str, context_length: int | None) -> None:
    manifest.stop_reason = "context_exhausted"
    if context_length:
        manifest.context_length = context_length
    store.put_manifest(manifest, if_match=etag)


def _commit_stop_without_chunk(
    store: JobStore, manifest: Manifest, etag: str, reason: str
) -> ChunkTaskOutput:
    manifest.last_finish_reason = "budget"
    manifest.stop_reason = reason
    store.put_manifest(manifest, if_match=etag)
    return _replay(manifest)


def _commit_chunk(
    services: Services,
    *,
    request: GenerationRequest,
    manifest: Manifest,
    etag: str,
    outcome: StreamOutcome,
    answer_so_far: str,
    reasoning_so_far: str,
    max_tokens: int,
    started_at: datetime,
    duration_ms: int,
    context_retries: int,
    learned_context: int | None,
    echo: EchoResult,
    metrics: MetricsSink | None,
) -> ChunkTaskOutput:
    settings, store = services.settings, services.store
    finish = chunk_finish(outcome.finish_reason, outcome.ended_by)
    if not outcome.has_text and finish != "stop":
        # (a "stop" that adds nothing is a normal end: the answer was already complete)
        raise ProviderUnavailable("the provider finished without producing any text")

    # -- split reasoning from the answer, carrying the phase over from the previous chunk -------
    phase0 = manifest.reasoning_phase
    field_format = manifest.reasoning_format == "field" or bool(outcome.reasoning)
    splitter = ThinkTagSplitter("answer" if field_format else phase0, held=manifest.held_text)
    splitter.feed(outcome.content)
    split = splitter.finish(final=finish not in CONTINUE_FINISHES)
    new_answer = split.answer
    new_reasoning = outcome.reasoning + split.reasoning
    if field_format:
        fmt = "field"
        if new_answer or phase0 == "answer":
            phase = "answer"
        elif new_reasoning:
            phase = "reasoning"
        else:
            phase = phase0
    else:
        fmt = "inline" if (splitter.saw_tag or manifest.reasoning_format == "inline") else "none"
        phase = splitter.phase

    # output.md is the clean answer at all times: the blank lines between a think block and the
    # first answer text are kept apart (manifest.answer_lead), so the running output and the final
    # one are the same text and a late writer can never put a different version in place
    lead = ""
    if new_answer and not answer_so_far and (reasoning_so_far or new_reasoning):
        clean = new_answer.lstrip("\r\n")
        lead, new_answer = new_answer[: len(new_answer) - len(clean)], clean

    usage = outcome.usage
    prompt_tokens = usage.prompt_tokens if usage else 0
    completion_tokens = usage.completion_tokens if usage and usage.completion_tokens else outcome.deltas
    index = manifest.chunks

    chunk = ChunkRecord(
        job_id=manifest.job_id,
        index=index,
        text=new_answer,
        text_lead=lead,
        reasoning=new_reasoning,
        finish_reason=finish,
        provider_finish_reason=outcome.finish_reason,
        max_tokens=max_tokens,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=usage.cached_tokens if usage else 0,
        estimated_cost_usd=usage.estimated_cost if usage else None,
        usage_estimated=usage is None,
        model=outcome.model,
        started_at=started_at,
        duration_ms=duration_ms,
        ttft_ms=int(outcome.ttft_seconds * 1000) if outcome.ttft_seconds is not None else None,
        attempts=outcome.attempts,
        context_retries=context_retries,
        detail=outcome.detail,
        streamed=outcome.streamed,
        echo=echo.verdict,
        echo_stripped_chars=echo.stripped_chars,
    )
    store.put_chunk(chunk)
    answer = answer_so_far + new_answer
    reasoning = reasoning_so_far + new_reasoning

    # -- commit: the manifest is the source of truth -----------------------------------------
    if manifest.started_at is None:
        manifest.started_at = started_at
    manifest.status = "running"
    manifest.chunks = index + 1
    manifest.answer_chars = len(answer)
    manifest.reasoning_chars = len(reasoning)
    manifest.reasoning_format = fmt  # type: ignore[assignment]
    manifest.reasoning_phase = phase  # type: ignore[assignment]
    manifest.held_text = split.held
    manifest.prefill_echo = manifest.prefill_echo or echo.stripped
    manifest.answer_lead += lead
    manifest.reasoning_only_streak = (
        manifest.reasoning_only_streak + 1 if (new_reasoning and not new_answer) else 0
    )
    if usage is not None and usage.prompt_tokens:
        if manifest.first_prompt_tokens is None:
            # the prompt of the job's first request; when the first chunks were cut and carried no
            # usage, derive it from this one, whose prompt holds the output so far
            manifest.first_prompt_tokens = max(0, usage.prompt_tokens - manifest.completion_tokens_total)
        manifest.last_prompt_tokens = usage.prompt_tokens
    elif manifest.last_prompt_tokens is not None and manifest.last_completion_tokens is not None:
        manifest.last_prompt_tokens += manifest.last_completion_tokens  # no usage: keep the running sum
    manifest.last_completion_tokens = completion_tokens
    manifest.prompt_tokens_total += prompt_tokens
    manifest.completion_tokens_total += completion_tokens
    manifest.cached_tokens_total += chunk.cached_tokens
    if chunk.estimated_cost_usd is not None:
        manifest.estimated_cost_usd = round(
            (manifest.estimated_cost_usd or 0.0) + chunk.estimated_cost_usd, 8
        )
    if learned_context:
        manifest.context_length = learned_context
    manifest.max_tokens_per_request = request.max_tokens_per_request or settings.max_tokens_per_request
    manifest.context_retries_total += context_retries
    manifest.provider_attempts_total += outcome.attempts

    budget = job_budget(request, settings, manifest)
    reported, stop_reason = next_step(
        finish, manifest, budget, max_reasoning_only_chunks=settings.max_reasoning_only_chunks
    )
    manifest.last_finish_reason = reported
    manifest.stop_reason = stop_reason
    # the commit. Only a committed chunk reaches output.md: a chunk that loses the race with a
    # cancel (which finalizes the job) fails here and writes nothing more. A crash between the
    # commit and the write leaves output.md short, which the next reader rebuilds from the chunks.
    store.put_manifest(manifest, if_match=etag)
    store.write_running_text(manifest.job_id, answer=answer, reasoning=reasoning if reasoning else None)

    if metrics is not None:
        metrics.add_metric(name="ChunksGenerated", unit="Count", value=1)
        metrics.add_metric(name="OutputTokens", unit="Count", value=completion_tokens)
        metrics.add_metric(name="ChunkDurationMs", unit="Milliseconds", value=duration_ms)
        if context_retries:
            metrics.add_metric(name="ContextRetries", unit="Count", value=context_retries)
        if finish in ("deadline", "interrupted"):
            metrics.add_metric(name=f"Chunks{finish.capitalize()}", unit="Count", value=1)
    return ChunkTaskOutput(
        job_id=manifest.job_id,
        chunk_index=index,
        finish_reason=reported,
        chunks=manifest.chunks,
        output_tokens=manifest.completion_tokens_total,
    )


def finalize(
    task: FinalizeTaskInput, services: Services, *, metrics: MetricsSink | None = None
) -> FinalizeTaskOutput:
    """Assemble ``output.md`` / ``reasoning.md`` from the chunks and write ``result.json``."""
    store = services.store
    request = store.get_request(task.job_id)
    manifest, etag = store.get_manifest(task.job_id)
    answer_start = request.answer_start()
    chunks = store.read_chunks(manifest)  # read once: the text and the durations
    answer, raw_reasoning = assemble_chunks(chunks, answer_start=answer_start)
    if manifest.held_text:  # the job ended (budget, error) with a partial tag held back: keep it
        if manifest.reasoning_phase == "reasoning":
            raw_reasoning += manifest.held_text
        else:
            answer += manifest.held_text
    reasoning = clean_reasoning(raw_reasoning)  # the answer is kept clean chunk by chunk

    status: JobStatus
    error: str | None = None
    if manifest.status == "cancelled" or task.status == "cancelled":
        status = "cancelled"
    elif task.status == "context_exhausted" or manifest.stop_reason == "context_exhausted":
        status = "context_exhausted"
    elif task.status == "failed" or task.error:
        status = "failed"
        error = _describe_error(task.error)
    elif manifest.stop_reason == "reasoning_loop":
        status = "failed"
        error = (
            f"the model produced only reasoning for {manifest.reasoning_only_streak} chunks in a row; "
            "stopped so it would not run forever"
        )
    else:
        status = "succeeded"

    finished_at = utcnow()
    context_used = None
    ctx = manifest.context_length or request.context_length or services.settings.context_length
    if ctx and manifest.first_prompt_tokens:
        room = ctx - manifest.first_prompt_tokens
        context_used = round(manifest.completion_tokens_total / room, 6) if room > 0 else None
    keys = JobKeys(task.job_id)
    result = JobResult(
        job_id=task.job_id,
        status=status,
        finish_reason=manifest.last_finish_reason if status != "context_exhausted" else "context_exhausted",
        stop_reason=manifest.stop_reason if status != "failed" or manifest.stop_reason else "error",
        error=error or manifest.error,
        model=manifest.model,
        chunks=manifest.chunks,
        prompt_tokens=manifest.first_prompt_tokens,
        prompt_tokens_total=manifest.prompt_tokens_total,
        output_tokens=manifest.completion_tokens_total,
        cached_tokens=manifest.cached_tokens_total,
        estimated_cost_usd=manifest.estimated_cost_usd,
        context_length=ctx,
        context_used=context_used,
        output_key=keys.output,
        reasoning_key=keys.reasoning if reasoning else None,
        output_chars=len(answer),
        reasoning_chars=len(reasoning),
        created_at=manifest.created_at,
        started_at=manifest.started_at,
        finished_at=finished_at,
        duration_seconds=(finished_at - manifest.started_at).total_seconds() if manifest.started_at else None,
        chunk_durations_ms=[chunk.duration_ms for chunk in chunks],
        chunk_chars=[len(chunk.text) for chunk in chunks],
        execution_arn=manifest.execution_arn,
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
    return FinalizeTaskOutput(
        job_id=task.job_id,
        status=status,
        finish_reason=result.finish_reason,
        chunks=manifest.chunks,
        output_tokens=manifest.completion_tokens_total,
        output_key=keys.output,
    )


def _describe_error(error: dict[str, Any] | None) -> str | None:
    if not error:
        return None
    name = error.get("Error") or "Error"
    cause = error.get("Cause") or ""
    # Lambda errors arrive as a JSON cause {"errorMessage": ..., "errorType": ...}
    try:
        import json

        parsed = json.loads(cause)
        if isinstance(parsed, dict) and parsed.get("errorMessage"):
            cause = parsed["errorMessage"]
    except (TypeError, ValueError):
        pass
    return f"{name}: {cause}"[:2000]
