"""The one status model every entry point shows: status and progress of a job; one job's view and
the views of the most recent jobs (``GET /generations/{id}``, ``GET /generations``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from .errors import JobNotFound
from .job_status import STATUSES
from .models import IncompleteReason, JobStatus, Manifest

if TYPE_CHECKING:
    from .services import Services

LIST_WORKERS = 8  # manifests read in parallel for one page of the listing
STATUS_DESCRIPTION = "; ".join(f"{status}: {meaning.meaning}" for status, meaning in STATUSES.items())


class Progress(BaseModel):
    chunks: int
    output_tokens: int
    prompt_tokens: int | None  # of the first request
    prompt_tokens_total: int
    cached_tokens: int
    estimated_cost_usd: float | None
    last_finish_reason: str | None
    context_length: int | None


class DraftProgress(BaseModel):
    """The chunk in flight, from its last draft checkpoint (not committed yet)."""

    chunk_index: int
    tokens: int
    chars: int
    updated_at: datetime


class JobView(BaseModel):
    """``GET /generations/{id}``, ``longform status``: readable while the job runs."""

    job_id: str
    status: JobStatus = Field(description=STATUS_DESCRIPTION)
    model: str
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    progress: Progress
    finish_reason: str | None = None
    stop_reason: str | None = None
    # incomplete: which of longform's rules stopped the unfinished job, and what it saw (job_status.py)
    incomplete_reason: IncompleteReason | None = Field(
        default=None, description="status incomplete: which of longform's rules stopped the unfinished job"
    )
    stop_detail: str | None = Field(default=None, description="what stopped the job, in one line")
    error: str | None = None
    output_chars: int
    source: str | None = None  # e.g. "s3:requests/essay.json"
    draft: DraftProgress | None = None  # one job's view while it runs (not in listings)


def job_view(manifest: Manifest) -> JobView:
    """The view of a job, from its manifest alone (the commit point; result.json may lag it)."""
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
        finish_reason=manifest.final_finish_reason,
        stop_reason=manifest.stop_reason,
        incomplete_reason=manifest.incomplete_reason,
        stop_detail=manifest.stop_detail if manifest.terminal else None,
        error=manifest.error,
        output_chars=manifest.answer_chars,
        source=manifest.source.describe() if manifest.source else None,
    )


def owned_by(manifest: Manifest, as_owner: str | None) -> bool:
    """Whether a caller acting as ``as_owner`` may see the job (None: a trusted in-process caller,
    the CLI or a test, sees every job). A job without an owner is nobody's: no caller sees it."""
    return as_owner is None or manifest.owner == as_owner


def find_job(job_id: str, services: Services, *, as_owner: str | None = None) -> Manifest:
    """The job's manifest; ``JobNotFound`` when there is no such job, or it is not ``as_owner``'s:
    another caller's job is answered exactly like an unknown id."""
    manifest = services.store.find_manifest(job_id)
    if manifest is None or not owned_by(manifest, as_owner):
        raise JobNotFound(f"no job {job_id!r}")
    return manifest


def get_job(job_id: str, services: Services, *, as_owner: str | None = None) -> JobView:
    """The job's view; ``JobNotFound`` when there is no such job (or it is another owner's). While
    the job runs, the chunk in flight is shown from its draft checkpoint."""
    manifest = find_job(job_id, services, as_owner=as_owner)
    view = job_view(manifest)
    if not manifest.terminal:
        draft = services.store.get_draft(job_id, manifest.chunks)
        if draft is not None and draft.index == manifest.chunks:
            if view.status == "queued":  # a draft implies a chunk attempt started
                view.status = "running"
                view.started_at = view.started_at or draft.started_at
            view.draft = DraftProgress(
                chunk_index=draft.index,
                tokens=draft.tokens,
                chars=len(draft.answer_text),
                updated_at=draft.updated_at,
            )
    return view


def current_status(job_id: str, services: Services) -> JobStatus:
    """The job's status; ``queued`` until its manifest exists."""
    manifest = services.store.find_manifest(job_id)
    return manifest.status if manifest else "queued"


def list_jobs(
    limit: int, next_token: str | None, services: Services, *, as_owner: str | None = None
) -> tuple[list[JobView], str | None]:
    """The views of the most recent jobs, newest first, and the next page's token.

    ``PageTokenInvalid`` when ``next_token`` is not a current page token. An execution without a
    manifest was not started by the submit path: it is not a job and is left out; so is a job that
    is not ``as_owner``'s. A page holds the caller's jobs among ``limit`` executions, so it may hold
    fewer (even none) while ``next_token`` says more follow.
    """
    names, following = services.require_executions().recent(limit, next_token)

    def view_of(job_id: str) -> JobView | None:
        manifest = services.store.find_manifest(job_id)
        if manifest is None or not owned_by(manifest, as_owner):
            return None
        return job_view(manifest)

    if not names:
        return [], following
    with ThreadPoolExecutor(max_workers=min(LIST_WORKERS, len(names))) as pool:
        views = list(pool.map(view_of, names))
    return [v for v in views if v is not None], following
