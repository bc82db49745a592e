"""Cancelling a job: stop its execution, keep and assemble its partial output, status ``cancelled``."""

from __future__ import annotations

from .errors import JobNotFound, JobStateInvalid
from .finalize import FinalizeTaskInput, finalize
from .services import Services
from .status import JobView, job_view

MAX_FINALIZE_ATTEMPTS = 3


def cancel_job(job_id: str, services: Services) -> tuple[JobView, bool]:
    """Returns the job's view and whether this call cancelled it (False: it had already ended)."""
    store = services.store
    manifest = store.find_manifest(job_id)
    if manifest is None:
        raise JobNotFound(f"no job {job_id}")
    if manifest.terminal:
        return job_view(manifest, store.get_result(job_id)), False
    if manifest.execution_arn and services.executions is not None:
        services.executions.stop(manifest.execution_arn, error="Cancelled", cause="cancelled on request")
    for _ in range(MAX_FINALIZE_ATTEMPTS):
        manifest = store.find_manifest(job_id)
        if manifest is None:
            raise JobNotFound(f"no job {job_id}")
        if manifest.terminal:  # the workflow finished first (or an earlier cancel)
            return job_view(manifest, store.get_result(job_id)), manifest.status == "cancelled"
        try:
            finalize(FinalizeTaskInput(job_id=job_id, status="cancelled"), services)
            break
        except JobStateInvalid:
            continue  # a chunk in flight committed meanwhile: assemble again, with it
    manifest = store.find_manifest(job_id)
    assert manifest is not None
    return job_view(manifest, store.get_result(job_id)), True
