"""`longform serve` and the API client: real HTTP on loopback into the in-process API function."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from longform.cli import main
from longform.client import ApiClient, ApiError
from longform.local.cloud import LocalCloud
from longform.local.serve import LocalApi

from .conftest import CloudFactory, expected

pytestmark = pytest.mark.integration


@pytest.fixture
def served(make_cloud: CloudFactory) -> Iterator[tuple[LocalCloud, LocalApi]]:
    with make_cloud() as cloud, LocalApi(cloud, port=0) as api:
        yield cloud, api


def wait_terminal(client: ApiClient, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.status(job_id)
        if view["status"] in ("succeeded", "context_exhausted", "failed", "cancelled"):
            return view
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_submit_status_output_over_http(served, emulator) -> None:
    _, api = served
    client = ApiClient(api.url)
    request = {
        "prompt": "Write about tide mills. [emulator answer_tokens=2500]",
        "max_tokens_per_request": 1000,
    }
    accepted = client.submit(request)
    view = wait_terminal(client, accepted["job_id"])
    assert view["status"] == "succeeded"
    assert view["progress"]["chunks"] == 3
    assert view["progress"]["output_tokens"] == 2500
    want = expected(request, emulator).answer
    assert "".join(client.follow(accepted["job_id"], poll=0.05)) == want
    page = client.output(accepted["job_id"], offset=100)
    assert page["text"] == want[100:]


def test_unknown_job_is_a_404_json_error(served) -> None:
    _, api = served
    with pytest.raises(ApiError) as info:
        ApiClient(api.url).status("no-such-job")
    assert info.value.status == 404
    assert isinstance(info.value.body, dict) and info.value.body.get("error")


def test_cli_client_commands(served, emulator, capsys: pytest.CaptureFixture[str]) -> None:
    _, api = served
    prompt = "Write about kelp. [emulator answer_tokens=900]"
    submit = ["submit", "--api", api.url, "--prompt", prompt, "--max-tokens-per-request", "400", "--json"]
    assert main(submit) == 0
    job_id = json.loads(capsys.readouterr().out)["job_id"]
    client = ApiClient(api.url)
    wait_terminal(client, job_id)
    assert main(["status", "--api", api.url, job_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "succeeded"
    assert main(["status", "--api", api.url, job_id]) == 0  # the readable view, as `longform show`
    view = capsys.readouterr().out
    for row in (rf"job\s+{job_id}", r"status\s+succeeded", r"output tokens\s+900"):
        assert re.search(rf"^{row}$", view, re.MULTILINE), view
    assert main(["output", "--api", api.url, job_id, "--follow", "--poll", "0.05"]) == 0
    assert capsys.readouterr().out == expected({"prompt": prompt}, emulator).answer
    assert main(["cancel", "--api", api.url, job_id]) == 1  # already finished: 409
    assert "409" in capsys.readouterr().err


def test_cancel_over_http_keeps_the_partial_output(served, emulator) -> None:
    cloud, api = served
    emulator.configure(token_delay=0.002)
    client = ApiClient(api.url)
    request = {"prompt": "Write a long saga. [emulator answer_tokens=6000]", "max_tokens_per_request": 500}
    job_id = client.submit(request)["job_id"]
    deadline = time.monotonic() + 30
    while client.status(job_id)["progress"]["chunks"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    view = client.cancel(job_id)
    assert view["status"] == "cancelled"
    emulator.configure(token_delay=0.0)
    text = "".join(client.follow(job_id, poll=0.05))
    assert len(text) > 0
    assert expected(request, emulator).answer.startswith(text)
    desc = cloud.wait(job_id, timeout=30)
    # AWS ends a stopped execution ABORTED at once. moto flags the stop and lets the task in flight
    # finish: that chunk's write then loses the race with the cancel (its output.md ETag changed), so
    # moto reports FAILED. Either way nothing the chunk produced after the cancel reaches the output:
    assert desc["status"] in ("ABORTED", "FAILED")
    result = cloud.store.get_result(job_id)
    assert result is not None and result.status == "cancelled"
    assert cloud.store.get_text(result.output_key) == text
    assert client.status(job_id)["status"] == "cancelled"


def test_serve_keeps_jobs_across_restarts_and_resumes_unfinished_ones(tmp_path) -> None:
    """Stopped mid-job (SIGTERM, as systemd or a Ctrl-C would), ``longform serve`` forgets nothing:
    restarted on the same state directory it still knows the job, resumes it, and the output is
    the uncapped answer."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    from longform.emulator.model import uncapped_answer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    state = tmp_path / "state"
    env = {**os.environ, "DEEPINFRA_API_KEY": ""}

    def serve(*extra: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "longform.cli", "serve", "--emulator", "--port", str(port)]
        return subprocess.Popen(  # noqa: S603
            [*command, "--state-dir", str(state), *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def up(client: ApiClient, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (proc.stdout.read() if proc.stdout else b"").decode()[-2000:]
            try:
                client.list()
                return
            except Exception:
                assert time.monotonic() < deadline, "longform serve did not come up"
                time.sleep(0.2)

    prompt = "Write about herons [emulator answer_tokens=4000]"
    client = ApiClient(f"http://127.0.0.1:{port}")
    first = serve("--emulator-token-delay", "0.005")
    try:
        up(client, first)
        job_id = client.submit({"prompt": prompt, "max_tokens_per_request": 1000})["job_id"]
        deadline = time.monotonic() + 120
        while client.status(job_id)["progress"]["chunks"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=30)
        assert first.returncode == 0
        assert b"1 unfinished job(s) resume at the next start" in out
    finally:
        if first.poll() is None:
            first.kill()
    second = serve()
    try:
        up(client, second)
        view = wait_terminal(client, job_id, timeout=120)
        assert view["status"] == "succeeded"
        assert client.output(job_id)["text"] == uncapped_answer([{"role": "user", "content": prompt}])
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=30)
