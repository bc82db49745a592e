"""Draft checkpoints: the chunk in flight, saved while it streams.

A chunk streams for minutes on a real model. While it does, ``Checkpointer`` saves what has arrived
so far to ``jobs/{id}/drafts/{n:06d}.json`` (``Draft``) at a bounded rate: a checkpoint is due when
both ``interval_seconds`` have passed and ``min_tokens`` new tokens arrived since the last one
(whichever comes later), so a fast model does not write more often than the interval and a slow
one does not write for a handful of tokens. S3 PUTs per minute of generation are at most
``60 / interval_seconds``.

The commit of the chunk supersedes its draft (``chunk.py`` deletes it). A draft is evidence, never
a commit: readers show it *beside* the committed text, marked as a draft, and an attempt that finds
a draft of the chunk it is about to generate, written against the very manifest version it reads
(``base_etag``: the fence of attempts applies to drafts too), commits the draft's text as that chunk
(finish ``interrupted``) instead of generating it again: a crash loses at most one interval.

A draft write that fails never fails the chunk (the text is still in memory and will be committed);
it is counted and logged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from .models import utcnow
from .prefill import ConcreteStyle

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 5.0
DEFAULT_MIN_TOKENS = 2000


class Draft(BaseModel):
    """``jobs/{id}/drafts/{n:06d}.json``: what one attempt of chunk ``index`` has streamed so far."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    index: int
    base_etag: str  # the manifest version the chunk continues (the attempt's fence)
    attempt_id: str
    sequence: int  # the attempt's nth checkpoint
    prefill_style: ConcreteStyle  # the rung the attempt streams on (chunk.py rebuilds what it sent from it)
    prefill_trim: bool = False
    # the reply may yet prove a server that ignores the prefill (prefill.starts_over): checked
    # again before the draft is committed
    check_start: bool = False
    max_tokens: int
    model: str | None = None
    content: str  # as streamed: an echoed prefill is still in it (stripped when committed)
    reasoning: str = ""
    first_delta: str | None = None
    tokens: int  # content/reasoning deltas received (about one token each)
    started_at: datetime
    updated_at: datetime
    # for readers: the answer and reasoning as the commit would file them (echo stripped)
    answer_text: str = ""
    reasoning_text: str = ""

    @property
    def has_text(self) -> bool:
        return bool(self.content or self.reasoning)


@dataclass(frozen=True)
class DraftPolicy:
    """How often a chunk in flight is saved (template parameters DraftIntervalSeconds and
    DraftMinTokens; ``enabled`` False: never)."""

    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    min_tokens: int = DEFAULT_MIN_TOKENS
    enabled: bool = True

    def due(self, *, seconds_since: float, tokens_since: int) -> bool:
        return self.enabled and seconds_since >= self.interval_seconds and tokens_since >= self.min_tokens


class StreamProgress:
    """What a streaming completion has produced so far (``ProviderClient.chat``'s ``on_progress``).

    Built for every delta, so the text is joined only when asked for (a checkpoint that is due).
    """

    def __init__(
        self,
        content: list[str] | str,
        reasoning: list[str] | str = "",
        *,
        deltas: int,
        first_delta: str | None = None,
        attempt: int = 1,  # the client's own retries restart the text
        model: str | None = None,
    ):
        self._content, self._reasoning = content, reasoning
        self.deltas, self.first_delta, self.attempt, self.model = deltas, first_delta, attempt, model

    @cached_property
    def content(self) -> str:
        return self._content if isinstance(self._content, str) else "".join(self._content)

    @cached_property
    def reasoning(self) -> str:
        return self._reasoning if isinstance(self._reasoning, str) else "".join(self._reasoning)


# (raw content, raw reasoning, first delta) -> (answer text, reasoning text) as the commit files them
DraftView = Callable[[str, str, str | None], tuple[str, str]]


class DraftSink(Protocol):
    """Where drafts go (``JobStore``)."""

    def put_draft(self, draft: Draft) -> None: ...


class Checkpointer:
    """``on_progress`` for one request of one chunk: saves a ``Draft`` when the policy says so."""

    def __init__(
        self,
        sink: DraftSink,
        policy: DraftPolicy,
        *,
        job_id: str,
        index: int,
        base_etag: str,
        prefill_style: ConcreteStyle,
        prefill_trim: bool,
        check_start: bool,
        max_tokens: int,
        view: DraftView,
        clock: Callable[[], float],
    ):
        self._sink = sink
        self._policy = policy
        self._clock = clock
        self._view = view
        self._template = dict(
            job_id=job_id,
            index=index,
            base_etag=base_etag,
            attempt_id=uuid.uuid4().hex,
            prefill_style=prefill_style,
            prefill_trim=prefill_trim,
            check_start=check_start,
            max_tokens=max_tokens,
        )
        self._started_at = utcnow()
        self._last_time = clock()
        self._last_tokens = 0
        self._attempt = 1
        self.written = 0  # drafts saved
        self.failed = 0  # draft writes that failed (the chunk went on)
        self.bytes_written = 0
        self.last: Draft | None = None

    def __call__(self, progress: StreamProgress) -> None:
        if progress.attempt != self._attempt:  # the client retried: its text starts again
            self._attempt, self._last_tokens = progress.attempt, 0
        now = self._clock()
        if self._policy.due(
            seconds_since=now - self._last_time, tokens_since=progress.deltas - self._last_tokens
        ):
            self.save(progress)

    def save(self, progress: StreamProgress) -> Draft | None:
        """Save ``progress`` now (also what a caller about to stop uses to keep the latest text)."""
        if not (progress.content or progress.reasoning):
            return None
        answer, reasoning = self._view(progress.content, progress.reasoning, progress.first_delta)
        draft = Draft(
            **self._template,
            sequence=self.written + 1,
            model=progress.model,
            content=progress.content,
            reasoning=progress.reasoning,
            first_delta=progress.first_delta,
            tokens=progress.deltas,
            started_at=self._started_at,
            updated_at=utcnow(),
            answer_text=answer,
            reasoning_text=reasoning,
        )
        self._last_time, self._last_tokens = self._clock(), progress.deltas
        try:
            self._sink.put_draft(draft)
        except Exception as exc:  # a checkpoint is best effort: the text is still in memory
            self.failed += 1
            logger.warning("draft checkpoint of chunk %s failed: %r", draft.index, exc)
            return None
        self.written += 1
        self.bytes_written += len(draft.content) + len(draft.reasoning)
        self.last = draft
        return draft
