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


def longform(
    *args: str, timeout: float = REQUEST_TIMEOUT, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``longform ARGS --json`` as a user runs it; the summary (its last stdout line) with the exit code."""
    started = time.monotonic()
    # each run its own local state, unless the test shares one (a cache carried to the next job)
    state = (env or {}).get("LONGFORM_STATE_DIR") or tempfile.mkdtemp(prefix="longform-state-")
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
    summary["state_dir"] = state
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


def first_difference(a: str, b: str) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def fidelity(text: str, reference: str) -> float:
    """The share of the reference the job's text reproduces before their first difference."""
    return first_difference(text, reference) / max(1, len(reference))


def repeated_passage(text: str, size: int = 120) -> str | None:
    """A passage of ``size`` characters that appears twice in ``text`` (None: none does)."""
    seen: set[str] = set()
    for i in range(max(0, len(text) - size + 1)):
        window = text[i : i + size]
        if window in seen:
            return window
        seen.add(window)
    return None


def learned_styles(state_dir: str) -> list[dict[str, Any]]:
    """The styles learned and cached in a local state directory (``styles/{digest}.json``)."""
    return [json.loads(p.read_text()) for p in sorted(Path(state_dir).rglob("styles/*.json"))]


@dataclass
class JobRun:
    """One ``longform run`` job as the conformance cases read it."""

    summary: dict[str, Any]
    text: str  # the --out file
    result: dict[str, Any]  # the result JSON beside it
    state: str  # its local state directory (the style cache lives there)

    @property
    def styles(self) -> list[dict[str, Any]]:
        return learned_styles(self.state)

    def figures(self, row: dict[str, Any], *, case: str, server: str, **more: Any) -> None:
        """Fill a figures row with the job's status, chunks, tokens and seconds (and ``more``)."""
        row.update(
            case=case,
            server=server,
            status=self.summary["status"],
            chunks=self.summary["chunks"],
            output_tokens=self.summary["output_tokens"],
            seconds=self.summary["wall_seconds"],
            **more,
        )


def run_job(
    base_url: str,
    model: str,
    prompt: str,
    out: Path,
    *,
    per_request: int,
    budget: int | None,
    state: str | None = None,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    fields: dict[str, Any] | None = None,
) -> JobRun:
    """``longform run`` greedy in ``per_request``-token chunks up to ``budget`` tokens (None: no
    output budget), with its own state directory unless given one (a shared cache). ``extra``: more
    ``longform run`` arguments; ``env``: more environment; ``fields``: request fields beside the
    prompt (sent as a request file)."""
    state = state or tempfile.mkdtemp(prefix="longform-state-")
    source = ("--prompt", prompt)
    if fields is not None:
        request = out.with_name(f"{out.stem}-request.json")
        request.write_text(json.dumps({"prompt": prompt, **fields}), encoding="utf-8")
        source = ("--request", str(request))
    summary = longform(
        *("run", "--base-url", base_url, "--model", model, "--max-tokens-per-request", str(per_request)),
        *(("--max-output-tokens", str(budget)) if budget is not None else ()),
        *("--temperature", "0", *source, "--out", str(out), *extra),
        env={**(env or {}), "LONGFORM_STATE_DIR": state},
    )
    text = out.read_text(encoding="utf-8") if out.exists() else ""
    result_file = out.with_suffix(".json")
    result = json.loads(result_file.read_text(encoding="utf-8")) if result_file.exists() else {}
    return JobRun(summary, text, result, state)


@dataclass
class Cancelled:
    """A job cancelled through ``longform serve``: its last status and the output it kept."""

    status: dict[str, Any]
    text: str
    seconds: float

    def figures(self, row: dict[str, Any], *, case: str, server: str = "llama.cpp", **more: Any) -> None:
        progress = self.status["progress"]
        row.update(
            case=case,
            server=server,
            status=self.status["status"],
            chunks=progress["chunks"],
            output_tokens=progress["output_tokens"],
            seconds=self.seconds,
            **more,
        )


def _api(method: str, url: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, url, timeout=REQUEST_TIMEOUT, **kwargs)


def cancel_mid_job(
    base_url: str,
    state: Path,
    *,
    prompt: str,
    model: str,
    chunks: int = 3,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Cancelled:
    """Start ``longform serve`` in front of ``base_url``, submit a long greedy job in 16-token
    requests, cancel it once ``chunks`` chunks are committed, and read what it kept. The server is
    stopped whatever happens; no bound on how long anything takes (a dead server fails at once)."""
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            *("-m", "longform.cli", "serve", "--port", str(port), "--base-url", base_url),
            *("--state-dir", str(state), *extra),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    started = time.monotonic()
    try:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{api}/generations", timeout=5).status_code == 200:
                    break
            assert serve.poll() is None, (serve.stdout.read() if serve.stdout else b"").decode()[-2000:]
            time.sleep(0.3)
        fields = {"prompt": prompt, "model": model, "temperature": 0}
        fields |= {"max_tokens_per_request": 16, "max_output_tokens": 3000}
        job_id = _api("POST", f"{api}/generations", json=fields).json()["job_id"]
        while True:  # until a few chunks are committed (the job is far from done: 3000 tokens)
            status = _api("GET", f"{api}/generations/{job_id}").json()
            if status["progress"]["chunks"] >= chunks:
                break
            assert status["status"] in ("queued", "running"), status
            time.sleep(0.3)
        cancelled = _api("DELETE", f"{api}/generations/{job_id}")
        assert cancelled.status_code in (200, 202), cancelled.text
        while status["status"] in ("queued", "running"):
            time.sleep(0.2)
            status = _api("GET", f"{api}/generations/{job_id}").json()
        output = _api("GET", f"{api}/generations/{job_id}/output", params={"offset": 0}).json()
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()
    return Cancelled(status, output["text"], round(time.monotonic() - started, 1))
