"""The job as one chunk attempt sees it (read once, never changed) and the reply it gets.

``ChunkJob`` is the attempt's snapshot: the request, the manifest version (``etag``) it continues,
the text so far and the prefill built from it. Nothing changes it: every step that moves the
manifest on works on its own copy (:meth:`ChunkJob.next_manifest`) and commits that copy against
``etag`` (the fence between attempts, ``chunk_commit.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .echo import EchoResult, SentPrefill, strip_echo
from .errors import ContextExhausted
from .job_store import JobStore
from .models import Manifest
from .prefill import LadderStep, Rung, StepReason, starts_over, trim_prefill
from .provider import StreamOutcome
from .reasoning import build_prefill
from .request import GenerationRequest


@dataclass(frozen=True)
class ChunkJob:
    """One job as the next chunk sees it."""

    request: GenerationRequest
    manifest: Manifest
    etag: str
    answer_so_far: str
    reasoning_so_far: str
    prefill: SentPrefill

    def next_manifest(self) -> Manifest:
        """A copy of the manifest for this attempt to move on and commit (the snapshot stays as read)."""
        return self.manifest.model_copy(deep=True)


@dataclass(frozen=True)
class Reply:
    """The reply a chunk commits, and how the attempt got it."""

    outcome: StreamOutcome
    max_tokens: int
    context_retries: int
    learned_context: int | None
    echo: EchoResult
    started_at: datetime
    duration_ms: int
    rung: Rung
    steps: tuple[LadderStep, ...] = ()
    trimmed: str = ""  # trailing whitespace of the prefill not sent
    discarded_tokens: int = 0
    sent_prefill: bool = False
    drafts_written: int = 0
    from_draft: bool = False
    # where the style it used came from (Manifest.prefill_style_source); None: unchanged
    style_source: str | None = None

    @property
    def fresh_turn(self) -> bool:
        """A continue-message reply to a prefill: a new assistant turn, not a continuation."""
        return self.sent_prefill and self.rung.style == "continue_message"

    @property
    def asked_again(self) -> bool:
        """The continue message was asked once more after a reply that only repeated the answer."""
        return any(step.reason == StepReason.REPEATED for step in self.steps)


def read_job(store: JobStore, request: GenerationRequest, manifest: Manifest, etag: str) -> ChunkJob:
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
    return ChunkJob(request, manifest, etag, answer_so_far, reasoning_so_far, prefill)


def sent_prefill(job: ChunkJob, rung: Rung) -> tuple[SentPrefill, str]:
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


def strip_reply_echo(
    job: ChunkJob, rung: Rung, sent: SentPrefill, content: str, reasoning: str, first_delta: str | None
) -> EchoResult:
    """The reply without an echo of the prefill it was sent (a continue-message reply is a fresh
    turn: it was sent no prefill to echo). One rule for the live reply, its drafts, and a draft
    resumed after a crash."""
    return strip_echo(
        SentPrefill("") if rung.style in ("continue_message", "completion") else sent,
        content=content,
        reasoning=reasoning,
        first_delta=first_delta,
        echo_seen=job.manifest.prefill_echo,
    )


def started_over(
    job: ChunkJob,
    content: str,
    reasoning: str,
    echo: EchoResult,
    *,
    tokens: int,
    prompt_tokens: int | None = None,
    expected_prompt_tokens: int | None = None,
) -> bool:
    """Did the server ignore the prefill and answer afresh (``prefill.starts_over``)? ``content`` and
    ``reasoning``: the reply as received; ``echo``: the same without the prefill's echo. One check
    for the live reply and for a draft resumed after a crash."""
    return starts_over(
        answer_so_far=job.answer_so_far,
        reasoning_so_far=job.reasoning_so_far,
        raw_content=content,
        raw_reasoning=reasoning,
        content=echo.content,
        reasoning=echo.reasoning,
        completion_tokens=tokens,
        echo_seen=job.manifest.prefill_echo,
        prompt_tokens=prompt_tokens,
        expected_prompt_tokens=expected_prompt_tokens,
    )


def context_exhausted(
    store: JobStore,
    job: ChunkJob,
    context_length: int | None,
    message: str,
    *,
    style_source: str | None = None,
) -> ContextExhausted:
    """Commit that nothing more fits in the context (with the context length learned, and the style
    source when the attempt had settled it), and the error that ends the job so."""
    manifest = job.next_manifest()
    if style_source is not None:
        manifest.record_style_source(style_source)
    manifest.record_context_exhausted(context_length)
    store.put_manifest(manifest, if_match=job.etag)
    return ContextExhausted(message)
