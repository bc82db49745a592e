"""The domain: a job's status, its stop vocabulary, the manifest, the result (and, re-exported from
``chunk_record.py``, the chunk records and their finish vocabulary).

Pure data (pydantic), no I/O. The S3 adapter (``job_store.py``) stores these; the use cases
(``chunk.py``, ``finalize.py``, ...) change them through the methods here, so the rules of how a
chunk moves a job forward live in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .chunk_record import CONTINUE_FINISHES as CONTINUE_FINISHES
from .chunk_record import ChunkRecord as ChunkRecord
from .chunk_record import ChunkStyle as ChunkStyle
from .chunk_record import EndFinish as EndFinish
from .chunk_record import FinishReason as FinishReason
from .chunk_record import LoopFinish as LoopFinish
from .chunk_record import TextState as TextState
from .infra_cost import InfraCost, InfraUsage, infra_cost
from .job_status import TERMINAL_STATUSES as TERMINAL_STATUSES
from .job_status import IncompleteReason as IncompleteReason
from .job_status import JobStatus as JobStatus
from .job_status import TerminalStatus as TerminalStatus
from .reasoning import Phase, ReasoningFormat

JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"
JobId = Annotated[str, Field(min_length=1, max_length=80, pattern=JOB_ID_PATTERN)]

# why a job stopped generating
StopReason = Literal[
    "stop",
    "max_output_tokens",
    "max_chunks",
    "max_cost",
    "reasoning_loop",
    "context_exhausted",
    "content_filter",
    "tool_calls",
    "no_progress",
    "repetition",
    "other",
    "error",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobSource(BaseModel):
    """Where a job came from, when that decides where its results go (the S3 drop folder)."""

    kind: Literal["s3"]
    key: str  # requests/{name}.json
    name: str  # results/{name}.md, results/{name}.json
    etag: str | None = None

    def describe(self) -> str:
        return f"{self.kind}:{self.key}"


class Manifest(BaseModel):
    """Progress of a job and everything the next chunk needs. Constant size."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    status: JobStatus = "queued"
    model: str
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    execution_arn: str | None = None
    source: JobSource | None = None
    # who submitted the job (submit.py): the HTTP API's caller ("iam:{arn}", "apikey:{id}"), the drop
    # folder's bucket ("s3://{bucket}"); only the owner sees the job through the API. None: a job
    # submitted by a trusted local tool (or before owners were recorded), never shown by the API
    owner: str | None = None
    # the batch this job is a line of (batch.py), or None for a job submitted on its own
    batch_id: str | None = None

    chunks: int = 0
    # committed lengths (in characters) of output.md / reasoning.md while running
    answer_chars: int = 0
    reasoning_chars: int = 0
    reasoning_format: ReasoningFormat = "none"
    reasoning_phase: Phase = "start"
    # a possible partial <think>/</think> tag at the end of the last chunk, not yet filed as
    # answer or reasoning (at most 8 characters; it goes into the next prefill as written)
    held_text: str = ""
    # the blank lines between the think block and the first answer text: part of what the model
    # wrote (so of the prefill), not of the answer users read
    answer_lead: str = ""
    reasoning_only_streak: int = 0
    # the provider sends the prefill back at the start of its reply (see echo.py); once seen, it
    # is expected on every chunk of the job
    prefill_echo: bool = False
    # the prefill style this job continues with (prefill.py), once a chunk has sent a prefill;
    # where it came from: "request", "deployment", "cache" or "learned"
    prefill_style: ChunkStyle | None = None
    prefill_trim: bool = False
    prefill_style_source: str | None = None

    first_prompt_tokens: int | None = None
    last_prompt_tokens: int | None = None
    last_completion_tokens: int | None = None
    prompt_tokens_total: int = 0
    completion_tokens_total: int = 0
    cached_tokens_total: int = 0
    estimated_cost_usd: float | None = None
    context_length: int | None = None
    max_tokens_per_request: int | None = None
    context_retries_total: int = 0
    provider_attempts_total: int = 0

    last_finish_reason: FinishReason | None = None
    stop_reason: StopReason | None = None
    # what stopped the job, in one line: what a guard saw ("the last 200 characters repeated 3
    # times"), the budget reached; set by the chunk that stopped it, completed by finalize
    stop_detail: str | None = None
    incomplete_reason: IncompleteReason | None = None  # with status "incomplete" (job_status.py)
    error: str | None = None
    # billable AWS units used so far (infra_cost.py)
    infra: InfraUsage = Field(default_factory=InfraUsage)
    # each time the job was reopened after a budget stopped it (reopen.py), one line: when, where it
    # stood, the budgets it went on with
    reopened: list[str] = Field(default_factory=list)
    # the last chunk had no usage, or none of its completion: its completion tokens are counted deltas
    # (a gateway may put several tokens in one), so last prompt + last completion is a guess
    last_usage_estimated: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def mark_running(self, now: datetime) -> bool:
        """The first chunk attempt starts: ``queued`` becomes ``running`` (False: it already was)."""
        if self.status != "queued":
            return False
        self.status = "running"
        self.started_at = self.started_at or now
        return True

    def reopen(self, note: str, *, answer_chars: int, reasoning_chars: int) -> None:
        """An ``incomplete`` job goes on with larger budgets (reopen.py): running again, its stop
        forgotten, the committed lengths those of the raw chunks (finalize's may hold a partial tag)."""
        self.status = "running"
        self.finished_at = None
        self.last_finish_reason = self.stop_reason = self.stop_detail = self.incomplete_reason = None
        self.answer_chars, self.reasoning_chars = answer_chars, reasoning_chars
        self.reopened.append(note)

    @property
    def final_finish_reason(self) -> FinishReason | None:
        """The finish reason of an ended job (the result's and the API's: one definition)."""
        if not self.terminal:
            return None
        return "context_exhausted" if self.status == "context_exhausted" else self.last_finish_reason

    def record_chunk(
        self,
        chunk: ChunkRecord,
        text: TextState,
        *,
        learned_context: int | None,
        max_tokens_per_request: int,
    ) -> None:
        """Move the job forward by one stored chunk (the commit writes the result)."""
        if self.started_at is None:
            self.started_at = chunk.started_at
        self.status = "running"
        self.chunks = chunk.index + 1
        self.answer_chars = text.answer_chars
        self.reasoning_chars = text.reasoning_chars
        self.reasoning_format = text.reasoning_format
        self.reasoning_phase = text.reasoning_phase
        self.held_text = text.held_text
        self.answer_lead += chunk.text_lead
        self.prefill_echo = self.prefill_echo or chunk.echo == "stripped"
        if chunk.prefill_style != "none":
            self.prefill_style = chunk.prefill_style
            self.prefill_trim = self.prefill_trim or chunk.prefill_trimmed_chars > 0
        reasoning_only = bool(chunk.reasoning) and not chunk.text
        self.reasoning_only_streak = self.reasoning_only_streak + 1 if reasoning_only else 0
        if not chunk.usage_estimated and chunk.prompt_tokens:
            if self.first_prompt_tokens is None:
                # the prompt of the job's first request; when the first chunks were cut and carried
                # no usage, derive it from this one, whose prompt holds the output so far
                self.first_prompt_tokens = max(0, chunk.prompt_tokens - self.completion_tokens_total)
            self.last_prompt_tokens = chunk.prompt_tokens
        elif self.last_prompt_tokens is not None and self.last_completion_tokens is not None:
            self.last_prompt_tokens += self.last_completion_tokens  # no usage: keep the running sum
        self.last_completion_tokens = chunk.completion_tokens
        self.last_usage_estimated = chunk.usage_estimated or chunk.completion_counted
        self.prompt_tokens_total += chunk.prompt_tokens
        self.completion_tokens_total += chunk.completion_tokens
        self.cached_tokens_total += chunk.cached_tokens
        if chunk.estimated_cost_usd is not None:
            self.estimated_cost_usd = round((self.estimated_cost_usd or 0.0) + chunk.estimated_cost_usd, 8)
        if learned_context:
            self.context_length = learned_context
        self.max_tokens_per_request = max_tokens_per_request
        self.context_retries_total += chunk.context_retries
        self.provider_attempts_total += chunk.attempts

    def record_outcome(
        self, finish: FinishReason, stop_reason: StopReason | None, *, detail: str | None
    ) -> None:
        """What the committed chunk decided: the finish the workflow sees and, when the job stops,
        why (``detail``, what a guard saw, is kept for the guards' stops only)."""
        self.last_finish_reason = finish
        self.stop_reason = stop_reason
        self.stop_detail = detail if stop_reason in ("no_progress", "repetition") else None

    def record_stop_without_chunk(self, reason: StopReason) -> None:
        """A budget ran out before the next chunk: the job stops with no chunk added."""
        self.last_finish_reason = "budget"
        self.stop_reason = reason

    def record_context_exhausted(self, context_length: int | None) -> None:
        """Nothing more fits in the context window (``context_length``: as learned, when known)."""
        self.stop_reason = "context_exhausted"
        if context_length:
            self.context_length = context_length

    def record_style_source(self, source: str | None) -> None:
        """Where the prefill style this job continues with came from (``prefill_style_source``)."""
        self.prefill_style_source = source

    def record_end(
        self,
        status: TerminalStatus,
        *,
        now: datetime,
        error: str | None,
        incomplete_reason: IncompleteReason | None,
        detail: str | None,
        context_length: int | None,
        answer_chars: int,
        reasoning_chars: int,
    ) -> None:
        """The job ends (finalize commits this): its one terminal status and what explains it, the
        context length it ran with (when none was learned), the lengths of its final text."""
        self.status = status
        self.finished_at = now
        self.error = error or self.error
        self.incomplete_reason = incomplete_reason
        self.stop_detail = detail or self.stop_detail
        if self.stop_reason is None and status == "failed":
            self.stop_reason = "error"
        self.context_length = self.context_length or context_length
        self.answer_chars = answer_chars
        self.reasoning_chars = reasoning_chars

    def room_after_first_prompt(self, context_length: int | None) -> int | None:
        if not context_length or not self.first_prompt_tokens:
            return None
        return context_length - self.first_prompt_tokens


class InFlightChunk(BaseModel):
    """The chunk that was generating when the job was cancelled, kept from its last draft
    checkpoint: text the model wrote (and was paid for), not a finished reply."""

    chunk_index: int
    chars: int  # answer characters it added
    tokens: int


class JobResult(BaseModel):
    """``result.json``: the outcome of a job."""

    job_id: str
    status: JobStatus
    finish_reason: FinishReason | None
    stop_reason: StopReason | None
    incomplete_reason: IncompleteReason | None = None
    stop_detail: str | None = None
    error: str | None = None
    model: str
    chunks: int
    prompt_tokens: int | None  # of the first request
    prompt_tokens_total: int
    output_tokens: int
    cached_tokens: int
    estimated_cost_usd: float | None
    context_length: int | None
    context_used: float | None = None  # share of (context - first prompt) filled with output
    output_key: str
    reasoning_key: str | None
    output_chars: int
    reasoning_chars: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime
    duration_seconds: float | None
    chunk_durations_ms: list[int]
    chunk_chars: list[int] = Field(default_factory=list)  # answer characters each chunk added
    execution_arn: str | None = None
    # how the job continued: the style, where it came from, and per chunk ("none": no prefill)
    prefill_style: ChunkStyle | None = None
    prefill_style_source: str | None = None
    chunk_prefill_styles: list[ChunkStyle] = Field(default_factory=list)
    # the AWS bill beside the tokens (infra_cost.py)
    infrastructure_cost: InfraCost | None = None
    in_flight_chunk: InFlightChunk | None = None  # cancelled: the chunk in flight, kept from its draft

    @classmethod
    def from_manifest(
        cls,
        manifest: Manifest,
        chunks: list[ChunkRecord],
        *,
        output_key: str,
        reasoning_key: str | None,
        output_chars: int,
        reasoning_chars: int,
    ) -> JobResult:
        """The result of an ended job: a function of its terminal manifest and its chunks alone."""
        if not manifest.terminal or manifest.finished_at is None:
            raise ValueError(f"job {manifest.job_id} has not ended ({manifest.status})")
        finished_at = manifest.finished_at
        context_length = manifest.context_length
        room = manifest.room_after_first_prompt(context_length)
        started = manifest.started_at
        return cls(
            job_id=manifest.job_id,
            status=manifest.status,
            finish_reason=manifest.final_finish_reason,
            stop_reason=manifest.stop_reason,
            incomplete_reason=manifest.incomplete_reason,
            stop_detail=manifest.stop_detail,
            error=manifest.error,
            model=manifest.model,
            chunks=manifest.chunks,
            prompt_tokens=manifest.first_prompt_tokens,
            prompt_tokens_total=manifest.prompt_tokens_total,
            output_tokens=manifest.completion_tokens_total,
            cached_tokens=manifest.cached_tokens_total,
            estimated_cost_usd=manifest.estimated_cost_usd,
            context_length=context_length,
            context_used=round(manifest.completion_tokens_total / room, 6) if room and room > 0 else None,
            output_key=output_key,
            reasoning_key=reasoning_key,
            output_chars=output_chars,
            reasoning_chars=reasoning_chars,
            created_at=manifest.created_at,
            started_at=started,
            finished_at=finished_at,
            duration_seconds=(finished_at - started).total_seconds() if started else None,
            chunk_durations_ms=[chunk.duration_ms for chunk in chunks],
            chunk_chars=[len(chunk.text) for chunk in chunks],
            execution_arn=manifest.execution_arn,
            prefill_style=manifest.prefill_style,
            prefill_style_source=manifest.prefill_style_source,
            chunk_prefill_styles=[chunk.prefill_style for chunk in chunks],
            infrastructure_cost=infra_cost(manifest),
            in_flight_chunk=next(
                (
                    InFlightChunk(chunk_index=c.index, chars=len(c.text), tokens=c.completion_tokens)
                    for c in chunks
                    if c.cancelled_draft
                ),
                None,
            ),
        )

    def ending_fields(self) -> dict[str, Any]:
        """How the job ended: the first fields of both wire formats that report it, the completion
        event (``notify.finished_event_detail``) and a batch line's ``longform`` object
        (``batch/output.longform_fields``), in their order."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "finish_reason": self.finish_reason,
            "stop_reason": self.stop_reason,
            "incomplete_reason": self.incomplete_reason,
            "stop_detail": self.stop_detail,
            "chunks": self.chunks,
        }
