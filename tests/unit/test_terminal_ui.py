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
