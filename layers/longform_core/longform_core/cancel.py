"""Cancelling a job: stop its execution, keep and assemble its partial output, status ``cancelled``."""

from __future__ import annotations

import contextlib

from .errors import JobNotFound, JobStateInvalid
from .finalize import FinalizeTaskInput, finalize_job
from .services import Services
from .status import JobView, job_view, owned_by

# a chunk in flight when the execution stops may still commit once (moto may let a few more run):
# each lost commit means one more chunk to assemble, not an error
MAX_FINALIZE_ATTEMPTS = 10


def cancel_job(job_id: str, services: Services, *, as_owner: str | None = None) -> tuple[JobView, bool]:
    """Returns the job's view and whether this call cancelled it (False: it had already ended).
    Another owner's job is ``JobNotFound``, like an unknown id (``as_owner``: see ``status.owned_by``)."""
    store = services.store
    manifest = store.find_manifest(job_id)
    if manifest is None or not owned_by(manifest, as_owner):
        raise JobNotFound(f"no job {job_id!r}")
    if manifest.terminal:
        return job_view(manifest), False
    if manifest.execution_arn and services.executions is not None:
        services.executions.stop(manifest.execution_arn, error="Cancelled", cause="cancelled on request")
    task = FinalizeTaskInput(job_id=job_id, status="cancelled")
    for _ in range(MAX_FINALIZE_ATTEMPTS - 1):
        # a job the workflow ended meanwhile (or an earlier cancel) is returned as it is; a chunk in
        # flight that committed meanwhile makes the commit fail: assemble again, with it
        with contextlib.suppress(JobStateInvalid):
            manifest, _ = finalize_job(task, services, unless_ended=True)
            return job_view(manifest), manifest.status == "cancelled"
    manifest, _ = finalize_job(task, services, unless_ended=True)  # the last try: errors propagate
    return job_view(manifest), manifest.status == "cancelled"
