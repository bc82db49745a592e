"""The batch domain: a batch's status, its manifest, its items, its counts and summary. Pure data.

A batch is a file of lines; every line is a normal job (``jobs/{id}/``, durable, resumable,
cancellable) whose id is ``{batch_id}-{index:06d}``, so the batch workflow can start each line's
execution under a name known in advance (a redrive starts nothing twice).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from ..models import TERMINAL_STATUSES, JobStatus, utcnow

# queued: accepted, the workflow not yet past its split; running: lines being generated;
# completed: every line ran to its own end (each line's status is in the counts); cancelled: stopped
# on request (finished lines kept, the rest cancelled with their partial text); failed: the batch
# itself could not run (its split or its map failed), the lines that ran are still in the output
BatchStatus = Literal["queued", "running", "completed", "cancelled", "failed"]
BatchTerminalStatus = Literal["completed", "cancelled", "failed"]
BATCH_TERMINAL: frozenset[str] = frozenset(get_args(BatchTerminalStatus))
BATCH_ID_PATTERN = r"^b-[0-9a-f]{40}$"


def line_job_id(batch_id: str, index: int) -> str:
    """The job id (and execution name) of the batch's ``index``-th line (0-based, in input order)."""
    return f"{batch_id}-{index:06d}"


class BatchSource(BaseModel):
    """Where a batch came from: the drop folder (``batches/{name}.jsonl``), the API or the CLI."""

    kind: Literal["s3", "api", "cli"]
    key: str | None = None  # the uploaded object (drop folder)
    name: str | None = None  # results/{name}.jsonl (drop folder)
    etag: str | None = None

    def describe(self) -> str:
        return f"{self.kind}:{self.key}" if self.key else self.kind


class BatchItem(BaseModel):
    """One line as the Distributed Map sees it (``items.json``): small, no text."""

    job_id: str
    custom_id: str
    line: int  # 1-based line number in the input file


class BatchManifest(BaseModel):
    """``batch-runs/{id}/batch.json``: what the batch is and where it stands (constant size)."""

    model_config = ConfigDict(extra="ignore")

    batch_id: str
    status: BatchStatus = "queued"
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    owner: str | None = None
    source: BatchSource | None = None
    lines: int
    input_sha256: str
    options_fingerprint: str
    max_concurrency: int
    # request fields every line gets when it sets none (the CLI's provider options); the split
    # parses the input again with them, so every line's job is exactly what was validated
    defaults: dict[str, Any] = Field(default_factory=dict)
    execution_arn: str | None = None
    cancel_requested: bool = False
    error: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in BATCH_TERMINAL


class BatchCounts(BaseModel):
    """Lines by status. ``queued`` includes lines whose job does not exist yet."""

    total: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    context_exhausted: int = 0
    incomplete: int = 0
    failed: int = 0
    cancelled: int = 0

    def add(self, status: JobStatus) -> None:
        self.total += 1
        setattr(self, status, getattr(self, status) + 1)

    @property
    def done(self) -> int:
        return sum(getattr(self, s) for s in TERMINAL_STATUSES)


class BatchTokens(BaseModel):
    prompt: int = 0  # summed over every chunk of every line
    output: int = 0
    cached: int = 0


class BatchSummary(BaseModel):
    """``batch-runs/{id}/summary.json`` (and ``results/{name}.batch.json``): the batch's outcome."""

    batch_id: str
    status: BatchStatus
    counts: BatchCounts
    tokens: BatchTokens
    estimated_cost_usd: float | None
    chunks: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    wall_seconds: float | None
    lines_per_second: float | None
    output_key: str
    output_uri: str
    source: str | None = None
    error: str | None = None
