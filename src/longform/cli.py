"""The ``longform`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SUCCESS_STATUSES = {"succeeded", "context_exhausted"}


def _request_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.request:
        try:
            data = json.loads(Path(args.request).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"longform: cannot read request file {args.request}: {exc}") from exc
        if not isinstance(data, dict):
            raise SystemExit(f"longform: {args.request} must hold a JSON object")
    else:
        data = {"prompt": args.prompt}
    overrides = {
        "model": args.model,
        "max_tokens_per_request": args.max_tokens_per_request,
        "context_length": args.context_length,
        "max_output_tokens": args.max_output_tokens,
        "max_chunks": args.max_chunks,
        "temperature": args.temperature,
        "seed": args.seed,
    }
    data.update({k: v for k, v in overrides.items() if v is not None})
    return data


def _cmd_run(args: argparse.Namespace) -> int:
    from longform_core.errors import RequestInvalid

    from longform.local.runner import RunOptions, print_summary, run, summary_json

    raw = _request_from_args(args)
    options = RunOptions(
        request=raw,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        max_tokens_per_request=args.max_tokens_per_request,
        context_length=args.context_length,
        out=Path(args.out) if args.out else None,
        chunk_timeout=args.chunk_timeout,
        deadline_margin=args.deadline_margin,
        emulator={"token_delay": args.emulator_token_delay} if args.emulator_token_delay else {},
        verbose=args.verbose,
    )
    try:
        summary = run(options)
    except RequestInvalid as exc:
        sys.stderr.write("longform: the request is invalid:\n")
        for problem in exc.problems:
            sys.stderr.write(f"  - {problem.field}: {problem.message}\n")
        if args.json:
            print(json.dumps({"status": "invalid", **exc.to_dict()}))
        return 2
    print_summary(summary, sys.stderr if args.json else sys.stdout)
    if args.json:
        print(summary_json(summary))
    return 0 if summary.status in SUCCESS_STATUSES else 1


def _cmd_emulator(args: argparse.Namespace) -> int:
    from longform.emulator.cli import run_from_args

    return run_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="longform",
        description="Durable long LLM generations past the per-request output cap (response continuation).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run one job end to end locally: the real state machine under moto, handlers in-process",
        description=(
            "Runs a job through statemachine/generation.asl.json under moto's Step Functions interpreter. "
            "The provider is the built-in emulator, unless --base-url is given or the API key variable "
            "(DEEPINFRA_API_KEY by default) is set, which selects real DeepInfra."
        ),
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the prompt text")
    source.add_argument("--request", help="a JSON request file (the public request format)")
    run.add_argument("--model")
    run.add_argument("--base-url", help="an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    run.add_argument(
        "--api-key-env", default="DEEPINFRA_API_KEY", help="environment variable holding the API key"
    )
    run.add_argument("--max-tokens-per-request", type=int, help="per-request output cap (default 16384)")
    run.add_argument("--context-length", type=int, help="the model's context length, when known")
    run.add_argument("--max-output-tokens", type=int, help="budget for the whole job")
    run.add_argument("--max-chunks", type=int)
    run.add_argument("--temperature", type=float)
    run.add_argument("--seed", type=int)
    run.add_argument("--out", help="where to write the output (default out/<job id>.md)")
    run.add_argument("--json", action="store_true", help="print a JSON summary as the last line on stdout")
    run.add_argument("--chunk-timeout", type=float, help="override the chunk Lambda's timeout (seconds)")
    run.add_argument(
        "--deadline-margin", type=float, default=30.0, help="seconds kept free before the timeout"
    )
    run.add_argument("--emulator-token-delay", type=float, help="emulator: seconds per token (slow model)")
    run.add_argument("--verbose", action="store_true", help="show the handlers' INFO logs on stderr")
    run.set_defaults(func=_cmd_run)

    emu = sub.add_parser("emulator", help="run the DeepInfra-compatible emulator on loopback")
    from longform.emulator.cli import add_arguments

    add_arguments(emu)
    emu.set_defaults(func=_cmd_emulator)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
