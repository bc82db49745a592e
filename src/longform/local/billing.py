"""What the provider billed a local job for, over every process that ran it.

The layer records each billed request as it arrives (``longform_core.billed``: the style probe,
discarded replies and dead attempts beside the chunks' kept requests, in ``jobs/{id}/billed/``).
The summary of ``run``/``resume`` reads them through the local cloud's bucket, ``show`` straight from
the state directory's disk (no moto: it works beside the process running the job).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from longform_core.billed import Billed, billed_prefix, job_billed, stored_billed

if TYPE_CHECKING:
    from longform_core.job_store import JobStore
    from longform_core.models import Manifest

    from .state import StateDir

__all__ = ["Billed", "state_bill", "store_bill"]


def store_bill(store: JobStore, manifest: Manifest | None) -> dict[str, Any]:
    """Everything billed for the job, read through the bucket (the summary's ``billed``)."""
    return asdict(stored_billed(store, manifest))


def state_bill(state: StateDir, manifest: Manifest) -> Billed:
    """Everything billed for the job, read from the state directory's disk."""
    from .disk_store import TMP_PREFIX

    prefix = billed_prefix(manifest.job_id)
    folder = state.object_path(prefix + "x").parent
    names = sorted(p.name for p in folder.glob("*.json") if not p.name.startswith(TMP_PREFIX))
    return job_billed(manifest, [prefix + n for n in names], state.read_object)
