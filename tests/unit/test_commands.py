"""The command modules (``longform/commands``): each defines its commands' parsers, and every option
it documents parses into its handler's arguments."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from longform import cli
from longform.commands.arguments import Parser

POSITIONAL_VALUES = {"job_id": "job-1", "file": "batch.jsonl"}


def _commands(module: Any) -> dict[str, argparse.ArgumentParser]:
    parser = Parser(prog="longform")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    module.add_parser(sub)
    return dict(sub.choices)


CASES = [
    (module.__name__.rsplit(".", 1)[-1], name, command)
    for module in cli.COMMANDS
    for name, command in _commands(module).items()
]


def _value(action: argparse.Action) -> tuple[list[str], Any]:
    """A value to give ``action`` on the command line, and what the handler should then see."""
    if action.nargs == 0:
        if isinstance(action, argparse.BooleanOptionalAction):
            return [], True
        return [], action.const
    if action.choices:
        choice = next(iter(action.choices))
        return [str(choice)], choice
    if action.type in (int, float):
        return ["3"], action.type("3")
    if action.type is None and isinstance(action, argparse._AppendAction):
        return ["some=value"], ["some=value"]  # a repeatable KEY=VALUE (--provider-param)
    if action.type is None:
        return ["some-value"], "some-value"
    converter: Any = action.type
    return ["1"], converter("1")


def test_the_modules_register_every_command_once_in_the_help_order() -> None:
    names = [name for _, name, _ in CASES]
    assert names == [
        "run", "resume", "list", "show", "serve", "drop", "submit", "status", "output", "cancel",
        "batch", "emulator",
    ]  # fmt: skip
    top = cli.build_parser()
    subparsers = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    assert list(subparsers.choices) == names


@pytest.mark.parametrize(("module", "name", "command"), CASES, ids=[f"{m}:{n}" for m, n, _ in CASES])
def test_every_documented_option_parses(module: str, name: str, command: argparse.ArgumentParser) -> None:
    positionals = [POSITIONAL_VALUES[a.dest] for a in command._actions if not a.option_strings]
    handler = command.parse_args(positionals).func
    assert handler.__module__ == f"longform.commands.{module}" or module == "emulator"
    checked = 0
    for action in command._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, f"{name} {action.option_strings} has no help"
        for option in action.option_strings:
            words, expected = _value(action)
            if option.startswith("--no-") and isinstance(action, argparse.BooleanOptionalAction):
                expected = False
            args = command.parse_args([*positionals, option, *words])
            assert getattr(args, action.dest) == expected, (name, option)
            checked += 1
    assert checked > 0


def test_a_mistyped_option_gets_a_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--emulator", "--promt", "x"])
    assert exit_.value.code == 2
    assert "--promt (did you mean --prompt?)" in capsys.readouterr().err
