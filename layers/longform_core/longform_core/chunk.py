"""Use case: generate, store and commit the next continuation chunk of a job (the GenerateChunk task).

Inputs and outputs are small pydantic models: text never travels through the state machine.
The steps, each in its own module: read the job (request, manifest, text so far: ``chunk_job.py``)
-> size the request (``continuation.py``) -> ask the provider, shrinking on a context-window error
and stepping down the prefill ladder (``chunk_ask.py``, ``chunk_style.py``) -> strip a prefill echo
(``echo.py``) -> file the reply as answer and reasoning, guarded against loops (``chunk_filing.py``)
-> store the chunk record, commit the manifest (``Manifest`` methods), then write the running text
(``chunk_commit.py``). A draft an earlier attempt left is resumed instead (``chunk_draft.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pydantic import BaseModel, ConfigDict

from .billed import BilledProvider
from .chunk_ask import ask
from .chunk_commit import ChunkTaskOutput, commit
from .chunk_draft import reply_from_draft
from .chunk_job import ChunkJob, read_job
from .continuation import job_budget, output_budget_left
from .errors import ContextExhausted, JobStateInvalid, ProviderUnavailable
from .job_store import JobStore
from .models import CONTINUE_FINISHES, JobId, Manifest, StopReason, utcnow
from .services import MetricsSink, Services

__all__ = ["ChunkTaskInput", "ChunkTaskOutput", "generate_chunk"]


class ChunkTaskInput(BaseModel):
    """What the state machine passes to GenerateChunk: only the job reference."""

    model_config = ConfigDict(extra="ignore")
    job_id: JobId


def generate_chunk(
    task: ChunkTaskInput,
    services: Services,
    *,
    remaining_ms: Callable[[], int],
    metrics: MetricsSink | None = None,
) -> ChunkTaskOutput:
    """Generate, store and commit the next continuation chunk of a job."""
    store = services.store
    request = store.get_request(task.job_id)
    manifest, etag = store.get_manifest(task.job_id)
    if manifest.terminal:
        raise JobStateInvalid(f"job {task.job_id} already ended ({manifest.status})")
    if manifest.stop_reason == "context_exhausted":
        raise ContextExhausted(f"job {task.job_id}: the context window was already exhausted")
    if manifest.last_finish_reason is not None and manifest.stop_reason is not None:
        # a retry after the commit of the job's last chunk: report it again, do nothing
        return _replay(manifest)
    if manifest.mark_running(utcnow()):  # the first chunk attempt starts: the job is running
        etag = store.put_manifest(manifest, if_match=etag)
    job = read_job(store, request, manifest, etag)
    # every reply this invocation is billed for is recorded as it arrives (billed.py)
    services = replace(
        services, provider=BilledProvider(services.provider, store, task.job_id, manifest.chunks)
    )
    draft = store.get_draft(task.job_id, manifest.chunks)
    if draft is not None and draft.base_etag == etag and draft.has_text:
        # an attempt of this very chunk died after a checkpoint: its text is the chunk
        resumed = reply_from_draft(job, draft)
        if resumed is not None:
            committed = commit(services, job, resumed, metrics)
            store.delete_draft(task.job_id, draft.index)
            return committed
    budget = job_budget(request, services.settings, manifest)
    left = output_budget_left(budget, manifest)
    if left is not None and left <= 0:
        return _stop_without_chunk(store, job, "max_output_tokens")
    reply = ask(services, job, budget, remaining_ms)
    committed = commit(services, job, reply, metrics)
    if reply.drafts_written or draft is not None:
        store.delete_draft(task.job_id, committed.chunk_index)  # superseded by the commit
    if reply.outcome.error is not None and committed.finish_reason in CONTINUE_FINISHES:
        # the provider reported an error after this text: the text is committed, and the chunk
        # fails like a 5xx (the workflow retries it, going on from the text; out of retries: failed)
        raise ProviderUnavailable(
            f"the provider reported an error mid-reply (the {len(reply.outcome.content)} characters "
            f"before it are kept): {reply.outcome.error}"
        )
    return committed


def _replay(manifest: Manifest) -> ChunkTaskOutput:
    return ChunkTaskOutput(
        job_id=manifest.job_id,
        chunk_index=max(0, manifest.chunks - 1),
        finish_reason=manifest.last_finish_reason or "stop",
        chunks=manifest.chunks,
        output_tokens=manifest.completion_tokens_total,
        replayed=True,
    )


def _stop_without_chunk(store: JobStore, job: ChunkJob, reason: StopReason) -> ChunkTaskOutput:
    manifest = job.next_manifest()
    manifest.record_stop_without_chunk(reason)
    store.put_manifest(manifest, if_match=job.etag)
    return _replay(manifest)
