"""The parser class of every command and the option groups several commands share."""

from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any, NoReturn

from longform_core.job_status import EXIT_USAGE


class DefaultsHelp(argparse.HelpFormatter):
    """Every option's default in its help, unless the help already says it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        no_default = action.default in (None, False, argparse.SUPPRESS)
        if "default" in text or no_default or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse, with "did you mean" for a mistyped option and every default in the help."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", DefaultsHelp)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if " not allowed with argument " in message:  # --prompt with --prompt-file: one line
            self.exit(EXIT_USAGE, f"{self.prog}: error: {message.replace('argument ', '')}\n")
        if message.startswith("unrecognized arguments:"):
            known = [s for a in self._actions for s in a.option_strings]
            for sub in self._subparsers._group_actions if self._subparsers else []:
                for parser in getattr(sub, "choices", {}).values():
                    known += [s for a in parser._actions for s in a.option_strings]
            wrong = [w for w in message.split(":", 1)[1].split() if w.startswith("-")]
            hints = []
            for w in wrong:
                option = w.split("=")[0]
                if option in known:  # another command's option: a did-you-mean would name it back
                    hints.append(f"{w} (not an option of this command; `longform COMMAND --help` lists them)")
                elif m := difflib.get_close_matches(option, known, 1):
                    hints.append(f"{w} (did you mean {m[0]}?)")
            if hints:
                message = "unrecognized arguments: " + ", ".join(hints)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """The request: --prompt/--prompt-file/--request, and the fields a flag may override."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--prompt", metavar="TEXT", help="the prompt text; - reads it from stdin")
    source.add_argument("--prompt-file", metavar="FILE", help="read the prompt from FILE")
    source.add_argument("--request", metavar="FILE", help="a JSON request file (the public request format)")
    system = parser.add_mutually_exclusive_group()
    system.add_argument("--system", metavar="TEXT", help="a system prompt (sent before the prompt)")
    system.add_argument("--system-file", metavar="FILE", help="read the system prompt from FILE")
    parser.add_argument("--model", help="the model (default: the provider's; see --base-url)")
    parser.add_argument(
        "--max-tokens-per-request", type=int, metavar="N", help="per-request output cap (default 16384)"
    )
    parser.add_argument(
        "--context-length", type=int, metavar="N", help="the model's context length, when known"
    )
    add_budget_arguments(parser)
    parser.add_argument("--temperature", type=float, help="sampling temperature")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument(
        "--provider-param",
        dest="provider_params",
        action="append",
        metavar="KEY=VALUE",
        help="a field sent to the provider as it is in every request (VALUE as JSON, else text), e.g. "
        "repeat_penalty=1.0 for llama.cpp's servers; repeatable",
    )
    parser.add_argument(
        "--no-provider-stream",
        dest="provider_stream",
        action="store_false",
        default=None,
        help="ask the provider without streaming (for gateways that buffer SSE); the deadline is then "
        "only a read timeout",
    )


def add_budget_arguments(parser: argparse.ArgumentParser, *, extend: bool = False) -> None:
    """The job's budgets (``resume``: new, larger ones extend an incomplete job a budget stopped)."""
    verb = "extend an incomplete job to" if extend else "of the whole job"
    parser.add_argument("--max-output-tokens", type=int, metavar="N", help=f"token budget: {verb} N tokens")
    parser.add_argument("--max-chunks", type=int, metavar="N", help=f"chunk budget: {verb} N chunks")
    parser.add_argument(
        "--max-cost",
        dest="max_cost_usd",
        type=float,
        metavar="USD",
        help=f"cost budget: {verb} USD estimated",
    )


def add_provider_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "provider (default: DeepInfra when the API key variable is set, else the emulator)"
    )
    group.add_argument("--emulator", action="store_true", help="use the built-in emulator, whatever is set")
    group.add_argument(
        "--base-url", metavar="URL", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1"
    )
    group.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="the environment variable that holds the provider's API key (default: DEEPINFRA_API_KEY, "
        "sent only to DeepInfra; a --base-url server gets a key only when this names it)",
    )
    group.add_argument(
        "--emulator-token-delay",
        type=float,
        metavar="SECONDS",
        help="emulator: seconds per token (a slow model)",
    )


def add_state_argument(parser: argparse.ArgumentParser) -> None:
    from longform.local.state import default_state_dir

    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        default=str(default_state_dir()),
        help="where local jobs are kept (also $LONGFORM_STATE_DIR)",
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="write the answer to FILE (and FILE's .json: the result); - for stdout "
        "(default out/<job id>.md)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line on stdout")
    parser.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print the answer as it is generated (default: when stdout is a terminal)",
    )
    parser.add_argument("--quiet", action="store_true", help="neither the answer nor progress: errors only")
    parser.add_argument(
        "--chunk-timeout",
        type=float,
        metavar="SECONDS",
        help="the chunk Lambda's timeout (default: the template's)",
    )
    parser.add_argument(
        "--deadline-margin",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds kept free before the timeout",
    )
    parser.add_argument("--verbose", action="store_true", help="the handlers' INFO logs and full tracebacks")
