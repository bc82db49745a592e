"""make sam-local, part 2: the project's functions in Lambda containers through SAM CLI's own
machinery, against moto's server (``local_aws.py``) and the emulator as the provider.

    .venv/bin/python -m samlocal.run --sam ~/.cache/longform/samlocal/sam-cli-1.170.0/bin/sam \\
        --py313 "$(pyenv prefix 3.13.0)/bin/python3.13"

Steps (each timed; the table is printed and written to ``.aws-sam/samlocal/times.txt``):
``sam build`` of an x86_64 copy of the template; `sam local start-lambda` (the Lambda endpoint
moto's Step Functions interpreter invokes); `sam local invoke` of every function with its sample
event, each answer checked (``checks.py``); `sam local start-api` driven through submit, status,
list, output, a bad request, an unknown id and cancel, with a job of several chunks that completes
through Step Functions and start-lambda and whose output equals the uncapped answer.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from longform.emulator.server import EmulatorServer, EmulatorSettings
from longform.local.aws import quiet_moto_logs
from longform.local.template import function_environment, load_template

from .checks import MODEL, CheckFailed, Checks
from .local_aws import LocalAws, free_port
from .sam import Sam, SamFailed

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_CAP = 150  # the submitted job's max_tokens_per_request: several chunks
WORKFLOW_ANSWER = 700


class Steps:
    """Runs and times the steps; the first failure ends the run with one line naming it."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float, str]] = []

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        print(f"sam-local: {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        result = fn()
        seconds = time.monotonic() - started
        note = result if isinstance(result, str) else ""
        self.times.append((name, seconds, note))
        for line in result if isinstance(result, list) else [note]:
            if line:
                print(f"  {line}", file=sys.stderr, flush=True)
        return result

    def table(self) -> str:
        rows = ["| step | seconds |", "| --- | ---: |"]
        rows += [f"| {name} | {seconds:.0f} |" for name, seconds, _ in self.times]
        rows.append(f"| total | {sum(s for _, s, _ in self.times):.0f} |")
        return "\n".join(rows)


def environment(aws: LocalAws, emulator: EmulatorServer) -> dict[str, str]:
    """Every variable the template gives its functions, resolved for this run."""
    template = load_template(ROOT / "template.yaml")
    env = function_environment(
        template,
        refs=aws.refs(),
        parameters={
            "ProviderBaseUrl": emulator.base_url,
            "DefaultModel": MODEL,
            "LocalAwsEndpointUrl": aws.endpoint,
            "LogLevel": "INFO",
        },
    )
    return {name: str(value) for name, value in env.items()}


def run(args: argparse.Namespace) -> int:
    work = ROOT / ".aws-sam" / "samlocal"
    work.mkdir(parents=True, exist_ok=True)
    steps = Steps()
    sam = Sam(args.sam, ROOT, work, args.py313)
    template = load_template(ROOT / "template.yaml")
    lambda_port, api_port = free_port(), free_port()
    with contextlib.ExitStack() as stack:
        stack.enter_context(quiet_moto_logs())
        emulator = stack.enter_context(EmulatorServer(EmulatorSettings(token_delay=args.token_delay)))
        aws = stack.enter_context(LocalAws(ROOT, template, f"http://127.0.0.1:{lambda_port}"))
        sam.write_env(environment(aws, emulator))
        steps.run(f"sam build (x86_64, SAM CLI {sam.version()})", sam.build)
        start_lambda = steps.run(
            "sam local start-lambda (warm containers)",
            lambda: stack.enter_context(sam.serve("start-lambda", lambda_port, "--warm-containers", "LAZY")),
        )
        checks = Checks(aws, sam, emulator, start_lambda)
        steps.run("sam local invoke GenerateChunkFunction, SweeperFunction", checks.chunk_then_sweeper)
        steps.run("sam local invoke FinalizeFunction", checks.chunk_then_finalize)
        steps.run("sam local invoke DropFolderFunction (+ its job's execution)", checks.drop_folder)
        steps.run("sam local invoke ApiFunction POST (+ its job's execution)", checks.api_post)
        steps.run("sam local invoke BatchDropFolder, BatchSplit, BatchOutput (+ the batch)", checks.batch)
        steps.run("the other events of events/ through start-lambda", checks.other_events)
        api = steps.run("sam local start-api", lambda: stack.enter_context(sam.serve("start-api", api_port)))
        steps.run(
            "start-api: a multi-chunk job through Step Functions + start-lambda, and the API's answers",
            lambda: checks.api(api, answer_tokens=WORKFLOW_ANSWER, cap=WORKFLOW_CAP),
        )
    table = steps.table()
    (work / "times.txt").write_text(table + "\n", encoding="utf-8")
    print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sam", required=True, help="the SAM CLI setup.sh installed (its venv's bin/sam)")
    parser.add_argument("--py313", required=True, help="a python3.13 (sam build's python workflow needs it)")
    parser.add_argument("--token-delay", type=float, default=0.002, help="the emulator's seconds per token")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (SamFailed, CheckFailed, TimeoutError, RuntimeError) as exc:
        print(f"sam-local: FAILED: {exc}  (logs: .aws-sam/samlocal/logs/)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
