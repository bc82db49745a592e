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
        "stream": False if args.no_stream else None,
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


def _cmd_serve(args: argparse.Namespace) -> int:
    import time

    from longform.local.aws import quiet_moto_logs
    from longform.local.cloud import CloudConfig, LocalCloud
    from longform.local.runner import RunOptions, provider_for
    from longform.local.serve import LocalApi

    options = RunOptions(request={}, base_url=args.base_url, api_key_env=args.api_key_env)
    with provider_for(options) as provider, quiet_moto_logs():
        config = CloudConfig(
            provider_base_url=provider.base_url,
            model=provider.model,
            api_key=provider.api_key,
            log_level="INFO" if args.verbose else "WARNING",
            # the local bucket exists only inside this process: a presigned URL would point nowhere,
            # so outputs are always served inline locally
            extra_env={"OUTPUT_INLINE_MAX_BYTES": str(1 << 30)},
        )
        with LocalCloud(config) as cloud, LocalApi(cloud, host=args.host, port=args.port) as api:
            example = json.dumps({"prompt": "Write a 20,000-word story"})
            print(f"longform API on {api.url}/generations (local, no auth)")
            print(f"  model {provider.model} on {provider.label}")
            print(f"  try: curl -s -X POST {api.url}/generations -d '{example}'")
            sys.stdout.flush()
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0


def _cmd_drop(args: argparse.Namespace) -> int:
    """The S3 drop folder, locally: upload FILE as requests/{name}{ext}, wait, fetch results/{name}.*."""
    from longform.local.aws import quiet_moto_logs
    from longform.local.cloud import BUCKET, CloudConfig, LocalCloud
    from longform.local.runner import RunOptions, provider_for

    path = Path(args.file)
    if path.suffix not in (".json", ".txt", ".md"):
        sys.stderr.write("longform: the drop folder takes .json requests and .txt/.md prompts\n")
        return 2
    name = args.name or path.stem
    options = RunOptions(request={}, base_url=args.base_url, api_key_env=args.api_key_env)
    with provider_for(options) as provider, quiet_moto_logs():
        config = CloudConfig(
            provider_base_url=provider.base_url, model=provider.model, api_key=provider.api_key
        )
        with LocalCloud(config) as cloud:
            outcomes = cloud.drop(name, path.read_bytes(), suffix=path.suffix)
            for outcome in outcomes:
                if outcome.get("job_id"):
                    sys.stderr.write(
                        f"longform: requests/{name}{path.suffix} started job {outcome['job_id']}\n"
                    )
                    cloud.wait(outcome["job_id"], timeout=24 * 3600)
            cloud.wait_async()
            out_dir = Path(args.out)
            out_dir.mkdir(parents=True, exist_ok=True)
            listing = cloud.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"results/{name}.")
            written = []
            for obj in listing.get("Contents", []):
                target = out_dir / obj["Key"].rsplit("/", 1)[-1]
                target.write_bytes(cloud.s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
                written.append(f"{obj['Key']} -> {target}")
    print("\n".join(written) if written else f"no results/{name}.* written")
    return 0 if written and not any(w.startswith(f"results/{name}.error") for w in written) else 1


def _client(args: argparse.Namespace) -> Any:
    import os

    from longform.client import ApiClient

    key = os.environ.get(args.api_key_env_name) if args.api_key_env_name else None
    return ApiClient(args.api, api_key=key)


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _api_call(fn: Any) -> int:
    from longform.client import ApiError

    try:
        fn()
    except ApiError as exc:
        sys.stderr.write(f"longform: {exc}\n")
        return 1
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    client = _client(args)
    raw = _request_from_args(args)
    return _api_call(lambda: _print(client.submit(raw, idempotency_key=args.idempotency_key)))


def _cmd_status(args: argparse.Namespace) -> int:
    client = _client(args)
    return _api_call(lambda: _print(client.status(args.job_id)))


def _cmd_output(args: argparse.Namespace) -> int:
    client = _client(args)

    def show() -> None:
        if args.follow:
            for text in client.follow(args.job_id, poll=args.poll, offset=args.offset):
                sys.stdout.write(text)
                sys.stdout.flush()
            return
        page = client.output(args.job_id, offset=args.offset)
        if page.get("text") is None and page.get("url"):
            import httpx

            sys.stdout.write(httpx.get(page["url"], timeout=120).text[args.offset :])
        else:
            sys.stdout.write(page.get("text") or "")

    return _api_call(show)


def _cmd_cancel(args: argparse.Namespace) -> int:
    client = _client(args)
    return _api_call(lambda: _print(client.cancel(args.job_id)))


def _cmd_emulator(args: argparse.Namespace) -> int:
    from longform.emulator.cli import run_from_args

    return run_from_args(args)


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """The request: --prompt or --request FILE, and the fields a flag may override (_request_from_args)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the prompt text")
    source.add_argument("--request", help="a JSON request file (the public request format)")
    parser.add_argument("--model")
    parser.add_argument("--max-tokens-per-request", type=int, help="per-request output cap (default 16384)")
    parser.add_argument("--context-length", type=int, help="the model's context length, when known")
    parser.add_argument("--max-output-tokens", type=int, help="budget for the whole job")
    parser.add_argument("--max-chunks", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--no-stream",
        action="store_true",
        help="ask the provider without streaming (for gateways that buffer SSE); the deadline is then "
        "only a read timeout",
    )


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
    add_request_arguments(run)
    run.add_argument("--base-url", help="an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    run.add_argument(
        "--api-key-env", default="DEEPINFRA_API_KEY", help="environment variable holding the API key"
    )
    run.add_argument("--out", help="where to write the output (default out/<job id>.md)")
    run.add_argument("--json", action="store_true", help="print a JSON summary as the last line on stdout")
    run.add_argument("--chunk-timeout", type=float, help="override the chunk Lambda's timeout (seconds)")
    run.add_argument(
        "--deadline-margin", type=float, default=30.0, help="seconds kept free before the timeout"
    )
    run.add_argument("--emulator-token-delay", type=float, help="emulator: seconds per token (slow model)")
    run.add_argument("--verbose", action="store_true", help="show the handlers' INFO logs on stderr")
    run.set_defaults(func=_cmd_run)

    serve = sub.add_parser(
        "serve",
        help="serve the HTTP API locally (no Docker): the API function in-process on the local moto cloud",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--base-url", help="an OpenAI-compatible provider instead of the emulator")
    serve.add_argument("--api-key-env", default="DEEPINFRA_API_KEY")
    serve.add_argument("--verbose", action="store_true")
    serve.set_defaults(func=_cmd_serve)

    drop = sub.add_parser(
        "drop",
        help="the S3 drop folder, locally: upload FILE as requests/NAME, wait, copy results/NAME.* to --out",
    )
    drop.add_argument("file", help="a .json request, or a .txt/.md prompt")
    drop.add_argument("--name", help="the name under requests/ (default: the file name without extension)")
    drop.add_argument(
        "--out", default="out/results", help="where to copy results/NAME.* (default out/results)"
    )
    drop.add_argument("--base-url", help="an OpenAI-compatible provider instead of the emulator")
    drop.add_argument("--api-key-env", default="DEEPINFRA_API_KEY")
    drop.set_defaults(func=_cmd_drop)

    def client_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--api",
            help="the API base URL (default $LONGFORM_API_URL or http://127.0.0.1:8787); "
            "an execute-api URL is signed with SigV4 using your AWS credentials",
        )
        p.add_argument(
            "--api-key-env-name",
            metavar="VAR",
            help="send the API key in this variable as x-api-key instead of SigV4",
        )

    submit = sub.add_parser("submit", help="submit a job to a deployed or local API")
    client_args(submit)
    add_request_arguments(submit)
    submit.add_argument("--idempotency-key")
    submit.set_defaults(func=_cmd_submit)

    status = sub.add_parser("status", help="status and progress of a job")
    client_args(status)
    status.add_argument("job_id")
    status.set_defaults(func=_cmd_status)

    output = sub.add_parser("output", help="the output of a job so far")
    client_args(output)
    output.add_argument("job_id")
    output.add_argument("--offset", type=int, default=0)
    output.add_argument(
        "--follow", action="store_true", help="keep printing as the output grows, until the job ends"
    )
    output.add_argument("--poll", type=float, default=1.0)
    output.set_defaults(func=_cmd_output)

    cancel = sub.add_parser("cancel", help="cancel a job (its partial output is kept)")
    client_args(cancel)
    cancel.add_argument("job_id")
    cancel.set_defaults(func=_cmd_cancel)

    from longform.batch_cli import add_batch_command

    add_batch_command(sub)

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
