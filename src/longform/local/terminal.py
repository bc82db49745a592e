"""What a person sees while a local job runs: the answer as it is generated, and its progress.

Three ways to show progress, chosen from where the output goes:

- ``stream``: the answer is printed to stdout as it arrives (committed text, then the draft of the
  chunk in flight, ``live.LiveText``); a dim progress line goes to stderr between chunks and for
  each retry or wait. (A live bar cannot share a terminal with text written mid-line.)
- ``bar``: stdout is not the terminal: a rich progress bar on stderr (chunk, tokens in this chunk
  and in all, tokens per second, elapsed), announcements above it.
- ``lines``: nothing is a terminal (logs, CI): one plain line per chunk and per announcement.

``quiet`` shows neither text nor progress (errors and the ``--json`` line only).
"""

from __future__ import annotations

import io
import sys
import time
from typing import Literal, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

Mode = Literal["stream", "bar", "lines", "quiet"]


def choose_mode(*, stream: bool | None, quiet: bool, text_to_stdout: bool) -> Mode:
    """``stream``: --stream (True), --no-stream (False), or None (when stdout is a terminal)."""
    if quiet:
        return "quiet"
    if stream is None:
        stream = text_to_stdout and sys.stdout.isatty()
    if stream:
        return "stream"
    return "bar" if sys.stderr.isatty() else "lines"


class JobProgress:
    """The UI of one job run: text, progress, announcements, the summary."""

    def __init__(self, mode: Mode, *, cap: int, stdout: TextIO | None = None, stderr: TextIO | None = None):
        self.mode = mode
        self.cap = max(1, cap)
        self.stdout = stdout or sys.stdout
        err = stderr or sys.stderr
        self.err = Console(file=err, highlight=False, soft_wrap=True, width=None if err.isatty() else 200)
        self.started = time.monotonic()
        self.total_tokens = 0
        self._chunk_started = time.monotonic()
        self._at_line_start = True
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        if mode == "bar":
            self._bar = Progress(
                TextColumn("[bold]chunk {task.fields[chunk]}"),
                BarColumn(bar_width=24),
                TextColumn("{task.completed:>7,.0f} tok in chunk · {task.fields[all_tokens]:>9,} in all"),
                TextColumn("· {task.fields[rate]}"),
                TimeElapsedColumn(),
                console=self.err,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("job", total=self.cap, chunk=1, all_tokens=0, rate="")

    # ---- what happens -------------------------------------------------------------------------

    def line(self, message: str, *, style: str = "") -> None:
        """A line on stderr (the first line, announcements), whatever the mode but quiet."""
        if self.mode == "quiet":
            return
        if self.mode == "stream" and not self._at_line_start:
            self.stdout.write("\n")
            self.stdout.flush()
            self._at_line_start = True
        if self._bar is not None:
            self._bar.console.print(message, style=style or None)
        else:
            self.err.print(message, style=style or None)

    def announce(self, message: str) -> None:
        """A retry, a wait, a failed attempt: said when it happens."""
        self.line(f"  {message}", style="yellow")

    def text(self, piece: str) -> None:
        """Answer text as it arrives (stream mode only)."""
        if self.mode != "stream" or not piece:
            return
        self.stdout.write(piece)
        self.stdout.flush()
        self._at_line_start = piece.endswith("\n")

    def in_chunk(self, index: int, tokens: int) -> None:
        """The chunk in flight has streamed ``tokens`` so far (from its draft)."""
        if self._bar is not None and self._task is not None:
            elapsed = max(1e-6, time.monotonic() - self._chunk_started)
            rate = f"{tokens / elapsed:,.0f} tok/s" if tokens else ""
            self._bar.update(self._task, completed=min(tokens, self.cap), chunk=index + 1, rate=rate)

    def chunk_done(
        self, index: int, tokens: int, finish: str, *, seconds: float | None = None, from_draft: bool = False
    ) -> None:
        """A committed chunk; ``seconds``: how long it streamed (the chunk record's duration)."""
        now = time.monotonic()
        seconds = seconds if seconds and seconds > 0 else max(1e-6, now - self._chunk_started)
        self._chunk_started = now
        self.total_tokens += tokens
        rate = f"{tokens / seconds:,.0f} tok/s"
        note = " (resumed from its draft)" if from_draft else ""
        message = (
            f"chunk {index + 1:>3} · {tokens:>7,} tok · {self.total_tokens:>9,} in all · {rate} · "
            f"finish {finish}{note} · {now - self.started:,.1f}s"
        )
        if self._bar is not None and self._task is not None:
            self._bar.console.print(f"  {message}")
            self._bar.update(self._task, completed=0, chunk=index + 2, all_tokens=self.total_tokens, rate="")
        elif self.mode in ("stream", "lines"):
            self.line(f"  {message}", style="dim")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.mode == "stream" and not self._at_line_start:
            self.stdout.write("\n")
            self.stdout.flush()
            self._at_line_start = True


def print_table(rows: list[tuple[str, str]], stream: TextIO) -> None:
    """Two columns, no borders: the summary of a job (or a listing's header and rows)."""
    tty = stream.isatty()
    buffer = io.StringIO()
    console = Console(file=buffer, highlight=False, soft_wrap=True, width=200, force_terminal=tty)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    stream.write("\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n")
    stream.flush()
