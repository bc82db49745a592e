"""The ``longform`` command line: the parser assembled from the command modules, and ``main``.

Each command lives in ``longform.commands`` (one module a command group, its parser beside its
handler); the exit codes are ``longform_core.job_status``'s (``commands/common.py`` explains them).
"""

from __future__ import annotations

import argparse

from longform_core.job_status import EXIT_INTERRUPTED, EXIT_USAGE

from longform.commands import batch, drop, emulator, inspect, remote, run, serve
from longform.commands.arguments import Parser
from longform.commands.common import EXIT_CODES, UsageError, fail

# the order of `longform --help`
COMMANDS = (run, inspect, serve, drop, remote, batch, emulator)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("longform")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="longform",
        description="Durable long LLM generations past the per-request output cap (response continuation).",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"longform {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        if getattr(args, "verbose", False):
            raise
        return fail(f"{type(exc).__name__}: {exc} (--verbose shows the traceback)")
    return result


if __name__ == "__main__":
    raise SystemExit(main())
