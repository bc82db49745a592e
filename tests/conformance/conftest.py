"""The real-server conformance suite: a real llama.cpp ``llama-server`` is the judge.

``make conformance`` builds the server and fetches the model (``conformance/build_llama_server.sh``,
cached in ``~/.cache/longform``) and runs these tests with ``LONGFORM_LLAMA_SERVER`` and
``LONGFORM_LLAMA_MODEL`` set. Without them the tests are skipped (``make test`` does not run them).

Each test starts its own server on a free loopback port and stops it whatever happens. Figures a
test measures are recorded with the ``figures`` fixture; the session prints them as a table and
writes them to ``out/conformance.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES: dict[str, dict[str, Any]] = {}


# A loaded CI machine: llama.cpp's worker threads busy-wait between tasks (--poll, 50 by default),
# and with more runnable threads than cores a 135M model fell to 1-5 tokens a second; two threads
# that must meet at every step fell further (0.1 token/s seen with a load of 16 on 2 cores). The
# servers run one thread that sleeps instead of spinning, and no test bounds how long a request
# takes (pytest-timeout's 300 s is lifted for this suite: a bound on a hang, not on speed).
# two threads by default: with one, greedy numerics differ and the -c 512 --ignore-eos job (b) loops
# into a no_progress stop before its context fills (seen 2026-12-02); LONGFORM_LLAMA_THREADS overrides
THREADS = os.environ.get("LONGFORM_LLAMA_THREADS", str(max(1, min(2, os.cpu_count() or 1))))
TEST_TIMEOUT = 3 * 3600
LLAMA_LOAD_ARGS = ("--threads", THREADS, "--threads-batch", THREADS, "--poll", "0")
REQUEST_TIMEOUT = 3600.0  # seconds a reference request may take on a loaded machine (no bound on speed)
# the other servers, each installed in its own venv by conformance/install_servers.sh
SERVER_ENV = {
    "litellm": "LONGFORM_LITELLM_PYTHON",
    "transformers": "LONGFORM_TRANSFORMERS_PYTHON",
    "llama_cpp_python": "LONGFORM_LLAMA_CPP_PYTHON_PYTHON",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    have_llama = bool(os.environ.get("LONGFORM_LLAMA_SERVER") and os.environ.get("LONGFORM_LLAMA_MODEL"))
    skip = pytest.mark.skip(reason="no llama-server: run `make conformance`")
    # the servers `make conformance` installed (CONFORMANCE_SERVERS): each must run, never skip
    required = {n.replace("-", "_") for n in os.environ.get("LONGFORM_CONFORMANCE_REQUIRE", "").split()}
    for item in items:
        if "conformance" not in str(item.fspath):
            continue
        if not have_llama:
            item.add_marker(skip)
            continue
        item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))
        for name, env in SERVER_ENV.items():
            if f"test_{name}" in str(item.fspath) and not os.environ.get(env):
                if name in required:  # `make conformance` installed it: a skip would hide its failure
                    raise pytest.UsageError(f"{env} is not set though make conformance installs {name}")
                item.add_marker(pytest.mark.skip(reason=f"{env} is not set: run `make conformance`"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LlamaServer:
    base_url: str  # OpenAI-compatible: base_url + "/chat/completions"
    url: str
    args: list[str]
    log: Path

    headers: dict[str, str] | None = None

    def chat(self, body: dict[str, Any], *, timeout: float = REQUEST_TIMEOUT) -> httpx.Response:
        return httpx.post(
            f"{self.base_url}/chat/completions", json=body, timeout=timeout, headers=self.headers
        )

    def complete(self, body: dict[str, Any], *, timeout: float = REQUEST_TIMEOUT) -> httpx.Response:
        return httpx.post(f"{self.base_url}/completions", json=body, timeout=timeout, headers=self.headers)

    def uncapped(self, model: str, prompt: str, max_tokens: int) -> str:
        """One greedy chat call for the whole budget: the text a greedy job must reproduce."""
        body = {"model": model, "temperature": 0, "max_tokens": max_tokens}
        reply = self.chat({**body, "messages": [{"role": "user", "content": prompt}]}).json()
        return str(reply["choices"][0]["message"]["content"])


@pytest.fixture(scope="session")
def llama_binary() -> tuple[str, str]:
    return os.environ["LONGFORM_LLAMA_SERVER"], os.environ["LONGFORM_LLAMA_MODEL"]


STARTUP_SECONDS = 900  # loading a model on a loaded machine (a bound on a hang, not on speed)


class Processes:
    """Servers started by a test, each stopped at the end whatever happens (terminate, then kill)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, argv: list[str], health: str, *, env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Run ``argv`` (its output to a log) until ``health`` answers 200."""
        log = self.tmp_path / f"{name}-{len(self.started)}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(  # noqa: S603
                argv, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )
        self.started.append(proc)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health, timeout=5).status_code == 200:
                    return proc, log
            time.sleep(0.5)
        raise RuntimeError(
            f"{name} did not become healthy in {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}"
        )

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def start_llama(llama_binary: tuple[str, str], processes: Processes) -> Callable[..., LlamaServer]:
    """``start_llama("-c", "512", "--ignore-eos")``: a server on a free port, stopped at the end."""

    def start(*args: str) -> LlamaServer:
        server, model = llama_binary
        port = free_port()
        argv = [server, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-np", "1", *LLAMA_LOAD_ARGS]
        url = f"http://127.0.0.1:{port}"
        _, log = processes.start("llama-server", [*argv, *args], f"{url}/health")
        return LlamaServer(base_url=f"{url}/v1", url=url, args=list(args), log=log)

    return start


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A row of the figures table, named after the test."""
    row: dict[str, Any] = {}
    FIGURES[request.node.name] = row
    return row


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    out = ROOT / "out" / "conformance.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(FIGURES, indent=2, default=str) + "\n")
    columns = [
        "server", "case", "status", "chunks", "output tokens", "fidelity", "context used",
        "learning requests", "seconds",
    ]  # fmt: skip
    rows = [
        [
            str(row.get("server", "llama.cpp")),
            row.get("case", name),
            str(row.get("status", "")),
            str(row.get("chunks", "")),
            str(row.get("output_tokens", "")),
            f"{row['fidelity']:.2%}" if "fidelity" in row else "",
            f"{row['context_used']:.2%}" if "context_used" in row else "",
            str(row.get("learning_requests", "")) if row.get("learning_requests") is not None else "",
            f"{row['seconds']:.1f}" if "seconds" in row else "",
        ]
        for name, row in FIGURES.items()
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    terminalreporter.write_sep("=", "conformance figures (real servers)")
    terminalreporter.write_line(
        "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |"
    )
    terminalreporter.write_line("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        terminalreporter.write_line(
            "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |"
        )
    for name, row in FIGURES.items():
        if row.get("note"):
            terminalreporter.write_line(f"{row.get('case', name)}: {row['note']}")
    terminalreporter.write_line(f"(written to {out.relative_to(ROOT)})")
