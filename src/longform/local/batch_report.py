"""What ``longform batch`` shows and writes: the progress bar while it runs, then the output file in
input order, its summary (``OUT.batch.json``) and the summary's lines on the terminal."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .batch_checkpoint import Checkpoint


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


@dataclass
class RunFacts:
    """What the run itself knows, beside the lines: for the summary."""

    batch_id: str | None
    resumed: int
    wall: float
    concurrency: int | None
    max_seen: int | None
    label: str
    model: str
    ran: int


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

    def show_checkpoint(self, checkpoint: Checkpoint, running: int, *, final: bool = False) -> None:
        outputs = checkpoint.done.values()
        self.show(len(checkpoint.done), output_tokens(outputs), failed_lines(outputs), running, final=final)


def output_tokens(outputs: Any) -> int:
    return sum(int((o.get("longform") or {}).get("output_tokens") or 0) for o in outputs)


def failed_lines(outputs: Any) -> int:
    return sum(1 for o in outputs if (o.get("longform") or {}).get("status") == "failed")


def write_output(out: Path, checkpoint: Checkpoint, keys: list[str], facts: RunFacts) -> BatchRunSummary:
    """The output file in input order (the lines that ended), its summary beside it; the checkpoint
    goes once every line has ended."""
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
    if all_done:
        checkpoint.path.unlink(missing_ok=True)
    wall = facts.wall
    summary = BatchRunSummary(
        batch_id=facts.batch_id,
        status="completed" if all_done else "cancelled",
        lines=len(keys),
        counts=counts,
        resumed_lines=facts.resumed,
        tokens=tokens,
        estimated_cost_usd=cost,
        chunks=chunks,
        wall_seconds=round(wall, 3),
        lines_per_second=round(facts.ran / wall, 2) if wall > 0 and facts.ran else None,
        max_concurrency=facts.concurrency,
        max_concurrency_seen=facts.max_seen,
        output_path=str(out),
        summary_path=str(out.with_suffix(".batch.json")),
        provider=facts.label,
        model=facts.model,
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
