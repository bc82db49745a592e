"""Cold-start import time of each Lambda handler, beside a boto3 baseline measured in the same run.

    .venv/bin/python bench/import_time.py                  # 9 rounds (make bench-import)
    .venv/bin/python bench/import_time.py --repeat 15 --importtime 10
    .venv/bin/python bench/import_time.py --json /tmp/import_time.json
    # closer to Lambda: a venv with boto3 only and a built layer (an x86_64 one on an x86_64 host:
    # make -C layers/longform_core build-RuntimeLayer ARTIFACTS_DIR=/tmp/layer LAYER_ARCH=x86_64)
    .venv/bin/python bench/import_time.py --python /tmp/boto3-only/bin/python --layer /tmp/layer/python \
        --dont-write-bytecode    # /opt is read-only in Lambda: the layer's modules compile every time

Every sample is a fresh interpreter (by default this one, the project's .venv) that imports one
handler the way Lambda does: the function's directory first on ``sys.path`` (``/var/task``), then
the layer's package directory, ``layers/longform_core`` by default (``/opt/python``), the working
directory the function's,
``LAMBDA_TASK_ROOT`` set (so Powertools' Tracer is on and patches botocore and httpx, as in
Lambda) and dummy settings (``JOBS_BUCKET=x``, region us-east-1). The time is taken inside the
child around ``import app`` only, so interpreter start-up is not in it; CPU time is given beside
wall time because it moves less when the machine is busy.

The baseline is the smallest thing a Python function that talks to AWS does at import:
``import boto3; boto3.client("s3", region_name="us-east-1")``, in a fresh interpreter too.
Rounds interleave the targets (baseline, then each handler, in a new order each round) so drift in
the machine's load falls on all of them alike; the table gives medians.

``--importtime N`` runs each handler once more under ``python -X importtime`` and lists the N
top-level packages that take the most time (self time of their modules, summed) and the N direct
imports of ``app`` with the largest cumulative time: where lazy imports would pay.

The project's .venv holds test and dev packages that Lambda does not have, and some of them change
what an import does: botocore loads awscrt and urllib3's pyOpenSSL support when they are installed,
httpx loads its command line (rich, click) when those are, and Tracer patches requests. ``--python``
and ``--layer`` measure a boto3-only interpreter with a built layer instead.

Not measured by default: the layer's missing ``.pyc`` files. The .venv and the source tree have
their bytecode caches, while the Makefile's layer has none and Lambda's /opt is read-only, so there
the layer's modules compile at every cold start; ``--dont-write-bytecode`` with ``--layer`` shows
that. Never measured: Lambda's own start-up, and the work a handler does on its first invocation
(clients are built lazily by ``get_services()``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAYER_DIR = ROOT / "layers" / "longform_core"
HANDLERS = ("generate_chunk", "finalize", "api", "drop_folder")
BASELINE = "baseline"

TIMED = """\
import json, time
t0, c0 = time.perf_counter(), time.process_time()
{body}
t1, c1 = time.perf_counter(), time.process_time()
import sys
print(json.dumps({{"wall_ms": (t1 - t0) * 1e3, "cpu_ms": (c1 - c0) * 1e3, "modules": len(sys.modules)}}))
"""
HANDLER_BODY = "import app"
BASELINE_BODY = 'import boto3\nboto3.client("s3", region_name="us-east-1")'

# What the template sets for every function (Globals), with dummy values where it passes a resource.
LAMBDA_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "JOBS_BUCKET": "x",
    "PROVIDER_BASE_URL": "http://127.0.0.1:9/v1",
    "DEFAULT_MODEL": "x",
    "LOG_LEVEL": "INFO",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_SERVICE_NAME": "longform",
    "POWERTOOLS_METRICS_NAMESPACE": "Longform",
    "POWERTOOLS_LOGGER_LOG_EVENT": "false",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
}
# Nothing from the developer's machine that changes what an import does or reads.
DROPPED_ENV_PREFIXES = ("PYTHON", "AWS_", "POWERTOOLS_", "LAMBDA_", "_X_AMZN")

IMPORTTIME_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")


@dataclass
class Target:
    name: str
    body: str
    cwd: Path
    pythonpath: list[Path]
    env: dict[str, str]
    samples: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None

    def median(self, key: str) -> float:
        return statistics.median(s[key] for s in self.samples)


def base_env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV_PREFIXES)}
    # no ~/.aws: Lambda has none, and a profile there could change what boto3 reads at start-up
    env.update(LAMBDA_ENV, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, HOME=home)
    return env


def targets(home: str, only: list[str], layer: Path, dont_write_bytecode: bool) -> list[Target]:
    env = base_env(home)
    if dont_write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    out = [Target(BASELINE, BASELINE_BODY, ROOT, [], dict(env))]
    for name in HANDLERS:
        if only and name not in only:
            continue
        function_dir = ROOT / "functions" / name
        handler_env = dict(
            env, LAMBDA_TASK_ROOT=str(function_dir), AWS_LAMBDA_FUNCTION_NAME=f"longform-{name}"
        )
        out.append(Target(name, HANDLER_BODY, function_dir, [function_dir, layer], handler_env))
    return out


def run(target: Target, python: str, extra_args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(target.env)
    if target.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in target.pythonpath)
    code = TIMED.format(body=target.body)
    return subprocess.run(
        [python, *extra_args, "-c", code],
        cwd=target.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sample(target: Target, python: str) -> None:
    proc = run(target, python, [])
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        target.error = lines[-1]
        return
    target.samples.append(json.loads(proc.stdout.strip().splitlines()[-1]))


def importtime_breakdown(target: Target, python: str, top: int) -> dict[str, Any]:
    """Self time per top-level package and cumulative time per direct import, for ``import app``."""
    proc = run(target, python, ["-X", "importtime"])
    rows = []
    for line in proc.stderr.splitlines():
        m = IMPORTTIME_LINE.match(line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), len(m.group(3)) // 2, m.group(4)))
    # -X importtime prints a module after its imports: app's own imports are the lines just before
    # the level-0 "app" line, back to the previous level-0 line
    end = next((i for i, r in enumerate(rows) if r[2] == 0 and r[3] == "app"), None)
    if end is None:
        return {"error": target.error or "no 'app' line in -X importtime output"}
    start = end
    while start > 0 and rows[start - 1][2] > 0:
        start -= 1
    span = rows[start : end + 1]
    by_package: dict[str, int] = {}
    for self_us, _cum, _level, name in span:
        package = name.split(".")[0]
        by_package[package] = by_package.get(package, 0) + self_us
    direct = sorted(((r[1], r[3]) for r in span if r[2] == 1), reverse=True)
    total_us = rows[end][1]
    return {
        "total_ms": total_us / 1e3,
        "modules": len(span),
        "packages": [
            (name, us / 1e3) for name, us in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]
        ],
        "direct": [(name, us / 1e3) for us, name in direct[:top]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=9, help="rounds (fresh interpreters per target)")
    parser.add_argument(
        "--importtime", type=int, default=0, metavar="N", help="also list the N costliest imports"
    )
    parser.add_argument("--only", action="append", default=[], choices=HANDLERS, help="this handler only")
    parser.add_argument("--python", default=sys.executable, help="interpreter to measure (default: this one)")
    parser.add_argument(
        "--layer",
        type=Path,
        default=LAYER_DIR,
        help="the layer's package directory on sys.path (default: layers/longform_core)",
    )
    parser.add_argument(
        "--dont-write-bytecode",
        action="store_true",
        help="children write no .pyc files (modules without one compile on every import, as in /opt)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the order shuffle")
    parser.add_argument("--json", type=Path, default=None, help="write every raw number to this file")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="import-time-home-") as home:
        all_targets = targets(home, args.only, args.layer.resolve(), args.dont_write_bytecode)
        # one untimed run each: the first import after an edit writes the bytecode caches
        for target in all_targets:
            run(target, args.python, [])
        for _ in range(args.repeat):
            order = all_targets[1:]
            rng.shuffle(order)
            for target in [all_targets[0], *order]:
                if target.error is None:
                    sample(target, args.python)
        breakdowns = {}
        if args.importtime:
            for target in all_targets[1:]:
                breakdowns[target.name] = importtime_breakdown(target, args.python, args.importtime)

    version = subprocess.run(
        [args.python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    bytecode = " (no .pyc written)" if args.dont_write_bytecode else ""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Python {version} ({args.python}), {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {load:.1f}; layer {args.layer}{bytecode}; {args.repeat} rounds, medians\n"
    )
    baseline = all_targets[0]
    if baseline.error or not baseline.samples:
        print(f"baseline failed: {baseline.error}")
        return 1
    base_wall, base_cpu = baseline.median("wall_ms"), baseline.median("cpu_ms")
    print("| import | wall ms | CPU ms | x baseline (wall) | x baseline (CPU) | modules |")
    print("|---|---:|---:|---:|---:|---:|")
    for target in all_targets:
        label = "boto3 + S3 client (baseline)" if target is baseline else f"functions/{target.name}/app.py"
        if target.error or not target.samples:
            print(f"| {label} | failed: {target.error} | | | | |")
            continue
        wall, cpu = target.median("wall_ms"), target.median("cpu_ms")
        modules = int(target.median("modules"))
        ratios = f"{wall / base_wall:.2f} | {cpu / base_cpu:.2f}"
        print(f"| {label} | {wall:.0f} | {cpu:.0f} | {ratios} | {modules} |")
    for name, info in breakdowns.items():
        print(f"\n`-X importtime`, functions/{name}/app.py", end="")
        if "error" in info:
            print(f": {info['error']}")
            continue
        print(f" (one run: {info['total_ms']:.0f} ms, {info['modules']} modules)")
        print("\n| package (self time of its modules) | ms | | direct import of app (cumulative) | ms |")
        print("|---|---:|---|---|---:|")
        rows = max(len(info["packages"]), len(info["direct"]))
        for i in range(rows):
            pkg, pms = info["packages"][i] if i < len(info["packages"]) else ("", None)
            imp, ims = info["direct"][i] if i < len(info["direct"]) else ("", None)
            pcell = f"{pms:.0f}" if pms is not None else ""
            icell = f"{ims:.0f}" if ims is not None else ""
            print(f"| {pkg} | {pcell} | | {imp} | {icell} |")

    if args.json:
        raw = {
            "python": version,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load": load,
            "repeat": args.repeat,
            "layer": str(args.layer),
            "targets": {t.name: {"samples": t.samples, "error": t.error} for t in all_targets},
            "importtime": breakdowns,
        }
        args.json.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
