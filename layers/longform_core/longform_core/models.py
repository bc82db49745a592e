"""The domain: a job's status, its finish and stop vocabulary, the manifest, chunk records, the result.

Pure data (pydantic), no I/O. The S3 adapter (``job_store.py``) stores these; the use cases
(``chunk.py``, ``finalize.py``, ...) change them through the methods here, so the rules of how a
chunk moves a job forward live in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from .echo import EchoVerdict
from .reasoning import Phase, ReasoningFormat

JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"
JobId = Annotated[str, Field(min_length=1, max_length=80, pattern=JOB_ID_PATTERN)]

JobStatus = Literal["queued", "running", "succeeded", "context_exhausted", "failed", "cancelled"]
TerminalStatus = Literal["succeeded", "context_exhausted", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset(get_args(TerminalStatus))

# A chunk's finish reason as the workflow sees it. The MoreToGenerate Choice loops on exactly the
# LoopFinish values (a test reads them from this type and from the ASL); every other value ends.
LoopFinish = Literal["length", "deadline", "interrupted"]
EndFinish = Literal[
    "stop",
    "budget",
    "reasoning_loop",
    "context_exhausted",
    "content_filter",
    "tool_calls",
    "no_progress",  # the provider said "length" but added no text: looping would never end
    "other",
]
FinishReason = Literal[LoopFinish, EndFinish]
CONTINUE_FINISHES: frozenset[str] = frozenset(get_args(LoopFinish))

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


class ChunkRecord(BaseModel):
    """One continuation chunk as stored in ``chunks/{n:06d}.json``."""

    job_id: str
    index: int
    text: str
    text_lead: str = ""  # blank lines before the first answer text, kept out of ``text``
    reasoning: str = ""
    finish_reason: FinishReason
    provider_finish_reason: str | None = None  # as the provider said it
    max_tokens: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated_cost_usd: float | None = None
    usage_estimated: bool = False  # the provider sent no usage: completion_tokens are counted deltas
    model: str | None = None
    started_at: datetime
    duration_ms: int
    ttft_ms: int | None = None
    attempts: int = 1
    context_retries: int = 0
    detail: str | None = None
    streamed: bool = True
    echo: EchoVerdict = "none"  # what was decided about a prefill echo (echo.py)
    echo_stripped_chars: int = 0
    # the attempt's fence: the manifest version (ETag) this chunk continues, and where the text
    # stands after it, so that whichever attempt commits, it commits exactly the stored record
    base_etag: str | None = None
    format_after: ReasoningFormat = "none"
    phase_after: Phase = "start"
    held_after: str = ""


class TextState(BaseModel):
    """Where the model's text stands after a chunk: the reasoning split, carried to the next one."""

    reasoning_format: ReasoningFormat
    reasoning_phase: Phase
    held_text: str  # a possible partial <think>/</think> tag, filed by the next chunk
    answer_chars: int
    reasoning_chars: int


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
    error: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

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

    def room_after_first_prompt(self, context_length: int | None) -> int | None:
        if not context_length or not self.first_prompt_tokens:
            return None
        return context_length - self.first_prompt_tokens


class JobResult(BaseModel):
    """``result.json``: the outcome of a job."""

    job_id: str
    status: JobStatus
    finish_reason: FinishReason | None
    stop_reason: StopReason | None
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
        exhausted = manifest.status == "context_exhausted"
        return cls(
            job_id=manifest.job_id,
            status=manifest.status,
            finish_reason="context_exhausted" if exhausted else manifest.last_finish_reason,
            stop_reason=manifest.stop_reason,
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
        )
