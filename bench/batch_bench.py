"""Batches through the real batch workflow, against the emulator: throughput, concurrency, cost per line.

    .venv/bin/python bench/batch_bench.py                       # 1,000 short lines + 50 long ones
    .venv/bin/python bench/batch_bench.py --lines 200 --long 10 # quicker
    .venv/bin/python bench/batch_bench.py --json /tmp/batch.json

Each scenario submits one JSONL batch through the one batch submit path into
``statemachine/batch.asl.json`` on the local cloud (moto's Step Functions interpreter: a Distributed
Map over the S3 JSON item list, a ``states:startExecution.sync:2`` child execution of the real
generation workflow per line, the real handlers in-process, moto S3) with the emulator on loopback
as the provider. It reports:

- lines per second: lines / wall time from submit to the batch execution's end;
- the largest number of chat requests the emulator had at once, against the batch's MaxConcurrency;
- state transitions per line: the batch execution's own states entered, spread over its lines, plus
  each line's generation execution (its history) plus the two states of each map iteration
  (``RunLine``, ``LineEnded``; moto keeps the iterations' events out of the parent's history, AWS
  gives each iteration a child execution of its own);
- S3 requests per line: every request of the handlers' S3 client during the batch (the split, the
  chunks, finalize, the output), plus the map's own two (``ItemReader`` GET, ``ResultWriter`` PUT);
- correctness: every line's output text equals the emulator's uncapped answer to that line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from longform.emulator.model import canonical_output
from longform.emulator.server import EmulatorServer, EmulatorSettings
from longform.local import batch as local_batch
from longform.local.aws import quiet_moto_logs
from longform.local.cloud import CloudConfig, LocalCloud

MODEL = "longform/emulated-writer"
MAP_OWN_S3_REQUESTS = 2  # the ItemReader's GET of items.json, the ResultWriter's PUT


@dataclass
class Scenario:
    key: str
    title: str
    lines: int
    answer_tokens: int
    cap: int  # the emulator's per-request output cap: answer_tokens / cap chunks per line
    max_concurrency: int
    token_delay: float = 0.0  # the emulated model's seconds per token


@dataclass
class Outcome:
    key: str
    title: str
    lines: int
    max_concurrency: int
    wall_seconds: float
    lines_per_second: float
    max_concurrent_requests: int
    chunks: int
    chunks_per_line: float
    transitions_per_line: float
    s3_requests_per_line: float
    s3_by_operation: dict[str, int]
    correct: int
    statuses: dict[str, int]
    output_tokens: int


def batch_file(scenario: Scenario) -> tuple[bytes, list[dict[str, Any]]]:
    lines = [
        {
            "custom_id": f"{scenario.key}-{i:05d}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [
                    {
                        "role": "user",
                        "content": f"A report on company number {i} "
                        f"[emulator answer_tokens={scenario.answer_tokens}]",
                    }
                ],
            },
        }
        for i in range(scenario.lines)
    ]
    return ("\n".join(json.dumps(line) for line in lines) + "\n").encode(), lines


def run(scenario: Scenario) -> Outcome:
    from longform_core.runtime import get_services

    data, lines = batch_file(scenario)
    settings = EmulatorSettings(cap=scenario.cap, token_delay=scenario.token_delay)
    with EmulatorServer(settings) as emulator, quiet_moto_logs():
        config = CloudConfig(
            provider_base_url=emulator.base_url,
            model=MODEL,
            retry_sleep_scale=0.01,
            extra_env={
                "BATCH_MAX_CONCURRENCY": str(scenario.max_concurrency),
                "PROVIDER_RETRY_BASE_SECONDS": "0.01",
            },
        )
        with LocalCloud(config) as cloud:
            s3_calls: Counter[str] = Counter()
            get_services().store.s3.meta.events.register(
                "before-call.s3", lambda model, **_: s3_calls.update([model.name])
            )
            emulator.reset_concurrency()
            started = time.monotonic()
            batch = local_batch.submit(cloud, data)
            arn = local_batch.batch_execution_arn(cloud, batch.batch_id)
            while cloud.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
                time.sleep(0.2)
            wall = time.monotonic() - started
            counted = Counter(s3_calls)
            out = local_batch.output_lines(cloud, batch.batch_id)
            correct = 0
            for line, result in zip(lines, out, strict=True):
                want = canonical_output(line["body"]["messages"], model=MODEL, settings=settings).answer
                body = (result.get("response") or {}).get("body") or {}
                got = ((body.get("choices") or [{}])[0].get("message") or {}).get("content")
                correct += got == want
            batch_states = sum(
                1
                for e in cloud.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
                if e["type"].endswith("StateEntered")
            )
            line_states = sum(cloud.state_transitions(str(o["longform"]["job_id"])) for o in out)
            iteration_states = 2 * len(out)
            chunks = sum(int(o["longform"]["chunks"]) for o in out)
            statuses = Counter(str(o["longform"]["status"]) for o in out)
            s3_total = sum(counted.values()) + MAP_OWN_S3_REQUESTS
            return Outcome(
                key=scenario.key,
                title=scenario.title,
                lines=scenario.lines,
                max_concurrency=scenario.max_concurrency,
                wall_seconds=round(wall, 2),
                lines_per_second=round(scenario.lines / wall, 2),
                max_concurrent_requests=emulator.concurrency["max"],
                chunks=chunks,
                chunks_per_line=round(chunks / len(out), 2),
                transitions_per_line=round((batch_states + line_states + iteration_states) / len(out), 2),
                s3_requests_per_line=round(s3_total / len(out), 2),
                s3_by_operation=dict(counted),
                correct=correct,
                statuses=dict(statuses),
                output_tokens=sum(int(o["longform"]["output_tokens"]) for o in out),
            )


def table(outcomes: list[Outcome]) -> str:
    rows = [
        ("lines", lambda o: f"{o.lines:,}"),
        ("chunks per line", lambda o: f"{o.chunks_per_line}"),
        ("wall time", lambda o: f"{o.wall_seconds:.1f} s"),
        ("lines per second", lambda o: f"{o.lines_per_second}"),
        ("largest concurrency seen / cap", lambda o: f"{o.max_concurrent_requests} / {o.max_concurrency}"),
        ("state transitions per line", lambda o: f"{o.transitions_per_line}"),
        ("S3 requests per line", lambda o: f"{o.s3_requests_per_line}"),
        ("lines correct (text == uncapped answer)", lambda o: f"{o.correct:,} / {o.lines:,}"),
        ("statuses", lambda o: ", ".join(f"{k} {v:,}" for k, v in sorted(o.statuses.items()))),
        ("output tokens", lambda o: f"{o.output_tokens:,}"),
    ]
    head = "| | " + " | ".join(o.title for o in outcomes) + " |"
    sep = "|---|" + "---|" * len(outcomes)
    body = ["| " + name + " | " + " | ".join(fmt(o) for o in outcomes) + " |" for name, fmt in rows]
    return "\n".join([head, sep, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1000, help="lines of the short batch (0: skip it)")
    parser.add_argument("--concurrency", type=int, default=50, help="MaxConcurrency of the short batch")
    parser.add_argument("--long", type=int, default=50, help="lines of the long batch (0: skip it)")
    parser.add_argument("--long-concurrency", type=int, default=10, help="MaxConcurrency of the long batch")
    parser.add_argument("--json", help="also write every number to this file")
    args = parser.parse_args(argv)
    scenarios = []
    if args.lines:
        scenarios.append(
            Scenario(
                "short", f"{args.lines:,} short lines (1 chunk)", args.lines, 40, 16_384, args.concurrency
            )
        )
    if args.long:
        scenarios.append(
            Scenario(
                "long",
                f"{args.long} long lines (6 chunks, 1 ms a token)",
                args.long,
                3000,
                500,
                args.long_concurrency,
                token_delay=0.001,
            )
        )
    outcomes = []
    for scenario in scenarios:
        sys.stderr.write(f"running {scenario.title} at MaxConcurrency {scenario.max_concurrency} ...\n")
        outcomes.append(run(scenario))
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        "moto's Step Functions interpreter, the emulator on loopback"
    )
    print()
    print(table(outcomes))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump([asdict(o) for o in outcomes], fh, indent=2)
    ok = all(o.correct == o.lines for o in outcomes) and all(
        o.max_concurrent_requests <= o.max_concurrency for o in outcomes
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
