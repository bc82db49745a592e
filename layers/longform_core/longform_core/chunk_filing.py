"""Filing a reply after the text so far, and the guards that judge what it adds.

The reply (its prefill echo already stripped) is split into answer and reasoning
(``reasoning.py``), its seam with the answer cleaned (``seam.py``); then the no-progress and
repetition guards decide whether it moves the job on. One rule for the commit, for the drafts'
views and for the continue message's repeat check.
"""

from __future__ import annotations

from dataclasses import dataclass

from .chunk_job import ChunkJob, Reply
from .config import Settings
from .continuation import chunk_finish
from .echo import EchoResult
from .models import CONTINUE_FINISHES, FinishReason
from .prefill import Rung
from .provider import StreamOutcome
from .reasoning import ChunkText, split_chunk
from .seam import (
    MIN_REPEAT_CHARS,
    SeamResult,
    after_trimmed_prefill,
    clean_continuation,
    only_repeats,
    repetition_seen,
    undecided,
)


@dataclass(frozen=True)
class Filed:
    """A reply filed after the text so far: split into answer and reasoning, the seam cleaned."""

    text: ChunkText
    answer: str
    reasoning: str
    seam: SeamResult


def file_reply(
    job: ChunkJob,
    rung: Rung,
    trimmed: str,
    content: str,
    reasoning_field: str,
    *,
    sent_prefill: bool,
    final: bool,
) -> Filed:
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
    return Filed(text, new_answer, new_reasoning, seam)


@dataclass(frozen=True)
class Guarded:
    """A filed reply after the loop guards: the answer text it adds, and the finish they decided."""

    answer: str
    repeat_dropped: int
    finish: FinishReason
    detail: str | None  # what a guard saw, when it ends the job


def loop_guards(
    settings: Settings,
    job: ChunkJob,
    filed: Filed,
    finish: FinishReason,
    *,
    fresh_turn: bool,
    tokens: int,
    raw_chars: int,
) -> Guarded:
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
                return Guarded("", dropped, "no_progress" if fresh_turn else "repetition", detail)
    if finish == "no_progress" or (not new_answer and not new_reasoning and finish == "length"):
        detail = (
            f"the continuation ({raw_chars:,} characters) held no new text: all of it was in the answer"
            if raw_chars
            else f"the continuation was cut for length without any text ({tokens:,} tokens generated)"
        )
        return Guarded(new_answer, dropped, "no_progress", detail)
    if guard and finish in CONTINUE_FINISHES:
        seen = repetition_seen(
            so_far + new_answer,
            min_chars=settings.repetition_min_chars,
            max_repeats=settings.repetition_max_repeats,
        )
        if seen is not None:
            return Guarded(new_answer, dropped, "repetition", seen + ": the model is looping")
    return Guarded(new_answer, dropped, finish, None)


def only_repeated(job: ChunkJob, rung: Rung, trimmed: str, outcome: StreamOutcome, echo: EchoResult) -> bool:
    """A whole continue-message reply (stop or length) that adds nothing to the answer: all of it
    a preamble, an overlap or text the answer already holds."""
    finish = chunk_finish(outcome.finish_reason, outcome.ended_by)
    if rung.style != "continue_message" or finish not in ("stop", "length") or not echo.content.strip():
        return False
    filed = file_reply(job, rung, trimmed, echo.content, echo.reasoning, sent_prefill=True, final=True)
    return not filed.answer.strip() or only_repeats(job.answer_so_far, filed.answer, minimum=MIN_REPEAT_CHARS)


def repeated_again(job: ChunkJob, reply: Reply, filed: Filed) -> bool:
    """A continue message asked again after a repeat (``StepReason.REPEATED``) that still adds nothing."""
    if not reply.asked_again:
        return False
    return not filed.answer.strip() or only_repeats(job.answer_so_far, filed.answer, minimum=MIN_REPEAT_CHARS)
