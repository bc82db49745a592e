"""The jobs of the conformance cases: ``longform`` run as a user runs it against a real server, the
job's text, result and learned styles read back (``JobRun``), a cancel through ``longform serve``
mid-job, and how a job's text compares with one uncapped call (fidelity, a passage repeated)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .conftest import REQUEST_TIMEOUT, ROOT, free_port


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
