"""Command line for the emulator (``longform emulator`` / ``python -m longform.emulator``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, get_args

from longform.emulator.model import ReasoningMode
from longform.emulator.server import EmulatorServer
from longform.emulator.settings import (
    ContextErrorStyle,
    EchoPrefillMode,
    EmulatorSettings,
    ErrorBodyStyle,
    OverflowMode,
    PrefillRefusal,
    PrefillStyle,
    UsageChunkMode,
)

# argparse destination -> EmulatorSettings field (only options given on the command line apply)
_SETTING_OPTIONS = (
    "cap",
    "context_length",
    "answer_tokens",
    "reasoning_tokens",
    "reasoning",
    "token_delay",
    "overflow",
    "silent_stream_tokens",
    "context_error_style",
    "error_body",
    "usage_chunk",
    "keepalive_every",
    "prefill_style",
    "prefill_refusal",
    "reject_trailing_whitespace_prefill",
    "continue_overlap_chars",
    "continue_preamble",
    "continue_drop_seam_space",
    "echo_prefill",
    "api_key",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port (default: %(default)s; 0 = any free port)"
    )
    _add_generation_options(parser)
    _add_reply_options(parser)
    _add_prefill_options(parser)


def _add_generation_options(parser: argparse.ArgumentParser) -> None:
    """What is generated: lengths, reasoning, speed."""
    defaults = EmulatorSettings()
    parser.add_argument("--cap", type=int, help=f"per-request output cap in tokens (default: {defaults.cap})")
    parser.add_argument(
        "--context-length",
        type=int,
        help=f"context window in tokens, 0 = unlimited (default: {defaults.context_length})",
    )
    parser.add_argument(
        "--answer-tokens",
        type=int,
        help=f"answer length when the prompt does not ask for one (default: {defaults.answer_tokens})",
    )
    parser.add_argument(
        "--reasoning-tokens",
        type=int,
        help=f"reasoning length when the prompt does not ask for one (default: {defaults.reasoning_tokens})",
    )
    parser.add_argument(
        "--reasoning",
        choices=get_args(ReasoningMode),
        help="reasoning style; auto = by model name: *think* inline, *reason* field (default: auto)",
    )
    parser.add_argument("--token-delay", type=float, help="seconds per streamed token (default: 0)")


def _add_reply_options(parser: argparse.ArgumentParser) -> None:
    """How the server answers: overflow, errors, streaming, auth, logging."""
    parser.add_argument(
        "--overflow",
        choices=get_args(OverflowMode),
        help=(
            "a request over the context: reject with 400, clamp max_tokens, llamacpp (400 only when "
            "the prompt fills the context, else stop with 'length' when it is full), silent_stream "
            "(streamed: 200 and a stream that ends without finish_reason or [DONE]) (default: reject)"
        ),
    )
    parser.add_argument(
        "--silent-stream-tokens",
        type=int,
        help="--overflow silent_stream: token deltas sent before the stream ends (default: 0)",
    )
    parser.add_argument(
        "--context-error-style",
        choices=get_args(ContextErrorStyle),
        help="wording of the context 400 (default: requested)",
    )
    parser.add_argument(
        "--error-body", choices=get_args(ErrorBodyStyle), help="error JSON style (default: nested)"
    )
    parser.add_argument(
        "--usage-chunk",
        choices=get_args(UsageChunkMode),
        help="usage in the final chunk (last, DeepInfra) or a usage-only chunk (separate, OpenAI)",
    )
    parser.add_argument(
        "--keepalive-every", type=int, help="SSE keep-alive comment every N tokens (default: 0)"
    )
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--verbose", action="store_true", help="log every request")


def _add_prefill_options(parser: argparse.ArgumentParser) -> None:
    """A trailing assistant message (a prefill) and a "continue message" conversation."""
    parser.add_argument(
        "--prefill-style",
        choices=get_args(PrefillStyle),
        help="how a trailing assistant message is continued (default: assistant)",
    )
    parser.add_argument(
        "--prefill-refusal",
        choices=get_args(PrefillRefusal),
        help="--prefill-style reject: whose 400 wording (default: anthropic)",
    )
    parser.add_argument(
        "--reject-trailing-whitespace-prefill",
        action="store_true",
        default=None,
        help="answer 400 (Anthropic's wording) to a continued prefill that ends in whitespace",
    )
    parser.add_argument(
        "--continue-overlap-chars",
        type=int,
        help=(
            "an assistant message then a user message: the reply first repeats the last N "
            "characters of the answer so far (default: 0)"
        ),
    )
    parser.add_argument(
        "--continue-preamble",
        help=(
            "an assistant message then a user message: text the reply starts with, e.g. "
            "$'Sure, continuing:\\n\\n' in a POSIX shell (default: none)"
        ),
    )
    parser.add_argument(
        "--continue-drop-seam-space",
        action="store_true",
        default=None,
        help="an assistant message then a user message: drop the continuation's leading whitespace",
    )
    parser.add_argument(
        "--echo-prefill",
        choices=get_args(EchoPrefillMode),
        help=(
            "send a continued prefill back at the start of the reply, as llama-server: merged with "
            "the first new delta, or split into its own deltas (default: off)"
        ),
    )


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    """EmulatorSettings from parsed options (options not given keep their defaults)."""
    fields: dict[str, Any] = {}
    for name in _SETTING_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    if getattr(args, "verbose", False):
        fields["verbose"] = True
    return EmulatorSettings().updated(**fields)


def run_from_args(args: argparse.Namespace) -> int:
    """Run the emulator in the foreground until Ctrl-C; returns an exit status."""
    try:
        settings = settings_from_args(args)
    except ValueError as error:
        print(f"longform emulator: {error}", file=sys.stderr)
        return 2
    server = EmulatorServer(settings, host=args.host, port=args.port)
    try:
        server.start()
    except OSError as error:
        print(f"longform emulator: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    context = settings.context_length if settings.context_length else "unlimited"
    print(
        f"longform emulator listening on http://{args.host}:{server.port}/v1/openai "
        f"(cap {settings.cap}, context {context})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m longform.emulator",
        description="A deterministic DeepInfra-compatible LLM server for tests, benchmarks and local runs.",
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
