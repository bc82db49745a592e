"""SIGTERM and SIGINT end `serve`, `run` and `batch` promptly under a CPU load the test creates itself.

Asserted on the exit (its code, no traceback, the state left on disk), never on a wall-time range:
the time from the signal to the exit is printed as a measurement (`-s` shows it). The communicate
timeout is a hang guard far above the 2 s the commands keep (they end themselves by then, armed by
``longform.local.stopping``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from longform.emulator.model import uncapped_answer

from .stop_harness import (
    HANG_GUARD_SECONDS,
    PROMPT,
    drafting,
    end_process,
    exit_of,
    free_port,
    read_manifests,
    run_longform,
    serving,
    signal_and_wait,
    wait_for,
)

pytestmark = pytest.mark.integration


# "thread": SIGTERM handed to a thread other than the main one (the kernel may do so with a
# process-wide signal). Python runs its handler only when the main thread next runs bytecode: while
# serve's main thread slept for an hour (time.sleep(3600), before 872bfac) that was an hour later,
# a hang with nothing on stderr, as a fresh-clone `make test` once saw; it now sleeps 0.2 s at a time
@pytest.mark.parametrize("target", ["process", "thread"])
def test_serve_stops_under_load_with_jobs_in_flight(tmp_path: Path, cpu_load: None, target: str) -> None:
    with serving(tmp_path, "--emulator-token-delay", "0.002") as (serve, client, state):
        jobs = [
            client.submit({"prompt": f"{PROMPT} {n}", "max_tokens_per_request": 500})["job_id"]
            for n in range(3)
        ]
        drafting(serve, state, jobs[0])
        out, err = signal_and_wait(serve, signal.SIGTERM, to_thread=target == "thread")
    assert serve.returncode == 0, err
    assert "Traceback" not in out + err
    assert "unfinished job(s) resume at the next start" in out
    manifests = read_manifests(state)
    assert {m["job_id"] for m in manifests} == set(jobs)
    assert any(m["status"] in ("queued", "running") for m in manifests)  # left unfinished, to resume


def test_run_stops_under_load_keeping_what_is_committed(tmp_path: Path, cpu_load: None) -> None:
    state, out_file = tmp_path / "state", tmp_path / "answer.md"
    run = run_longform(
        "run", "--emulator", "--emulator-token-delay", "0.002", "--prompt", PROMPT,
        "--max-tokens-per-request", "500", "--out", str(out_file), "--state-dir", str(state), cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for(lambda: any(m["chunks"] >= 1 for m in read_manifests(state)), "committed chunk", run)
        _, err = signal_and_wait(run, signal.SIGINT)
    finally:
        end_process(run)
    assert run.returncode == 130, err
    assert "Traceback" not in err
    [manifest] = read_manifests(state)
    assert manifest["status"] == "running" and manifest["chunks"] >= 1
    answer = uncapped_answer([{"role": "user", "content": PROMPT}])
    if out_file.exists():  # written when the summary was reached in time: a prefix of the answer
        assert answer.startswith(out_file.read_text())


def test_batch_stops_under_load_keeping_the_lines_that_ended(tmp_path: Path, cpu_load: None) -> None:
    batch_file, out = tmp_path / "b.jsonl", tmp_path / "b.out.jsonl"
    lines = [
        {"custom_id": f"c{n}", "prompt": f"Write about herons {n} [emulator answer_tokens=600]"}
        for n in range(6)
    ]
    batch_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    batch = run_longform(
        "batch", str(batch_file), "--out", str(out), "--emulator", "--emulator-token-delay", "0.003",
        "--max-concurrency", "2", "--max-tokens-per-request", "500", cwd=tmp_path,
    )  # fmt: skip
    try:
        partial = out.with_name(out.name + ".partial")
        # started, and at least one line has ended (its output line appended to the checkpoint)
        wait_for(lambda: partial.exists() and len(partial.read_text().splitlines()) >= 2, "ended line", batch)
        _, err = signal_and_wait(batch, signal.SIGTERM)
    finally:
        end_process(batch)
    assert batch.returncode == 130, err
    assert "Traceback" not in err
    assert not out.exists()  # no output file for an unfinished batch
    ended = partial.read_text().splitlines()[1:]
    assert ended  # the lines that ended are kept; each whole (a line cut mid-write is skipped on resume)
    for text in ended[:-1]:
        assert json.loads(text)["output"]["custom_id"].startswith("c")


# serve, with moto's listing failing once serve is up (as it can while executions write and delete
# drafts): the stop path must not depend on it. Before the fix the exception left `with LocalCloud`,
# whose exit waits for every running execution, so SIGTERM did not end serve for minutes.
FAILING_LISTING = """
import sys
import longform.local.cloud as cloud
listing = cloud.LocalCloud.unfinished_jobs
calls = []
def unfinished_jobs(self):
    calls.append(1)
    if len(calls) > 1:
        raise RuntimeError("dictionary changed size during iteration")
    return listing(self)
cloud.LocalCloud.unfinished_jobs = unfinished_jobs
from longform.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_serve_stops_when_moto_fails_under_it(tmp_path: Path) -> None:
    with serving(tmp_path, "--emulator-token-delay", "0.01", script=FAILING_LISTING) as (
        serve,
        client,
        state,
    ):
        job_id = client.submit({"prompt": PROMPT, "max_tokens_per_request": 1000})["job_id"]
        drafting(serve, state, job_id)
        out, err = signal_and_wait(serve, signal.SIGTERM)
    assert serve.returncode == 0, err
    assert "Traceback" not in err
    assert "1 unfinished job(s) resume at the next start" in out


# SIGTERM at each point of serve's start-up, delivered from a hook at that very point (to the main
# thread, or to another thread of the process, as the kernel may hand a process-wide signal to any
# thread that does not block it). Before the fix: a signal right after the handlers were installed
# (before the try that turns it into a stop) ended serve with 130 and "longform: interrupted"; and
# the resume of unfinished jobs ran after the API was up, so a job submitted through the API during
# the start-up was taken for an unfinished one and started a second time.
AT_POINT = """
import os, signal, sys, threading
point, target = sys.argv.pop(1), sys.argv.pop(1)
import longform.emulator.server as emulator
import longform.local.batch as local_batch
import longform.local.cloud as cloud
import longform.local.serve as serve
import longform.local.stopping as stopping

def fire(where):
    if where != point:
        return
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    if target == "other" and others:
        signal.pthread_kill(others[0].ident, signal.SIGTERM)
    else:
        os.kill(os.getpid(), signal.SIGTERM)

def hook(owner, name, before, after):
    real = getattr(owner, name)
    def hooked(*args, **kwargs):
        fire(before)
        result = real(*args, **kwargs)
        fire(after)
        return result
    setattr(owner, name, hooked)

hook(stopping, "raise_on_signals", "-", "handlers installed")
hook(emulator.EmulatorServer, "start", "emulator starting", "emulator started")
hook(cloud.LocalCloud, "_start", "cloud starting", "cloud started")
hook(local_batch, "unfinished_batches", "listing batches", "batches listed")
hook(cloud.LocalCloud, "unfinished_jobs", "listing jobs", "jobs listed")
hook(serve.LocalApi, "start", "api starting", "api started")
from longform.cli import main
raise SystemExit(main(sys.argv[1:]))
"""
START_POINTS = [
    "handlers installed", "emulator starting", "emulator started", "cloud starting", "cloud started",
    "listing batches", "batches listed", "listing jobs", "jobs listed", "api starting", "api started",
]  # fmt: skip


@pytest.mark.parametrize("target", ["main", "other"])
@pytest.mark.parametrize("point", START_POINTS)
def test_serve_stops_on_sigterm_at_every_point_of_its_start(tmp_path: Path, point: str, target: str) -> None:
    proc = run_longform(
        point, target, "serve", "--emulator", "--port", str(free_port()),
        "--state-dir", str(tmp_path / "state"), cwd=tmp_path, script=AT_POINT,
    )  # fmt: skip
    try:
        out, err = exit_of(proc, f"SIGTERM at {point!r}")
    finally:
        end_process(proc)
    assert proc.returncode == 0, err
    assert "longform serve stopped" in out
    assert "Traceback" not in err and "interrupted" not in err


# A job submitted through the API while serve starts is the API's, never one to resume: the
# unfinished jobs are listed (and resumed) before the API takes requests.
SUBMIT_WHILE_LISTING = """
import json, sys, urllib.request
import longform.local.cloud as cloud
port = sys.argv[sys.argv.index("--port") + 1]
listing = cloud.LocalCloud.unfinished_jobs
def unfinished_jobs(self):
    body = json.dumps({"prompt": "Write about herons [emulator answer_tokens=300]"}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/generations", data=body, method="POST")
    try:
        urllib.request.urlopen(request, timeout=30).read()
        print("submitted during the listing", file=sys.stderr)
    except OSError:
        pass  # the API is not up yet
    return listing(self)
cloud.LocalCloud.unfinished_jobs = unfinished_jobs
from longform.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_serve_takes_no_request_before_it_has_resumed_the_unfinished_jobs(tmp_path: Path) -> None:
    serve = run_longform(
        "serve", "--emulator", "--port", str(free_port()), "--state-dir", str(tmp_path / "state"),
        cwd=tmp_path, script=SUBMIT_WHILE_LISTING,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        banner = [serve.stdout.readline().decode() for _ in range(4)]
        _, err = signal_and_wait(serve, signal.SIGTERM)
    finally:
        end_process(serve)
    assert "submitted during the listing" not in err
    assert "resumed" not in banner[3], banner  # nothing was unfinished: nothing resumed


# serve failing at start while it has already resumed a job: it ends at once with one line, exit 1;
# before, the error left through `with LocalCloud`, whose exit waits for every running execution
# (up to 120 s each) while the API, on its daemon thread, went on serving as if nothing happened.
API_FAILS = """
import sys
import longform.local.serve as serve
def start(self):
    raise RuntimeError("the API could not start")
serve.LocalApi.start = start
from longform.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_serve_failing_at_start_ends_at_once_without_waiting_for_the_jobs_it_resumed(tmp_path: Path) -> None:
    from longform.local.store_faults import SIGKILL_ENV

    state = tmp_path / "state"
    env = {**os.environ, "DEEPINFRA_API_KEY": ""}
    killed = subprocess.run(  # noqa: S603  an unfinished job: `run` killed -9 at its first chunk commit
        [sys.executable, "-m", "longform.cli", "run", "--emulator", "--prompt", PROMPT,
         "--max-tokens-per-request", "500", "--state-dir", str(state), "--quiet"],
        env={**env, SIGKILL_ENV: "chunks/:1"}, capture_output=True, timeout=HANG_GUARD_SECONDS * 5,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    serve = run_longform(
        "serve", "--emulator", "--emulator-token-delay", "0.05", "--port", str(free_port()),
        "--state-dir", str(state), cwd=tmp_path, script=API_FAILS,
    )  # fmt: skip
    try:
        _, err = exit_of(serve, "failing at start")
    finally:
        end_process(serve)
    assert serve.returncode == 1, err
    assert err.strip() == "longform: serve failed: RuntimeError: the API could not start"
    [manifest] = read_manifests(state)
    assert manifest["status"] in ("queued", "running")  # resumed, then abandoned: to resume again


# serve's main thread blocked in a C call that has no timeout (here a lock taken twice; in life a
# join, a lock, a read): Python runs a signal's handler only in the main thread, between two of its
# bytecodes, so a SIGTERM the kernel hands to another thread waits for that call forever. The stop
# deadline is armed by the signal itself (the C handler writes its number to the wakeup fd, which a
# thread of its own reads), not by the Python handler: the process ends in time all the same.
MAIN_BLOCKED = """
import sys, threading
import longform.commands.serve as serve_command
printed = serve_command._print_serving
def print_then_block(*args):
    printed(*args)
    print("main thread blocked", flush=True)
    lock = threading.Lock()
    lock.acquire()
    lock.acquire()  # never returns
serve_command._print_serving = print_then_block
from longform.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_serve_stops_when_its_main_thread_is_blocked_and_another_thread_gets_the_signal(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, "--emulator-token-delay", "0.01", script=MAIN_BLOCKED) as (serve, client, state):
        assert serve.stdout is not None
        while "main thread blocked" not in serve.stdout.readline().decode():
            pass
        job_id = client.submit({"prompt": PROMPT, "max_tokens_per_request": 1000})["job_id"]
        drafting(serve, state, job_id)
        _, err = signal_and_wait(serve, signal.SIGTERM, to_thread=True)
    assert serve.returncode == 0, err
    assert err.strip() == "longform: stopped (1 s after the signal; what is on disk is whole)"
    [manifest] = read_manifests(state)
    assert manifest["status"] in ("queued", "running")  # unfinished, to resume at the next start
