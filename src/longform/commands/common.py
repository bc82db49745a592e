"""What the commands share: exit codes, one-line errors, the request read from flags, the provider
options, the state directory.

Exit codes, the same for every command (``longform_core.job_status``, their one definition): 0 done
(succeeded, or context_exhausted); 1 failed or cancelled (the job, the provider, the API, a state
directory another process holds); 2 bad input or usage (checked before anything starts); 3
incomplete: longform's own rule stopped a job that was not finished, so the text is cut (a budget:
max_output_tokens, max_chunks, max_cost; or a loop guard: repetition, no_progress); 130 interrupted
(Ctrl-C or SIGTERM; the job can be resumed). ``serve`` stopped by Ctrl-C or SIGTERM exits 0: that is
how it is stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longform_core.job_status import EXIT_FAILED, EXIT_USAGE

if TYPE_CHECKING:
    from longform_core.errors import RequestInvalid

    from longform.local.providers import ProviderOptions

EXIT_CODES = (
    "exit codes: 0 done; 1 failed or cancelled; 2 bad input or usage; "
    "3 incomplete (a budget or a loop guard stopped it: the text is cut); "
    "130 interrupted (resume with `longform resume ID`)"
)


class UsageError(Exception):
    """Bad input found before anything started: one line, exit 2."""


def fail(message: str, code: int = EXIT_FAILED) -> int:
    sys.stderr.write(f"longform: {message}\n")
    return code


def read_text_arg(value: str, what: str) -> str:
    if value == "-":
        if sys.stdin.isatty():
            raise UsageError(f"{what} -: type the prompt, then Ctrl-D (or pipe it in)")
        return sys.stdin.read()
    path = Path(value)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {value}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {value}: cannot read it ({exc})") from None


def request_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.request:
        text = read_text_arg(args.request, "--request")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--request {args.request} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"--request {args.request} must hold a JSON object")
    elif args.prompt_file:
        data = {"prompt": read_text_arg(args.prompt_file, "--prompt-file")}
    elif args.prompt == "-":
        data = {"prompt": read_text_arg("-", "--prompt")}
    elif args.prompt is not None:
        data = {"prompt": args.prompt}
    else:
        raise UsageError("give the prompt: --prompt TEXT, --prompt - (stdin), --prompt-file F or --request F")
    overrides = {
        "model": getattr(args, "model", None),
        "max_tokens_per_request": args.max_tokens_per_request,
        "context_length": args.context_length,
        "max_output_tokens": args.max_output_tokens,
        "max_chunks": args.max_chunks,
        "max_cost_usd": args.max_cost_usd,
        "temperature": args.temperature,
        "seed": args.seed,
        "provider_params": provider_params(getattr(args, "provider_params", None)),
        "stream": False if getattr(args, "provider_stream", None) is False else None,
    }
    data.update({k: v for k, v in overrides.items() if v is not None})
    return with_system_prompt(data, args)


def provider_params(pairs: list[str] | None) -> dict[str, Any] | None:
    """``--provider-param KEY=VALUE`` (repeatable): VALUE read as JSON (``1.0``, ``true``), else as text."""
    if not pairs:
        return None
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--provider-param {pair!r}: give KEY=VALUE (e.g. repeat_penalty=1.0)")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def with_system_prompt(data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``--system TEXT`` / ``--system-file F``: the request as messages, the system prompt first."""
    text, file = getattr(args, "system", None), getattr(args, "system_file", None)
    if text is None and file is None:
        return data
    system = text if text is not None else read_text_arg(str(file), "--system-file")
    if "prompt" in data and "messages" not in data:
        data = dict(data)
        prompt = data.pop("prompt")
        data["messages"] = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        return data
    messages = data.get("messages")
    if isinstance(messages, list) and any(
        isinstance(m, dict) and m.get("role") == "system" for m in messages
    ):
        raise UsageError("--system: the request already has a system message; give one or the other")
    data["messages"] = [{"role": "system", "content": system}, *(messages or [])]
    return data


def print_invalid(exc: RequestInvalid, as_json: bool) -> int:
    sys.stderr.write("longform: the request is invalid:\n")
    for problem in exc.problems:
        sys.stderr.write(f"  - {problem.field}: {problem.message}\n")
    if as_json:
        print(json.dumps({"status": "invalid", **exc.to_dict()}))
    return EXIT_USAGE


def check_base_url(url: str | None) -> None:
    """A --base-url without a scheme (``localhost:8080``) is named with the fix, before anything starts."""
    if url is not None and not url.startswith(("http://", "https://")):
        raise UsageError(f"--base-url {url}: add http:// (e.g. --base-url http://{url.split('://')[-1]})")


def provider_options(args: argparse.Namespace) -> ProviderOptions:
    from longform.local.providers import ProviderOptions

    check_base_url(args.base_url)
    emulator: dict[str, Any] = {}
    if getattr(args, "emulator_token_delay", None):
        emulator["token_delay"] = args.emulator_token_delay
    return ProviderOptions(
        emulator=args.emulator,
        base_url=args.base_url,
        model=getattr(args, "model", None),
        api_key_env=args.api_key_env,
        emulator_settings=emulator,
    )


def state_dir_of(args: argparse.Namespace) -> Path:
    return Path(args.state_dir)
