"""The hostile-stream property test, long: many more generated streams than ``make test`` runs.

    .venv/bin/python bench/hostile_stream.py                    # 5000 examples, a random seed
    .venv/bin/python bench/hostile_stream.py --examples 20000

Runs ``tests/unit/test_hostile_stream_property.py`` under the ``long`` hypothesis profile (examples
from a fresh random seed each run, the example database in ``tests/hypothesis-db`` replayed first
and added to when a case fails: commit it, so the case stays found) and prints the examples tried,
passing, failing and invalid, and the time. Exit status: pytest's (0: no failing example).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/unit/test_hostile_stream_property.py"
_PHASE = re.compile(
    r"during (\w+) phase \(([\d.]+) seconds\):.*?(\d+) passing, (\d+) failing, and (\d+) invalid",
    re.DOTALL,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5000)
    args = parser.parse_args(argv)
    env = dict(os.environ, HYPOTHESIS_PROFILE="long", HYPOTHESIS_EXAMPLES=str(args.examples))
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            TEST,
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:logging",
            "--hypothesis-show-statistics",
            "--timeout",
            "0",  # no per-test timeout: the run is long
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    print(f"{'phase':<10} {'seconds':>8} {'passing':>8} {'failing':>8} {'invalid':>8}")
    for phase, secs, passing, failing, invalid in _PHASE.findall(done.stdout):
        print(f"{phase:<10} {float(secs):>8.1f} {passing:>8} {failing:>8} {invalid:>8}")
    print(f"pytest exit {done.returncode} after {seconds:.0f} s (examples asked: {args.examples})")
    if done.returncode != 0:  # the failure, without the provider's retry warnings
        print("\n".join(line for line in done.stdout.splitlines() if "WARNING" not in line)[:20000])
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
