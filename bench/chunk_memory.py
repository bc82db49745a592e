"""Memory of the functions, measured: what each Lambda function's MemorySize is set from.

    .venv/bin/python bench/chunk_memory.py                         # 16,384 tokens at 30 tokens/s (~10 min)
    .venv/bin/python bench/chunk_memory.py --tokens 16384 --rate 60 --json /tmp/memory.json

Each function runs in a process of its own, as in Lambda: python3.13 (the runtime's version) with
``sys.path`` in Lambda's order: the function's code, the layer **as built** (``make -C
layers/longform_core build-RuntimeLayer`` for this machine's architecture: bytecode, the runtime's
boto3 left out) and a boto3 (standing in for the runtime's). The process imports the handler (the
cold start), then handles one event; it reports its peak RSS (``ru_maxrss``, which is what Lambda's
"Max Memory Used" reports) after the import and after the invocation, and the peak of Python
allocations during the invocation (``tracemalloc``).

The chunk function streams one long chunk (``--tokens`` tokens, one request) from the emulator at
``--rate`` tokens per second (its ``token_delay``), with the template's draft checkpoints (every
``DraftIntervalSeconds`` = 5 s, ``DraftMinTokens`` = 2,000): the function holds the whole chunk's
text, the draft copies and the S3 bodies. S3 is moto's server on 127.0.0.1 (``AWS_ENDPOINT_URL``).
Then Finalize ends that job (it reads every chunk record and writes output.md and result.json), and
the API reads its status and its whole output. The other functions handle their sample event
(``events/``): an import and a small invocation (errors such as "no such state machine" are expected
and do not change the picture: their memory is the cold start's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from longform.emulator.server import EmulatorServer, EmulatorSettings  # noqa: E402
from longform.local.aws import FAKE_CREDENTIALS  # noqa: E402
from longform.local.cloud import BUCKET  # noqa: E402
from longform.local.template import function_environment, function_specs, load_template  # noqa: E402

MODEL = "longform/emulated-writer"
JOB = "memory-bench-0001"
BOTO3 = "boto3==1.40.4"  # samlocal/setup.sh's stand-in for the runtime's boto3
CACHE = ROOT / ".aws-sam" / "bench-memory"

CHILD = r"""
import json, os, resource, sys, time, tracemalloc
code, layer, boto, handler_spec, event_json = sys.argv[1:6]
sys.path[:0] = [code, layer, boto]
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
module_name, _, fn = handler_spec.rpartition(".")
started = time.monotonic()
handler = getattr(__import__(module_name), fn)
import_s = time.monotonic() - started
after_import = rss_mb()
class Context:
    function_name = os.environ.get("FN", "f"); function_version = "$LATEST"; memory_limit_in_mb = 10240
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name, log_stream_name = "/aws/lambda/f", "s"
    deadline = time.monotonic() + 900
    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.monotonic()) * 1000)
tracemalloc.start()
cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
started = time.monotonic()
error = None
try:
    answer = handler(json.loads(event_json), Context())
except Exception as exc:
    answer, error = None, f"{type(exc).__name__}: {str(exc)[:160]}"
seconds = time.monotonic() - started
cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0
_, peak = tracemalloc.get_traced_memory()
print("BENCH " + json.dumps({"import_s": import_s, "rss_after_import_mb": after_import,
    "rss_peak_mb": rss_mb(),
    "tracemalloc_peak_mb": peak / 2**20, "seconds": seconds, "cpu_s": cpu, "error": error,
    "answer": answer if isinstance(answer, dict) and len(json.dumps(answer, default=str)) < 400 else None},
    default=str))
"""


def build_layer(py313: str) -> Path:
    """The layer as ``sam build`` builds it (for this machine's architecture) and a boto3 beside it."""
    layer = CACHE / "layer"
    boto = CACHE / "boto3"
    arch = "x86_64" if os.uname().machine == "x86_64" else "aarch64"
    if not (layer / "python" / "longform_core").is_dir() or _stale(layer):
        subprocess.run(
            ["make", "-s", "-C", str(ROOT / "layers/longform_core"), "build-RuntimeLayer",
             f"ARTIFACTS_DIR={layer}", f"LAYER_PYTHON={py313}", f"LAYER_ARCH={arch}"],
            check=True,
        )  # fmt: skip
    if not (boto / "boto3").is_dir():
        subprocess.run(
            [
                py313,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--target",
                str(boto),
                BOTO3,
            ],
            check=True,
        )
    return layer / "python"


def _stale(layer: Path) -> bool:
    built = (layer / "python" / "longform_core" / "__init__.py").stat().st_mtime
    sources = (ROOT / "layers/longform_core/longform_core").glob("*.py")
    return any(p.stat().st_mtime > built for p in sources)


def run_function(
    logical_id: str, event: dict[str, Any], *, py313: str, layer: Path, env: dict[str, str]
) -> dict[str, Any]:
    spec = function_specs(load_template(ROOT / "template.yaml"))[logical_id]
    code = ROOT / spec.code_uri
    proc = subprocess.run(
        [py313, "-c", CHILD, str(code), str(layer), str(CACHE / "boto3"), spec.handler, json.dumps(event)],
        env={**env, "FN": logical_id}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH ")]
    if not lines:
        raise RuntimeError(f"{logical_id}: no measurement (exit {proc.returncode}): {proc.stderr[-800:]}")
    return {"function": logical_id, **json.loads(lines[-1][6:])}


def seed_job(s3: Any, tokens: int) -> None:
    from longform_core.job_store import JobStore
    from longform_core.models import Manifest
    from longform_core.request import parse_request

    store = JobStore(s3, BUCKET)
    request = parse_request(
        {
            "model": MODEL,
            "prompt": f"Write a history of lighthouse lenses. [emulator answer_tokens={tokens}]",
            "max_tokens_per_request": tokens,
        }
    )
    store.put_request(JOB, request)
    store.put_manifest(Manifest(job_id=JOB, model=MODEL, owner=EVENT_OWNER))


def sample_event(name: str, job_id: str = JOB) -> dict[str, Any]:
    """A sample event of events/, pointed at the bench's job."""
    text = (ROOT / "events" / name).read_text(encoding="utf-8").replace("example-job-0001", job_id)
    return dict(json.loads(text))


EVENT_OWNER = "iam:arn:aws:sts::123456789012:assumed-role/longform-user/alice"  # the API events' caller
OTHERS = {
    "DropFolderFunction": "s3_object_created.json",
    "SweeperFunction": "sweeper_execution_failed.json",
    "BatchDropFolderFunction": "s3_batch_object_created.json",
    "BatchSplitFunction": "batch_split.json",
    "BatchOutputFunction": "batch_output.json",
}


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    import boto3
    from moto.server import ThreadedMotoServer

    layer = build_layer(args.py313)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    rows: list[dict[str, Any]] = []
    settings = EmulatorSettings(token_delay=1 / args.rate, cap=max(16384, args.tokens))
    try:
        with EmulatorServer(settings) as emulator:
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys())
            s3.create_bucket(Bucket=BUCKET)
            seed_job(s3, args.tokens)
            template = load_template(ROOT / "template.yaml")
            env = function_environment(
                template,
                refs={"JobsBucket": BUCKET},
                parameters={
                    "ProviderBaseUrl": emulator.base_url,
                    "DefaultModel": MODEL,
                    "LogLevel": "WARNING",
                },
            )
            env = {
                "PATH": os.environ.get("PATH", ""),
                **{k: str(v) for k, v in env.items()},
                **FAKE_CREDENTIALS,
                "AWS_ENDPOINT_URL": endpoint,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
            }
            run = lambda fn, event: run_function(fn, event, py313=args.py313, layer=layer, env=env)  # noqa: E731
            print(f"chunk: {args.tokens} tokens at {args.rate} tokens/s ...", file=sys.stderr, flush=True)
            rows.append(run("GenerateChunkFunction", {"job_id": JOB}))
            rows.append(run("FinalizeFunction", {"job_id": JOB}))
            rows.append(run("ApiFunction", sample_event("api_get_output.json")))
            rows.append(run("ApiFunction", sample_event("api_list_generations.json")))
            for fn, name in OTHERS.items():
                rows.append(run(fn, sample_event(name)))
    finally:
        server.stop()
    return rows


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    out = [
        f"Peak memory per function (python3.13, the layer as built; chunk: {args.tokens:,} tokens in one "
        f"request at {args.rate:g} tokens/s)",
        "",
        "| function | invocation | seconds | CPU seconds | RSS after import (MB) | peak RSS (MB) "
        "| tracemalloc peak (MB) | error |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        out.append(
            f"| {row['function']} | {row.get('what', '')} | {row['seconds']:.1f} | {row['cpu_s']:.2f} "
            f"| {row['rss_after_import_mb']:.0f} | "
            f"{row['rss_peak_mb']:.0f} | {row['tracemalloc_peak_mb']:.1f} | {row['error'] or ''} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--rate", type=float, default=30.0, help="tokens per second of the stream")
    parser.add_argument("--py313", default=_default_py313())
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory():
        rows = measure(args)
    whats = ["one long chunk", "ends that job", "GET output (whole text)", "GET list", *OTHERS.values()]
    for row, what in zip(rows, whats, strict=True):
        row["what"] = what
    print(table(rows, args))
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2, default=str)
        )
    return 0


def _default_py313() -> str:
    try:
        prefix = subprocess.run(
            ["pyenv", "prefix", "3.13.0"], capture_output=True, text=True, check=True
        ).stdout
        return str(Path(prefix.strip()) / "bin" / "python3.13")
    except (OSError, subprocess.CalledProcessError):
        return "python3.13"


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    sys.exit(code)
