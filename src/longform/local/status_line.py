"""A status line pinned to the terminal's last row while the answer scrolls above it.

The answer is streamed to the terminal as it arrives, mid-line, and a progress line printed
between two pieces of it would cut a sentence in two. A live display that redraws its area (rich's
``Live``) cannot hold text written mid-line either: it takes complete lines only. So the terminal
is split as apt's ``Dpkg::Progress-Fancy`` splits it (``apt-pkg/install-progress.cc``,
``SetupTerminalScrollArea``): a scroll region (DECSTBM, ``ESC [ 1 ; rows-1 r``) holds everything
written, the last row is outside it and is drawn with the cursor saved and restored around it, so
the text never sees it. Lines scrolled off the top of a region that starts at the first row go to
the scrollback as usual (xterm, VTE, tmux). ``stop`` gives the whole screen back.

The text written to the terminal is untouched: the answer's bytes go to stdout as they come; this
module writes only the escape sequences and the status text, on the stream it is given (stderr,
when it is the same terminal as stdout).

One trap: a line that has just filled the last column leaves the cursor in the "pending wrap"
state (the next character goes to the next row). DECSC/DECRC do not keep that state (xterm, tmux),
so a status drawn at that moment put the cursor back on the last column and the answer's next
character overwrote the one there (seen in tmux: "writer" shown as "write"). The answer's column is
therefore followed (``wrote``, in terminal cells as rich counts them) and a redraw that falls on a
wrap boundary waits for the next piece of text.
"""

from __future__ import annotations

import os
from typing import TextIO

from rich.cells import cell_len

SAVE, RESTORE = "\0337", "\0338"  # DECSC / DECRC: cursor position (and attributes)
DIM, RESET = "\033[2m", "\033[0m"
MIN_ROWS = 4  # smaller terminals get no status line (its row would be a quarter of the screen)


def _rows_and_columns(stream: TextIO) -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return size.lines, size.columns


def same_terminal(a: TextIO, b: TextIO) -> bool:
    """Are both streams the one terminal (stdout and stderr of a process run in it)?"""
    try:
        if not (a.isatty() and b.isatty()):
            return False
        return os.ttyname(a.fileno()) == os.ttyname(b.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def usable(stream: TextIO) -> bool:
    """Can a status line be drawn on ``stream``: a terminal that takes VT100 sequences, tall enough."""
    if os.environ.get("TERM", "") in ("", "dumb"):
        return False
    size = _rows_and_columns(stream)
    return size is not None and size[0] >= MIN_ROWS


class StatusLine:
    """The last row of the terminal as a status line (see the module doc)."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.rows = 0
        self.columns = 80
        self.text = ""
        self.column = 0  # cells written on the answer's current line (it may span rows)
        self._deferred = False

    @property
    def active(self) -> bool:
        return self.rows > 0

    def start(self) -> None:
        size = _rows_and_columns(self.stream)
        if size is None or size[0] < MIN_ROWS:
            return
        self.rows, self.columns = size
        # a new line first: if the cursor is on the last row, the screen scrolls one row so that the
        # cursor's line is inside the region once it is set (setting it moves the cursor home: it is
        # saved and restored around), then back up to that line
        self._write(f"\n{SAVE}\033[1;{self.rows - 1}r{RESTORE}\033[1A")

    def wrote(self, text: str) -> None:
        """The answer wrote ``text`` on the terminal: follow its column, and draw a status that
        had to wait for the cursor to leave a wrap boundary."""
        end = text.rfind("\n")
        self.column = cell_len(text[end + 1 :]) if end >= 0 else self.column + cell_len(text)
        if self._deferred and self.active and not self.at_wrap_boundary:
            self.show(self.text)

    @property
    def at_wrap_boundary(self) -> bool:
        """Is the cursor (probably) in the pending-wrap state: the row just filled to its last column?"""
        return self.column > 0 and self.columns > 0 and self.column % self.columns == 0

    def show(self, text: str) -> None:
        """Draw ``text`` (one line, cut to the width) on the last row; on a wrap boundary, as soon as
        the answer has moved on (see the module doc)."""
        if not self.active:
            return
        self._follow_resize()
        self.text = text
        if self.at_wrap_boundary:
            self._deferred = True
            return
        self._deferred = False
        line = text[: max(0, self.columns - 1)]
        self._write(f"{SAVE}\033[{self.rows};1H\033[2K{DIM}{line}{RESET}{RESTORE}")

    def stop(self) -> None:
        """Clear the status row and give the whole screen back to scrolling."""
        if not self.active:
            return
        self._write(f"{SAVE}\033[{self.rows};1H\033[2K\033[r{RESTORE}")
        self.rows = 0

    def _follow_resize(self) -> None:
        size = _rows_and_columns(self.stream)
        if size is None or size == (self.rows, self.columns):
            return
        rows, self.columns = size
        if rows < MIN_ROWS:
            self.stop()
            return
        if rows != self.rows:
            self._write(f"{SAVE}\033[{self.rows};1H\033[2K\033[1;{rows - 1}r{RESTORE}")
            self.rows = rows

    def _write(self, data: str) -> None:
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal is gone (a closed pty): nothing left to draw on
            self.rows = 0
