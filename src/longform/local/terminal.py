"""What a person sees while a local job runs: the answer as it is generated, and its progress.

Three ways to show progress, chosen from where the output goes:

- ``stream``: the answer is printed to stdout as it arrives (committed text, then the draft of the
  chunk in flight, ``live.LiveText``), never cut: a line about the job (a chunk committed, a retry)
  waits for the answer's next line break. When stderr is the same terminal, a status line on its
  last row (``status_line.py``) shows the chunk in flight while the text scrolls above it.
- ``bar``: stdout is not the terminal: a rich progress bar on stderr (chunk, tokens in this chunk
  and in all, tokens per second, elapsed), announcements above it; the bar shows only while a chunk
  streams (no bar for a chunk that has not started) and goes at the end.
- ``lines``: nothing is a terminal (logs, CI): one plain line per chunk and per announcement.

``quiet`` shows neither text nor progress (errors and the ``--json`` line only). On a terminal a
spinner turns while the local stack starts (``spin``), until the next thing is shown.
"""

from __future__ import annotations

import atexit
import io
import sys
import time
from typing import Any, Literal, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from .status_line import StatusLine, same_terminal, usable

Mode = Literal["stream", "bar", "lines", "quiet"]


def choose_mode(*, stream: bool | None, quiet: bool, text_to_stdout: bool) -> Mode:
    """``stream``: --stream (True), --no-stream (False), or None (when stdout is a terminal)."""
    if quiet:
        return "quiet"
    if stream is None:
        stream = sys.stdout.isatty()
    if stream and text_to_stdout:  # never with --out - or --json: stdout is the answer or the JSON
        return "stream"
    return "bar" if sys.stderr.isatty() else "lines"


class JobProgress:
    """The UI of one job run: text, progress, announcements, the summary."""

    def __init__(self, mode: Mode, *, cap: int, stdout: TextIO | None = None, stderr: TextIO | None = None):
        self.mode = mode
        self.cap = max(1, cap)
        self.stdout = stdout or sys.stdout
        err = stderr or sys.stderr
        self._err_stream = err
        self.err = Console(file=err, highlight=False, soft_wrap=True, width=None if err.isatty() else 200)
        self.started = time.monotonic()
        self.total_tokens = 0
        self.chunks_done = 0
        self._chunk_started = time.monotonic()
        self._chunk_index = -1
        self._at_line_start = True
        self._pending: list[tuple[str, str]] = []  # lines waiting for the answer's next line break
        self._spinner: Any = None  # rich Status while the local stack starts
        self._spin_message = ""
        self._status: StatusLine | None = None
        if mode == "stream" and same_terminal(self.stdout, err) and usable(err):
            self._status = StatusLine(err)
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
                transient=True,  # the chunk lines stay; the bar of the chunk in flight goes at the end
            )
            self._task = self._bar.add_task(
                "job", total=self.cap, chunk=1, all_tokens=0, rate="", visible=False
            )

    # ---- what happens -------------------------------------------------------------------------

    def spin(self, message: str) -> None:
        """``message`` with a spinner (on a terminal) until the next thing is shown; then it stays
        as a line, with how long it took."""
        if self.mode == "quiet":
            return
        if self.mode == "lines" or not self._err_stream.isatty():
            self.line(message, style="dim")
            return
        self._spin_message = message
        self._spin_started = time.monotonic()
        self._spinner = self.err.status(message, spinner="dots", spinner_style="dim")
        self._spinner.start()
        self._restore_at_exit()

    def _stop_spinner(self) -> None:
        if self._spinner is None:
            return
        spinner, self._spinner = self._spinner, None
        spinner.stop()
        took = time.monotonic() - self._spin_started
        self.line(f"{self._spin_message}: {took:.1f}s", style="dim")

    def line(self, message: str, *, style: str = "") -> None:
        """A line on stderr (the first line, announcements), whatever the mode but quiet. While the
        answer is mid-line, it waits for the answer's next line break."""
        if self.mode == "quiet":
            return
        self._stop_spinner()
        if self.mode == "stream" and not self._at_line_start:
            self._pending.append((message, style))
            return
        self._print(message, style)

    def _print(self, message: str, style: str) -> None:
        if self._bar is not None and self._bar.live.is_started:
            self._bar.console.print(message, style=style or None)
        else:
            self.err.print(message, style=style or None)

    def announce(self, message: str) -> None:
        """A retry, a wait, a failed attempt: said when it happens."""
        self.line(f"  {message}", style="yellow")
        if self._status is not None and self._status.active:
            self._status.show(message.strip())

    def text(self, piece: str) -> None:
        """Answer text as it arrives (stream mode only). Lines waiting for a line break are
        printed right after the last line break of ``piece``."""
        if self.mode != "stream" or not piece:
            return
        self._stop_spinner()
        if self._status is not None and not self._status.active:
            self._status.start()
            self._restore_at_exit()
            self._show_status(0)
        cut = piece.rfind("\n") + 1 if self._pending else 0
        head, tail = piece[:cut], piece[cut:]
        if head:
            self.stdout.write(head)
            self.stdout.flush()
            self._wrote(head)
            self._at_line_start = True
            self._flush_pending()
        if tail:
            self.stdout.write(tail)
            self.stdout.flush()
            self._wrote(tail)
            self._at_line_start = tail.endswith("\n")

    def _wrote(self, text: str) -> None:
        if self._status is not None:
            self._status.wrote(text)

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for message, style in pending:
            self._print(message, style)

    def in_chunk(self, index: int, tokens: int) -> None:
        """The chunk in flight has streamed ``tokens`` so far (from its draft; 0: nothing yet)."""
        if index != self._chunk_index:  # a new chunk in flight: its rate counts from now
            self._chunk_index, self._chunk_started = index, time.monotonic()
        if tokens > 0:
            self._stop_spinner()
        if self._bar is not None and self._task is not None:
            if not tokens:  # not started (or between a commit and the next chunk): no bar
                self._bar.update(self._task, visible=False)
                return
            if not self._bar.live.is_started:
                self._bar.start()
            self._bar.update(
                self._task,
                visible=True,
                completed=min(tokens, self.cap),
                chunk=index + 1,
                rate=self._rate(tokens),
            )
        if self._status is not None and self._status.active:
            self._show_status(tokens, index)

    def _rate(self, tokens: int) -> str:
        elapsed = max(1e-6, time.monotonic() - self._chunk_started)
        return f"{tokens / elapsed:,.0f} tok/s" if tokens else ""

    def _show_status(self, tokens: int, index: int | None = None) -> None:
        assert self._status is not None
        parts = (
            [f"chunk {index + 1} · {tokens:,} tok · {self._rate(tokens)}"]
            if tokens and index is not None
            else []
        )
        if self.chunks_done:
            parts.append(f"{self.total_tokens:,} tok in {self.chunks_done} committed chunk(s)")
        parts.append(f"{time.monotonic() - self.started:,.0f}s")
        self._status.show(" · ".join(parts))

    def chunk_done(
        self, index: int, tokens: int, finish: str, *, seconds: float | None = None, from_draft: bool = False
    ) -> None:
        """A committed chunk; ``seconds``: how long it streamed (the chunk record's duration)."""
        now = time.monotonic()
        seconds = seconds if seconds and seconds > 0 else max(1e-6, now - self._chunk_started)
        self._chunk_started = now
        self.total_tokens += tokens
        self.chunks_done = max(self.chunks_done, index + 1)
        rate = f"{tokens / seconds:,.0f} tok/s"
        note = " (resumed from its draft)" if from_draft else ""
        message = (
            f"chunk {index + 1:>3} · {tokens:>7,} tok · {self.total_tokens:>9,} in all · {rate} · "
            f"finish {finish}{note} · {now - self.started:,.1f}s"
        )
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, visible=False, completed=0, all_tokens=self.total_tokens, rate="")
            self._print(f"  {message}", "")
        elif self.mode in ("stream", "lines"):
            self.line(f"  {message}", style="dim")
            if self._status is not None and self._status.active:
                self._show_status(0)

    def _restore_at_exit(self) -> None:
        """An error that leaves the run without ``close`` (a provider that cannot be reached, the
        stack failing to start) must not leave the terminal with its cursor hidden (the spinner)
        or its last row held (the status line): they are given back when the process exits."""
        atexit.unregister(self._restore_terminal)
        atexit.register(self._restore_terminal)

    def _restore_terminal(self) -> None:
        if self._spinner is not None:
            spinner, self._spinner = self._spinner, None
            spinner.stop()
        if self._status is not None:
            self._status.stop()

    def close(self) -> None:
        atexit.unregister(self._restore_terminal)
        self._stop_spinner()
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.mode == "stream" and not self._at_line_start:
            self.stdout.write("\n")
            self.stdout.flush()
            self._at_line_start = True
        if self._status is not None:
            self._status.stop()
        self._flush_pending()


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
