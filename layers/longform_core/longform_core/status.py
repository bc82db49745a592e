"""The one status model every entry point shows: status and progress of a job."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from .models import JobResult, JobStatus, Manifest


class Progress(BaseModel):
    chunks: int
    output_tokens: int
    prompt_tokens: int | None  # of the first request
    prompt_tokens_total: int
    cached_tokens: int
    estimated_cost_usd: float | None
    last_finish_reason: str | None
    context_length: int | None


class JobView(BaseModel):
    """``GET /generations/{id}``, ``longform status``: readable while the job runs."""

    job_id: str
    status: JobStatus
    model: str
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    progress: Progress
    finish_reason: str | None = None
    stop_reason: str | None = None
    error: str | None = None
    output_chars: int
    source: str | None = None  # e.g. "s3:requests/essay.json"


def job_view(manifest: Manifest, result: JobResult | None = None) -> JobView:
    return JobView(
        job_id=manifest.job_id,
        status=manifest.status,
        model=manifest.model,
        created_at=manifest.created_at,
        started_at=manifest.started_at,
        updated_at=manifest.updated_at,
        finished_at=manifest.finished_at,
        progress=Progress(
            chunks=manifest.chunks,
            output_tokens=manifest.completion_tokens_total,
            prompt_tokens=manifest.first_prompt_tokens,
            prompt_tokens_total=manifest.prompt_tokens_total,
            cached_tokens=manifest.cached_tokens_total,
            estimated_cost_usd=manifest.estimated_cost_usd,
            last_finish_reason=manifest.last_finish_reason,
            context_length=manifest.context_length,
        ),
        finish_reason=result.finish_reason if result else None,
        stop_reason=manifest.stop_reason,
        error=manifest.error,
        output_chars=manifest.answer_chars,
        source=manifest.source.describe() if manifest.source else None,
    )
