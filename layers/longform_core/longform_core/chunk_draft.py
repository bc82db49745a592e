"""Draft checkpoints of the chunk in flight (``draft.py``): what a draft is shown as, the
checkpointer of one request, and the reply of an attempt that died, resumed from its last draft."""

from __future__ import annotations

from .chunk_filing import file_reply
from .chunk_job import ChunkJob, Reply, sent_prefill, started_over, strip_reply_echo
from .draft import Checkpointer, Draft, DraftView
from .echo import SentPrefill
from .prefill import Rung
from .provider import StreamOutcome
from .services import Services


def draft_view(job: ChunkJob, rung: Rung, sent: SentPrefill, trimmed: str) -> DraftView:
    """The answer and reasoning a draft's raw text would be filed as (for readers of the draft):
    the echo stripped and the seam cleaned as its commit would (``chunk_filing.file_reply``)."""

    def view(content: str, reasoning: str, first_delta: str | None) -> tuple[str, str]:
        echo = strip_reply_echo(job, rung, sent, content, reasoning, first_delta)
        filed = file_reply(
            job, rung, trimmed, echo.content, echo.reasoning, sent_prefill=bool(job.prefill.text), final=False
        )
        return filed.answer, filed.reasoning

    return view


def checkpointer(
    services: Services,
    job: ChunkJob,
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
        view=draft_view(job, rung, sent, trimmed),
        clock=services.clock,
    )


def reply_from_draft(job: ChunkJob, draft: Draft) -> Reply | None:
    """The reply a dead attempt had streamed up to its last checkpoint, as this attempt's own: the
    prefill it sent is rebuilt from its rung (same manifest version, same text), the echo decided
    the same way, and the chunk ends ``interrupted`` so the job goes on from there. None when the
    text shows a server that ignored the prefill (the check the attempt would have made at its end)."""
    rung = Rung(draft.prefill_style, trim=draft.prefill_trim)
    sent, trimmed = sent_prefill(job, rung)
    echo = strip_reply_echo(job, rung, sent, draft.content, draft.reasoning, draft.first_delta)
    if not (echo.content or echo.reasoning):
        return None  # the draft held only (part of) the prefill's echo: nothing new to resume from
    if draft.check_start and started_over(job, draft.content, draft.reasoning, echo, tokens=draft.tokens):
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
    return Reply(
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
