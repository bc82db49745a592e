"""SIGTERM at random moments of `longform serve`, under a CPU load this script creates.

Each round starts `longform serve --emulator` on one state directory (kept across rounds, so each
start resumes what the last one left), waits a random time (during the start-up or once jobs are
submitted and streaming), then sends SIGTERM to the process or to one of its other threads (as the
kernel may hand a process-wide signal to any thread). A round that has not ended within
--hang-seconds gets SIGUSR1 (every thread's stack on stderr, ``longform.local.stopping``), then
SIGKILL, and its stderr is saved. Prints a table: rounds, machine load, exits, stop times. A
SIGTERM before serve has installed its handlers (the interpreter still importing) ends it with the
signal's default action, exit -15: nothing was written yet.

    .venv/bin/python bench/serve_stop_stress.py --rounds 40 --busy 4
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _burn(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    while not stop.is_set():
        sum(i * i for i in range(20_000))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _submit(port: int, n: int) -> None:
    body = json.dumps(
        {"prompt": f"Write about herons {n} [emulator answer_tokens=3000]", "max_tokens_per_request": 500}
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/generations", data=body.encode(), method="POST"
    )
    with contextlib.suppress(OSError):
        urllib.request.urlopen(request, timeout=30).read()  # noqa: S310  loopback


def _up(port: int) -> bool:
    with contextlib.suppress(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/generations", timeout=5).read()
        return True
    return False


def one_round(state: Path, hang_seconds: float, rng: random.Random, logs: Path, index: int) -> dict:
    port = _free_port()
    env = {**os.environ, "DEEPINFRA_API_KEY": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "longform.cli", "serve", "--emulator", "--emulator-token-delay", "0.002",
         "--port", str(port), "--state-dir", str(state)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    moment = rng.choice(["start-up", "serving"])
    if moment == "start-up":
        time.sleep(rng.uniform(0.0, 6.0))
    else:
        started = time.monotonic()
        while not _up(port) and proc.poll() is None and time.monotonic() - started < 300:
            time.sleep(0.1)
        for n in range(rng.randint(0, 3)):
            _submit(port, index * 10 + n)
        time.sleep(rng.uniform(0.0, 3.0))
    target = rng.choice(["process", "thread"])
    tids = (
        [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
        if proc.poll() is None
        else []
    )
    sent = time.monotonic()
    if target == "thread" and tids:
        ctypes.CDLL(None).tgkill(proc.pid, rng.choice(tids), signal.SIGTERM)
    else:
        target = "process"
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=hang_seconds)
        hung = False
    except subprocess.TimeoutExpired:
        hung = True
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
        proc.kill()
        _, err = proc.communicate()
        (logs / f"hang-{index}.stderr").write_bytes(err)
    if not hung and time.monotonic() - sent > 2.0:  # slower than the 2 s the issue asks for: keep why
        (logs / f"slow-{index}.stderr").write_bytes(err)
    return {
        "moment": moment,
        "target": target,
        "seconds": time.monotonic() - sent,
        "code": proc.returncode,
        "hung": hung,
        "traceback": b"Traceback" in err,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--busy", type=int, default=4, help="busy-loop processes to start")
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    burners = [context.Process(target=_burn, args=(stop,), daemon=True) for _ in range(args.busy)]
    for burner in burners:
        burner.start()
    rows, loads = [], []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            state, logs = Path(scratch) / "state", Path(tempfile.mkdtemp(prefix="serve-stop-"))
            for index in range(args.rounds):
                rows.append(one_round(state, args.hang_seconds, rng, logs, index))
                loads.append(os.getloadavg()[0])
                row = rows[-1]
                print(f"round {index + 1:3d}: {row['moment']:8s} {row['target']:7s} exit {row['code']} "
                      f"in {row['seconds']:.2f}s{' HUNG' if row['hung'] else ''}", flush=True)  # fmt: skip
    finally:
        stop.set()
        for burner in burners:
            burner.join(timeout=10)
    times = [r["seconds"] for r in rows if not r["hung"]]
    print()
    print(
        "| rounds | busy loops | load (1 min) min-max | exit 0 | -15 (before its handlers) | other exits "
        "| hung | tracebacks "
        "| stop s median | stop s max |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {len(rows)} | {args.busy} | {min(loads):.1f}-{max(loads):.1f} "
        f"| {sum(r['code'] == 0 for r in rows)} "
        f"| {sum(r['code'] == -signal.SIGTERM for r in rows)} "
        f"| {sum(r['code'] not in (0, -signal.SIGTERM) and not r['hung'] for r in rows)} "
        f"| {sum(r['hung'] for r in rows)} "
        f"| {sum(r['traceback'] for r in rows)} | {statistics.median(times) if times else 0:.2f} "
        f"| {max(times) if times else 0:.2f} |"
    )
    if any(r["hung"] for r in rows):
        print(f"hung rounds' stderr (with every thread's stack) in {logs}")


if __name__ == "__main__":
    main()
