"""``longform run`` and ``longform resume``: one job end to end through the real state machine,
on a laptop, with the answer shown as it is generated and the job kept on disk.

The job runs in the local cloud (``cloud.py``: moto, the very ASL, the handlers in-process); its
bucket lives in the state directory (``state.py``), so a job interrupted by Ctrl-C (or a crash)
is resumed by ``longform resume ID`` from its last commit or draft, into the ``--out`` it was
started with (``run_options.py``: the run record). ``resume`` with new budgets extends a job that
one of its budgets stopped (the layer's ``reopen.py``). While it runs, ``follow.py`` shows it;
``outcome.py`` writes its answer and builds the summary (``summary.py``).
"""

from __future__ import annotations

import time
from typing import Any

from .aws import quiet_moto_logs
from .cloud import LOCAL_OWNER, LocalCloud
from .follow import follow, never_retried
from .outcome import rederive_outputs
from .run_options import (
    LOCAL_DRAFT_INTERVAL_SECONDS,
    LOCAL_DRAFT_MIN_TOKENS,
    STDOUT,
    RunOptions,
    cap_for,
    cloud_config,
    provider_for,
    run_record,
    with_recorded_options,
)
from .state import StateDir, StateDirBusy
from .summary import BUDGET_STOPS, Interrupted, RunSummary, describe_status, print_summary, summary_json
from .terminal import JobProgress

__all__ = [
    "BUDGET_STOPS",
    "LOCAL_DRAFT_INTERVAL_SECONDS",
    "LOCAL_DRAFT_MIN_TOKENS",
    "STDOUT",
    "Interrupted",
    "JobNotExtendable",
    "JobNotResumable",
    "RunOptions",
    "RunSummary",
    "describe_status",
    "follow",
    "never_retried",
    "print_summary",
    "rederive_outputs",
    "resume",
    "run",
    "summary_json",
]


class JobNotResumable(Exception):
    """``longform resume`` of an id the state directory does not hold."""


class JobNotExtendable(Exception):
    """``longform resume ID --max-chunks N`` of a job that new budgets cannot extend (the reason)."""


# ---- the two entry points ----------------------------------------------------------------------


def run(options: RunOptions, *, on_cloud: Any = None) -> RunSummary:
    """Run a new job; raises ``RequestInvalid`` before anything starts, ``Interrupted`` on Ctrl-C.
    ``on_cloud(cloud)`` is called once the local cloud is up (tests inject faults there)."""
    from longform_core.request import parse_request

    request = parse_request(options.request)  # fail before starting anything
    started = time.monotonic()
    ui = JobProgress(options.mode, cap=cap_for(options, request.max_tokens_per_request))
    with provider_for(options) as provider, quiet_moto_logs():
        raw = request.model_dump(mode="json", exclude_none=True)
        raw["model"] = provider.model
        cap = cap_for(options, request.max_tokens_per_request)
        for name in ("max_tokens_per_request", "context_length"):
            if getattr(options, name):
                raw[name] = getattr(options, name)
        ui.line(
            f"longform: {provider.label}, model {provider.model}, per-request cap {cap:,} tokens",
            style="bold",
        )
        ui.spin("starting the local stack (moto, the real state machine, the handlers in-process)")
        with LocalCloud(cloud_config(options, provider, cap)) as cloud:
            if on_cloud is not None:
                on_cloud(cloud)
            job = cloud.submit(raw, owner=LOCAL_OWNER)
            if cloud.state is not None:
                cloud.state.save_run(job.job_id, run_record(options, provider, cap, job.job_id))
            ui.line(f"job {job.job_id} started{_state_note(options)}")
            return follow(cloud, job.job_id, options, provider, ui, started=started)


def resume(job_id: str, options: RunOptions) -> RunSummary:
    """Continue a job of the state directory that did not end (or report the one that did); with
    new budgets, extend an ``incomplete`` job that a budget stopped."""
    if options.state_dir is None:
        raise JobNotResumable("resume needs the state directory the job was started in")
    state = StateDir(options.state_dir)
    if job_id not in state.job_ids():
        raise JobNotResumable(f"no job {job_id} in {options.state_dir} (longform list shows its jobs)")
    holder = state.leases.holder(job_id)
    if holder is not None:
        raise StateDirBusy(
            f"job {job_id} is being run by {holder}; wait for it or stop it "
            f"(longform show {job_id} shows its progress)"
        )
    options = with_recorded_options(options, state.load_run(job_id))
    _check_extendable(state, job_id, options)  # refused at once, before the local stack starts
    started = time.monotonic()
    cap = cap_for(options, None)
    ui = JobProgress(options.mode, cap=cap)
    ui.spin("starting the local stack")
    with (
        provider_for(options) as provider,
        quiet_moto_logs(),
        LocalCloud(cloud_config(options, provider, cap)) as cloud,
    ):
        manifest = cloud.store.find_manifest(job_id)
        budgets = _new_budgets(options)
        if manifest is not None and budgets.given:
            manifest = _extend(cloud, job_id, budgets)
            ui.line(f"longform: job {job_id} extended ({budgets.describe()})", style="bold")
        if manifest is not None and not manifest.terminal:
            ui.line(
                f"longform: resuming job {job_id} ({manifest.chunks} chunks committed, "
                f"{manifest.completion_tokens_total:,} tokens) on {provider.label}, "
                f"model {provider.model}",
                style="bold",
            )
            cloud.resume(job_id)
        else:
            repaired = manifest is not None and rederive_outputs(cloud, job_id)
            note = "; its output files were missing or short: re-derived from the committed chunks"
            ui.line(f"longform: job {job_id} already ended" + (note if repaired else ""), style="bold")
            if manifest is not None and (hint := _extend_hint(manifest)):
                ui.line(hint)
        return follow(cloud, job_id, options, provider, ui, started=started)


def _new_budgets(options: RunOptions) -> Any:
    from longform_core.reopen import NewBudgets
    from pydantic import ValidationError

    try:
        return NewBudgets(
            max_chunks=options.max_chunks,
            max_output_tokens=options.max_output_tokens,
            max_cost_usd=options.max_cost_usd,
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise JobNotExtendable(f"{problem['loc'][0]}: {problem['msg']}") from None


def _check_extendable(state: StateDir, job_id: str, options: RunOptions) -> None:
    """New budgets that cannot extend the job: ``JobNotExtendable``, read from disk (no stack)."""
    from longform_core.job_store import JobKeys
    from longform_core.models import Manifest
    from longform_core.reopen import reopen_problem
    from longform_core.request import GenerationRequest

    budgets = _new_budgets(options)
    keys = JobKeys(job_id)
    manifest, request = state.read_object(keys.manifest), state.read_object(keys.request)
    if not budgets.given or manifest is None or request is None:
        return
    problem = reopen_problem(
        Manifest.model_validate_json(manifest), GenerationRequest.model_validate_json(request), budgets
    )
    if problem is not None:
        raise JobNotExtendable(problem)


def _extend(cloud: LocalCloud, job_id: str, budgets: Any) -> Any:
    """Reopen the job with ``budgets`` (reopen.py); ``JobNotExtendable`` says why it cannot be."""
    from longform_core.models import utcnow
    from longform_core.reopen import CannotReopen, reopen_job

    try:
        return reopen_job(cloud.store, job_id, budgets, now=utcnow())
    except CannotReopen as exc:
        raise JobNotExtendable(str(exc)) from None


def _extend_hint(manifest: Any) -> str | None:
    """An ended job that a budget stopped: how to extend it."""
    if manifest.status != "incomplete" or manifest.stop_reason not in BUDGET_STOPS:
        return None
    flag = {"max_cost": "--max-cost USD", "max_chunks": "--max-chunks N"}.get(
        manifest.stop_reason, "--max-output-tokens N"
    )
    job = manifest.job_id
    return f"  its {manifest.stop_reason} budget stopped it: `longform resume {job} {flag}` extends it"


def _state_note(options: RunOptions) -> str:
    return f" (kept in {options.state_dir})" if options.state_dir else ""
