"""What a local run leaves behind: the answer in ``--out`` (or on stdout), the job's own files
re-derived when a crash or a full disk left them short, and the summary of the job.

``finished`` is the summary of a job whose execution ended; ``interrupted`` that of a Ctrl-C (the
committed text and the draft of the chunk in flight are written to ``--out``; the job resumes)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .billing import store_bill
from .cloud import BUCKET, LocalCloud
from .providers import Provider
from .run_options import STDOUT, RunOptions, out_path
from .state import default_state_dir
from .summary import RunSummary


def rederive_outputs(cloud: LocalCloud, job_id: str) -> bool:
    """An ended job whose ``output.md``/``reasoning.md``/``result.json`` are missing or shorter than
    the manifest says (a full disk, a crash after the commit) gets them written again from the
    committed chunks (Finalize's own derivation); whether anything had to be done."""
    from longform_core.finalize import FinalizeTaskInput, finalize_job
    from longform_core.job_store import JobKeys
    from longform_core.runtime import get_services

    store, keys = cloud.store, JobKeys(job_id)
    result = store.get_result(job_id)
    if result is not None:
        answer = store.get_text(result.output_key)
        reasoning = store.get_text(result.reasoning_key) if result.reasoning_key else ""
        if (answer is not None and len(answer) == result.output_chars) and (
            reasoning is not None and len(reasoning) == result.reasoning_chars
        ):
            return False
        cloud.s3.delete_object(Bucket=BUCKET, Key=keys.result)  # written last: its absence says "derive"
    finalize_job(FinalizeTaskInput(job_id=job_id), get_services())
    return True


def write_answer(options: RunOptions, job_id: str, answer: str, reasoning: str | None) -> Path | None:
    """The answer into ``--out`` (and the reasoning beside it); None when it goes to stdout."""
    out = out_path(options, job_id)
    if out == STDOUT:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(answer, encoding="utf-8")
    if reasoning:
        out.with_suffix(".reasoning.md").write_text(reasoning, encoding="utf-8")
    return out


def stdout_answer(answer: str) -> None:
    sys.stdout.write(answer)
    if answer and not answer.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


def _where_the_text_is(cloud: LocalCloud, job_id: str, exc: BaseException) -> str:
    from longform_core.job_store import JobKeys

    chunks = JobKeys(job_id).chunk(0).rsplit("/", 1)[0]
    where = cloud.store_dir.object_path(chunks)
    message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return (
        f"the output could not be written ({message}); the committed text is in {where}/, and "
        f"`longform resume {job_id}` writes it again once the disk takes it"
    )


def _deliver(cloud: LocalCloud, job_id: str, options: RunOptions) -> tuple[Any, str | None, str | None]:
    """The ended job's answer into ``--out`` (a failed job with no text: no empty file); its result
    and the two paths written."""
    store = cloud.store
    manifest = store.find_manifest(job_id)
    if manifest is not None and manifest.terminal:
        rederive_outputs(cloud, job_id)  # the job ended but its files did not all reach the disk
    result = store.get_result(job_id)
    answer = (store.get_text(result.output_key) or "") if result is not None else ""
    if result is None or not (answer or result.status != "failed"):
        return result, None, None
    reasoning = store.get_text(result.reasoning_key) if result.reasoning_key else None
    out = write_answer(options, job_id, answer, reasoning)
    if out is None:
        stdout_answer(answer)
        return result, None, None
    result_file = out.with_suffix(".json")
    result_file.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    return result, str(out), str(result_file)


def finished(
    cloud: LocalCloud,
    job_id: str,
    options: RunOptions,
    provider: Provider,
    started: float,
    desc: dict[str, Any],
) -> RunSummary:
    """The summary of a job whose execution ended, its answer written."""
    store = cloud.store
    manifest = store.find_manifest(job_id)
    entered = cloud.states_entered(job_id) if desc["status"] != "NOT_STARTED" else []
    loop_transitions = sum(1 for name in entered if name in ("GenerateChunk", "MoreToGenerate"))
    output_path = result_path = unwritten = None
    try:
        result, output_path, result_path = _deliver(cloud, job_id, options)
    except (OSError, ClientError, BotoCoreError) as exc:  # a full disk, a read-only --out
        result = store.get_result(job_id) if not isinstance(exc, OSError) else None
        unwritten = _where_the_text_is(cloud, job_id, exc)
    chunks = result.chunks if result else (manifest.chunks if manifest else 0)
    return RunSummary(
        job_id=job_id,
        status=result.status if result else (manifest.status if manifest else "failed"),
        finish_reason=result.finish_reason if result else None,
        stop_reason=result.stop_reason if result else None,
        chunks=chunks,
        prompt_tokens=result.prompt_tokens if result else None,
        prompt_tokens_total=result.prompt_tokens_total if result else None,
        output_tokens=result.output_tokens if result else 0,
        cached_tokens=result.cached_tokens if result else 0,
        estimated_cost_usd=result.estimated_cost_usd if result else None,
        state_transitions=len(entered),
        transitions_per_chunk=round(loop_transitions / chunks, 3) if chunks and entered else None,
        context_length=result.context_length if result else None,
        context_used=result.context_used if result else None,
        output_path=output_path,
        result_path=result_path,
        execution_status=str(desc["status"]),
        provider=provider.label,
        model=provider.model,
        emulated=provider.kind == "emulator",
        duration_seconds=round(time.monotonic() - started, 3),
        max_invocation_seconds=round(max((i.duration_seconds for i in cloud.invocations), default=0.0), 3),
        error=unwritten or (result.error if result else desc.get("cause") or desc.get("error")),
        incomplete_reason=result.incomplete_reason if result else None,
        stop_detail=result.stop_detail if result else None,
        state_dir=str(options.state_dir) if options.state_dir else None,
        infrastructure_cost=(
            result.infrastructure_cost.model_dump() if result and result.infrastructure_cost else None
        ),
        output_written=unwritten is None
        and (result is not None or manifest is None or not manifest.terminal),
        billed=store_bill(store, store.find_manifest(job_id)),
    )


def resume_command(options: RunOptions, job_id: str) -> str:
    command = f"longform resume {job_id}"
    if options.state_dir is not None and options.state_dir != default_state_dir():
        command += f" --state-dir {options.state_dir}"
    return command


def interrupted(
    cloud: LocalCloud,
    job_id: str,
    options: RunOptions,
    provider: Provider,
    started: float,
    answer_start: str,
) -> RunSummary:
    """What Ctrl-C keeps: the committed text and the draft of the chunk in flight, in ``--out``."""
    store = cloud.store
    manifest = store.find_manifest(job_id)
    answer, reasoning, draft_tokens = "", "", 0
    if manifest is not None:
        answer, reasoning = store.read_running_text(manifest, answer_start=answer_start)
        draft = None if manifest.terminal else store.get_draft(job_id, manifest.chunks)
        if draft is not None:
            answer += draft.answer_text
            reasoning += draft.reasoning_text
            draft_tokens = draft.tokens
    error = None
    try:
        out = write_answer(options, job_id, answer, reasoning or None)
    except OSError as exc:  # still stop: the text is in the state directory
        out, error = None, f"could not write --out: {exc}"
    else:
        if out is None:
            stdout_answer(answer)
    resumable = options.state_dir is not None and manifest is not None and not manifest.terminal
    return RunSummary(
        job_id=job_id,
        status="interrupted",
        finish_reason=None,
        stop_reason=None,
        chunks=manifest.chunks if manifest else 0,
        prompt_tokens=manifest.first_prompt_tokens if manifest else None,
        prompt_tokens_total=manifest.prompt_tokens_total if manifest else None,
        output_tokens=manifest.completion_tokens_total if manifest else 0,
        cached_tokens=manifest.cached_tokens_total if manifest else 0,
        estimated_cost_usd=manifest.estimated_cost_usd if manifest else None,
        state_transitions=0,
        transitions_per_chunk=None,
        context_length=manifest.context_length if manifest else None,
        context_used=None,
        output_path=str(out) if out else None,
        result_path=None,
        execution_status="RUNNING",
        provider=provider.label,
        model=provider.model,
        emulated=provider.kind == "emulator",
        duration_seconds=round(time.monotonic() - started, 3),
        max_invocation_seconds=0.0,
        error=error,
        draft_tokens=draft_tokens,
        resume_command=resume_command(options, job_id) if resumable else None,
        state_dir=str(options.state_dir) if options.state_dir else None,
        billed=store_bill(store, manifest),
    )
