"""``longform run`` and ``longform resume``: one local job end to end, Ctrl-C handled."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longform_core.job_status import EXIT_INTERRUPTED, EXIT_USAGE

from .arguments import add_output_arguments, add_provider_arguments, add_request_arguments, add_state_argument
from .common import (
    EXIT_CODES,
    UsageError,
    fail,
    print_invalid,
    provider_options,
    request_from_args,
    state_dir_of,
)

if TYPE_CHECKING:
    from types import FrameType

    from longform.local.runner import RunOptions, RunSummary


def _out_path(value: str | None) -> Path | None:
    if value is None:
        return None
    out = Path(value)
    if value != "-" and out.is_dir():
        raise UsageError(f"--out {value} is a directory; give a file name, e.g. --out {out / 'answer.md'}")
    if value != "-" and out.suffix == ".json":
        raise UsageError(
            f"--out {value} would be overwritten by the job's own result file ({out.name}); "
            f"use --out {out.with_suffix('.md')}"
        )
    return out


def _run_options(args: argparse.Namespace, request: dict[str, Any]) -> RunOptions:
    from longform.local.runner import RunOptions
    from longform.local.terminal import choose_mode

    out = _out_path(args.out)
    to_stdout = out is not None and str(out) == "-"
    return RunOptions(
        request=request,
        provider=provider_options(args),
        max_tokens_per_request=args.max_tokens_per_request,
        context_length=args.context_length,
        out=out,
        chunk_timeout=args.chunk_timeout,
        deadline_margin=args.deadline_margin,
        verbose=args.verbose,
        state_dir=state_dir_of(args),
        mode=choose_mode(stream=args.stream, quiet=args.quiet, text_to_stdout=not (args.json or to_stdout)),
        stream=False if args.provider_stream is False else None,
    )


def _finish_run(args: argparse.Namespace, call: Callable[[], RunSummary]) -> int:
    from longform_core.errors import RequestInvalid

    from longform.local.providers import ProviderChoiceError
    from longform.local.runner import Interrupted, JobNotResumable
    from longform.local.state import StateDirBusy

    try:
        summary = call()
    except RequestInvalid as exc:
        return print_invalid(exc, args.json)
    except ProviderChoiceError as exc:
        return fail(str(exc), exc.exit_code)
    except StateDirBusy as exc:
        return fail(str(exc))
    except JobNotResumable as exc:
        return fail(str(exc), EXIT_USAGE)
    except Interrupted as stop:  # on_interrupt normally exits first
        _report(args, stop.summary)
        return EXIT_INTERRUPTED
    _report(args, summary)
    return int(summary.exit_code)


def _report(args: argparse.Namespace, summary: RunSummary) -> None:
    from longform.local.runner import print_summary, summary_json

    to_stdout = args.out == "-"
    if not args.quiet:
        print_summary(summary, sys.stderr if (args.json or to_stdout) else sys.stdout)
    if args.json:
        print(summary_json(summary))


def _with_interrupts(args: argparse.Namespace, options: RunOptions, call: Callable[[], RunSummary]) -> int:
    """``_finish_run(call)`` with Ctrl-C handled (``_handle_interrupts``), the previous SIGINT
    handler restored after (in-process callers, tests, keep theirs)."""
    if threading.current_thread() is not threading.main_thread():
        return _finish_run(args, call)
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    _handle_interrupts(args, options)
    try:
        return _finish_run(args, call)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def _handle_interrupts(args: argparse.Namespace, options: RunOptions) -> None:
    """The first Ctrl-C stops following the job: what is committed (and the draft) is written and
    the summary printed, then the process exits 130 without waiting for the chunk in flight (its
    text is in its draft; nothing half-done is committed). A second Ctrl-C exits at once."""

    def first(signum: int, frame: FrameType | None) -> None:
        from longform.local.stopping import arm_exit

        signal.signal(signal.SIGINT, lambda *_: os._exit(EXIT_INTERRUPTED))
        signal.signal(signal.SIGTERM, lambda *_: os._exit(EXIT_INTERRUPTED))
        arm_exit(EXIT_INTERRUPTED)  # whatever the summary's reads meet, the process ends in time
        options.stop.set()

    def exit_now(summary: RunSummary) -> None:
        _report(args, summary)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)  # the executions' threads are abandoned: what is on disk is whole

    options.on_interrupt = exit_now
    signal.signal(signal.SIGINT, first)
    signal.signal(signal.SIGTERM, first)  # kill, systemd, a CI timeout: the same as Ctrl-C


def _cmd_run(args: argparse.Namespace) -> int:
    from longform.local.runner import run

    if args.out is None and not (args.json or args.quiet) and not sys.stdout.isatty():
        args.out = "-"  # `longform run ... > answer.md`: the answer on stdout (as llm), the rest on stderr
    options = _run_options(args, request_from_args(args))
    return _with_interrupts(args, options, lambda: run(options))


def _cmd_resume(args: argparse.Namespace) -> int:
    from longform.local.runner import resume

    options = _run_options(args, {})
    return _with_interrupts(args, options, lambda: resume(args.job_id, options))


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    run = sub.add_parser(
        "run",
        help="run one job end to end locally: the real state machine under moto, handlers in-process",
        description=(
            "Runs a job through statemachine/generation.asl.json under moto's Step Functions interpreter, "
            "shows the answer as it is generated and keeps the job in --state-dir, so Ctrl-C can be "
            "followed by `longform resume ID`."
        ),
        epilog=EXIT_CODES,
    )
    add_request_arguments(run)
    add_provider_arguments(run)
    add_output_arguments(run)
    add_state_argument(run)
    run.set_defaults(func=_cmd_run)

    resume = sub.add_parser(
        "resume",
        help="continue a local job that did not end, from its last commit or draft",
        description="Continues a job of --state-dir through the same state machine. Provider options "
        "default to those the job was started with.",
        epilog=EXIT_CODES,
    )
    resume.add_argument("job_id", metavar="ID")
    resume.add_argument(
        "--max-tokens-per-request", type=int, metavar="N", help="per-request output cap (default: as started)"
    )
    resume.add_argument(
        "--context-length", type=int, metavar="N", help="the model's context length (default: as started)"
    )
    resume.add_argument("--model", help="the model (default: as started)")
    resume.add_argument(
        "--no-provider-stream",
        dest="provider_stream",
        action="store_false",
        default=None,
        help="ask the provider without streaming",
    )
    add_provider_arguments(resume)
    add_output_arguments(resume)
    add_state_argument(resume)
    resume.set_defaults(func=_cmd_resume)
