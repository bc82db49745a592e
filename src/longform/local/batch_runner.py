"""``longform batch``: a JSONL batch end to end through the real batch workflow, on a laptop.

The batch goes through the one submit path into ``statemachine/batch.asl.json`` on the local cloud
(moto's interpreter: the Distributed Map, a generation execution per line). While it runs, every
line that has ended is appended to a checkpoint next to the output (``OUT.jsonl.partial``); a run
that stops (Ctrl-C, a crash, a closed laptop) is resumed by the same command: the lines in the
checkpoint are kept as they are and only the others run again (a line cut off mid-way starts
over). The output is written in input order once every line has ended.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .aws import quiet_moto_logs
from .cloud import CloudConfig, LocalCloud
from .providers import ProviderOptions, choose_provider

PARTIAL_SUFFIX = ".partial"
PARTIAL_VERSION = 2  # 2: lines keyed by their line number (1 keyed them by content: identical lines collided)
# a cancelled line runs again on resume
DONE_STATUSES = {"succeeded", "context_exhausted", "incomplete", "failed"}


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
class BatchRunSummary:
    batch_id: str | None
    status: str
    lines: int
    counts: dict[str, int]
    resumed_lines: int
    tokens: dict[str, int]
    estimated_cost_usd: float | None
    chunks: int
    wall_seconds: float
    lines_per_second: float | None
    max_concurrency: int | None
    max_concurrency_seen: int | None  # requests at the provider at once (the emulator counts them)
    output_path: str
    summary_path: str
    provider: str
    model: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def default_out(file: Path) -> Path:
    return Path("out") / f"{file.stem}.jsonl"


def _numbered_lines(data: bytes) -> list[tuple[int, bytes]]:
    """(1-based line number, bytes) of every non-blank line, as ``parse_batch`` numbers them."""
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[0].startswith(b"\xef\xbb\xbf"):
        raw_lines[0] = raw_lines[0][3:]
    return [(n, raw) for n, raw in enumerate(raw_lines, start=1) if raw.strip()]


class Checkpoint:
    """``OUT.jsonl.partial``: a header, then one output line per line that has ended."""

    def __init__(self, path: Path, header: dict[str, Any]):
        self.path = path
        self.header = header
        self.done: dict[str, dict[str, Any]] = {}  # line number -> output line

    def load(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open(encoding="utf-8") as fh:
            first = fh.readline()
            try:
                header = json.loads(first)
            except ValueError:
                return 0
            if header != self.header:
                return 0  # another file, or other options: start over
            for text in fh:
                with contextlib.suppress(ValueError):  # a line cut by a crash mid-write
                    entry = json.loads(text)
                    self.done[entry["key"]] = entry["output"]
        return len(self.done)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(self.header) + "\n")
            for key, output in self.done.items():
                fh.write(json.dumps({"key": key, "output": output}, ensure_ascii=False) + "\n")

    def add(self, key: str, output: dict[str, Any]) -> None:
        self.done[key] = output
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": key, "output": output}, ensure_ascii=False) + "\n")


class ProgressBar:
    """One bar for the whole batch on stderr: lines done / total, tokens, failures, time."""

    def __init__(self, stream: TextIO, total: int, *, enabled: bool = True):
        self.stream = stream
        self.total = total
        self.enabled = enabled
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_shown = -1.0

    def show(self, done: int, tokens: int, failed: int, running: int, *, final: bool = False) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        if not self.tty and not final and elapsed - self._last_shown < 5.0:
            return
        self._last_shown = elapsed
        width = 28
        filled = round(width * done / self.total) if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        text = (
            f"[{bar}] {done:>{len(str(self.total))}}/{self.total} lines | {tokens:>11,} tok | "
            f"{running:>3} running | {failed} failed | {elapsed:6.1f}s"
        )
        self.stream.write(("\r" + text + ("\n" if final else "")) if self.tty else text + "\n")
        self.stream.flush()


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


def run_batch(options: BatchRunOptions, *, stderr: TextIO | None = None) -> BatchRunSummary:
    """Run (or resume) a batch; ``BatchInvalid`` (before anything starts) names every bad line."""
    from longform_core.batch_request import parse_batch

    stderr = stderr or sys.stderr
    data = options.file.read_bytes()
    defaults = {
        "model": options.model,
        "max_tokens_per_request": options.max_tokens_per_request,
        "context_length": options.context_length,
    }
    defaults = {k: v for k, v in defaults.items() if v is not None}
    parse_batch(data, max_lines=10**9, max_bytes=10**12, defaults=defaults)  # every problem, up front
    numbered = _numbered_lines(data)
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
    todo = [(n, raw, key) for (n, raw), key in zip(numbered, keys, strict=True) if key not in checkpoint.done]
    started = time.monotonic()
    batch_id: str | None = None
    max_seen: int | None = None
    model = options.model or "(default)"
    label = options.base_url or "emulator"
    concurrency = options.max_concurrency
    if resumed:
        stderr.write(f"longform: resuming {out}: {resumed} line(s) already done, {len(todo)} to run\n")
    bar = ProgressBar(stderr, len(numbered), enabled=options.progress)
    if todo:
        with _cloud(options) as stack:
            label, model = stack.label, stack.model
            batch_id, concurrency, max_seen = _run(
                stack, todo, checkpoint, bar, options, defaults, stderr=stderr
            )
    bar.show(
        len(checkpoint.done),
        _tokens(checkpoint.done.values()),
        _failed(checkpoint.done.values()),
        0,
        final=True,
    )
    wall = time.monotonic() - started
    return _finish(
        out, checkpoint, numbered, keys, batch_id=batch_id, resumed=resumed, wall=wall,
        concurrency=concurrency, max_seen=max_seen, label=label, model=model, ran=len(todo),
    )  # fmt: skip


def _tokens(outputs: Any) -> int:
    return sum(int((o.get("longform") or {}).get("output_tokens") or 0) for o in outputs)


def _failed(outputs: Any) -> int:
    return sum(1 for o in outputs if (o.get("longform") or {}).get("status") == "failed")


def _run(
    stack: _Stack,
    todo: list[tuple[int, bytes, str]],
    checkpoint: Checkpoint,
    bar: ProgressBar,
    options: BatchRunOptions,
    defaults: dict[str, Any],
    *,
    stderr: TextIO,
) -> tuple[str, int, int | None]:
    from longform_core.batch import _read_line, batch_store
    from longform_core.batch_output import output_line
    from longform_core.runtime import get_services

    from . import batch as local_batch

    cloud, emulator = stack.cloud, stack.emulator
    body = b"\n".join(raw for _, raw, _ in todo) + b"\n"
    batch = local_batch.submit(cloud, body, max_concurrency=options.max_concurrency, defaults=defaults)
    stderr.write(
        f"longform: batch {batch.batch_id}: {batch.lines} line(s), at most {batch.max_concurrency} at once\n"
    )
    services = get_services()
    items = batch_store(services).get_items(batch.batch_id)
    pending = dict(zip((item.job_id for item in items), zip(items, todo, strict=True), strict=True))
    arn = local_batch.batch_execution_arn(cloud, batch.batch_id)
    poll = min(2.0, max(0.25, len(items) / 1000))
    try:
        while True:
            ended = cloud.sfn.describe_execution(executionArn=arn)["status"] != "RUNNING"
            running = 0
            for job_id, (item, (n, _, key)) in list(pending.items()):
                try:
                    manifest = services.store.find_manifest(job_id)
                    if manifest is None or not manifest.terminal:
                        running += manifest is not None and manifest.status == "running"
                        continue
                    if manifest.status not in DONE_STATUSES:
                        continue
                    job, result, text, reasoning = _read_line(item, services)
                except ValueError:
                    # moto's S3 can hand a reader the buffer of an object a writer is replacing
                    # ("I/O operation on closed file"): read it on the next round
                    continue
                line = output_line(item, result, text=text, reasoning=reasoning, manifest=job)
                line["longform"]["line"] = n
                checkpoint.add(key, line)
                del pending[job_id]
            bar.show(
                len(checkpoint.done),
                _tokens(checkpoint.done.values()),
                _failed(checkpoint.done.values()),
                running,
            )
            if ended:
                break
            time.sleep(poll)
    except KeyboardInterrupt:
        stderr.write("\nlongform: interrupted: cancelling the batch (finished lines are kept)\n")
        local_batch.cancel(cloud, batch.batch_id)
        raise
    # lines of the batch's own output that the loop did not take (cancelled ones): as they ended
    for line in local_batch.output_lines(cloud, batch.batch_id):
        line_job = str((line.get("longform") or {}).get("job_id"))
        if line_job in pending:
            _, (n, _, key) = pending.pop(line_job)
            line["longform"]["line"] = n
            if (line.get("longform") or {}).get("status") in DONE_STATUSES:
                checkpoint.add(key, line)
            else:
                checkpoint.done[key] = line  # reported, but run again on a resume
    max_seen = emulator.concurrency["max"] if emulator is not None else None
    return batch.batch_id, batch.max_concurrency, max_seen


def _finish(
    out: Path,
    checkpoint: Checkpoint,
    numbered: list[tuple[int, bytes]],
    keys: list[str],
    *,
    batch_id: str | None,
    resumed: int,
    wall: float,
    concurrency: int | None,
    max_seen: int | None,
    label: str,
    model: str,
    ran: int,
) -> BatchRunSummary:
    counts = {s: 0 for s in ("succeeded", "context_exhausted", "incomplete", "failed", "cancelled")}
    tokens = {"prompt": 0, "output": 0, "cached": 0}
    cost: float | None = None
    chunks = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    complete = True
    with out.open("w", encoding="utf-8") as fh:
        for key in keys:
            line = checkpoint.done.get(key)
            if line is None:
                complete = False
                continue
            fh.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
            extra = line.get("longform") or {}
            status = str(extra.get("status") or "cancelled")
            counts[status] = counts.get(status, 0) + 1
            chunks += int(extra.get("chunks") or 0)
            if extra.get("estimated_cost_usd") is not None:
                cost = round((cost or 0.0) + float(extra["estimated_cost_usd"]), 8)
            usage = ((line.get("response") or {}).get("body") or {}).get("usage") or {}
            tokens["prompt"] += int(usage.get("prompt_tokens") or 0)
            tokens["output"] += int(usage.get("completion_tokens") or 0)
            tokens["cached"] += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    all_done = complete and counts["cancelled"] == 0
    status = "completed" if all_done else "cancelled"
    if all_done:
        checkpoint.path.unlink(missing_ok=True)
    summary = BatchRunSummary(
        batch_id=batch_id,
        status=status,
        lines=len(numbered),
        counts=counts,
        resumed_lines=resumed,
        tokens=tokens,
        estimated_cost_usd=cost,
        chunks=chunks,
        wall_seconds=round(wall, 3),
        lines_per_second=round(ran / wall, 2) if wall > 0 and ran else None,
        max_concurrency=concurrency,
        max_concurrency_seen=max_seen,
        output_path=str(out),
        summary_path=str(out.with_suffix(".batch.json")),
        provider=label,
        model=model,
    )
    Path(summary.summary_path).write_text(json.dumps(summary.to_json(), indent=2) + "\n", encoding="utf-8")
    return summary


def print_summary(summary: BatchRunSummary, stream: TextIO) -> None:
    c = summary.counts
    lines = [
        "",
        f"batch           {summary.batch_id or '(all lines from the checkpoint)'}: {summary.status}",
        f"lines           {summary.lines}: {c['succeeded']} succeeded, "
        f"{c['context_exhausted']} context_exhausted, {c['incomplete']} incomplete, {c['failed']} failed, "
        f"{c['cancelled']} cancelled"
        + (f" ({summary.resumed_lines} from the checkpoint)" if summary.resumed_lines else ""),
        f"tokens          prompt {summary.tokens['prompt']:,}, output {summary.tokens['output']:,}, "
        f"cached {summary.tokens['cached']:,}; {summary.chunks:,} chunks",
    ]
    if summary.estimated_cost_usd is not None:
        lines.append(f"estimated cost  ${summary.estimated_cost_usd:.6f}")
    seen = (
        f", at most {summary.max_concurrency_seen} requests seen at once"
        if summary.max_concurrency_seen
        else ""
    )
    lines.append(
        f"time            {summary.wall_seconds:.1f}s"
        + (f" ({summary.lines_per_second} lines/s)" if summary.lines_per_second else "")
        + (f"; concurrency cap {summary.max_concurrency}{seen}" if summary.max_concurrency else "")
    )
    lines.append(f"output          {summary.output_path}  (summary: {summary.summary_path})")
    stream.write("\n".join(lines) + "\n")
