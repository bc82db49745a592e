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
