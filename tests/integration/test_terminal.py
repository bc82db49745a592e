"""``longform run`` in a real terminal (tmux), as a person uses it: the answer appears while the
first chunk is still being generated; Ctrl-C stops it within seconds, keeps the committed text
(and the draft) in ``--out`` and says how to resume; ``longform resume`` then finishes the job, and
its output equals an uninterrupted run's, byte for byte.

Nothing here depends on this machine's speed: the emulator's token delay is a floor on how long a
chunk takes, and every wait is "until the screen shows X" with a generous timeout.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PROMPT = "Write a field guide to coastal birds. [emulator answer_tokens=7000]"
CAP = 3000
TOKEN_DELAY = 0.004  # 3,000 tokens take at least 12 s: the first chunk outlasts the first draft


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Callable[..., str]]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing: `make test` installs it (make tools)")
    socket = f"longform-test-{os.getpid()}-{tmp_path.name}"  # one server a test: none shared while it stops

    def call(*args: str) -> str:
        proc = subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=True)  # noqa: S603, S607
        return proc.stdout

    try:
        yield call
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)  # noqa: S603, S607


def wait_for(
    screen: Callable[[], str], predicate: Callable[[str], bool], what: str, timeout: float = 90
) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = screen()
        if predicate(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"the terminal never showed {what}:\n{text[-3000:]}")
        time.sleep(0.1)


def longform(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "longform.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_run_in_a_terminal_streams_survives_ctrl_c_and_resumes(
    tmp_path: Path, tmux: Callable[..., str]
) -> None:
    from longform.emulator.model import canonical_output
    from longform.emulator.settings import EmulatorSettings

    state, out = tmp_path / "state", tmp_path / "birds.md"
    env = {**os.environ, "LONGFORM_STATE_DIR": str(state), "DEEPINFRA_API_KEY": ""}
    command = " ".join(
        shlex.quote(a)
        for a in (
            sys.executable,
            *("-m", "longform.cli", "run", "--emulator", "--prompt", PROMPT),
            *("--emulator-token-delay", str(TOKEN_DELAY), "--max-tokens-per-request", str(CAP)),
            *("--out", str(out), "--state-dir", str(state)),
        )
    )
    tmux("new-session", "-d", "-s", "run", "-x", "160", "-y", "50", f"{command}; echo EXIT=$?; sleep 600")

    def screen() -> str:
        return tmux("capture-pane", "-p", "-J", "-t", "run", "-S", "-2000")

    answer = canonical_output(
        [{"role": "user", "content": PROMPT}],
        model="longform/emulated-writer",
        seed=None,
        settings=EmulatorSettings(),
    ).answer
    opening = " ".join(answer.split())[:60]
    # the answer appears while the first chunk is still streaming (no chunk line yet)
    shown = wait_for(screen, lambda s: opening in " ".join(s.split()), "the answer's first words")
    assert "chunk   1 ·" not in shown, shown[-2000:]
    assert "started" in shown and "the emulator" in shown
    # after the first commit, with text of the second chunk on screen, Ctrl-C
    wait_for(screen, lambda s: "chunk   1 ·" in s, "the first chunk's progress line")
    time.sleep(1.0)
    tmux("send-keys", "-t", "run", "C-c")
    stopped = wait_for(screen, lambda s: "EXIT=" in s, "the process exit", timeout=30)
    assert "EXIT=130" in stopped, stopped[-2000:]
    assert "Traceback" not in stopped
    assert "interrupted" in stopped and "longform resume" in stopped
    # it stopped without waiting for the job: the job is still unfinished on disk (below)

    kept = out.read_text(encoding="utf-8")
    listed = json.loads(longform("list", "--json", "--state-dir", str(state), env=env).stdout)
    assert len(listed) == 1 and listed[0]["status"] == "running"
    job_id = listed[0]["job_id"]
    manifest = json.loads((state / "bucket" / "jobs" / job_id / "manifest.json").read_text())
    committed = manifest["answer_chars"]
    assert manifest["chunks"] >= 1 and committed > 0
    assert answer.startswith(kept), "the --out file holds exactly the text so far"
    assert len(kept) >= committed  # the committed text, and the draft of the chunk in flight after it

    resumed = tmp_path / "resumed.md"
    done = longform("resume", job_id, "--out", str(resumed), "--quiet", "--state-dir", str(state), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    uninterrupted = tmp_path / "uninterrupted.md"
    ref_env = {**env, "LONGFORM_STATE_DIR": str(tmp_path / "ref-state")}
    ref = longform(
        *("run", "--emulator", "--prompt", PROMPT, "--max-tokens-per-request", str(CAP)),
        *("--out", str(uninterrupted), "--quiet"),
        env=ref_env,
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert resumed.read_text(encoding="utf-8") == uninterrupted.read_text(encoding="utf-8") == answer
    shown_status = longform("show", job_id, "--json", "--state-dir", str(state), env=env)
    assert json.loads(shown_status.stdout)["job"]["status"] == "succeeded"


SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"  # rich's "dots" spinner
SHORT_PROMPT = "Write about coastal birds. [emulator answer_tokens=900]"


def _started_in_tmux(tmux: Callable[..., str], name: str, command: str, log: Path) -> Callable[[], str]:
    """``command`` in a new tmux window, every byte it writes to the terminal kept in ``log``
    (the pipe is attached before the command starts: it waits for a key)."""
    tmux(
        "new-session",
        "-d",
        "-s",
        name,
        "-x",
        "120",
        "-y",
        "30",
        f"read go; {command}; echo EXIT=$?; sleep 600",
    )
    tmux("pipe-pane", "-t", name, "-o", f"cat >> {shlex.quote(str(log))}")
    tmux("send-keys", "-t", name, "Enter")
    return lambda: tmux("capture-pane", "-p", "-J", "-t", name, "-S", "-2000")


def _short_run(state: Path, out: Path, redirect: str = "") -> str:
    args = (
        sys.executable,
        *("-m", "longform.cli", "run", "--emulator", "--prompt", SHORT_PROMPT),
        *("--emulator-token-delay", "0.004", "--max-tokens-per-request", "300"),
        *("--out", str(out), "--state-dir", str(state)),
    )
    return " ".join(shlex.quote(a) for a in args) + redirect


def _short_answer() -> str:
    from longform.emulator.model import canonical_output
    from longform.emulator.settings import EmulatorSettings

    return canonical_output(
        [{"role": "user", "content": SHORT_PROMPT}],
        model="longform/emulated-writer",
        seed=None,
        settings=EmulatorSettings(),
    ).answer


def test_the_progress_never_splits_the_answer_and_a_spinner_turns_first(
    tmp_path: Path, tmux: Callable[..., str]
) -> None:
    """Three 300-token chunks, each cut mid-sentence by the cap: on screen every line of the answer
    is whole (a chunk's line waits for the answer's line break, the progress of the chunk in flight
    is on the status line below the text), each chunk that ran has its line and no other, and a
    spinner turned while the stack started, before the first words."""
    log = tmp_path / "pane.log"
    screen = _started_in_tmux(tmux, "stream", _short_run(tmp_path / "state", tmp_path / "a.md"), log)
    shown = wait_for(screen, lambda s: "EXIT=" in s, "the process exit", timeout=240)
    assert "EXIT=0" in shown, shown[-3000:]
    answer = _short_answer()
    assert (tmp_path / "a.md").read_text(encoding="utf-8") == answer
    screen_lines = {line.strip() for line in shown.splitlines()}
    for line in answer.splitlines():
        assert not line.strip() or line.strip() in screen_lines, f"split on screen: {line!r}\n{shown[-4000:]}"
    chunk_lines = [line for line in screen_lines if line.startswith("chunk ") and " tok · " in line]
    assert sorted(line.split("·")[0].split()[1] for line in chunk_lines) == ["1", "2", "3"], chunk_lines
    raw = log.read_bytes().decode("utf-8", errors="replace")
    first_words = answer[:12]
    assert first_words in raw
    frames = [raw.find(frame) for frame in SPINNER_FRAMES if frame in raw]
    assert frames and min(frames) < raw.index(first_words), "no spinner before the first text"
    assert "starting the local stack" in raw[: raw.index(first_words)]


def test_no_bar_for_a_chunk_that_never_started(tmp_path: Path, tmux: Callable[..., str]) -> None:
    """stdout to a file, stderr the terminal: the progress bar. When the last chunk is committed
    and no other starts, no bar for a chunk after it stays on screen (once: ``chunk 4`` at 0)."""
    log = tmp_path / "pane.log"
    command = _short_run(
        tmp_path / "state", tmp_path / "a.md", redirect=f" > {shlex.quote(str(tmp_path / 'o'))}"
    )
    screen = _started_in_tmux(tmux, "bar", command, log)
    shown = wait_for(screen, lambda s: "EXIT=" in s, "the process exit", timeout=240)
    assert "EXIT=0" in shown, shown[-3000:]
    assert "chunk   3 ·" in shown and "finish stop" in shown, shown[-3000:]
    assert "chunk 4" not in shown, shown[-3000:]
    assert (tmp_path / "a.md").read_text(encoding="utf-8") == _short_answer()
