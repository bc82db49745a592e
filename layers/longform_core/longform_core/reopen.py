"""Reopening an ``incomplete`` job with larger budgets, so that it goes on to a true end.

A job stopped by one of its own budgets (``max_chunks``, ``max_output_tokens``, ``max_cost``) is not
finished: the model was still writing. Given larger budgets it continues from its committed chunks
exactly as if it had never stopped (the next chunk's prefill is the committed text), so with
budgets that suffice its output equals the uncapped answer.

The rule (``reopen_problem``, pure):

- only an ``incomplete`` job whose ``incomplete_reason`` is a budget can be reopened; one that
  succeeded, filled its context window, failed, was cancelled, or was stopped by a loop guard
  (repetition, no progress) cannot: going on would not change its end;
- at least one budget is given, each larger than what the job has used, and after them no budget
  is already reached (the one that stopped the job must be among those raised);
- budgets only grow what is allowed: the request's other fields never change.

``reopen_job`` applies it (I/O): the request's budgets are rewritten (``request.json``: what the
chunk function reads them from), then the manifest goes back to ``running`` with a line in its
``reopened`` record (``If-Match``: a racing reopen or cancel loses), then ``result.json`` is removed
(it described the ended job; finalize writes the new one), then the running text is restored to
the raw committed text (finalize's output may carry a held partial tag). When the job ends again,
finalize writes its new result and publishes the completion event again. The caller starts a new
execution of the workflow for the job (locally: ``longform resume ID --max-chunks N``; on AWS an
execution name is taken for 90 days after it closed, so a deployed caller must name it anew).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .errors import LongformError
from .job_store import JobKeys, JobStore, assemble_chunks
from .models import Manifest
from .request import MAX_CHUNKS_PER_JOB, GenerationRequest

BUDGET_REASONS = frozenset({"max_chunks", "max_output_tokens", "max_cost"})


class CannotReopen(LongformError):
    """The job cannot be extended (its status, or budgets that would not let it go on)."""


class NewBudgets(BaseModel):
    """The budgets a reopened job continues with (None: unchanged)."""

    model_config = ConfigDict(frozen=True)

    max_chunks: int | None = Field(default=None, ge=1, le=MAX_CHUNKS_PER_JOB)
    max_output_tokens: int | None = Field(default=None, ge=1, le=10_000_000)
    max_cost_usd: float | None = Field(default=None, gt=0.0, le=100_000.0)

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.max_chunks, self.max_output_tokens, self.max_cost_usd))

    def describe(self) -> str:
        parts = [
            f"max_chunks {self.max_chunks}" if self.max_chunks is not None else "",
            f"max_output_tokens {self.max_output_tokens}" if self.max_output_tokens is not None else "",
            f"max_cost_usd {self.max_cost_usd}" if self.max_cost_usd is not None else "",
        ]
        return ", ".join(p for p in parts if p)


_ENDED = {
    "succeeded": "it succeeded: the model finished its answer",
    "context_exhausted": "its context window is full: no budget makes room",
    "failed": "it failed: an error stopped it, not a budget",
    "cancelled": "it was cancelled",
}


def reopen_problem(manifest: Manifest, request: GenerationRequest, budgets: NewBudgets) -> str | None:
    """Why ``budgets`` cannot reopen this job (None: they can)."""
    job = f"job {manifest.job_id}"
    if manifest.status != "incomplete":
        if not manifest.terminal:
            return f"{job} has not ended ({manifest.status}): new budgets extend an incomplete job only"
        return f"{job} cannot be extended: {_ENDED.get(manifest.status, manifest.status)}"
    reason = manifest.incomplete_reason
    if reason not in BUDGET_REASONS:
        return f"{job} cannot be extended: it was stopped by the {reason} guard, not a budget"
    if not budgets.given:
        return f"{job} stopped on its {reason} budget: give a larger one to extend it"
    cost = manifest.estimated_cost_usd or 0.0
    used = {
        "max_chunks": (budgets.max_chunks, manifest.chunks, f"{manifest.chunks} chunks"),
        "max_output_tokens": (
            budgets.max_output_tokens,
            manifest.completion_tokens_total,
            f"{manifest.completion_tokens_total:,} output tokens",
        ),
        "max_cost_usd": (budgets.max_cost_usd, cost, f"${cost:.6f} estimated"),
    }
    for name, (new, spent, what) in used.items():
        if new is not None and new <= spent:
            return f"{job} has used {what}: a new {name} must be larger than that (got {new})"
    after = request_with(request, budgets)
    still = {
        "max_chunks": manifest.chunks >= after.max_chunks,
        "max_output_tokens": after.max_output_tokens is not None
        and manifest.completion_tokens_total >= after.max_output_tokens,
        "max_cost_usd": after.max_cost_usd is not None
        and manifest.estimated_cost_usd is not None
        and manifest.estimated_cost_usd >= after.max_cost_usd,
    }
    reached = [name for name, hit in still.items() if hit]
    if reached:
        names = " and ".join(reached)
        return f"{job} would stop at once: its {names} budget is reached; give a larger {names}"
    return None


def request_with(request: GenerationRequest, budgets: NewBudgets) -> GenerationRequest:
    """The request with the given budgets in place of its own."""
    update = {
        name: value
        for name, value in (
            ("max_chunks", budgets.max_chunks),
            ("max_output_tokens", budgets.max_output_tokens),
            ("max_cost_usd", budgets.max_cost_usd),
        )
        if value is not None
    }
    return request.model_copy(update=update)


def reopen_job(store: JobStore, job_id: str, budgets: NewBudgets, *, now: datetime) -> Manifest:
    """Reopen ``job_id`` with ``budgets`` (see the module's doc); the running manifest. Raises
    ``CannotReopen`` with the reason, having changed nothing."""
    manifest, etag = store.get_manifest(job_id)
    request = store.get_request(job_id)
    problem = reopen_problem(manifest, request, budgets)
    if problem is not None:
        raise CannotReopen(problem)
    chunks = store.read_chunks(manifest)
    answer, reasoning = assemble_chunks(chunks, answer_start=request.answer_start())
    store.put_request(job_id, request_with(request, budgets))
    note = (
        f"{now.isoformat(timespec='seconds')}: incomplete ({manifest.incomplete_reason}) after "
        f"{manifest.chunks} chunks, {manifest.completion_tokens_total} output tokens; "
        f"reopened with {budgets.describe()}"
    )
    manifest.reopen(note, answer_chars=len(answer), reasoning_chars=len(reasoning))
    store.put_manifest(manifest, if_match=etag)
    store.s3.delete_object(Bucket=store.bucket, Key=JobKeys(job_id).result)
    store.write_running_text(job_id, answer=answer, reasoning=reasoning or None)
    return manifest
