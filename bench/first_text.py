"""Enter -> first answer text of ``longform run`` on a warm install, this tree against an older one
measured in the same run (alternating, so the machine's drift falls on both alike).

    .venv/bin/python bench/first_text.py                    # 5 rounds, quiet, then under load 2
    .venv/bin/python bench/first_text.py --rounds 9 --loads 0 2 4
    .venv/bin/python bench/first_text.py --baseline 6961bcc # the older tree (default: the merge
                                                            # base with main)

Each sample is a fresh ``python -m longform.cli run --emulator`` with stdout on a pseudo-terminal
(the answer streams there, as in a terminal: ``stream`` mode) and its own state directory, kept
from round to round (a warm install: bytecode compiled, the state directory's caches written by a
first run that is not counted). The time is from the spawn to the first byte on the terminal (stdout
is the answer only: every other line goes to stderr); the CPU is the child's user + system time
(``wait4``), which moves less than wall time when the machine is busy. The older tree is
``git archive``d to a temporary directory and run from there (``PYTHONPATH`` before the editable
install, ``LONGFORM_REPO`` for its template and handlers).

Load: N processes spinning ``while True: pass`` (the issue's ``while :; do :; done &`` N times).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import select
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Write a short note on tides. [emulator answer_tokens=200]"
TIMEOUT = 300.0


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def archive(rev: str, into: Path) -> Path:
    """The tree of ``rev`` (what running longform needs) under ``into``."""
    data = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "archive",
            rev,
            "src",
            "layers",
            "functions",
            "statemachine",
            "template.yaml",
        ],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(into)], check=False)
    return into


def env_for(tree: Path | None) -> dict[str, str]:
    env = {**os.environ, "DEEPINFRA_API_KEY": "", "TERM": "xterm-256color"}
    if tree is not None:
        env["PYTHONPATH"] = f"{tree / 'src'}{os.pathsep}{tree / 'layers' / 'longform_core'}"
        env["LONGFORM_REPO"] = str(tree)
    return env


def one_run(env: dict[str, str], state: Path) -> tuple[float, float]:
    """(seconds from spawn to the first byte of the answer, CPU seconds of the whole run)."""
    primary, secondary = pty.openpty()
    args = [sys.executable, "-m", "longform.cli", "run", "--emulator", "--prompt", PROMPT]
    args += ["--state-dir", str(state), "--out", str(state / "answer.md"), "--stream"]
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=secondary, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(secondary)
    first: float | None = None
    try:
        while first is None and time.monotonic() - started < TIMEOUT:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(primary, 4096)
            except OSError:  # the child closed the terminal
                break
            if data.strip():
                first = time.monotonic() - started
        while True:  # drain until the end, so the child never blocks on a full terminal
            try:
                if not os.read(primary, 65536):
                    break
            except OSError:
                break
    finally:
        os.close(primary)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or first is None:
        raise RuntimeError(f"run failed ({proc.returncode}): {err.decode()[-500:]}")
    return first, usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def load(n: int) -> Iterator[None]:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()


def measure(trees: dict[str, Path | None], rounds: int, work: Path) -> dict[str, Samples]:
    states = {name: work / f"state-{name}-{time.monotonic_ns()}" for name in trees}
    for name, tree in trees.items():  # warm: bytecode, the state directory's caches
        one_run(env_for(tree), states[name])
    results = {name: Samples() for name in trees}
    names = list(trees)
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            wall, cpu = one_run(env_for(trees[name]), states[name])
            results[name].wall.append(wall)
            results[name].cpu.append(cpu)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 2])
    parser.add_argument(
        "--baseline", default=None, help="the older tree's revision (default: merge base with main)"
    )
    args = parser.parse_args()
    baseline = (
        args.baseline
        or subprocess.run(
            ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    with tempfile.TemporaryDirectory(prefix="longform-first-text-") as tmp:
        work = Path(tmp)
        trees: dict[str, Path | None] = {
            f"before ({baseline[:7]})": archive(baseline, work / "old"),
            "this tree": None,
        }
        print(f"rounds {args.rounds}; load average before: {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs")
        print("| load | tree | Enter->first text median (min-max), s | CPU of the run median, s |")
        print("|---|---|---|---|")
        for n in args.loads:
            with load(n):
                results = measure(trees, args.rounds, work)
            for name, s in results.items():
                print(
                    f"| {n} spinning | {name} | {statistics.median(s.wall):.2f} "
                    f"({min(s.wall):.2f}-{max(s.wall):.2f})"
                    f" | {statistics.median(s.cpu):.2f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
