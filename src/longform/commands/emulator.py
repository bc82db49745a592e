"""``longform emulator``: the DeepInfra-compatible emulator on loopback."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_emulator(args: argparse.Namespace) -> int:
    from longform.emulator.cli import run_from_args

    result: int = run_from_args(args)
    return result


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    from longform.emulator.cli import add_arguments

    emu = sub.add_parser("emulator", help="run the DeepInfra-compatible emulator on loopback")
    add_arguments(emu)
    emu.set_defaults(func=_cmd_emulator)
