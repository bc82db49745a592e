"""``longform batch FILE.jsonl``: a batch of long generations, locally, through the real batch workflow.

The work is in ``longform.local.batch_runner``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from longform_core.job_status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

from .common import UsageError, check_base_url


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    batch = sub.add_parser(
        "batch",
        help="run a JSONL batch locally: every line a full continuation job, the real batch workflow",
        description=(
            'Runs FILE.jsonl (OpenAI Batch input lines, or one {"custom_id", "prompt"} per line) through '
            "statemachine/batch.asl.json under moto's Step Functions interpreter: a Distributed Map runs "
            "each line as a generation job, at most --max-concurrency at once. The output is OpenAI Batch "
            "output lines in input order. Interrupted (Ctrl-C), it keeps the lines that ended; the same "
            "command resumes. The provider is the built-in emulator unless --base-url is given or the API "
            "key variable (DEEPINFRA_API_KEY by default) is set."
        ),
    )
    batch.add_argument("file", help="the batch: one JSON request per line")
    batch.add_argument("--out", help="where to write the output (default out/NAME.jsonl)")
    batch.add_argument(
        "--max-concurrency",
        type=int,
        help="lines (provider requests) at once (default: BatchMaxConcurrency, 150)",
    )
    batch.add_argument(
        "--json", action="store_true", help="print the batch summary as the last line on stdout"
    )
    batch.add_argument("--no-resume", action="store_true", help="ignore a checkpoint of an earlier run")
    batch.add_argument("--emulator", action="store_true", help="the built-in emulator, whatever else is set")
    batch.add_argument("--base-url", help="an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    batch.add_argument(
        "--api-key-env",
        help="the environment variable holding the API key for --base-url (default: none for another "
        "server; DEEPINFRA_API_KEY, sent only to DeepInfra)",
    )
    batch.add_argument("--model", help="the model of every line that names none")
    batch.add_argument(
        "--max-tokens-per-request", type=int, help="per-request output cap of lines that set none"
    )
    batch.add_argument("--context-length", type=int, help="the model's context length, when known")
    batch.add_argument("--emulator-token-delay", type=float, help="emulator: seconds per token (slow model)")
    batch.add_argument(
        "--state-dir",
        metavar="DIR",
        help="keep the lines' jobs in DIR (longform list --state-dir DIR shows them; default: in memory)",
    )
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.add_argument("--verbose", action="store_true", help="show the handlers' INFO logs on stderr")
    batch.set_defaults(func=_cmd_batch)


def _cmd_batch(args: argparse.Namespace) -> int:
    from longform_core.errors import RequestInvalid

    from longform.local.batch_runner import BatchRunOptions, print_summary, run_batch
    from longform.local.providers import ProviderChoiceError
    from longform.local.state import StateDirBusy

    try:
        check_base_url(args.base_url)
    except UsageError as exc:
        sys.stderr.write(f"longform: {exc}\n")
        return EXIT_USAGE
    path = Path(args.file)
    if not path.is_file():
        sys.stderr.write(f"longform: no such file: {path}\n")
        return EXIT_USAGE
    options = BatchRunOptions(
        file=path,
        out=Path(args.out) if args.out else None,
        max_concurrency=args.max_concurrency,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        model=args.model,
        max_tokens_per_request=args.max_tokens_per_request,
        context_length=args.context_length,
        emulator=args.emulator,
        emulator_settings={"token_delay": args.emulator_token_delay} if args.emulator_token_delay else {},
        resume=not args.no_resume,
        verbose=args.verbose,
        progress=not args.quiet,
        state_dir=Path(args.state_dir) if args.state_dir else None,
    )
    if args.max_concurrency is not None and args.max_concurrency < 1:
        sys.stderr.write("longform: --max-concurrency must be at least 1\n")
        return EXIT_USAGE
    restore_signals = None
    if threading.current_thread() is threading.main_thread():
        from longform.local.stopping import raise_on_signals

        # a stop ends the process in time; the lines that ended are in the checkpoint already
        restore_signals = raise_on_signals(EXIT_INTERRUPTED)
    try:
        summary = run_batch(options)
    except RequestInvalid as exc:
        sys.stderr.write(
            f"longform: the batch is invalid ({len(exc.problems)} problem(s)); nothing started:\n"
        )
        for problem in exc.problems:
            sys.stderr.write(f"  - {problem.field}: {problem.message}\n")
        if args.json:
            print(json.dumps({"status": "invalid", **exc.to_dict()}))
        return EXIT_USAGE
    except ProviderChoiceError as exc:
        sys.stderr.write(f"longform: {exc}\n")
        return exc.exit_code
    except StateDirBusy as exc:
        sys.stderr.write(f"longform: {exc}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("longform: stopped; run the same command again to resume\n")
        return EXIT_INTERRUPTED
    finally:
        if restore_signals is not None:
            restore_signals()
    print_summary(summary, sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(summary.to_json(), default=str))
    ok = summary.status == "completed" and not summary.counts.get("failed")
    return EXIT_OK if ok else EXIT_FAILED
