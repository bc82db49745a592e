"""longform against the naive continuation loop, scenario by scenario, in one run.

    .venv/bin/python bench/continuation_bench.py                 # full run, ~1.5 min on 2 cores
    .venv/bin/python bench/continuation_bench.py --quick         # ~25 s: smaller slow scenario, 1 run each
    .venv/bin/python bench/continuation_bench.py --json /tmp/bench.json --only deadline

Both methods talk to the same in-process emulator (``longform.emulator``) on loopback; it is reset
and configured identically before every run, and both get the same prompt.

* **longform**: the real ``statemachine/generation.asl.json`` under moto's Step Functions
  interpreter, moto S3, the real handlers dispatched in-process (``longform.local.cloud``).
* **naive**: the seed technique from DeepInfra's docs as a plain httpx loop in one process: POST
  ``/chat/completions`` with the messages plus the text so far as a trailing assistant message,
  ``max_tokens`` = the per-request cap, append ``content``, repeat until ``finish_reason == "stop"``
  or any error (no retries). It streams (``stream: true`` with ``include_usage``), and keeps the
  text that arrived before a broken stream (generous to it).

Prints one markdown table per scenario; ``--json FILE`` writes every raw number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from longform.emulator.model import count_tokens, prompt_tokens, uncapped_answer
from longform.emulator.server import EmulatorServer, EmulatorSettings
from longform.local.aws import quiet_moto_logs
from longform.local.cloud import CloudConfig, LocalCloud

MODEL = "longform/emulated-writer"
CHUNK_FUNCTION = "GenerateChunkFunction"
# the template's default chunk timeout (ChunkTimeoutSeconds), also the Lambda maximum
LAMBDA_TIMEOUT = 900.0
RETRY_SLEEP_SCALE = 0.01  # Step Functions Retry waits x0.01 (only matters if in-process retries run out)
FAST_RETRIES = {"PROVIDER_RETRY_BASE_SECONDS": "0.01"}  # in-process backoff base 10 ms (default 0.5 s)


@dataclass
class Scenario:
    key: str
    title: str
    answer_tokens: int
    cap: int
    context_length: int | None  # the emulator's (the model's) context window
    tell_context: bool = True  # put context_length in the longform request
    token_delay: float = 0.0
    chunk_timeout: float | None = None  # override of GenerateChunkFunction's timeout (seconds)
    deadline_margin: float = 30.0
    # faults injected right before the request for chunk N (1-based) of either method
    faults: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    repeat: int = 1
    note: str = ""

    @property
    def prompt(self) -> str:
        return (
            "Write an illustrated history of lighthouses, from the Pharos of Alexandria to LED beacons. "
            f"[emulator answer_tokens={self.answer_tokens}]"
        )

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt}]

    @property
    def context_bound(self) -> bool:
        return bool(self.context_length) and self.answer_tokens >= self.context_length

    @property
    def limit_seconds(self) -> float:
        return self.chunk_timeout or LAMBDA_TIMEOUT

    def emulator_fields(self) -> dict[str, Any]:
        return {"cap": self.cap, "context_length": self.context_length or 0, "token_delay": self.token_delay}


def scenarios(quick: bool, repeat: int) -> list[Scenario]:
    flaky = {
        2: [{"type": "status", "status": 429, "retry_after": 0.05}],
        3: [{"type": "status", "status": 500}, {"type": "status", "status": 500}],
        4: [{"type": "cut", "after_tokens": 500}],
    }
    slow = (
        Scenario(
            "deadline",
            "3. slow model / deadline (1 ms/token, cap 4,000 = 4 s a request, chunk timeout 3 s)",
            answer_tokens=6_000,
            cap=4_000,
            context_length=131_072,
            token_delay=0.001,
            chunk_timeout=3.0,
            deadline_margin=0.5,
        )
        if quick
        else Scenario(
            "deadline",
            "3. slow model / deadline (2 ms/token, cap 4,000 = 8 s a request, chunk timeout 3 s)",
            answer_tokens=12_000,
            cap=4_000,
            context_length=131_072,
            token_delay=0.002,
            chunk_timeout=3.0,
            deadline_margin=0.5,
        )
    )
    extra = [
        Scenario(
            "slow-context",
            "5. (extra) slow model and context-bound (1 ms/token, cap 4,000, context 8,000, timeout 3 s)",
            answer_tokens=20_000,
            cap=4_000,
            context_length=8_000,
            token_delay=0.001,
            chunk_timeout=3.0,
            deadline_margin=0.5,
            note="Chunks cut at the deadline carry no usage, so longform plans from a rough prompt "
            "estimate until a chunk ends with usage.",
        )
    ]
    return [
        Scenario(
            "long",
            "1. long answer (100,000 tokens, cap 16,384, context 131,072)",
            answer_tokens=100_000,
            cap=16_384,
            context_length=131_072,
            repeat=repeat,
        ),
        Scenario(
            "context",
            "2a. context-bound, context length told (200,000-token answer, context 65,536, cap 16,384)",
            answer_tokens=200_000,
            cap=16_384,
            context_length=65_536,
            repeat=repeat,
        ),
        Scenario(
            "context-learned",
            "2b. context-bound, context length NOT told to longform (learned from the 400)",
            answer_tokens=200_000,
            cap=16_384,
            context_length=65_536,
            tell_context=False,
            repeat=repeat,
        ),
        slow,
        Scenario(
            "flaky",
            "4. flaky provider (50,000 tokens, cap 16,384; 429 before chunk 2, two 500s before chunk 3, "
            "stream cut after 500 tokens in chunk 4)",
            answer_tokens=50_000,
            cap=16_384,
            context_length=131_072,
            faults=flaky,
            repeat=repeat,
        ),
        *([] if quick else extra),
    ]


# --------------------------------------------------------------------------- measurements


def provider_log(emulator: EmulatorServer) -> dict[str, Any]:
    log = emulator.requests
    return {
        "provider_requests": len(log),
        # HTTP errors the provider answered with; a client that hung up (longform stopping at its
        # deadline) is logged by the emulator as 499 "disconnected" and counted apart
        "provider_errors": sum(1 for r in log if r["status"] != 200 and not r.get("disconnected")),
        "provider_disconnects": sum(1 for r in log if r.get("disconnected")),
        "provider_statuses": [r["status"] for r in log],
        "provider_completion_tokens": [r["completion_tokens"] for r in log],
    }


def judge(scenario: Scenario, text: str) -> dict[str, Any]:
    """Correctness against what an uncapped model says, and the share of the context filled."""
    uncapped = uncapped_answer(scenario.messages, model=MODEL)
    out: dict[str, Any] = {
        "output_tokens": count_tokens(text),
        "output_chars": len(text),
        "exact": text == uncapped,
        "prefix": uncapped.startswith(text),
        "uncapped_tokens": count_tokens(uncapped),
    }
    prompt = prompt_tokens(scenario.messages)
    out["prompt_tokens"] = prompt
    if scenario.context_bound:
        room = (scenario.context_length or 0) - prompt
        out["context_room"] = room
        out["context_filled"] = out["output_tokens"] / room
    return out


def run_longform(scenario: Scenario, emulator: EmulatorServer) -> dict[str, Any]:
    emulator.reset()
    emulator.configure(**scenario.emulator_fields())
    request: dict[str, Any] = {"prompt": scenario.prompt, "max_tokens_per_request": scenario.cap}
    if scenario.tell_context and scenario.context_length:
        request["context_length"] = scenario.context_length
    config = CloudConfig(
        provider_base_url=emulator.base_url,
        model=MODEL,
        max_tokens_per_request=scenario.cap,
        deadline_margin_seconds=scenario.deadline_margin,
        timeouts={CHUNK_FUNCTION: scenario.chunk_timeout} if scenario.chunk_timeout else {},
        retry_sleep_scale=RETRY_SLEEP_SCALE,
        extra_env=dict(FAST_RETRIES),
    )
    setup_started = time.monotonic()
    with LocalCloud(config) as cloud:
        setup_seconds = time.monotonic() - setup_started
        from longform_core.runtime import get_services

        s3_calls: list[str] = []
        get_services().store.s3.meta.events.register(
            "before-call.s3", lambda model, **_: s3_calls.append(model.name)
        )
        s3_per_chunk: list[list[str]] = []
        injected: set[int] = set()

        def hook(function: str, event: dict[str, Any]) -> Callable[[], None] | None:
            if function != CHUNK_FUNCTION:
                return None
            manifest = cloud.store.find_manifest(event["job_id"])  # cloud.s3: not counted
            upcoming = (manifest.chunks if manifest else 0) + 1
            if upcoming in scenario.faults and upcoming not in injected:
                injected.add(upcoming)
                emulator.inject(*scenario.faults[upcoming])
            s3_calls.clear()
            return lambda: s3_per_chunk.append(list(s3_calls))

        cloud.fault_hook = hook
        started = time.monotonic()
        job = cloud.submit(request)
        desc = cloud.wait(job.job_id, timeout=1_800, poll=0.02)
        wall = time.monotonic() - started
        result = cloud.store.get_result(job.job_id)
        text = (cloud.store.get_text(result.output_key) if result else None) or ""
        entered = cloud.states_entered(job.job_id)
        chunks = result.chunks if result else 0
        records = [cloud.store.get_chunk(job.job_id, i) for i in range(chunks)]
        finishes = [c.finish_reason for c in records]
        gen = [i for i in cloud.invocations if i.function == CHUNK_FUNCTION]
        loop = sum(1 for name in entered if name in ("GenerateChunk", "MoreToGenerate"))
        out = {
            "method": "longform",
            "wall_seconds": wall,
            "setup_seconds": setup_seconds,
            "execution_status": desc["status"],
            "status": result.status if result else None,
            "stop_reason": result.stop_reason if result else None,
            "error": result.error if result else desc.get("cause"),
            "chunks": chunks,
            "chunk_finishes": finishes,
            "chunk_max_tokens": [c.max_tokens for c in records],
            "chunk_completion_tokens": [c.completion_tokens for c in records],
            "reported_output_tokens": result.output_tokens if result else 0,
            "reported_context_length": result.context_length if result else None,
            "reported_context_used": result.context_used if result else None,
            "reported_prompt_tokens": result.prompt_tokens if result else None,
            "chunk_invocations": len(gen),
            "chunk_invocation_seconds": [i.duration_seconds for i in gen],
            "chunk_invocation_errors": [i.error_type for i in gen if i.error_type],
            "longest_request_seconds": None,  # the chunk function is the unit that must fit
            "longest_invocation_seconds": max((i.duration_seconds for i in gen), default=0.0),
            "timed_out_invocations": sum(1 for i in cloud.invocations if i.timed_out),
            "state_transitions": len(entered),
            "loop_transitions_per_chunk": loop / chunks if chunks else None,
            "s3_requests_per_chunk": [len(c) for c in s3_per_chunk],
        }
    out.update(provider_log(emulator))
    out.update(judge(scenario, text))
    out["fits_limit"] = (
        out["longest_invocation_seconds"] <= scenario.limit_seconds and not out["timed_out_invocations"]
    )
    return out


def run_naive(scenario: Scenario, emulator: EmulatorServer) -> dict[str, Any]:
    """DeepInfra's documented continuation as a plain loop: no retries, no context arithmetic."""
    emulator.reset()
    emulator.configure(**scenario.emulator_fields())
    url = emulator.base_url + "/chat/completions"
    text = ""
    durations: list[float] = []
    stopped_by = ""
    stop_message = ""
    timeout = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=10.0)
    started = time.monotonic()
    with httpx.Client(timeout=timeout) as http:
        n = 0
        while True:
            n += 1
            if n in scenario.faults:  # same schedule as longform: right before the request for chunk n
                emulator.inject(*scenario.faults[n])
            messages = list(scenario.messages)
            if text:
                messages.append({"role": "assistant", "content": text})
            body = {
                "model": MODEL,
                "messages": messages,
                "max_tokens": scenario.cap,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            finish: str | None = None
            request_started = time.monotonic()
            try:
                with http.stream("POST", url, json=body) as response:
                    if response.status_code != 200:
                        response.read()
                        try:
                            err = response.json()
                            message = (err.get("error") or err).get("message", "")
                        except ValueError:
                            message = response.text
                        stopped_by = f"HTTP {response.status_code}"
                        if "context length" in message:
                            stopped_by += " (context window)"
                        stop_message = message
                        break
                    for line in response.iter_lines():
                        if not line.startswith("data: "):
                            continue
                        data = line[6:]
                        if data == "[DONE]":
                            break
                        event = json.loads(data)
                        for choice in event.get("choices") or []:
                            text += (choice.get("delta") or {}).get("content") or ""
                            finish = choice.get("finish_reason") or finish
            except httpx.HTTPError as exc:
                stopped_by = f"{type(exc).__name__} (stream broke)"
                break
            finally:
                durations.append(time.monotonic() - request_started)
            if finish == "stop":
                stopped_by = "stop"
                break
            if finish is None:
                stopped_by = "stream ended without finish_reason"
                break
    wall = time.monotonic() - started
    out: dict[str, Any] = {
        "method": "naive",
        "wall_seconds": wall,
        "status": "complete" if stopped_by == "stop" else "stopped",
        "stop_reason": stopped_by,
        "stop_message": stop_message,
        "request_seconds": durations,
        "longest_request_seconds": max(durations, default=0.0),
        # the whole loop runs in one process: that is what one Lambda invocation would have to hold
        "longest_invocation_seconds": wall,
    }
    out.update(provider_log(emulator))
    out.update(judge(scenario, text))
    out["fits_limit"] = wall <= scenario.limit_seconds
    out["one_request_fits_limit"] = out["longest_request_seconds"] <= scenario.limit_seconds
    return out


# --------------------------------------------------------------------------- reporting


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["wall_seconds"])
    return ordered[(len(ordered) - 1) // 2]


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f} s"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def _wall(runs: list[dict[str, Any]]) -> str:
    times = [r["wall_seconds"] for r in runs]
    med = statistics.median(times)
    if len(times) == 1:
        return f"{med:.3f} s"
    return f"{med:.3f} s (min {min(times):.3f}, max {max(times):.3f}, n={len(times)})"


def _correct(runs: list[dict[str, Any]]) -> str:
    exact = sum(1 for r in runs if r["exact"])
    prefix = sum(1 for r in runs if r["prefix"])
    n = len(runs)
    if exact == n:
        return f"== uncapped answer ({exact}/{n})" if n > 1 else "== uncapped answer"
    if prefix == n:
        return f"prefix of uncapped answer ({prefix}/{n})" if n > 1 else "prefix of uncapped answer"
    return f"WRONG: exact {exact}/{n}, prefix {prefix}/{n}"


def table(scenario: Scenario, lf_runs: list[dict[str, Any]], nv_runs: list[dict[str, Any]]) -> str:
    lf, nv = _median_run(lf_runs), _median_run(nv_runs)
    limit = f"{scenario.limit_seconds:g} s"
    rows: list[tuple[str, str, str, str]] = []

    def row(name: str, a: str, b: str, r: str = "") -> None:
        rows.append((name, a, b, r))

    row(
        "output tokens",
        f"{lf['output_tokens']:,}",
        f"{nv['output_tokens']:,}",
        _ratio(lf["output_tokens"], nv["output_tokens"]),
    )
    row("correct", _correct(lf_runs), _correct(nv_runs))
    if lf.get("context_filled") is not None:
        row(
            f"context filled (of {lf['context_room']:,} after the prompt)",
            _pct(lf["context_filled"]),
            _pct(nv["context_filled"]),
            _ratio(lf["context_filled"], nv["context_filled"]),
        )
    row("ended by", f"{lf['status']} ({lf['stop_reason']})", str(nv["stop_reason"]))
    row(
        "provider requests (HTTP errors, hung up at deadline)",
        f"{lf['provider_requests']} ({lf['provider_errors']}, {lf['provider_disconnects']})",
        f"{nv['provider_requests']} ({nv['provider_errors']}, {nv['provider_disconnects']})",
    )
    row("wall time", _wall(lf_runs), _wall(nv_runs), _ratio(lf["wall_seconds"], nv["wall_seconds"]))
    if lf["chunks"] and nv["stop_reason"] == "stop":  # only when both did the same work
        extra = statistics.median(r["wall_seconds"] for r in lf_runs) - statistics.median(
            r["wall_seconds"] for r in nv_runs
        )
        row("longform wall time minus naive, per chunk", f"{extra / lf['chunks']:+.3f} s", "-")
    row("longest provider request", "-", _secs(nv["longest_request_seconds"]))
    row(
        "longest invocation (longform: GenerateChunk; naive: the whole loop)",
        _secs(lf["longest_invocation_seconds"]),
        _secs(nv["longest_invocation_seconds"]),
    )
    naive_fit = "yes" if nv["fits_limit"] else "no"
    if not nv["one_request_fits_limit"]:
        naive_fit += " (not even one request fits)"
    row(
        f"fits a {limit} Lambda timeout",
        ("yes" if lf["fits_limit"] else "no") + f" ({lf['timed_out_invocations']} timed out)",
        naive_fit,
    )
    row("chunks (finish reasons)", f"{lf['chunks']} ({_finishes(lf['chunk_finishes'])})", "-")
    row(
        "state transitions: loop per chunk / total",
        f"{lf['loop_transitions_per_chunk']:.2f} / {lf['state_transitions']}"
        if lf["loop_transitions_per_chunk"] is not None
        else f"- / {lf['state_transitions']}",
        "-",
    )
    row("S3 requests per chunk invocation", _s3(lf["s3_requests_per_chunk"]), "-")
    used = lf["reported_context_used"]
    row(
        "result.json: context_used (prompt_tokens)",
        f"{_pct(used)} ({lf['reported_prompt_tokens']})",
        "-",
    )
    row("local stack setup (not in wall time)", _secs(lf["setup_seconds"]), "-")

    lines = [
        f"### {scenario.title}",
        "",
        "| | longform | naive loop | longform / naive |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    if scenario.note:
        lines += ["", scenario.note]
    return "\n".join(lines)


def _finishes(finishes: list[str]) -> str:
    counts: dict[str, int] = {}
    for f in finishes:
        counts[f] = counts.get(f, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in counts.items()) or "none"


def _s3(counts: list[int]) -> str:
    if not counts:
        return "-"
    return f"{min(counts)}-{max(counts)}" if min(counts) != max(counts) else str(counts[0])


# --------------------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "tracked_changes": None if status is None else bool(status),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "moto": version("moto"),
        "boto3": version("boto3"),
        "httpx": version("httpx"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller slow-model scenario, no extra scenario, one run each"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per fast scenario (default 3, quick 1)"
    )
    parser.add_argument("--only", action="append", default=[], help="run only this scenario key (repeatable)")
    parser.add_argument("--json", type=Path, default=None, help="write every raw number to this file")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    chosen = [s for s in scenarios(args.quick, repeat) if not args.only or s.key in args.only]

    report: dict[str, Any] = {"machine": machine(), "quick": args.quick, "scenarios": []}
    print(f"# longform vs the naive continuation loop{' (--quick)' if args.quick else ''}\n")
    info = report["machine"]
    print(
        f"commit {info['commit']}{' + local changes' if info['tracked_changes'] else ''}; "
        f"{info['cpus']} CPUs, Python {info['python']}, moto {info['moto']}; emulator on loopback in the "
        "same process; naive loop streams with include_usage; in-process retry base 10 ms, Step Functions "
        f"Retry waits x{RETRY_SLEEP_SCALE}.\n"
    )
    bench_started = time.monotonic()
    with EmulatorServer(EmulatorSettings()) as emulator, quiet_moto_logs():
        for scenario in chosen:
            lf_runs: list[dict[str, Any]] = []
            nv_runs: list[dict[str, Any]] = []
            for _ in range(scenario.repeat):
                lf_runs.append(run_longform(scenario, emulator))
                nv_runs.append(run_naive(scenario, emulator))
            print(table(scenario, lf_runs, nv_runs) + "\n", flush=True)
            report["scenarios"].append({"scenario": asdict(scenario), "longform": lf_runs, "naive": nv_runs})
    report["total_seconds"] = time.monotonic() - bench_started
    print(f"total bench time {report['total_seconds']:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        print(f"raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
