"""The local runtime at a real model's pace: long chunks streamed at 20-100 tokens a second.

    .venv/bin/python bench/real_pace.py --quick          # ~2 min: 100 tok/s, 1,000-token chunks
    .venv/bin/python bench/real_pace.py                  # ~35 min: 20, 50, 100 tok/s, 16,384-token chunks
    .venv/bin/python bench/real_pace.py --rates 50 --chunk 16384 --answer 20000 --json /tmp/pace.json

Each job is a real ``longform run`` process (the emulator slowed to ``--emulator-token-delay 1/rate``,
``--stream`` so its stdout is the answer as it comes), watched from outside as a person and their
tools would:

- **a follower** reads the state directory's draft of the chunk in flight (``drafts/``) every
  0.2 s: *draft writes/min* counts the changes it saw (a lower bound), *follower lag* is how old the
  newest draft is when read (the provider is that many seconds of text ahead of what a reader sees);
- **a second process** runs ``longform list`` and ``longform show ID`` (``--json``) every 2 s on
  the same state directory while the job runs;
- **a SIGTERM** in the middle (once the first chunk is committed and a draft of the next exists):
  *SIGTERM->exit* is the time to the process's end (it must exit 130, no traceback); then
  ``longform resume ID`` finishes the job into the same ``--out``.

*crashes* counts every process (run, resume, list, show) that ended with an unexpected code or
printed a traceback or ``longform: SomeError:``; *text lost* is the characters of the uncapped
answer missing from the final ``--out`` (0 when it is equal); *output == uncapped* compares the
whole file; *Enter->first text* is the time from starting ``longform run`` to the first byte of
answer on its stdout. The longest profile (20 tok/s, 16,384-token chunks, a 20,000-token answer)
generates for ~17 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from longform.emulator.model import uncapped_answer

CRASH = re.compile(r"Traceback|^longform: \w+(Error|Exception)\b", re.MULTILINE)
POLL = 0.2


@dataclass
class PaceResult:
    rate: int
    chunk: int
    answer_tokens: int
    crashes: int = 0
    text_lost: int = 0
    output_equal: bool = False
    draft_writes_per_min: float = 0.0
    follower_lag_p50: float = 0.0
    follower_lag_max: float = 0.0
    enter_to_first_text: float | None = None
    sigterm_to_exit: float | None = None
    sigterm_exit_code: int | None = None
    resume_exit_code: int | None = None
    listings: int = 0
    problems: list[str] = field(default_factory=list)


def longform(*args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DEEPINFRA_API_KEY": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "longform.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,  # type: ignore[arg-type]
    )


def crashed(result: PaceResult, what: str, code: int | None, err: str, ok_codes: tuple[int, ...]) -> None:
    if code not in ok_codes or CRASH.search(err):
        result.crashes += 1
        last = err.strip().splitlines()[-1] if err.strip() else ""
        result.problems.append(f"{what}: exit {code}: {last[:200]}")


def manifests(state: Path) -> list[dict]:
    found = []
    for path in (state / "bucket" / "jobs").glob("*/manifest.json"):
        with contextlib.suppress(OSError, ValueError):  # replaced under us: read on the next round
            found.append(json.loads(path.read_text()))
    return found


class Watchers:
    """The follower of drafts and the second process's list/show, until ``stop``."""

    def __init__(self, state: Path, result: PaceResult):
        self.state, self.result = state, result
        self.stop = threading.Event()
        self.draft_changes = 0
        self.lags: list[float] = []
        self.threads = [threading.Thread(target=self.follow), threading.Thread(target=self.list_show)]

    def __enter__(self) -> Watchers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def follow(self) -> None:
        seen: dict[Path, int] = {}
        while not self.stop.wait(POLL):
            for path in (self.state / "bucket" / "jobs").glob("*/drafts/*"):
                try:
                    stat = path.stat()
                    path.read_bytes()  # a reader of the draft, as `output --follow` is
                except OSError:
                    continue
                if seen.get(path) != stat.st_mtime_ns:
                    self.draft_changes += 1  # a new draft, or the draft rewritten
                    seen[path] = stat.st_mtime_ns
                self.lags.append(max(0.0, time.time() - stat.st_mtime))

    def list_show(self) -> None:
        while not self.stop.wait(2.0):
            listing = longform("list", "--json", "--state-dir", str(self.state))
            out, err = listing.communicate()
            crashed(self.result, "list", listing.returncode, err.decode(), (0,))
            self.result.listings += 1
            try:
                jobs = json.loads(out)
            except ValueError:
                continue
            for job in jobs[:1]:
                show = longform("show", job["job_id"], "--json", "--state-dir", str(self.state))
                _, err = show.communicate()
                crashed(self.result, "show", show.returncode, err.decode(), (0,))


def first_text(proc: subprocess.Popen[bytes], started: float, sink: list[bytes]) -> float | None:
    """Read the run's stdout to its end (in a thread); the time of its first byte."""
    assert proc.stdout is not None
    first: float | None = None
    while data := proc.stdout.read1(65536):  # type: ignore[attr-defined]
        if first is None:
            first = time.monotonic() - started
        sink.append(data)
    return first


def one_job(rate: int, chunk: int, answer_tokens: int, root: Path) -> PaceResult:
    result = PaceResult(rate, chunk, answer_tokens)
    state, out = root / f"state-{rate}", root / f"answer-{rate}.md"
    prompt = (
        f"Write a long chronicle of lighthouse keepers at {rate} [emulator answer_tokens={answer_tokens}]"
    )
    common = ["--state-dir", str(state), "--out", str(out)]
    with Watchers(state, result) as watchers:
        started = time.monotonic()
        run = longform(
            "run", "--emulator", "--emulator-token-delay", f"{1 / rate:.6f}", "--prompt", prompt,
            "--max-tokens-per-request", str(chunk), "--stream", *common,
        )  # fmt: skip
        text: list[bytes] = []
        first: list[float | None] = []
        reader = threading.Thread(target=lambda: first.append(first_text(run, started, text)))
        reader.start()
        job_id = None
        while run.poll() is None:  # SIGTERM once a chunk is committed and the next one has a draft
            jobs = manifests(state)
            if jobs and jobs[0]["chunks"] >= 1 and any((state / "bucket" / "jobs").glob("*/drafts/*")):
                job_id = jobs[0]["job_id"]
                break
            time.sleep(POLL)
        sent = time.monotonic()
        run.send_signal(signal.SIGTERM)
        run.wait()
        result.sigterm_to_exit = round(time.monotonic() - sent, 2)
        reader.join()
        assert run.stderr is not None
        err = run.stderr.read().decode()
        result.sigterm_exit_code = run.returncode
        result.enter_to_first_text = round(first[0], 2) if first and first[0] is not None else None
        crashed(result, "run (SIGTERM)", run.returncode, err, (130,))
        if job_id is None:
            result.problems.append(f"the run ended before the SIGTERM: {err.strip()[-300:]}")
            jobs = manifests(state)
            if not jobs:
                return result
            job_id = jobs[0]["job_id"]
        resume = longform("resume", job_id, "--no-stream", *common)
        _, err_b = resume.communicate()
        result.resume_exit_code = resume.returncode
        crashed(result, "resume", resume.returncode, err_b.decode(), (0,))
        generation_minutes = answer_tokens / rate / 60
        result.draft_writes_per_min = round(watchers.draft_changes / max(generation_minutes, 1e-9), 1)
    if watchers.lags:
        result.follower_lag_p50 = round(statistics.median(watchers.lags), 2)
        result.follower_lag_max = round(max(watchers.lags), 2)
    want = uncapped_answer([{"role": "user", "content": prompt}])
    got = out.read_text() if out.exists() else ""
    common_prefix = next(
        (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), min(len(want), len(got))
    )
    result.text_lost = len(want) - common_prefix
    result.output_equal = got == want
    return result


def table(results: list[PaceResult]) -> str:
    head = (
        "| tok/s | chunk | answer tok | crashes | text lost | output == uncapped | draft writes/min "
        "| follower lag p50 / max (s) | Enter->first text (s) | SIGTERM->exit (s), code | list/show runs |"
    )
    rows = [head, "|" + "---|" * 11]
    for r in results:
        rows.append(
            f"| {r.rate} | {r.chunk:,} | {r.answer_tokens:,} | {r.crashes} | {r.text_lost} "
            f"| {r.output_equal} "
            f"| {r.draft_writes_per_min} | {r.follower_lag_p50} / {r.follower_lag_max} "
            f"| {r.enter_to_first_text} | {r.sigterm_to_exit}, {r.sigterm_exit_code} | {r.listings} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 tok/s, 1,000-token chunks, 2,500 tokens")
    parser.add_argument("--rates", default="20,50,100", help="tokens per second, comma-separated")
    parser.add_argument("--chunk", type=int, default=16_384, help="max tokens per request")
    parser.add_argument("--answer", type=int, default=20_000, help="tokens of the uncapped answer")
    parser.add_argument("--json", help="write every result to this file")
    args = parser.parse_args()
    rates = [100] if args.quick else [int(r) for r in args.rates.split(",")]
    chunk, answer = (1_000, 2_500) if args.quick else (args.chunk, args.answer)
    results = []
    with tempfile.TemporaryDirectory(prefix="real-pace-") as tmp:
        for rate in rates:
            result = one_job(rate, chunk, answer, Path(tmp))
            results.append(result)
            print(table([result]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(results))
    for r in results:
        for problem in r.problems:
            print(f"- {r.rate} tok/s: {problem}")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if any(r.crashes or r.text_lost for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
