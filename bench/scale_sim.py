"""Past one machine, in simulation: thousands of jobs against AWS's quotas and the provider's cap.

    .venv/bin/python bench/scale_sim.py                  # the four scenarios of docs/scale.md (~1 min)
    .venv/bin/python bench/scale_sim.py --tokens 20000 --rate 60 --seed 2

A discrete-event simulation (a heap of timed events, seeded): jobs arrive, each is a Step Functions
execution of ``ceil(tokens / 16,384)`` chunks; a chunk holds a Lambda execution environment and one
provider request for ``tokens / rate`` seconds (plus a second of time to first token). The limits,
as docs/scale.md sources them, are token buckets (a capacity and a refill rate) or counts of slots:

- API Gateway: the stage's throttle in template.yaml (20 requests/s, burst 50; the account's 10,000/s
  is far above it): a refused submit is retried by the client one second later.
- ``StartExecution``: bucket 1,300, refill 300/s; state transitions: bucket 5,000, refill 5,000/s
  (Standard workflows; 2 per chunk, 3 at the end). A transition without a token waits for one.
- Lambda: concurrent executions (the account's 1,000, or the chunk function's reserved concurrency
  ``MaxConcurrentChunks``) and the scaling rate (1,000 new environments per 10 s per function: a
  bucket of 1,000 refilled at 100/s; a warm environment is reused). A throttled chunk fails with
  ``Lambda.TooManyRequestsException`` and waits in the workflow's ``Retry`` (2 s, x2, at most 60 s,
  20 attempts, full jitter); when those run out the job fails.
- The provider: about 200 concurrent requests per model (DeepInfra); above that a 429. The chunk
  function retries in-process (4 attempts, 0.5 s x2 with jitter) holding its Lambda, then fails
  with ``ProviderRateLimited``: the workflow's ``Retry`` (5 s, x2, at most 120 s, 6 attempts).
- S3: the offered PUT and GET rates (7 requests per chunk, one draft PUT per max(5 s, 2,000 tokens
  / rate) of stream) are recorded against 3,500 PUT/s and 5,500 GET/s per partitioned prefix.
- A batch: a Distributed Map with ``MaxConcurrency`` (BatchMaxConcurrency, 150): at most that
  many lines (jobs) run at once, the next starting when one ends.

It prints, per scenario, when the last job ended, the token throughput, how many jobs failed, and
per limit its peak use and the waiting it caused (seconds summed over chunks, and the worst wait).
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

CAP = 16_384


class Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``rate`` per second."""

    def __init__(self, capacity: float, rate: float):
        self.capacity, self.rate, self.tokens, self.at = capacity, rate, capacity, 0.0

    def take(self, now: float) -> float:
        """Take a token; the seconds until one is there (0: taken now)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class Scenario:
    name: str
    jobs: int
    lambda_cap: int  # concurrent executions available to the chunk function
    provider_cap: int = 200
    batch_concurrency: int | None = None  # a Distributed Map's MaxConcurrency, or None: via the API
    api: bool = True


@dataclass
class Stats:
    waits: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    worst: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    peaks: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    failed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    done: int = 0
    tokens: int = 0
    end: float = 0.0

    def wait(self, limit: str, seconds: float) -> None:
        self.waits[limit] += seconds
        self.worst[limit] = max(self.worst[limit], seconds)


class Sim:
    def __init__(self, scenario: Scenario, tokens: int, rate: float, seed: int):
        self.s, self.tokens, self.rate = scenario, tokens, rate
        self.rng = random.Random(seed)
        self.now = 0.0
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = 0
        self.api = Bucket(50, 20)
        self.start_execution = Bucket(1_300, 300)
        self.transitions = Bucket(5_000, 5_000)
        self.scaling = Bucket(1_000, 100)
        self.running_lambdas = 0
        self.warm = 0  # environments created so far (idle ones are reused first)
        self.provider = 0
        self.stats = Stats()
        self.s3_put: dict[int, float] = defaultdict(float)  # requests per second of simulated time
        self.s3_get: dict[int, float] = defaultdict(float)
        self.batch_waiting = 0

    def at(self, delay: float, fn: Callable[[], None]) -> None:
        self.seq += 1
        heapq.heappush(self.events, (self.now + delay, self.seq, fn))

    def run(self) -> Stats:
        if self.s.batch_concurrency:
            first = min(self.s.batch_concurrency, self.s.jobs)
            self.batch_waiting = self.s.jobs - first
            for _ in range(first):
                self.at(0, self.start_job)
        else:
            for _ in range(self.s.jobs):
                self.at(0, self.submit)
        while self.events:
            self.now, _, fn = heapq.heappop(self.events)
            fn()
        return self.stats

    # ---- a job --------------------------------------------------------------------------------

    def submit(self, waited: float = 0.0) -> None:
        delay = self.api.take(self.now)
        if delay:  # 429 from API Gateway: the client tries again a second later
            self.at(1.0, lambda: self.submit(waited + 1.0))
            return
        self.stats.wait("API Gateway (stage 20/s)", waited)
        self.start_job()

    def start_job(self) -> None:
        delay = self.start_execution.take(self.now)
        self.stats.wait("StartExecution (300/s)", delay)
        chunks = math.ceil(self.tokens / CAP)
        self.at(delay, lambda: self.chunk(0, chunks, attempt=0))

    def transition(self, then: Callable[[], None], n: int = 1) -> None:
        delay = sum(self.transitions.take(self.now) for _ in range(n))
        self.stats.wait("state transitions (5,000/s)", delay)
        self.at(delay, then)

    def chunk(self, index: int, chunks: int, attempt: int) -> None:
        self.transition(lambda: self.invoke(index, chunks, attempt))

    def invoke(self, index: int, chunks: int, attempt: int) -> None:
        cold = self.running_lambdas >= self.warm
        if self.running_lambdas >= self.s.lambda_cap or (cold and self.scaling.take(self.now) > 0):
            self.retry_throttled(index, chunks, attempt, "Lambda concurrency", 2, 60, 20)
            return
        if cold:
            self.warm += 1
        self.running_lambdas += 1
        self.stats.peaks["Lambda concurrency"] = max(
            self.stats.peaks["Lambda concurrency"], self.running_lambdas
        )
        self.ask_provider(index, chunks, attempt, in_process=0)

    def ask_provider(self, index: int, chunks: int, attempt: int, in_process: int) -> None:
        if self.provider >= self.s.provider_cap:  # 429
            if in_process < 3:
                delay = self.rng.uniform(0, 0.5 * 2**in_process)
                self.stats.wait("provider (200 concurrent)", delay)
                self.at(delay, lambda: self.ask_provider(index, chunks, attempt, in_process + 1))
                return
            self.running_lambdas -= 1  # ProviderRateLimited: the Lambda ends, the workflow retries
            self.retry_throttled(index, chunks, attempt, "provider (200 concurrent)", 5, 120, 6)
            return
        self.provider += 1
        self.stats.peaks["provider (200 concurrent)"] = max(
            self.stats.peaks["provider (200 concurrent)"], self.provider
        )
        out = min(CAP, self.tokens - index * CAP)
        seconds = 1.0 + out / self.rate
        self.s3_traffic(seconds, out, first=index == 0)
        self.at(seconds, lambda: self.chunk_done(index, chunks, out))

    def retry_throttled(
        self, index: int, chunks: int, attempt: int, limit: str, interval: float, cap: float, attempts: int
    ) -> None:
        if attempt >= attempts:
            self.stats.failed[f"{limit}: Retry exhausted"] += 1
            self.transition(self.job_done, n=3)
            return
        delay = self.rng.uniform(0, min(cap, interval * 2**attempt))  # JitterStrategy FULL
        self.stats.wait(limit, delay)
        self.at(delay, lambda: self.invoke(index, chunks, attempt + 1))

    def chunk_done(self, index: int, chunks: int, out: int) -> None:
        self.provider -= 1
        self.running_lambdas -= 1
        self.stats.tokens += out
        if index + 1 < chunks:
            self.transition(lambda: self.chunk(index + 1, chunks, attempt=0))  # the Choice
        else:
            self.stats.done += 1
            self.transition(self.job_done, n=4)  # the Choice, Finalize, JobOutcome, JobDone

    def job_done(self) -> None:
        self.stats.end = max(self.stats.end, self.now)
        if self.batch_waiting > 0:
            self.batch_waiting -= 1
            self.start_job()

    def s3_traffic(self, seconds: float, out: int, *, first: bool) -> None:
        second = int(self.now)
        self.s3_get[second] += 3 if first else 4
        self.s3_put[second + int(seconds)] += 3
        every = max(5.0, 2_000 / self.rate)
        for k in range(1, int(seconds // every) + 1):
            self.s3_put[second + int(k * every)] += 1


def report(s: Scenario, sim: Sim) -> str:
    st = sim.stats
    hours = st.end / 3600
    failed = sum(st.failed.values())
    lines = [
        f"### {s.name}",
        "",
        f"{s.jobs:,} jobs of {sim.tokens:,} tokens at {sim.rate:g} tokens/s; chunk function's concurrency "
        f"{s.lambda_cap:,}; provider {s.provider_cap} concurrent"
        + (f"; Distributed Map MaxConcurrency {s.batch_concurrency}" if s.batch_concurrency else ""),
        "",
        f"- last job ended after {hours:.1f} h; {st.done:,} succeeded, {failed:,} failed "
        + (f"({', '.join(f'{k}: {v:,}' for k, v in st.failed.items())})" if failed else ""),
        f"- throughput {st.tokens / max(st.end, 1):,.0f} tokens/s "
        f"({st.tokens / max(st.end, 1) / sim.rate:,.0f} streams at once on average)",
        f"- peak S3 PUT {max(sim.s3_put.values(), default=0):,.0f}/s (limit 3,500 per partitioned prefix), "
        f"GET {max(sim.s3_get.values(), default=0):,.0f}/s (5,500)",
        "",
        "| limit | peak use | waiting, summed (h) | worst single wait (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for limit in sorted(set(st.waits) | set(st.peaks)):
        peak = f"{st.peaks[limit]:,.0f}" if limit in st.peaks else "-"
        lines.append(f"| {limit} | {peak} | {st.waits[limit] / 3600:,.1f} | {st.worst[limit]:,.1f} |")
    return "\n".join(lines)


def scenarios(jobs: list[int], batch: int) -> list[Scenario]:
    out = []
    for n in jobs:
        out.append(
            Scenario(f"{n:,} jobs at once through the API, MaxConcurrentChunks 0 (account's 1,000)", n, 1_000)
        )
        out.append(Scenario(f"{n:,} jobs at once through the API, MaxConcurrentChunks 200", n, 200))
    out.append(
        Scenario(
            f"a {batch:,}-line batch, BatchMaxConcurrency 150", batch, 1_000, batch_concurrency=150, api=False
        )
    )
    n = max(jobs)  # not in the template: what admission in front of the workflows would give
    out.append(
        Scenario(
            f"what-if: {n:,} jobs through an admission queue of 190",
            n,
            1_000,
            batch_concurrency=190,
            api=False,
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=100_000, help="tokens per job")
    parser.add_argument("--rate", type=float, default=30.0, help="tokens per second of a stream")
    parser.add_argument("--jobs", default="1000,10000")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for scenario in scenarios([int(j) for j in args.jobs.split(",")], args.batch):
        sim = Sim(scenario, args.tokens, args.rate, args.seed)
        sim.run()
        print(report(scenario, sim))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
