"""``longform list`` and ``longform show``: the jobs of a state directory, read from disk (no moto:
works while another process runs them)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longform_core.job_status import EXIT_OK, EXIT_USAGE

from .arguments import add_state_argument
from .common import fail, state_dir_of

if TYPE_CHECKING:
    from longform_core.billed import Billed
    from longform_core.models import Manifest

    from longform.local.state import StateDir


@dataclass(frozen=True)
class LocalJob:
    manifest: Manifest
    prompt: str  # the prompt (or last user message), whitespace folded


def local_job(state: StateDir, job_id: str) -> LocalJob | None:
    """One job of a state directory, read from disk (no moto: works while another process runs);
    None when it has no readable manifest."""
    from longform_core.job_store import JobKeys
    from longform_core.models import Manifest
    from longform_core.request import GenerationRequest

    keys = JobKeys(job_id)
    raw = state.read_object(keys.manifest)
    if raw is None:
        return None
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValueError:
        return None
    prompt = ""
    request_raw = state.read_object(keys.request)
    if request_raw:
        try:
            request = GenerationRequest.model_validate_json(request_raw)
            users = [m for m in request.messages or [] if m.role == "user"]
            prompt = request.prompt or (str(users[-1].content) if users else "")
        except ValueError:
            prompt = ""
    return LocalJob(manifest, " ".join(prompt.split()))


def local_jobs(state_dir: Path) -> list[LocalJob]:
    """The jobs of a state directory, most recently updated first."""
    from longform.local.state import StateDir

    state = StateDir(state_dir)
    jobs = [job for job_id in state.job_ids() if (job := local_job(state, job_id)) is not None]
    jobs.sort(key=lambda j: j.manifest.updated_at, reverse=True)
    return jobs


def _cmd_list(args: argparse.Namespace) -> int:
    jobs = local_jobs(state_dir_of(args))[: args.limit]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "job_id": j.manifest.job_id,
                        "status": j.manifest.status,
                        "incomplete_reason": j.manifest.incomplete_reason,
                        "chunks": j.manifest.chunks,
                        "output_tokens": j.manifest.completion_tokens_total,
                        "updated_at": j.manifest.updated_at.isoformat(),
                        "prompt": j.prompt[:200],
                    }
                    for j in jobs
                ]
            )
        )
        return EXIT_OK
    if not jobs:
        print(f"no jobs in {args.state_dir} (longform run starts one)")
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("job", "status", "chunks", "tokens", "updated", "prompt"):
        table.add_column(column, justify="right" if column in ("chunks", "tokens") else "left", no_wrap=True)
    for j in jobs:
        m = j.manifest
        table.add_row(
            m.job_id,
            m.status + (f" ({m.incomplete_reason})" if m.incomplete_reason else ""),
            str(m.chunks),
            f"{m.completion_tokens_total:,}",
            m.updated_at.strftime("%Y-%m-%d %H:%M"),
            j.prompt[:48] + ("…" if len(j.prompt) > 48 else ""),
        )
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from longform_core.job_store import JobKeys
    from longform_core.models import JobResult
    from longform_core.status import job_view

    from longform.local.billing import state_bill
    from longform.local.state import StateDir
    from longform.local.terminal import print_table

    state = StateDir(state_dir_of(args))
    job = local_job(state, args.job_id) if args.job_id in state.job_ids() else None
    if job is None:
        return fail(f"no job {args.job_id} in {args.state_dir} (longform list shows its jobs)", EXIT_USAGE)
    manifest, keys = job.manifest, JobKeys(args.job_id)
    view = job_view(manifest)
    raw = state.read_object(keys.result)
    result = JobResult.model_validate_json(raw) if raw else None
    bill = state_bill(state, manifest)  # every billed request, of every process that ran the job
    if args.json:
        print(
            json.dumps(
                {
                    "job": view.model_dump(mode="json"),
                    "result": result.model_dump(mode="json") if result else None,
                    "billed": asdict(bill),
                }
            )
        )
        return EXIT_OK
    rows = [
        ("job", view.job_id),
        ("status", view.status + _show_hint(state, manifest, view.job_id)),
        ("model", view.model),
        ("prompt", job.prompt[:120]),
        ("chunks", str(view.progress.chunks)),
        ("output tokens", f"{view.progress.output_tokens:,}"),
        ("billed", _billed_row(bill)),
        ("characters", f"{view.output_chars:,}"),
    ]
    if view.stop_reason:
        rows.append(("stop", f"{view.stop_reason} (finish: {view.finish_reason})"))
    if view.incomplete_reason:
        detail = view.stop_detail or "the text is not finished"
        rows.append(("incomplete", f"{view.incomplete_reason}: {detail}"))
    if result is not None and result.in_flight_chunk is not None:
        kept = result.in_flight_chunk
        rows.append(("in flight", f"chunk {kept.chunk_index} kept from its draft ({kept.chars:,} chars)"))
    if view.error:
        rows.append(("error", view.error))
    if result is not None:
        rows.append(("result", str(state.object_path(keys.result))))
    reported = result.estimated_cost_usd if result is not None else None
    if bill.cost_usd or reported is not None:  # every billed request's, as the provider priced it
        rows.append(("estimated cost", f"${max(bill.cost_usd, reported or 0.0):.6f}"))
    rows.append(("output", str(state.object_path(keys.output))))
    print_table(rows, sys.stdout)
    return EXIT_OK


def _billed_row(bill: Billed) -> str:
    """What the provider billed over every request of every process (``longform_core.billed``)."""
    requests = f"{bill.requests:,} request{'s' if bill.requests != 1 else ''}"
    return (
        f"prompt {bill.prompt_tokens:,} over {requests}, cached {bill.cached_tokens:,}, "
        f"output {bill.output_tokens:,}"
    )


def _show_hint(state: StateDir, manifest: Manifest, job_id: str) -> str:
    """What to do about a job that has not ended: resume it, unless a live process runs it."""
    if manifest.terminal:
        return ""
    holder = state.leases.holder(job_id)
    return f"  (being run by {holder})" if holder else f"  (resume: longform resume {job_id})"


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    jobs = sub.add_parser("list", help="recent local jobs (id, status, chunks, tokens, prompt)")
    jobs.add_argument("--limit", type=int, default=20, metavar="N", help="how many")
    jobs.add_argument("--json", action="store_true", help="a JSON array instead of the table")
    add_state_argument(jobs)
    jobs.set_defaults(func=_cmd_list)

    show = sub.add_parser("show", help="status and result of a local job")
    show.add_argument("job_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="the job's view and result as JSON")
    add_state_argument(show)
    show.set_defaults(func=_cmd_show)
