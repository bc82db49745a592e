"""Many longform processes on one state directory (issue 16, item 2): no directory-wide lock, one
process per job (its lease), the default directory per user."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from longform.cli import main
from longform.client import ApiClient
from longform.emulator.model import uncapped_answer
from longform.local.state import Leases, default_state_dir

pytestmark = pytest.mark.integration


def test_the_default_state_directory_is_the_users_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LONGFORM_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # platformdirs on Linux
    assert default_state_dir() == tmp_path / "data" / "longform"
    monkeypatch.setenv("LONGFORM_STATE_DIR", str(tmp_path / "mine"))
    assert default_state_dir() == tmp_path / "mine"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(state: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "longform.cli", "serve", "--emulator", "--port", str(port)]
    return subprocess.Popen(  # noqa: S603
        [*command, "--state-dir", str(state)],
        env={**os.environ, "DEEPINFRA_API_KEY": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _up(client: ApiClient, proc: subprocess.Popen[bytes]) -> None:
    while True:  # no deadline: the test's own timeout bounds it
        assert proc.poll() is None, (proc.stdout.read() if proc.stdout else b"").decode()[-2000:]
        try:
            client.list()
            return
        except Exception:
            time.sleep(0.2)


def test_run_beside_serve_on_one_state_directory_and_serve_shows_its_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen: while ``serve`` ran, ``run``, ``drop`` and ``resume`` in its state directory failed on
    the lock; and a job ``run`` had started was a 404 through serve's API, which listed nothing."""
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    state, port = tmp_path / "state", _free_port()
    client = ApiClient(f"http://127.0.0.1:{port}")
    server = _serve(state, port)
    try:
        _up(client, server)
        prompt = "A 300-word note on a lighthouse keeper."
        out = tmp_path / "answer.md"
        args = ["run", "--emulator", "--prompt", prompt, "--state-dir", str(state), "--json"]
        code = main([*args, "--out", str(out), "--max-tokens-per-request", "120"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        job_id = json.loads(captured.out.strip().splitlines()[-1])["job_id"]
        answer = uncapped_answer([{"role": "user", "content": prompt}])
        assert out.read_text(encoding="utf-8") == answer
        # the serve process never ran this job: it finds it on disk
        assert client.status(job_id)["status"] == "succeeded"
        assert client.output(job_id)["text"] == answer
        assert job_id in [item["job_id"] for item in client.list()["items"]]
        assert main(["list", "--json", "--state-dir", str(state)]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [j["job_id"] for j in listed] == [job_id]
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=120)


def test_resume_of_a_job_another_process_runs_names_that_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    state = tmp_path / "state"
    args = ["run", "--emulator", "--prompt", "A 100-word note.", "--state-dir", str(state), "--json"]
    assert main([*args, "--out", str(tmp_path / "a.md")]) == 0
    job_id = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["job_id"]
    other = Leases(state)  # as another process holds it: a separate open file, a separate flock
    assert other.acquire(job_id, "longform run")
    try:
        assert main(["resume", job_id, "--state-dir", str(state)]) == 1
        err = capsys.readouterr().err
        assert f"job {job_id} is being run by pid {os.getpid()} (longform run)" in err
        assert main(["show", job_id, "--state-dir", str(state)]) == 0
    finally:
        other.release(job_id)
    assert Leases(state).holder(job_id) is None


def _serve_up(state: Path, port: int, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """``longform serve`` started and answering; the base URL of its emulator."""
    command = [sys.executable, "-m", "longform.cli", "serve", "--emulator", "--port", str(port)]
    proc = subprocess.Popen(  # noqa: S603
        [*command, "--state-dir", str(state), *extra],
        env={**os.environ, "DEEPINFRA_API_KEY": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    emulator = ""
    for raw in proc.stdout:  # its banner, up to the example line
        line = raw.decode()
        if " on the emulator at " in line:
            emulator = line.split(" on the emulator at ", 1)[1].strip().split("/v1")[0]
        if line.strip().startswith("try:"):
            return proc, emulator
    raise AssertionError(f"longform serve exited {proc.wait()}")


def _batch_stopped_midway(state: Path, port: int, body: str, *, cap: int, delay: str, succeeded: int) -> str:
    """``serve`` started, a batch posted with ``max_concurrency=cap``, serve stopped by SIGTERM once
    ``succeeded`` of its lines succeeded (the batch not finished): the batch's id."""
    import httpx

    base = f"http://127.0.0.1:{port}"
    first, _ = _serve_up(state, port, "--emulator-token-delay", delay)
    try:
        accepted = httpx.post(
            f"{base}/batches?max_concurrency={cap}", content=body.encode(), timeout=60
        ).json()
        batch_id = accepted["batch_id"]
        while True:  # some lines done, the batch not: stop it there
            view = httpx.get(f"{base}/batches/{batch_id}", timeout=60).json()
            assert view["status"] in ("queued", "running"), view
            if view["counts"] and view["counts"]["succeeded"] >= succeeded:
                return str(batch_id)
            time.sleep(0.2)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)


def test_serve_restarted_mid_batch_resumes_it_as_a_batch(tmp_path: Path) -> None:
    """Seen: restarted mid-batch, serve resumed the lines as single jobs, all at once (10 lines for
    a cap of 2), never the batch, which stayed running forever with no output."""
    import httpx

    state, port = tmp_path / "state", _free_port()
    base = f"http://127.0.0.1:{port}"
    prompts = [f"A note on lighthouse {n} [emulator answer_tokens=300]" for n in range(6)]
    body = "".join(json.dumps({"prompt": p, "max_tokens_per_request": 100}) + "\n" for p in prompts)
    batch_id = _batch_stopped_midway(state, port, body, cap=2, delay="0.01", succeeded=1)
    second, emulator = _serve_up(state, port)
    try:
        while True:
            view = httpx.get(f"{base}/batches/{batch_id}", timeout=60).json()
            if view["status"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert view["status"] == "completed", view
        assert view["counts"]["succeeded"] == 6
        seen = httpx.get(f"{emulator}/_emulator/concurrency", timeout=60).json()
        assert seen["max"] <= 2  # the batch's cap held after the restart
        listed = httpx.get(f"{base}/batches", timeout=60).json()
        assert batch_id in [b["batch_id"] for b in listed["items"]]
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=120)
    from longform.local.state import StateDir

    output = StateDir(state).read_object(f"batch-runs/{batch_id}/output.jsonl")
    assert output is not None
    rows = [json.loads(line) for line in output.decode().splitlines()]
    texts = [r["response"]["body"]["choices"][0]["message"]["content"] for r in rows]
    assert texts == [uncapped_answer([{"role": "user", "content": p}]) for p in prompts]


def test_a_cancel_after_a_restart_keeps_the_lines_that_had_succeeded(tmp_path: Path) -> None:
    """Seen: serve restarted mid-batch, then ``DELETE /batches/{id}``: the output called the lines
    that had succeeded before the restart ``cancelled``."""
    import httpx

    from longform.local.state import StateDir

    state, port = tmp_path / "state", _free_port()
    base = f"http://127.0.0.1:{port}"
    prompts = [f"A note on harbour {n} [emulator answer_tokens=300]" for n in range(6)]
    body = "".join(json.dumps({"prompt": p, "max_tokens_per_request": 100}) + "\n" for p in prompts)
    batch_id = _batch_stopped_midway(state, port, body, cap=1, delay="0.002", succeeded=3)
    store = StateDir(state)
    succeeded = {
        p.parent.name for p in (state / "bucket" / "jobs").glob("*/manifest.json")
        if json.loads(p.read_text())["status"] == "succeeded"
    }  # fmt: skip
    assert succeeded
    second, _ = _serve_up(state, port, "--emulator-token-delay", "0.05")  # slow: the batch is still running
    try:
        cancelled = httpx.delete(f"{base}/batches/{batch_id}", timeout=120).json()
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=120)
    assert cancelled["status"] == "cancelled", cancelled
    assert cancelled["counts"]["succeeded"] >= len(succeeded), cancelled
    output = store.read_object(f"batch-runs/{batch_id}/output.jsonl")
    assert output is not None
    rows = [json.loads(line) for line in output.decode().splitlines()]
    assert len(rows) == len(prompts)
    by_job = {
        json.loads(p.read_text())["job_id"]: json.loads(p.read_text())["status"]
        for p in (state / "bucket" / "jobs").glob("*/manifest.json")
    }
    for job_id in succeeded:
        assert by_job[job_id] == "succeeded"  # the cancel left it as it was
    texts = {uncapped_answer([{"role": "user", "content": p}]) for p in prompts}
    done = [r for r in rows if r.get("response") and r["response"].get("status_code") == 200]
    assert len(done) >= len(succeeded), rows
    for row in done:
        assert row["response"]["body"]["choices"][0]["message"]["content"] in texts
