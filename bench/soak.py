"""A fault soak: many jobs through the real workflow, random faults everywhere, every record checked.

    .venv/bin/python bench/soak.py                     # 200 jobs, seed 6 (about 5 minutes on 2 cores)
    .venv/bin/python bench/soak.py --jobs 40 --seed 1  # a quick one
    .venv/bin/python bench/soak.py --json /tmp/soak.json

Each job runs through ``statemachine/generation.asl.json`` under moto's interpreter with the real
handlers in-process (``longform.local``) against the emulator. Faults are drawn at random, per
request and per invocation: 429 storms (more than the in-process attempts), 5xx, stream cuts at
random token counts (0 and the last included), stalls past the invocation's deadline, crashes of the
chunk function before and after its commit, a duplicate attempt overlapping the real one, Lambda
throttling (``Lambda.TooManyRequestsException``), cancels at random moments, duplicate submits and
drop-folder deliveries delivered twice; and the stream shapes of issue 15: an error reported inside
the 200 reply (OpenRouter's, OpenAI's, finish_reason error/abort), fields of the wrong type,
surrogate pairs split across events (every third job's answer has astral characters), a server that
ignores max_tokens.

For every job: it ends in a terminal status; its ``output.md`` equals the uncapped answer (an exact
prefix of it for ``failed``/``cancelled``/``incomplete``); the manifest, ``result.json``, the API's
view and the completion event agree (on the status and the ``incomplete_reason``); and there is
exactly one completion event for its status. Its status is the true one (``job_status.py``): a job
cut by its budget is ``incomplete`` with that budget as its reason, never ``succeeded``; the
emulator never loops, so a ``repetition`` or ``no_progress`` stop is wrong; only a cancelled job is
``cancelled``; and a job whose chunk has started (a draft or a commit) is never seen ``queued``.
The table's last rows (characters lost and doubled, contradictions, wrong statuses, queued while
generating, stuck jobs) must all be 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from longform.emulator.model import uncapped_answer
from longform.emulator.server import EmulatorServer, EmulatorSettings
from longform.local.aws import REGION, quiet_moto_logs
from longform.local.cloud import CloudConfig, LocalCloud

MODEL = "longform/emulated-writer"
CHUNK = "GenerateChunkFunction"
CHUNK_TIMEOUT = 3.0  # seconds: a stall past the deadline costs about this much
DEADLINE_MARGIN = 1.0
FAULTS = ("none", "429_storm", "5xx", "cut", "stall", "crash_before", "crash_after", "overlap", "throttle")
WEIGHTS = (80, 3, 4, 5, 1, 3, 3, 3, 3)
# the stream shapes of issue 15 (emulator faults of the same names)
FAULTS += ("error_event", "malformed", "split_surrogates", "ignore_max_tokens")
WEIGHTS += (3, 2, 2, 2)  # per chunk invocation; "none" most of the time
ERROR_SHAPES = (
    {"shape": "openrouter"},
    {"shape": "openai"},
    {"shape": "finish", "finish_reason": "error"},
    {"shape": "finish", "finish_reason": "abort"},
)


class Throttled(Exception):
    """Stands in for Lambda refusing the invocation: the error name the workflow's Retry matches."""


Throttled.__name__ = "Lambda.TooManyRequestsException"


@dataclass
class JobPlan:
    index: int
    answer_tokens: int
    cap: int
    budget: int | None
    entry: str  # submit | submit_twice | drop_twice
    cancel_after: float | None  # seconds after the start, or None


@dataclass
class Tally:
    faults: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    chars_lost: int = 0
    chars_doubled: int = 0
    contradictions: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    incomplete: Counter[str] = field(default_factory=Counter)  # incomplete jobs by reason
    wrong_status: list[str] = field(default_factory=list)  # a status that is not what happened
    queued_while_generating: list[str] = field(default_factory=list)  # seen queued after a chunk started
    in_flight_kept: int = 0  # cancels that kept the chunk in flight (from its draft)
    cancel_errors: list[str] = field(default_factory=list)  # a cancel that raised (shown, not counted)


def plan_jobs(rng: random.Random, n: int) -> list[JobPlan]:
    plans = []
    for i in range(n):
        entry = rng.choices(("submit", "submit_twice", "drop_twice"), weights=(80, 10, 10))[0]
        plans.append(
            JobPlan(
                index=i,
                answer_tokens=rng.randint(150, 1_400),
                cap=rng.randint(120, 500),
                budget=rng.randint(100, 900) if rng.random() < 0.1 else None,
                entry=entry,
                cancel_after=rng.uniform(0.0, 0.6) if rng.random() < 0.1 else None,
            )
        )
    return plans


def prompt_of(plan: JobPlan) -> str:
    emoji = " [emulator emoji]" if plan.index % 3 == 0 else ""  # for the split_surrogates fault
    return (
        f"Write about the keepers of light number {plan.index}. "
        f"[emulator answer_tokens={plan.answer_tokens}]{emoji}"
    )


def make_hook(
    cloud: LocalCloud, emulator: EmulatorServer, rng: random.Random, tally: Tally
) -> Callable[[str, dict[str, Any]], Callable[[], None] | None]:
    lock = threading.Lock()

    def hook(function: str, event: dict[str, Any]) -> Callable[[], None] | None:
        if function != CHUNK or event.get("_duplicate"):
            return None
        check_running(cloud, str(event.get("job_id")), tally)
        with lock:
            kind = rng.choices(FAULTS, weights=WEIGHTS)[0]
            cap = 500
            after = rng.choice((0, rng.randint(1, cap), cap))
        tally.faults[kind] += 1
        if kind == "429_storm":
            emulator.inject(*[{"type": "status", "status": 429, "retry_after": 0}] * 5)
        elif kind == "5xx":
            emulator.inject({"type": "status", "status": rng.choice((500, 502, 503))})
        elif kind == "cut":
            emulator.inject({"type": "cut", "after_tokens": after})
        elif kind == "stall":
            emulator.inject({"type": "stall", "after_tokens": after, "seconds": CHUNK_TIMEOUT})
        elif kind == "error_event":
            with lock:
                shape = rng.choice(ERROR_SHAPES)
            emulator.inject({"type": "error_event", "after_tokens": after, **shape})
        elif kind in ("malformed", "split_surrogates", "ignore_max_tokens"):
            emulator.inject({"type": kind})
        elif kind == "crash_before":
            raise ConnectionResetError("the invocation died before the handler ran")
        elif kind == "throttle":
            raise Throttled("Rate Exceeded.")
        elif kind == "overlap":
            duplicate = dict(event, _duplicate=True)
            threading.Thread(
                target=lambda: _quietly(lambda: cloud.invoke(CHUNK, duplicate)), daemon=True
            ).start()
        elif kind == "crash_after":

            def crash() -> None:
                raise ConnectionResetError("the invocation died after its commit")

            return crash
        return None

    return hook


def check_running(cloud: LocalCloud, job_id: str, tally: Tally) -> None:
    """A job whose chunk has started (a committed chunk, or a draft of the one in flight) is shown
    ``running`` (or has ended), never ``queued``."""
    from longform_core.runtime import get_services
    from longform_core.status import get_job

    with contextlib.suppress(Exception):  # no such job yet (a hostile event): not this check's business
        view = get_job(job_id, get_services())
        if view.status == "queued" and (view.progress.chunks or view.draft is not None):
            tally.queued_while_generating.append(f"{job_id}: queued with {view.progress.chunks} chunks")


def _quietly(action: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):  # the overlapping duplicate may lose its race: the point
        action()


def completion_events(
    cloud: LocalCloud, queue_url: str, reasons: dict[str, Any] | None = None
) -> Counter[tuple[str, str]]:
    """(job id, status) -> events seen; ``reasons``: job id -> the event's ``incomplete_reason``."""
    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    seen: Counter[tuple[str, str]] = Counter()
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return seen
        for message in got:
            detail = json.loads(message["Body"])["detail"]
            seen[(detail["job_id"], detail["status"])] += 1
            if reasons is not None:
                reasons[detail["job_id"]] = detail.get("incomplete_reason")
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def subscribe(cloud: LocalCloud) -> str:
    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    events = boto3.client("events", region_name=REGION)
    url = sqs.create_queue(QueueName="soak-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="soak", EventPattern=json.dumps({"source": ["longform"]}), State="ENABLED")
    events.put_targets(Rule="soak", Targets=[{"Id": "q", "Arn": arn}])
    return str(url)


def run_job(cloud: LocalCloud, plan: JobPlan, tally: Tally) -> str:
    from longform_core.cancel import cancel_job
    from longform_core.runtime import get_services

    request: dict[str, Any] = {"prompt": prompt_of(plan), "max_tokens_per_request": plan.cap}
    if plan.budget:
        request["max_output_tokens"] = plan.budget
    if plan.entry == "drop_twice":
        body = json.dumps(request)
        first = cloud.drop(f"soak-{plan.index}", body)
        cloud.drop(f"soak-{plan.index}", body)  # the same object delivered again
        job_id = str(next(o["job_id"] for o in first if o.get("job_id")))
    else:
        key = f"soak-{plan.index}"
        job_id = cloud.submit(request, idempotency_key=key).job_id
        if plan.entry == "submit_twice":
            again = cloud.submit(request, idempotency_key=key)
            assert again.job_id == job_id and not again.created
    if plan.cancel_after is not None:
        time.sleep(plan.cancel_after)
        check_running(cloud, job_id, tally)
        try:
            cancel_job(job_id, get_services())
        except Exception as exc:  # shown below the table: a stuck job's likely cause
            tally.cancel_errors.append(f"{job_id}: cancel raised {exc!r}"[:300])
    cloud.wait(job_id, timeout=600, poll=0.02)
    cloud.wait_async()
    return job_id


def check(
    cloud: LocalCloud,
    plan: JobPlan,
    job_id: str,
    events: Counter[tuple[str, str]],
    tally: Tally,
    reasons: dict[str, Any] | None = None,
) -> None:
    from longform_core.status import job_view

    store = cloud.store
    manifest = store.find_manifest(job_id)
    result = store.get_result(job_id)
    if manifest is None or not manifest.terminal or result is None:
        tally.stuck.append(f"{job_id}: {manifest.status if manifest else 'no manifest'}")
        return
    tally.statuses[manifest.status] += 1
    if manifest.status == "failed":
        tally.failures[(result.error or "")[:90]] += 1
    view = job_view(manifest)
    statuses = {manifest.status, result.status, view.status}
    job_events = {status: n for (job, status), n in events.items() if job == job_id}
    if len(statuses) != 1 or job_events != {manifest.status: 1}:
        tally.contradictions.append(f"{job_id}: {statuses}, events {job_events}")
    text = store.get_text(result.output_key) or ""
    want = uncapped_answer([{"role": "user", "content": prompt_of(plan)}], model=MODEL)
    same = next(
        (i for i, (a, b) in enumerate(zip(text, want, strict=False)) if a != b), min(len(text), len(want))
    )
    tally.chars_doubled += len(text) - same  # text that is not the answer's next characters
    complete = manifest.status == "succeeded" and manifest.stop_reason == "stop"
    if complete:
        tally.chars_lost += len(want) - same
    check_status(plan, job_id, manifest, result, view, tally, event_reason=(reasons or {}).get(job_id))


BUDGET_REASONS = {"max_output_tokens", "max_chunks", "max_cost"}


def check_status(
    plan: JobPlan, job_id: str, manifest: Any, result: Any, view: Any, tally: Tally, *, event_reason: Any
) -> None:
    """The status says what happened (``job_status.py``)."""
    status = manifest.status
    if status == "incomplete":
        tally.incomplete[str(manifest.incomplete_reason)] += 1
    if result.in_flight_chunk is not None:
        tally.in_flight_kept += 1
    wrong = None
    reasons = {manifest.incomplete_reason, result.incomplete_reason, view.incomplete_reason, event_reason}
    if len(reasons) != 1:
        wrong = f"incomplete_reason disagrees: {reasons}"
    elif manifest.stop_reason in BUDGET_REASONS and status not in ("incomplete", "cancelled"):
        wrong = f"cut by {manifest.stop_reason} but {status}"
    elif status == "incomplete" and manifest.incomplete_reason not in BUDGET_REASONS:
        wrong = (
            f"incomplete ({manifest.incomplete_reason}: {manifest.stop_detail}) on a model that never loops"
        )
    elif status == "incomplete" and not plan.budget:
        wrong = f"incomplete ({manifest.incomplete_reason}) without a budget"
    elif status == "cancelled" and plan.cancel_after is None:
        wrong = "cancelled without a cancel"
    elif status == "succeeded" and manifest.stop_reason != "stop":
        wrong = f"succeeded with stop {manifest.stop_reason}"
    if wrong is not None:
        tally.wrong_status.append(f"{job_id}: {wrong}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    plans = plan_jobs(rng, args.jobs)
    tally = Tally()
    started = time.monotonic()
    with EmulatorServer(EmulatorSettings(cap=100_000)) as emulator, quiet_moto_logs():
        # moto logs every failed state (the faults are the point): keep the table readable
        logging.getLogger("moto").setLevel(logging.CRITICAL)
        config = CloudConfig(
            provider_base_url=emulator.base_url,
            model=MODEL,
            deadline_margin_seconds=DEADLINE_MARGIN,
            timeouts={CHUNK: CHUNK_TIMEOUT},
            retry_sleep_scale=0.001,
            # drafts every 100 tokens: a cancel mid-chunk keeps the chunk in flight from one
            extra_env={
                "PROVIDER_RETRY_BASE_SECONDS": "0.001",
                "DRAFT_INTERVAL_SECONDS": "0",
                "DRAFT_MIN_TOKENS": "100",
            },
        )
        with LocalCloud(config) as cloud:
            queue = subscribe(cloud)
            cloud.fault_hook = make_hook(cloud, emulator, rng, tally)
            done: list[tuple[JobPlan, str]] = []
            for plan in plans:
                done.append((plan, run_job(cloud, plan, tally)))
                if len(done) % 20 == 0:
                    print(
                        f"  {len(done)} jobs in {time.monotonic() - started:.0f}s",
                        file=sys.stderr,
                        flush=True,
                    )
            cloud.fault_hook = None
            time.sleep(0.5)  # overlapping duplicates still running end
            reasons: dict[str, Any] = {}
            events = completion_events(cloud, queue, reasons)
            for plan, job_id in done:
                check(cloud, plan, job_id, events, tally, reasons)
    seconds = time.monotonic() - started
    rows = [
        ("jobs", args.jobs),
        ("seed", args.seed),
        ("statuses", ", ".join(f"{k} {v}" for k, v in sorted(tally.statuses.items()))),
        ("incomplete by reason", ", ".join(f"{k} {v}" for k, v in sorted(tally.incomplete.items())) or "-"),
        ("cancels that kept the chunk in flight", tally.in_flight_kept),
        ("faults by kind", ", ".join(f"{k} {v}" for k, v in sorted(tally.faults.items()) if k != "none")),
        ("chunk invocations without a fault", tally.faults["none"]),
        ("cancels", sum(1 for p in plans if p.cancel_after is not None)),
        ("duplicate submits", sum(p.entry == "submit_twice" for p in plans)),
        ("drop-folder uploads delivered twice", sum(p.entry == "drop_twice" for p in plans)),
        ("characters lost", tally.chars_lost),
        ("characters doubled", tally.chars_doubled),
        ("contradictions", len(tally.contradictions)),
        ("wrong statuses", len(tally.wrong_status)),
        ("queued while generating", len(tally.queued_while_generating)),
        ("stuck jobs", len(tally.stuck)),
        ("seconds", f"{seconds:.0f}"),
    ]
    return report(rows, tally, args.json)


def report(rows: list[tuple[str, Any]], tally: Tally, json_path: str | None) -> int:
    """The table, then every problem, one a line; 1 when any of the must-be-0 rows is not."""
    print("| soak | |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    for reason, count in tally.failures.most_common():
        print(f"  failed x{count}: {reason}")
    problems = tally.contradictions + tally.wrong_status + tally.queued_while_generating + tally.stuck
    for line in problems + tally.cancel_errors:
        print(f"  {line}")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump({name: value for name, value in rows} | {"problems": problems}, fh, indent=2)
    bad = tally.chars_lost or tally.chars_doubled or tally.contradictions or tally.stuck
    bad = bad or tally.wrong_status or tally.queued_while_generating
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
