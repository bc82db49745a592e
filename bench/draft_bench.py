"""Draft checkpoints: what they cost in S3 requests, and what they save when a chunk dies.

    .venv/bin/python bench/draft_bench.py                      # ~1.5 min on 2 cores (make bench-drafts)
    .venv/bin/python bench/draft_bench.py --kills 10 --durations 1,2 --default-interval-run 0  # ~35 s
    .venv/bin/python bench/draft_bench.py --json /tmp/drafts.json

Everything runs in one process: the real ``statemachine/generation.asl.json`` under moto's Step
Functions interpreter, moto S3, the real handlers dispatched in-process (``longform.local.cloud``),
and the emulator (``longform.emulator``) on loopback as the model.

**(a) S3 requests per chunk against chunk duration.** Single-chunk jobs (1,000 tokens, one request,
``stop``) whose stream lasts D seconds (the emulator's ``token_delay`` = D / 1,000), checkpointed
by time only (``DraftIntervalSeconds`` = 0.5, ``DraftMinTokens`` = 0). A botocore
``before-parameter-build.s3`` handler on the handlers' own S3 client counts every request of the
chunk invocation (as ``tests/integration/test_durability.py`` does), with the key, so draft PUTs
are told apart. Per minute of generation = per chunk / the chunk's own streaming time
(``ChunkRecord.duration_ms``).

**(b) Text lost per crash.** Jobs of 6,000 tokens in two chunks (cap 4,000), each killed once
mid-stream (``longform.local.faults.kill_mid_stream``: the chunk function dies as Lambda's runtime
would, ``Runtime.ExitError``) at a seeded random token of its first or second chunk, checkpointed
by tokens only (interval 0 s, ``DraftMinTokens`` = 200, so the run does not depend on this
machine's speed). Tokens lost = tokens the killed attempt had received minus the tokens of the
draft the next attempt committed (0 when it found none and generated the chunk again). The same
kills, in the same run, with drafts off (the whole chunk in flight generated again: lost = killed
at). Every job's output must equal the uncapped answer (``canonical_output``).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from longform.emulator.model import canonical_output
from longform.emulator.server import EmulatorServer, EmulatorSettings
from longform.local.aws import quiet_moto_logs
from longform.local.cloud import CloudConfig, LocalCloud
from longform.local.faults import kill_mid_stream

MODEL = "longform/emulated-writer"
CHUNK = "GenerateChunkFunction"
DEFAULT_INTERVAL = 5.0  # the template's DraftIntervalSeconds
# (a)
STREAM_TOKENS = 1_000
INTERVAL = 0.5
# (b)
KILL_ANSWER, KILL_CAP = 6_000, 4_000  # two chunks: 4,000 then 2,000 tokens
MIN_TOKENS = 200


def prompt(tokens: int, n: int = 0) -> str:
    return f"Write a field guide to coastal birds, volume {n}. [emulator answer_tokens={tokens}]"


def uncapped(request: dict[str, Any], emulator: EmulatorServer) -> str:
    messages = [{"role": "user", "content": request["prompt"]}]
    return canonical_output(messages, model=MODEL, settings=emulator.settings).answer


def cloud_config(emulator: EmulatorServer, **overrides: Any) -> CloudConfig:
    config = CloudConfig(provider_base_url=emulator.base_url, model=MODEL, retry_sleep_scale=0.001)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def run_job(cloud: LocalCloud, request: dict[str, Any]) -> tuple[Any, str]:
    job = cloud.submit(request)
    desc = cloud.wait(job.job_id, timeout=300, poll=0.02)
    result = cloud.store.get_result(job.job_id)
    if result is None:
        raise RuntimeError(f"no result.json; execution {desc['status']}: {desc.get('cause')}")
    return result, cloud.store.get_text(result.output_key) or ""


# --------------------------------------------------------------------------- (a) requests per chunk


@dataclass
class RequestsRow:
    label: str
    target_seconds: float
    interval: float
    stream_seconds: float  # the chunk's own duration_ms (the request to the provider)
    invocation_seconds: float
    requests: int
    gets: int
    puts: int
    draft_puts: int
    deletes: int
    draft_checkpoints: int  # what the chunk record says
    exact: bool

    @property
    def minutes(self) -> float:
        return self.stream_seconds / 60

    @property
    def draft_puts_per_minute(self) -> float:
        return self.draft_puts / self.minutes

    @property
    def requests_per_minute(self) -> float:
        return self.requests / self.minutes


def requests_per_chunk(
    emulator: EmulatorServer, durations: list[float], interval: float, default_too: float | None
) -> list[RequestsRow]:
    runs = [(f"{d:g} s", d, interval) for d in durations]
    if default_too:
        runs.append((f"{default_too:g} s, default interval", default_too, DEFAULT_INTERVAL))
    rows = [measure_one(emulator, label, seconds, every) for label, seconds, every in runs]
    emulator.configure(token_delay=0.0)
    return rows


def measure_one(emulator: EmulatorServer, label: str, seconds: float, every: float) -> RequestsRow:
    """One single-chunk job streaming for about ``seconds``: the S3 requests of its chunk invocation."""
    emulator.reset()
    emulator.configure(token_delay=seconds / STREAM_TOKENS)
    config = cloud_config(emulator, draft_interval_seconds=every, draft_min_tokens=0)
    with LocalCloud(config) as cloud:
        from longform_core.runtime import get_services

        calls: list[tuple[str, str]] = []

        def count(params: dict[str, Any], model: Any, **_: Any) -> None:
            calls.append((model.name, str(params.get("Key", ""))))

        get_services().store.s3.meta.events.register("before-parameter-build.s3", count)
        per_chunk: list[list[tuple[str, str]]] = []

        def hook(function: str, event: dict[str, Any]) -> Callable[[], None] | None:
            if function != CHUNK:
                return None
            calls.clear()
            return lambda: per_chunk.append(list(calls))

        cloud.fault_hook = hook
        request = {"prompt": prompt(STREAM_TOKENS), "max_tokens_per_request": 2 * STREAM_TOKENS}
        result, output = run_job(cloud, request)
        if result.chunks != 1 or len(per_chunk) != 1:
            raise RuntimeError(f"expected one chunk, got {result.chunks} ({len(per_chunk)} invocations)")
        record = cloud.store.get_chunk(result.job_id, 0)
        (made,) = per_chunk
        invocation = next(i for i in cloud.invocations if i.function == CHUNK)
        return RequestsRow(
            label=label,
            target_seconds=seconds,
            interval=every,
            stream_seconds=record.duration_ms / 1000,
            invocation_seconds=invocation.duration_seconds,
            requests=len(made),
            gets=sum(1 for op, _ in made if op == "GetObject"),
            puts=sum(1 for op, _ in made if op == "PutObject"),
            draft_puts=sum(1 for op, key in made if op == "PutObject" and "/drafts/" in key),
            deletes=sum(1 for op, _ in made if op == "DeleteObject"),
            draft_checkpoints=record.draft_checkpoints,
            exact=output == uncapped(request, emulator),
        )


def requests_table(rows: list[RequestsRow], interval: float) -> str:
    lines = [
        f"### (a) S3 requests per chunk invocation, checkpoints every {interval:g} s (min tokens 0); "
        f"bound {60 / interval:g} draft PUTs per minute of generation (with the default "
        f"{DEFAULT_INTERVAL:g} s interval: 12 at most)",
        "",
        "| chunk streams for | interval | draft PUTs per chunk (record) | S3 requests per chunk "
        "(GET / PUT / DELETE) | draft PUTs per minute | S3 requests per minute | bound (60 / interval) "
        "| output == uncapped |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.label} (measured {r.stream_seconds:.2f} s) | {r.interval:g} s | {r.draft_puts} "
            f"({r.draft_checkpoints}) | {r.requests} ({r.gets} / {r.puts} / {r.deletes}) | "
            f"{r.draft_puts_per_minute:.1f} | {r.requests_per_minute:.1f} | {60 / r.interval:g} | "
            f"{'yes' if r.exact else 'NO'} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- (b) text lost per crash


@dataclass
class Kill:
    n: int
    stream: int  # which request to the provider (1: the first chunk, 2: the second)
    at: int  # the token after which the invocation dies


@dataclass
class KillResult:
    kill: Kill
    killed_at: int | None
    resumed_tokens: int  # the committed draft's tokens (0: none, the chunk generated again)
    from_draft: bool
    lost: int | None
    exact: bool
    invocation_errors: list[str]


def plan_kills(rng: random.Random, n: int) -> list[Kill]:
    kills = []
    for i in range(n):
        stream = rng.choice((1, 2))
        length = KILL_CAP if stream == 1 else KILL_ANSWER - KILL_CAP
        kills.append(Kill(i, stream, rng.randint(1, length - 1)))
    return kills


def text_lost(emulator: EmulatorServer, kills: list[Kill], *, drafts: bool) -> list[KillResult]:
    emulator.reset()
    if drafts:
        config = cloud_config(emulator, draft_interval_seconds=0.0, draft_min_tokens=MIN_TOKENS)
    else:
        config = cloud_config(emulator, extra_env={"DRAFT_CHECKPOINTS": "false"})
    results = []
    with LocalCloud(config) as cloud:
        for kill in kills:
            request = {"prompt": prompt(KILL_ANSWER, kill.n), "max_tokens_per_request": KILL_CAP}
            seen = len(cloud.invocations)
            with kill_mid_stream(after_tokens=kill.at, times=1, from_stream=kill.stream) as killed:
                result, output = run_job(cloud, request)
            killed_at = killed.at_tokens[0] if killed.at_tokens else None
            record = cloud.store.get_chunk(result.job_id, kill.stream - 1)
            resumed = record.completion_tokens if record.from_draft else 0
            results.append(
                KillResult(
                    kill=kill,
                    killed_at=killed_at,
                    resumed_tokens=resumed,
                    from_draft=record.from_draft,
                    lost=None if killed_at is None else killed_at - resumed,
                    exact=output == uncapped(request, emulator),
                    invocation_errors=[i.error_type for i in cloud.invocations[seen:] if i.error_type],
                )
            )
    return results


def lost_table(on: list[KillResult], off: list[KillResult]) -> str:
    def lost(rs: list[KillResult]) -> list[int]:
        return [r.lost for r in rs if r.lost is not None]

    def fmt(rs: list[KillResult]) -> dict[str, str]:
        values = lost(rs)
        within = sum(1 for v in values if v < MIN_TOKENS)
        return {
            "kills": f"{sum(1 for r in rs if r.killed_at is not None)} of {len(rs)}",
            "errors": ", ".join(sorted(set(e for r in rs for e in r.invocation_errors))) or "none",
            "resumed": f"{sum(1 for r in rs if r.from_draft)}",
            "mean": f"{statistics.mean(values):.1f}" if values else "-",
            "median": f"{statistics.median(values):.0f}" if values else "-",
            "max": f"{max(values)}" if values else "-",
            "within": f"{within} of {len(values)}",
            "total": f"{sum(values):,}",
            "exact": f"{sum(1 for r in rs if r.exact)} of {len(rs)}",
        }

    a, b = fmt(on), fmt(off)
    mean_on, mean_off = statistics.mean(lost(on) or [0]), statistics.mean(lost(off) or [0])
    ratio = f"{mean_off / mean_on:.1f}x" if mean_on else "-"
    rows = [
        ("invocations killed mid-stream", a["kills"], b["kills"]),
        ("what Lambda reported for them", a["errors"], b["errors"]),
        ("chunks committed from a draft", a["resumed"], b["resumed"]),
        ("tokens lost per crash: mean", a["mean"], b["mean"]),
        ("tokens lost per crash: median", a["median"], b["median"]),
        ("tokens lost per crash: max", a["max"], b["max"]),
        (f"crashes that lost < {MIN_TOKENS} tokens (one interval)", a["within"], b["within"]),
        ("tokens lost in all", a["total"], b["total"]),
        ("output == uncapped answer", a["exact"], b["exact"]),
    ]
    lines = [
        f"### (b) tokens lost per crash, {len(on)} kills at seeded random tokens (checkpoints every "
        f"{MIN_TOKENS} tokens, interval 0 s; bound: < {MIN_TOKENS})",
        "",
        "| | drafts on | drafts off | off / on |",
        "|---|---:|---:|---:|",
    ]
    for name, x, y in rows:
        lines.append(f"| {name} | {x} | {y} | {ratio if name.endswith('mean') else ''} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() + (" + local changes" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--durations", default="1,2,4,8", help="seconds each chunk streams in (a), comma-separated"
    )
    parser.add_argument("--interval", type=float, default=INTERVAL, help="DraftIntervalSeconds in (a)")
    parser.add_argument(
        "--default-interval-run",
        type=float,
        default=12.0,
        help="also a chunk of this many seconds with the default 5 s interval in (a) (0: none)",
    )
    parser.add_argument("--kills", type=int, default=30, help="jobs killed once mid-stream in (b), per mode")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=("requests", "lost"), default=None)
    parser.add_argument("--json", type=Path, default=None, help="write every raw number to this file")
    args = parser.parse_args(argv)
    durations = [float(d) for d in args.durations.split(",") if d.strip()]

    report: dict[str, Any] = {"commit": commit(), "seed": args.seed}
    print("# Draft checkpoints: S3 requests and text lost per crash\n")
    print(
        f"commit {report['commit']}; emulator on loopback in the same process; moto S3 and Step Functions; "
        "the chunk function in-process.\n",
        flush=True,
    )
    started = time.monotonic()
    with EmulatorServer(EmulatorSettings()) as emulator, quiet_moto_logs():
        if args.only in (None, "requests"):
            rows = requests_per_chunk(emulator, durations, args.interval, args.default_interval_run or None)
            print(requests_table(rows, args.interval) + "\n", flush=True)
            report["requests"] = [asdict(r) for r in rows]
        if args.only in (None, "lost"):
            kills = plan_kills(random.Random(args.seed), args.kills)
            on = text_lost(emulator, kills, drafts=True)
            off = text_lost(emulator, kills, drafts=False)
            print(lost_table(on, off) + "\n", flush=True)
            report["lost"] = {"on": [asdict(r) for r in on], "off": [asdict(r) for r in off]}
            bad = [r for r in on if r.lost is None or r.lost >= MIN_TOKENS or not r.exact]
            bad += [r for r in off if r.lost is None or not r.exact]
            report["violations"] = len(bad)
    report["total_seconds"] = time.monotonic() - started
    print(f"total bench time {report['total_seconds']:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        print(f"raw numbers: {args.json}")
    return 1 if report.get("violations") else 0


if __name__ == "__main__":
    sys.exit(main())
