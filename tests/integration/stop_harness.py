"""What the stop tests (``test_stops_promptly.py``) share: `longform serve`,
`run` and `batch` started as real processes, the signal sent (to the process or one of its other
threads) and the exit waited for under a hang guard that prints every thread's stack and kernel state
before it kills."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from longform.client import ApiClient

HANG_GUARD_SECONDS = 60
PROMPT = "Write about herons [emulator answer_tokens=4000]"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_longform(*args: str, cwd: Path, script: str | None = None) -> subprocess.Popen[bytes]:
    """``longform ARGS`` in a child process; with ``script``, that Python code runs instead of the
    plain CLI (it reads its own arguments first, then calls ``longform.cli.main``)."""
    env = {**os.environ, "DEEPINFRA_API_KEY": ""}
    command = ["-c", script] if script is not None else ["-m", "longform.cli"]
    return subprocess.Popen(  # noqa: S603
        [sys.executable, *command, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def end_process(proc: subprocess.Popen[bytes]) -> None:
    """A child the test is done with: killed if it still runs (a failed assertion), and reaped."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def _non_main_thread(pid: int) -> int:
    """The id of one of a process's threads other than its main one."""
    others = [int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid]
    assert others, f"process {pid} has no thread but its main one"
    return others[0]


def _threads(pid: int) -> str:
    """Each thread of a live process as the kernel sees it: id, state, where it waits (wchan)."""
    rows = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        task = Path(f"/proc/{pid}/task/{tid}")
        try:
            state = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0]
            wchan = task.joinpath("wchan").read_text() or "-"
        except OSError:
            continue
        rows.append(
            f"  thread {tid}{' (main)' if int(tid) == pid else ''}: state {state}, waiting in {wchan}"
        )
    return "\n".join(rows)


def _hang_report(proc: subprocess.Popen[bytes], what: str) -> str:
    """What a process still running after ``what`` was doing: its threads as the kernel sees them,
    every Python thread's stack (SIGUSR1: faulthandler, registered by ``longform.local.stopping``),
    then SIGKILL; and all it printed."""
    try:
        kernel = _threads(proc.pid)
    except OSError as exc:  # no /proc (not Linux), or gone meanwhile
        kernel = f"  (no /proc view: {exc})"
    proc.send_signal(signal.SIGUSR1)
    try:
        out, err = proc.communicate(timeout=10)  # it may end meanwhile; else the dump is on stderr
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return (
        f"still running {HANG_GUARD_SECONDS}s after {what}\n{kernel}\n"
        f"--- stdout ---\n{out.decode()[-3000:]}\n--- stderr (SIGUSR1's stacks at the end) ---\n"
        f"{err.decode()[-12000:]}"
    )


def signal_and_wait(
    proc: subprocess.Popen[bytes], signum: int, *, to_thread: bool = False
) -> tuple[str, str]:
    """Send ``signum`` (to the process, or with ``to_thread`` to one of its other threads, as the
    kernel may hand a process-wide signal to any thread that does not block it) and wait for the
    exit; on a hang, fail with where every thread was."""
    name = signal.Signals(signum).name
    sent = time.monotonic()
    if to_thread:
        tid = _non_main_thread(proc.pid)
        _libc().tgkill(proc.pid, tid, signum)
        name += f" to thread {tid}"
    else:
        proc.send_signal(signum)
    out, err = exit_of(proc, name)
    print(f"\n{name} -> exit {proc.returncode} in {time.monotonic() - sent:.2f}s")
    return out, err


def exit_of(proc: subprocess.Popen[bytes], what: str) -> tuple[str, str]:
    """What a process printed (stdout, stderr) once it has ended; a hang guard (failing with where
    every thread was) far above the time it is expected to take."""
    try:
        out, err = proc.communicate(timeout=HANG_GUARD_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(_hang_report(proc, what))
    return out.decode(), err.decode()


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "tgkill"):
        pytest.skip("no tgkill (glibc 2.30+ on Linux) to send a signal to one thread of another process")
    return libc


def read_manifests(state: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((state / "bucket" / "jobs").glob("*/manifest.json"))]


def wait_for(condition, what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while not condition():
        assert proc.poll() is None, (
            f"exited {proc.returncode} before {what}: {proc.stderr.read().decode()[-2000:]}"
        )  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"no {what}"
        time.sleep(0.1)


@contextlib.contextmanager
def serving(
    tmp_path: Path, *args: str, script: str | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], ApiClient, Path]]:
    """``longform serve --emulator ARGS`` on a free port and ``tmp_path/state``, once its API
    answers: (the process, a client of its API, the state directory); killed at the end if alive."""
    port, state = free_port(), tmp_path / "state"
    serve = run_longform(
        "serve",
        "--emulator",
        "--port",
        str(port),
        "--state-dir",
        str(state),
        *args,
        cwd=tmp_path,
        script=script,
    )
    try:
        client = ApiClient(f"http://127.0.0.1:{port}")

        def up() -> bool:
            try:
                client.list()
            except Exception:
                return False
            return True

        wait_for(up, "API", serve)
        yield serve, client, state
    finally:
        end_process(serve)


def drafting(serve: subprocess.Popen[bytes], state: Path, job_id: str) -> None:
    """Wait until the job's chunk in flight has written a draft (executions are writing)."""
    drafts = state / "bucket" / "jobs" / job_id / "drafts"
    wait_for(lambda: any(drafts.glob("*")), "draft", serve)
