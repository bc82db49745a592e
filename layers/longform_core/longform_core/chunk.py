"""Use case: generate, store and commit the next continuation chunk of a job (the GenerateChunk task).

Inputs and outputs are small pydantic models: text never travels through the state machine.
The steps: read the job (request, manifest, text so far) -> build the prefill and size the request
(``continuation.py``) -> ask the provider, shrinking on a context-window error -> strip a prefill
echo (``echo.py``) -> file the reply as answer and reasoning (``reasoning.py``) -> store the chunk
record, commit the manifest (``Manifest.record_chunk``), then write the running text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from .config import Settings
from .continuation import (
    Budget,
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
from .draft import Checkpointer, Draft, DraftView
from .echo import EchoResult, SentPrefill, strip_echo
from .errors import (
    ContextExhausted,
    ContextWindowExceeded,
    JobStateInvalid,
    PrefillRejected,
    ProviderUnavailable,
)
from .job_store import JobStore
from .models import (
    CONTINUE_FINISHES,
    ChunkRecord,
    FinishReason,
    JobId,
    Manifest,
    StopReason,
    TextState,
    utcnow,
)
from .prefill import LearnedStyle, Rung, StepReason, next_rung, starts_over, trim_prefill
from .provider import StreamOutcome
from .reasoning import ChunkText, build_prefill, split_chunk
from .request import GenerationRequest
from .seam import (
    MIN_REPEAT_CHARS,
    SeamResult,
    after_trimmed_prefill,
    clean_continuation,
    only_repeats,
    repetition_seen,
    undecided,
)
from .services import MetricsSink, Services

# context-window errors one chunk may answer by shrinking: with numbers one or two are enough; a
# wording without numbers is answered by halving, which needs up to log2(cap) tries
MAX_CONTEXT_RETRIES = 24


class ChunkTaskInput(BaseModel):
    """What the state machine passes to GenerateChunk: only the job reference."""

    model_config = ConfigDict(extra="ignore")
    job_id: JobId


class ChunkTaskOutput(BaseModel):
    """What GenerateChunk returns to the state machine (``$.chunk``): small, no text."""

    job_id: str
    chunk_index: int
    finish_reason: FinishReason
    chunks: int
    output_tokens: int
    replayed: bool = False


@dataclass(frozen=True)
class _Job:
    """One job as the next chunk sees it."""

    request: GenerationRequest
    manifest: Manifest
    etag: str
    answer_so_far: str
    reasoning_so_far: str
    prefill: SentPrefill


@dataclass(frozen=True)
class _Reply:
    outcome: StreamOutcome
    max_tokens: int
    context_retries: int
    learned_context: int | None
    echo: EchoResult
    started_at: datetime
    duration_ms: int
    rung: Rung
    steps: tuple[str, ...] = ()
    trimmed: str = ""  # trailing whitespace of the prefill not sent
    discarded_tokens: int = 0
    sent_prefill: bool = False
    drafts_written: int = 0
    from_draft: bool = False


def generate_chunk(
    task: ChunkTaskInput,
    services: Services,
    *,
    remaining_ms: Callable[[], int],
    metrics: MetricsSink | None = None,
) -> ChunkTaskOutput:
    """Generate, store and commit the next continuation chunk of a job."""
    store = services.store
    request = store.get_request(task.job_id)
    manifest, etag = store.get_manifest(task.job_id)
    if manifest.terminal:
        raise JobStateInvalid(f"job {task.job_id} already ended ({manifest.status})")
    if manifest.stop_reason == "context_exhausted":
        raise ContextExhausted(f"job {task.job_id}: the context window was already exhausted")
    if manifest.last_finish_reason is not None and manifest.stop_reason is not None:
        # a retry after the commit of the job's last chunk: report it again, do nothing
        return _replay(manifest)
    if manifest.mark_running(utcnow()):  # the first chunk attempt starts: the job is running
        etag = store.put_manifest(manifest, if_match=etag)
    job = _read_job(store, request, manifest, etag)
    draft = store.get_draft(task.job_id, manifest.chunks)
    if draft is not None and draft.base_etag == etag and draft.has_text:
        # an attempt of this very chunk died after a checkpoint: its text is the chunk
        resumed = _reply_from_draft(job, draft)
        if resumed is not None:
            committed = _commit(services, job, resumed, metrics)
            store.delete_draft(task.job_id, draft.index)
            return committed
    budget = job_budget(request, services.settings, manifest)
    left = output_budget_left(budget, manifest)
    if left is not None and left <= 0:
        return _commit_stop_without_chunk(store, job, "max_output_tokens")
    reply = _ask(services, job, budget, remaining_ms)
    committed = _commit(services, job, reply, metrics)
    if reply.drafts_written or draft is not None:
        store.delete_draft(task.job_id, committed.chunk_index)  # superseded by the commit
    if reply.outcome.error is not None and committed.finish_reason in CONTINUE_FINISHES:
        # the provider reported an error after this text: the text is committed, and the chunk
        # fails like a 5xx (the workflow retries it, going on from the text; out of retries: failed)
        raise ProviderUnavailable(
            f"the provider reported an error mid-reply (the {len(reply.outcome.content)} characters "
            f"before it are kept): {reply.outcome.error}"
        )
    return committed


def _read_job(store: JobStore, request: GenerationRequest, manifest: Manifest, etag: str) -> _Job:
    answer_start = request.answer_start()
    answer_so_far, reasoning_so_far = store.read_running_text(manifest, answer_start=answer_start)
    if manifest.chunks == 0 and not answer_so_far and answer_start:
        answer_so_far = answer_start
    in_reasoning = manifest.reasoning_phase == "reasoning"
    # the model's own text: the blank lines after its think block are kept out of output.md
    # (answer_lead) but belong to the prefill
    answer = manifest.answer_lead + answer_so_far + ("" if in_reasoning else manifest.held_text)
    reasoning = reasoning_so_far + (manifest.held_text if in_reasoning else "")
    text = build_prefill(
        answer=answer,
        reasoning=reasoning,
        reasoning_format=manifest.reasoning_format,
        reasoning_open=in_reasoning,
    )
    prefill = SentPrefill(text, reasoning=reasoning, answer=answer)
    return _Job(request, manifest, etag, answer_so_far, reasoning_so_far, prefill)


@dataclass(frozen=True)
class _StyleChoice:
    """The rung a chunk starts on, whether it may step down the ladder, and where it came from."""

    rung: Rung
    ladder: bool
    source: str | None  # "request", "deployment", "cache", "learned", "probe" (nothing known yet)


def _choose_style(services: Services, job: _Job, model: str) -> _StyleChoice:
    settings, request, manifest = services.settings, job.request, job.manifest
    requested = request.prefill_style or settings.prefill_style
    if requested != "auto":
        source = "request" if request.prefill_style else "deployment"
        return _StyleChoice(Rung(requested, trim=manifest.prefill_trim), False, source)
    if manifest.prefill_style is not None and manifest.prefill_style != "none":
        rung = Rung(manifest.prefill_style, trim=manifest.prefill_trim)
        return _StyleChoice(rung, True, manifest.prefill_style_source or "learned")
    if not job.prefill.text:
        return _StyleChoice(Rung("assistant"), True, None)  # no prefill: nothing to learn from
    cached = services.store.get_learned_style(settings.provider_base_url, model)
    if cached is not None and cached.fresh(utcnow(), settings.prefill_style_ttl_seconds):
        return _StyleChoice(cached.rung, True, "cache")
    return _StyleChoice(Rung("assistant"), True, "probe")


def _sent_prefill(job: _Job, rung: Rung) -> tuple[SentPrefill, str]:
    """What this rung sends as the prefill, and the trailing whitespace it leaves out."""
    if rung.style == "continue_message":
        # a finished assistant turn: the answer so far only, never the reasoning
        return SentPrefill(job.answer_so_far, answer=job.answer_so_far), ""
    prefill = job.prefill
    if not rung.trim or not prefill.text:
        return prefill, ""
    text, trimmed = trim_prefill(prefill.text)
    if not trimmed:
        return prefill, ""
    open_block = job.manifest.reasoning_phase == "reasoning"
    return (
        SentPrefill(
            text,
            reasoning=prefill.reasoning.rstrip() if open_block else prefill.reasoning,
            answer=prefill.answer if open_block else prefill.answer.rstrip(),
        ),
        trimmed,
    )


def _ask(services: Services, job: _Job, budget: Budget, remaining_ms: Callable[[], int]) -> _Reply:
    """The provider's reply to the next request: shrunk until it fits the context, and stepped
    down the prefill ladder (``prefill.py``) until the server continues the answer."""
    settings, manifest, request = services.settings, job.manifest, job.request
    prompt_estimate, exact = estimate_prompt_tokens(manifest, request, job.prefill.text)
    max_tokens = plan_max_tokens(budget, manifest, prompt_tokens=prompt_estimate, prompt_exact=exact)
    if max_tokens < 1:
        _record_context(services.store, job, budget.context_length)
        raise ContextExhausted(
            f"job {manifest.job_id}: no room left in the {budget.context_length}-token context "
            f"(prompt ~{prompt_estimate} tokens)"
        )
    model = request.model or settings.default_model
    deadline = chunk_deadline(services.clock(), remaining_ms(), settings.deadline_margin_seconds)
    started_at, started = utcnow(), services.clock()
    context_retries, learned_context = 0, manifest.context_length
    stream = request.stream if request.stream is not None else settings.provider_stream
    has_prefill = bool(job.prefill.text)
    choice = _choose_style(services, job, model)
    rung, steps, discarded, ask_again = choice.rung, list[str](), 0, False
    while True:
        sent, trimmed = _sent_prefill(job, rung)
        body = build_body(
            request,
            model=model,
            prefill=sent.text,
            max_tokens=max_tokens,
            prefill_style=rung.style,
            ask_again=ask_again,
        )
        check_start = has_prefill and choice.ladder and rung.style != "continue_message"
        checkpoints = _checkpointer(services, job, rung, sent, trimmed, max_tokens, check_start=check_start)
        try:
            outcome = services.provider.chat(body, deadline=deadline, stream=stream, on_progress=checkpoints)
        except ContextWindowExceeded as exc:
            context_retries += 1
            learned_context = exc.limit.context_length or learned_context
            max_tokens = shrink_after_context_error(
                exc.limit, sent_max_tokens=max_tokens, estimated_prompt=prompt_estimate if exact else None
            )
            if max_tokens < 1 or context_retries > MAX_CONTEXT_RETRIES:
                _record_context(services.store, job, learned_context)
                raise ContextExhausted(
                    f"job {manifest.job_id}: nothing more fits in the context window: {exc}"
                ) from exc
            continue
        except PrefillRejected as exc:
            reason: StepReason = "trailing_whitespace" if exc.reason == "trailing_whitespace" else "refused"
            step = next_rung(rung, reason, ladder=choice.ladder) if has_prefill else None
            if step is None:
                raise
            steps.append(f"{rung.describe()}:{reason}")
            rung = step
            continue
        echo = _strip_echo(job, rung, sent, outcome.content, outcome.reasoning, outcome.first_delta)
        if has_prefill and choice.ladder and rung.style != "continue_message":
            tokens = outcome.usage.completion_tokens if outcome.usage else outcome.deltas
            ignored = starts_over(
                answer_so_far=job.answer_so_far,
                reasoning_so_far=job.reasoning_so_far,
                raw_content=outcome.content,
                raw_reasoning=outcome.reasoning,
                content=echo.content,
                reasoning=echo.reasoning,
                completion_tokens=tokens or 0,
                echo_seen=manifest.prefill_echo,
                prompt_tokens=outcome.usage.prompt_tokens if outcome.usage else None,
                expected_prompt_tokens=prompt_estimate if exact else None,
            )
            step = next_rung(rung, "ignored", ladder=True) if ignored else None
            if step is not None:
                if checkpoints is not None and checkpoints.written:
                    # the server started over: what it streamed is no continuation to resume from
                    services.store.delete_draft(manifest.job_id, manifest.chunks)
                steps.append(f"{rung.describe()}:ignored")
                discarded += tokens or 0
                rung = step
                continue
        if has_prefill and not ask_again and _only_repeated(job, rung, trimmed, outcome, echo):
            # a continue-message reply that only repeated the answer: asked once more, differently
            # (then the job goes on, or stops truthfully: no_progress)
            if checkpoints is not None and checkpoints.written:
                services.store.delete_draft(manifest.job_id, manifest.chunks)
            steps.append(f"{rung.describe()}:{REPEATED}")
            discarded += (outcome.usage.completion_tokens if outcome.usage else outcome.deltas) or 0
            ask_again = True
            continue
        break
    if echo.stripped:
        outcome = replace(outcome, content=echo.content, reasoning=echo.reasoning)
    if has_prefill:
        _remember_style(services, job, model, choice, rung, [s for s in steps if not s.endswith(REPEATED)])
    duration_ms = int((services.clock() - started) * 1000)
    no_new_tokens = outcome.usage is None or not outcome.usage.completion_tokens
    finish = chunk_finish(outcome.finish_reason, outcome.ended_by)
    if not outcome.has_text and no_new_tokens and finish == "length":
        # cut for length before a single new token although max_tokens >= 1: the only limit left
        # is the context (llama.cpp stops a full context this way, without an error)
        _record_context(services.store, job, learned_context)
        raise ContextExhausted(
            f"job {manifest.job_id}: the provider stopped for length without adding text: the context is full"
        )
    return _Reply(
        outcome,
        max_tokens,
        context_retries,
        learned_context,
        echo,
        started_at,
        duration_ms,
        rung=rung,
        steps=tuple(steps),
        trimmed=trimmed,
        discarded_tokens=discarded,
        sent_prefill=has_prefill,
        drafts_written=checkpoints.written if checkpoints is not None else 0,
    )


REPEATED = "repeated"  # a prefill_ladder entry: the continue message was asked again after a repeat


def _only_repeated(job: _Job, rung: Rung, trimmed: str, outcome: StreamOutcome, echo: EchoResult) -> bool:
    """A whole continue-message reply (stop or length) that adds nothing to the answer: all of it
    a preamble, an overlap or text the answer already holds."""
    finish = chunk_finish(outcome.finish_reason, outcome.ended_by)
    if rung.style != "continue_message" or finish not in ("stop", "length") or not echo.content.strip():
        return False
    filed = _file_reply(job, rung, trimmed, echo.content, echo.reasoning, sent_prefill=True, final=True)
    return not filed.answer.strip() or only_repeats(job.answer_so_far, filed.answer, minimum=MIN_REPEAT_CHARS)


def _repeated_again(job: _Job, reply: _Reply, filed: _Filed) -> bool:
    """A continue message asked again after a repeat (``REPEATED``) that still adds nothing."""
    if not any(step.endswith(REPEATED) for step in reply.steps):
        return False
    return not filed.answer.strip() or only_repeats(job.answer_so_far, filed.answer, minimum=MIN_REPEAT_CHARS)


def _strip_echo(
    job: _Job, rung: Rung, sent: SentPrefill, content: str, reasoning: str, first_delta: str | None
) -> EchoResult:
    """The reply without an echo of the prefill it was sent (a continue-message reply is a fresh
    turn: it was sent no prefill to echo). One rule for the live reply, its drafts, and a draft
    resumed after a crash."""
    return strip_echo(
        SentPrefill("") if rung.style == "continue_message" else sent,
        content=content,
        reasoning=reasoning,
        first_delta=first_delta,
        echo_seen=job.manifest.prefill_echo,
    )


def _draft_view(job: _Job, rung: Rung, sent: SentPrefill, trimmed: str) -> DraftView:
    """The answer and reasoning a draft's raw text would be filed as (for readers of the draft):
    the echo stripped and the seam cleaned as its commit would (``_file_reply``)."""

    def view(content: str, reasoning: str, first_delta: str | None) -> tuple[str, str]:
        echo = _strip_echo(job, rung, sent, content, reasoning, first_delta)
        filed = _file_reply(
            job, rung, trimmed, echo.content, echo.reasoning, sent_prefill=bool(job.prefill.text), final=False
        )
        return filed.answer, filed.reasoning

    return view


def _checkpointer(
    services: Services,
    job: _Job,
    rung: Rung,
    sent: SentPrefill,
    trimmed: str,
    max_tokens: int,
    *,
    check_start: bool,
) -> Checkpointer | None:
    """Draft checkpoints for this request, unless they are off."""
    policy = services.settings.draft_policy
    if not policy.enabled:
        return None
    return Checkpointer(
        services.store,
        policy,
        job_id=job.manifest.job_id,
        index=job.manifest.chunks,
        base_etag=job.etag,
        prefill_style=rung.style,
        prefill_trim=rung.trim,
        check_start=check_start,
        max_tokens=max_tokens,
        view=_draft_view(job, rung, sent, trimmed),
        clock=services.clock,
    )


def _reply_from_draft(job: _Job, draft: Draft) -> _Reply | None:
    """The reply a dead attempt had streamed up to its last checkpoint, as this attempt's own: the
    prefill it sent is rebuilt from its rung (same manifest version, same text), the echo decided
    the same way, and the chunk ends ``interrupted`` so the job goes on from there. None when the
    text shows a server that ignored the prefill (the check the attempt would have made at its end)."""
    rung = Rung(draft.prefill_style, trim=draft.prefill_trim)
    sent, trimmed = _sent_prefill(job, rung)
    echo = _strip_echo(job, rung, sent, draft.content, draft.reasoning, draft.first_delta)
    if not (echo.content or echo.reasoning):
        return None  # the draft held only (part of) the prefill's echo: nothing new to resume from
    if draft.check_start and starts_over(
        answer_so_far=job.answer_so_far,
        reasoning_so_far=job.reasoning_so_far,
        raw_content=draft.content,
        raw_reasoning=draft.reasoning,
        content=echo.content,
        reasoning=echo.reasoning,
        completion_tokens=draft.tokens,
        echo_seen=job.manifest.prefill_echo,
    ):
        return None
    outcome = StreamOutcome(
        content=echo.content,
        reasoning=echo.reasoning,
        finish_reason=None,
        ended_by="interrupted",
        usage=None,
        deltas=draft.tokens,
        model=draft.model,
        attempts=1,
        ttft_seconds=None,
        detail=f"resumed from draft checkpoint {draft.sequence} of attempt {draft.attempt_id} "
        f"({draft.updated_at.isoformat()}): that attempt did not finish",
        first_delta=draft.first_delta,
    )
    return _Reply(
        outcome,
        draft.max_tokens,
        0,
        job.manifest.context_length,
        echo,
        draft.started_at,
        max(0, int((draft.updated_at - draft.started_at).total_seconds() * 1000)),
        rung=rung,
        trimmed=trimmed,
        sent_prefill=bool(job.prefill.text),
        drafts_written=draft.sequence,
        from_draft=True,
    )


def _remember_style(
    services: Services, job: _Job, model: str, choice: _StyleChoice, rung: Rung, steps: list[str]
) -> None:
    """Keep the style for the job (the manifest, committed with the chunk) and, when it was just
    learned (or changed), in the cache next to the jobs."""
    manifest = job.manifest
    if not choice.ladder:
        manifest.prefill_style_source = choice.source
        return
    if choice.source == "probe" or steps:
        manifest.prefill_style_source = "learned"
        services.store.put_learned_style(
            LearnedStyle(
                base_url=services.settings.provider_base_url,
                model=model,
                style=rung.style,
                trim_trailing_whitespace=rung.trim,
                learned_at=utcnow(),
                job_id=manifest.job_id,
                requests=len(steps) + 1,
                steps=steps,
            )
        )
    else:
        manifest.prefill_style_source = choice.source


def _replay(manifest: Manifest) -> ChunkTaskOutput:
    return ChunkTaskOutput(
        job_id=manifest.job_id,
        chunk_index=max(0, manifest.chunks - 1),
        finish_reason=manifest.last_finish_reason or "stop",
        chunks=manifest.chunks,
        output_tokens=manifest.completion_tokens_total,
        replayed=True,
    )


def _record_context(store: JobStore, job: _Job, context_length: int | None) -> None:
    manifest = job.manifest
    manifest.stop_reason = "context_exhausted"
    if context_length:
        manifest.context_length = context_length
    store.put_manifest(manifest, if_match=job.etag)


def _commit_stop_without_chunk(store: JobStore, job: _Job, reason: StopReason) -> ChunkTaskOutput:
    manifest = job.manifest
    manifest.last_finish_reason = "budget"
    manifest.stop_reason = reason
    store.put_manifest(manifest, if_match=job.etag)
    return _replay(manifest)


@dataclass(frozen=True)
class _Filed:
    """A reply filed after the text so far: split into answer and reasoning, the seam cleaned."""

    text: ChunkText
    answer: str
    reasoning: str
    seam: SeamResult


def _file_reply(
    job: _Job,
    rung: Rung,
    trimmed: str,
    content: str,
    reasoning_field: str,
    *,
    sent_prefill: bool,
    final: bool,
) -> _Filed:
    """The reply (echo already stripped) as the commit files it, and as a draft is shown."""
    manifest = job.manifest
    # a continue-message reply is a fresh assistant turn: its think block (inline or a field) is
    # filed as reasoning from the start, never pasted into the answer
    fresh_turn = sent_prefill and rung.style == "continue_message"
    text = split_chunk(
        content,
        reasoning_field,
        reasoning_format=manifest.reasoning_format,
        phase="start" if fresh_turn else manifest.reasoning_phase,
        held="" if fresh_turn else manifest.held_text,
        answer_so_far=job.answer_so_far,
        reasoning_so_far=job.reasoning_so_far,
        final=final,
    )
    new_answer, new_reasoning, seam = text.answer, text.reasoning, SeamResult(text.answer)
    if fresh_turn and job.answer_so_far and not final and undecided(job.answer_so_far, new_answer):
        seam = SeamResult("", held=new_answer)  # cut short: the next reply decides (seam.undecided)
    elif fresh_turn and job.answer_so_far:
        seam = clean_continuation(job.answer_so_far, new_answer)
    elif trimmed and manifest.reasoning_phase == "reasoning" and new_reasoning:
        fixed = after_trimmed_prefill(trimmed, new_reasoning)
        new_reasoning, seam = fixed.text, SeamResult(new_answer, whitespace=fixed.whitespace)
    elif trimmed:
        seam = after_trimmed_prefill(trimmed, new_answer)
    new_answer = seam.text
    if fresh_turn and job.reasoning_so_far and new_reasoning:
        # a fresh turn thinks again from the start: what repeats the reasoning so far is dropped
        so_far, again = job.reasoning_so_far.strip("\n"), new_reasoning.lstrip("\n")
        if so_far and again.startswith(so_far):
            new_reasoning = again[len(so_far) :]
        elif so_far and so_far.startswith(again.rstrip("\n")):
            new_reasoning = ""
    return _Filed(text, new_answer, new_reasoning, seam)


@dataclass(frozen=True)
class _Guarded:
    """A filed reply after the loop guards: the answer text it adds, and the finish they decided."""

    answer: str
    repeat_dropped: int
    finish: FinishReason
    detail: str | None  # what a guard saw, when it ends the job


def _loop_guards(
    settings: Settings,
    job: _Job,
    filed: _Filed,
    finish: FinishReason,
    *,
    fresh_turn: bool,
    tokens: int,
    raw_chars: int,
) -> _Guarded:
    """The no-progress and repetition guards (``stop_on_repetition: false`` turns the repetition
    guard off: the job then runs on until the context is full, the naive semantics).

    A continuation that is only text the answer already holds is not appended: on a fresh turn
    (the continue message) that is a restart, no progress; on a continued prefill it is the model
    looping, a repetition. A length cut that adds nothing is no progress. Neither is an error."""
    new_answer, new_reasoning, so_far = filed.answer, filed.reasoning, job.answer_so_far
    guard = job.request.stop_on_repetition is not False
    dropped = 0
    if (fresh_turn or guard) and so_far:
        minimum = MIN_REPEAT_CHARS if fresh_turn else settings.repetition_min_chars
        if only_repeats(so_far, new_answer, minimum=minimum):
            dropped, new_answer = len(new_answer), ""
            if finish == "length" and not new_reasoning:
                what = "a restart" if fresh_turn else "the model is looping"
                detail = f"the continuation only repeated {dropped:,} characters of the answer ({what})"
                return _Guarded("", dropped, "no_progress" if fresh_turn else "repetition", detail)
    if finish == "no_progress" or (not new_answer and not new_reasoning and finish == "length"):
        detail = (
            f"the continuation ({raw_chars:,} characters) held no new text: all of it was in the answer"
            if raw_chars
            else f"the continuation was cut for length without any text ({tokens:,} tokens generated)"
        )
        return _Guarded(new_answer, dropped, "no_progress", detail)
    if guard and finish in CONTINUE_FINISHES:
        seen = repetition_seen(
            so_far + new_answer,
            min_chars=settings.repetition_min_chars,
            max_repeats=settings.repetition_max_repeats,
        )
        if seen is not None:
            return _Guarded(new_answer, dropped, "repetition", seen + ": the model is looping")
    return _Guarded(new_answer, dropped, finish, None)


def _commit(services: Services, job: _Job, reply: _Reply, metrics: MetricsSink | None) -> ChunkTaskOutput:
    """Store the chunk, commit the manifest, then write the running text."""
    settings, store, manifest, outcome = services.settings, services.store, job.manifest, reply.outcome
    finish = chunk_finish(outcome.finish_reason, outcome.ended_by)
    if not outcome.has_text and finish == "length":
        # tokens counted, no text added: no progress, not an outage; another round would say the same
        finish = "no_progress"
    elif not outcome.has_text and finish != "stop":
        # (a "stop" that adds nothing is a normal end: the answer was already complete)
        raise ProviderUnavailable("the provider finished without producing any text")
    fresh_turn = reply.sent_prefill and reply.rung.style == "continue_message"
    filed = _file_reply(
        job,
        reply.rung,
        reply.trimmed,
        outcome.content,
        outcome.reasoning,
        sent_prefill=reply.sent_prefill,
        final=finish not in CONTINUE_FINISHES,
    )
    text, new_reasoning, seam = filed.text, filed.reasoning, filed.seam
    if finish == "stop" and fresh_turn and _repeated_again(job, reply, filed):
        finish = "length"  # asked twice and it only repeated the answer: no end the model reached
    tokens = (outcome.usage.completion_tokens if outcome.usage else 0) or outcome.deltas
    guarded = _loop_guards(
        settings, job, filed, finish, fresh_turn=fresh_turn, tokens=tokens, raw_chars=len(outcome.content)
    )
    new_answer, repeat_dropped, finish = guarded.answer, guarded.repeat_dropped, guarded.finish
    usage = outcome.usage
    chunk = ChunkRecord(
        job_id=manifest.job_id,
        index=manifest.chunks,
        text=new_answer,
        text_lead=text.lead if new_answer or not job.answer_so_far else "",
        reasoning=new_reasoning,
        finish_reason=finish,
        provider_finish_reason=outcome.finish_reason,
        max_tokens=reply.max_tokens,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage and usage.completion_tokens else outcome.deltas,
        cached_tokens=usage.cached_tokens if usage else 0,
        estimated_cost_usd=usage.estimated_cost if usage else None,
        usage_estimated=usage is None,
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
        seam_overlap_chars=seam.overlap_chars,
        seam_preamble=seam.preamble,
        seam_whitespace=seam.whitespace,
        seam_held=seam.held,
        repeat_dropped_chars=repeat_dropped,
        draft_checkpoints=reply.drafts_written,
        from_draft=reply.from_draft,
        lone_surrogates=outcome.lone_surrogates,
        base_etag=job.etag,
        format_after=text.reasoning_format,
        phase_after=text.phase,
        held_after=text.held,
    )
    # the fence: an attempt of this chunk that stored its record first (a retry overlapping a
    # stale attempt, or an attempt that died before its commit) wins; its record is the one
    # committed, and this attempt's own text is dropped, so the stored chunk is the committed one
    chunk = store.put_chunk(chunk)
    finish = chunk.finish_reason
    answer = job.answer_so_far + chunk.text
    reasoning = job.reasoning_so_far + chunk.reasoning
    manifest.record_chunk(
        chunk,
        TextState(
            reasoning_format=chunk.format_after,
            reasoning_phase=chunk.phase_after,
            held_text=chunk.held_after,
            answer_chars=len(answer),
            reasoning_chars=len(reasoning),
        ),
        learned_context=reply.learned_context,
        max_tokens_per_request=job.request.max_tokens_per_request or settings.max_tokens_per_request,
    )
    budget = job_budget(job.request, settings, manifest)
    reported, stop_reason = next_step(
        finish, manifest, budget, max_reasoning_only_chunks=settings.max_reasoning_only_chunks
    )
    manifest.last_finish_reason = reported
    manifest.stop_reason = stop_reason
    manifest.stop_detail = guarded.detail if stop_reason in ("no_progress", "repetition") else None
    # the commit. Only a committed chunk reaches output.md: a chunk that loses the race with a
    # cancel (which finalizes the job) fails here and writes nothing more. A crash between the
    # commit and the write leaves output.md short, which the next reader rebuilds from the chunks.
    store.put_manifest(manifest, if_match=job.etag)
    store.write_running_text(manifest.job_id, answer=answer, reasoning=reasoning if reasoning else None)
    if metrics is not None:
        _count(metrics, chunk)
    return ChunkTaskOutput(
        job_id=manifest.job_id,
        chunk_index=chunk.index,
        finish_reason=reported,
        chunks=manifest.chunks,
        output_tokens=manifest.completion_tokens_total,
    )


def _count(metrics: MetricsSink, chunk: ChunkRecord) -> None:
    metrics.add_metric(name="ChunksGenerated", unit="Count", value=1)
    metrics.add_metric(name="OutputTokens", unit="Count", value=chunk.completion_tokens)
    metrics.add_metric(name="ChunkDurationMs", unit="Milliseconds", value=chunk.duration_ms)
    if chunk.context_retries:
        metrics.add_metric(name="ContextRetries", unit="Count", value=chunk.context_retries)
    if chunk.finish_reason in ("deadline", "interrupted"):
        metrics.add_metric(name=f"Chunks{chunk.finish_reason.capitalize()}", unit="Count", value=1)
