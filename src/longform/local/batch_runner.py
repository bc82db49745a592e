"""``longform batch``: a JSONL batch end to end through the real batch workflow, on a laptop.

The batch goes through the one submit path into ``statemachine/batch.asl.json`` on the local cloud
(moto's interpreter: the Distributed Map, a generation execution per line). While it runs, every
line that has ended is appended to a checkpoint next to the output (``OUT.jsonl.partial``,
``batch_checkpoint``); a run that stops (Ctrl-C, SIGTERM, a crash, a closed laptop) is resumed by
the same command. With the jobs kept in a state directory (``--state-dir``), the rerun resumes the
very batch the first run started (its id, its cap, its output; each line continues from its last
commit) and ends it with a true status; without one, the lines in the checkpoint are kept and the
others run again in a new batch (a line cut off mid-way starts over). The output is written in input
order once every line has ended (``batch_report``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .aws import quiet_moto_logs
from .batch_checkpoint import DONE_STATUSES, PARTIAL_SUFFIX, PARTIAL_VERSION, Checkpoint, numbered_lines
from .batch_report import BatchRunSummary, ProgressBar, RunFacts, print_summary, write_output
from .cloud import CloudConfig, LocalCloud
from .providers import ProviderOptions, choose_provider
from .state import StateDirBusy

__all__ = ["PARTIAL_SUFFIX", "BatchRunOptions", "BatchRunSummary", "print_summary", "run_batch"]


@dataclass
class BatchRunOptions:
    file: Path
    out: Path | None = None
    max_concurrency: int | None = None
    base_url: str | None = None
    api_key_env: str | None = None  # None: DEEPINFRA_API_KEY, sent only to DeepInfra
    model: str | None = None
    max_tokens_per_request: int | None = None
    context_length: int | None = None
    emulator: bool = False  # the built-in emulator whatever else is set
    emulator_settings: dict[str, Any] = field(default_factory=dict)  # EmulatorSettings fields
    retry_sleep_scale: float = 1.0
    resume: bool = True
    verbose: bool = False
    progress: bool = True
    state_dir: Path | None = None  # keep the jobs on disk there (longform list / show see them)


@dataclass
class _Stack:
    cloud: LocalCloud
    label: str
    model: str
    emulator: Any  # the local emulator (it counts concurrent requests), or None for a real provider


@contextlib.contextmanager
def _interpreter_quiet() -> Iterator[None]:
    """moto's interpreter logs every error a state handles (a failed line, a chunk that lost to a
    cancel) with the whole state's repr: the batch's output says how each line ended instead."""
    interpreter = logging.getLogger("moto.stepfunctions.parser")
    level = interpreter.level
    interpreter.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        interpreter.setLevel(level)


@contextlib.contextmanager
def _cloud(options: BatchRunOptions) -> Iterator[_Stack]:
    choice = ProviderOptions(
        emulator=options.emulator,
        base_url=options.base_url,
        model=options.model,
        api_key_env=options.api_key_env,
        emulator_settings=options.emulator_settings,
        max_tokens_per_request=options.max_tokens_per_request,
        context_length=options.context_length,
    )
    with choose_provider(choice) as provider, quiet_moto_logs(), _interpreter_quiet():
        extra = {}
        if options.max_concurrency:
            extra["BATCH_MAX_CONCURRENCY"] = str(options.max_concurrency)
        config = CloudConfig.for_provider(
            provider,
            max_tokens_per_request=options.max_tokens_per_request,
            retry_sleep_scale=options.retry_sleep_scale,
            log_level="INFO" if options.verbose else "WARNING",
            extra_env=extra,
            state_dir=options.state_dir,
        )
        with LocalCloud(config) as cloud:
            yield _Stack(cloud, provider.label, provider.model, provider.emulator)


def default_out(file: Path) -> Path:
    return Path("out") / f"{file.stem}.jsonl"


def run_batch(options: BatchRunOptions, *, stderr: TextIO | None = None) -> BatchRunSummary:
    """Run (or resume) a batch; ``BatchInvalid`` (before anything starts) names every bad line."""
    from longform_core.batch.request import parse_batch

    stderr = stderr or sys.stderr
    data = options.file.read_bytes()
    defaults = {
        "model": options.model,
        "max_tokens_per_request": options.max_tokens_per_request,
        "context_length": options.context_length,
    }
    defaults = {k: v for k, v in defaults.items() if v is not None}
    parse_batch(data, max_lines=10**9, max_bytes=10**12, defaults=defaults)  # every problem, up front
    numbered = numbered_lines(data)
    # a line is its position in the file (the header pins the file's content): identical lines
    # are different lines, each with its own output row
    keys = [str(n) for n, _ in numbered]
    out = options.out or default_out(options.file)
    header = {
        "longform_partial": PARTIAL_VERSION,
        "input_sha256": hashlib.sha256(data).hexdigest(),
        "defaults": defaults,
    }
    checkpoint = Checkpoint(out.with_name(out.name + PARTIAL_SUFFIX), header)
    resumed = checkpoint.load() if options.resume else 0
    checkpoint.start()
    todo = [(raw, key) for (_, raw), key in zip(numbered, keys, strict=True) if key not in checkpoint.done]
    started = time.monotonic()
    facts = RunFacts(
        batch_id=None, resumed=resumed, wall=0.0, concurrency=options.max_concurrency, max_seen=None,
        label=options.base_url or "emulator", model=options.model or "(default)", ran=len(todo),
    )  # fmt: skip
    if resumed:
        stderr.write(f"longform: resuming {out}: {resumed} line(s) already done, {len(todo)} to run\n")
    bar = ProgressBar(stderr, len(numbered), enabled=options.progress)
    if todo:
        with _cloud(options) as stack:
            facts.label, facts.model = stack.label, stack.model
            batch = _start(stack.cloud, todo, checkpoint, options, defaults, stderr)
            facts.batch_id, facts.concurrency = batch
            _follow(stack.cloud, batch[0], checkpoint, bar, stderr=stderr)
            if stack.emulator is not None:
                facts.max_seen = stack.emulator.concurrency["max"]
    bar.show_checkpoint(checkpoint, 0, final=True)
    facts.wall = time.monotonic() - started
    return write_output(out, checkpoint, keys, facts)


def _start(
    cloud: LocalCloud,
    todo: list[tuple[bytes, str]],
    checkpoint: Checkpoint,
    options: BatchRunOptions,
    defaults: dict[str, Any],
    stderr: TextIO,
) -> tuple[str, int]:
    """Resume the batch the checkpoint names when it is unfinished in this state directory, else
    submit the lines to run as a new batch: (its id, its cap)."""
    from . import batch as local_batch

    resumable = _resumable(cloud, checkpoint)
    if resumable is not None:
        batch_id, cap = resumable
        local_batch.resume_batch(cloud, batch_id)
        stderr.write(f"longform: batch {batch_id} resumed: at most {cap} at once\n")
        return batch_id, cap
    body = b"\n".join(raw for raw, _ in todo) + b"\n"
    batch = local_batch.submit(cloud, body, max_concurrency=options.max_concurrency, defaults=defaults)
    # which line each item is; with a state directory (its jobs outlive this process) a rerun
    # resumes this very batch
    checkpoint.note_batch(batch.batch_id, [key for _, key in todo])
    stderr.write(
        f"longform: batch {batch.batch_id}: {batch.lines} line(s), at most {batch.max_concurrency} at once\n"
    )
    return batch.batch_id, batch.max_concurrency


def _resumable(cloud: LocalCloud, checkpoint: Checkpoint) -> tuple[str, int] | None:
    """(id, cap) of the checkpoint's batch when this state directory holds it unfinished."""
    from longform_core.runtime import get_services

    if checkpoint.batch is None or cloud.state is None:
        return None
    batch_id = checkpoint.batch[0]
    try:
        found = get_services().batches.find_batch(batch_id)
    except ValueError:  # an unreadable batch.json: run the lines in a new batch
        return None
    if found is None or found[0].terminal:
        return None
    holder = cloud.state.leases.holder(batch_id)
    if holder:
        raise StateDirBusy(f"batch {batch_id} is being run by {holder}")
    return batch_id, found[0].max_concurrency


def _follow(
    cloud: LocalCloud, batch_id: str, checkpoint: Checkpoint, bar: ProgressBar, *, stderr: TextIO
) -> None:
    """Until the batch's execution ends: every line that ends goes to the checkpoint."""
    from longform_core.runtime import get_services

    from . import batch as local_batch

    items = get_services().batches.get_items(batch_id)
    assert checkpoint.batch is not None and checkpoint.batch[0] == batch_id
    lines = zip(items, checkpoint.batch[1], strict=True)
    pending = {item.job_id: (item, key) for item, key in lines if key not in checkpoint.done}
    arn = local_batch.batch_execution_arn(cloud, batch_id)
    poll = min(2.0, max(0.25, len(items) / 1000))
    try:
        while True:
            ended = cloud.sfn.describe_execution(executionArn=arn)["status"] != "RUNNING"
            running = _take_ended(pending, checkpoint)
            bar.show_checkpoint(checkpoint, running)
            if ended:
                break
            time.sleep(poll)
    except KeyboardInterrupt:
        if cloud.state is None:  # nothing outlives the process: end the batch, keep what ended
            stderr.write("\nlongform: interrupted: cancelling the batch (finished lines are kept)\n")
            local_batch.cancel(cloud, batch_id)
        else:
            stderr.write(f"\nlongform: interrupted: batch {batch_id} resumes with the same command\n")
        raise
    _take_unfollowed(local_batch.output_lines(cloud, batch_id), pending, checkpoint)


def _take_ended(pending: dict[str, tuple[Any, str]], checkpoint: Checkpoint) -> int:
    """Move every pending line that has ended to the checkpoint; how many still run."""
    from longform_core.batch.lines import read_line
    from longform_core.batch.output import output_line
    from longform_core.runtime import get_services

    services = get_services()
    running = 0
    for job_id, (item, key) in list(pending.items()):
        try:
            manifest = services.store.find_manifest(job_id)
            if manifest is None or not manifest.terminal:
                running += manifest is not None and manifest.status == "running"
                continue
            if manifest.status not in DONE_STATUSES:
                continue
            job, result, text, reasoning = read_line(item, services)
        except ValueError:  # a torn read: on the next round
            continue
        line = output_line(item, result, text=text, reasoning=reasoning, manifest=job)
        line["longform"]["line"] = int(key)
        checkpoint.add(key, line)
        del pending[job_id]
    return running


def _take_unfollowed(
    lines: list[dict[str, Any]], pending: dict[str, tuple[Any, str]], checkpoint: Checkpoint
) -> None:
    """Lines of the batch's own output that the loop did not take (cancelled ones): as they ended."""
    for line in lines:
        line_job = str((line.get("longform") or {}).get("job_id"))
        if line_job in pending:
            _, key = pending.pop(line_job)
            line["longform"]["line"] = int(key)
            if (line.get("longform") or {}).get("status") in DONE_STATUSES:
                checkpoint.add(key, line)
            else:
                checkpoint.done[key] = line  # reported, but run again on a resume
