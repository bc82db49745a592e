"""The terminal UI (``local/terminal.py``) in a real pseudo-terminal: what it leaves behind when a
run ends without closing it (an error while the stack starts)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


def _in_a_terminal(code: str) -> str:
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # 30 rows, 100 columns
    env = {**os.environ, "TERM": "xterm-256color"}
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", textwrap.dedent(code)], stdout=secondary, stderr=secondary, env=env, cwd=ROOT
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    proc.wait(timeout=60)
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_an_error_while_the_spinner_turns_gives_the_cursor_back() -> None:
    shown = _in_a_terminal(
        """
        import time
        from longform.local.terminal import JobProgress
        ui = JobProgress("bar", cap=100)
        ui.spin("starting the local stack")
        time.sleep(0.3)
        raise SystemExit("longform: the provider cannot be reached")
        """
    )
    assert HIDE_CURSOR in shown and "starting the local stack" in shown
    assert shown.rfind(SHOW_CURSOR) > shown.rfind(HIDE_CURSOR), repr(shown[-300:])


def test_an_error_after_the_text_began_gives_the_last_row_back() -> None:
    shown = _in_a_terminal(
        """
        from longform.local.terminal import JobProgress
        ui = JobProgress("stream", cap=100)
        ui.text("The answer begins")
        raise RuntimeError("a failure in the middle")
        """
    )
    assert "\x1b[1;" in shown and "The answer begins" in shown  # the scroll region was set
    assert shown.rfind("\x1b[r") > shown.rfind("\x1b[1;"), repr(shown[-300:])  # and given back


def test_a_status_never_lands_while_a_full_row_waits_to_wrap() -> None:
    """A row just filled to its last column leaves the cursor waiting to wrap, and DECSC/DECRC do
    not keep that: a status drawn then made the answer's next character overwrite the last one on
    the row (tmux showed "writer" as "write"). The status waits until the answer moves on."""
    shown = _in_a_terminal(
        """
        import sys
        sys.path[:0] = ["src", "layers/longform_core"]
        from longform.local.status_line import StatusLine
        status = StatusLine(sys.stderr)
        status.start()
        row = "w" * 99 + "\\u4e16"  # 99 cells and one wide character: 101 cells, past the 100 columns
        sys.stdout.write("x" * 100); sys.stdout.flush(); status.wrote("x" * 100)
        status.show("AT-BOUNDARY"); sys.stderr.flush()
        sys.stdout.write("y"); sys.stdout.flush(); status.wrote("y")
        status.show("MID-ROW"); sys.stderr.flush()
        sys.stdout.write("\\n" + "z" * 60); sys.stdout.flush(); status.wrote("\\n" + "z" * 60)
        status.show("AFTER-NEWLINE"); sys.stderr.flush()
        status.stop()
        """
    )
    # the status asked for on the boundary is drawn only after the answer's next character ("y")
    assert "AT-BOUNDARY" not in shown[: shown.index("y")], (
        "a status was drawn while a full row waited to wrap"
    )
    assert (
        shown.index("y") < shown.index("AT-BOUNDARY") < shown.index("MID-ROW") < shown.index("AFTER-NEWLINE")
    )


def test_the_column_is_counted_in_cells() -> None:
    from longform.local.status_line import StatusLine

    status = StatusLine(open(os.devnull, "w"))  # noqa: SIM115 (not a terminal: it stays inactive)
    status.columns = 10
    status.wrote("abc\n" + "\u4e16" * 5)  # five wide characters: ten cells, the row is full
    assert status.column == 10 and status.at_wrap_boundary
    status.wrote("d")
    assert status.column == 11 and not status.at_wrap_boundary
    status.wrote("e\n")
    assert status.column == 0 and not status.at_wrap_boundary
