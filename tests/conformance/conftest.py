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
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES: dict[str, dict[str, Any]] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LONGFORM_LLAMA_SERVER") and os.environ.get("LONGFORM_LLAMA_MODEL"):
        return
    skip = pytest.mark.skip(reason="no llama-server: run `make conformance`")
    for item in items:
        if "conformance" in str(item.fspath):
            item.add_marker(skip)


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

    def chat(self, body: dict[str, Any], *, timeout: float = 300) -> httpx.Response:
        return httpx.post(f"{self.base_url}/chat/completions", json=body, timeout=timeout)


@pytest.fixture(scope="session")
def llama_binary() -> tuple[str, str]:
    return os.environ["LONGFORM_LLAMA_SERVER"], os.environ["LONGFORM_LLAMA_MODEL"]


@pytest.fixture
def start_llama(llama_binary: tuple[str, str], tmp_path: Path) -> Iterator[Callable[..., LlamaServer]]:
    """``start_llama("-c", "512", "--ignore-eos")``: a server on a free port, stopped at the end."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> LlamaServer:
        server, model = llama_binary
        port = free_port()
        log = tmp_path / f"llama-server-{port}.log"
        argv = [server, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-np", "1", *args]
        with log.open("wb") as sink:
            proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
        processes.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return LlamaServer(base_url=f"{url}/v1", url=url, args=list(args), log=log)
            time.sleep(0.2)
        raise RuntimeError(f"llama-server did not become healthy in 120 s:\n{log.read_text()[-2000:]}")

    try:
        yield start
    finally:
        for proc in processes:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def longform(*args: str, timeout: float = 900, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``longform ARGS --json`` as a user runs it; the summary (its last stdout line) with the exit code."""
    started = time.monotonic()
    state = tempfile.mkdtemp(prefix="longform-state-")  # each run its own local state
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "longform.cli", *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "LONGFORM_STATE_DIR": state, **(env or {})},
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise AssertionError(f"longform printed nothing (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    summary: dict[str, Any] = json.loads(lines[-1])
    summary["exit_code"] = proc.returncode
    summary["wall_seconds"] = round(time.monotonic() - started, 2)
    summary["stderr"] = proc.stderr
    return summary


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
    columns = ["case", "status", "chunks", "output tokens", "fidelity", "context used", "seconds"]
    rows = [
        [
            row.get("case", name),
            str(row.get("status", "")),
            str(row.get("chunks", "")),
            str(row.get("output_tokens", "")),
            f"{row['fidelity']:.2%}" if "fidelity" in row else "",
            f"{row['context_used']:.2%}" if "context_used" in row else "",
            f"{row['seconds']:.1f}" if "seconds" in row else "",
        ]
        for name, row in FIGURES.items()
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    terminalreporter.write_sep("=", "conformance figures (real llama.cpp server)")
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
