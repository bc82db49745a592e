"""Every command the docs show still parses.

README.md and docs/*.md show `longform ...` and `make ...` commands, in fenced blocks and in inline
code. Each `longform` command must name a subcommand that exists and only options that subcommand's
parser accepts (``longform.cli.build_parser()``, the one parser ``main`` uses); each `make` target
must exist in the Makefile it runs. A renamed option or target fails here, not in a reader's shell.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from longform.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# how a doc invokes the CLI: the installed script, the venv's, or the emulator's module
LONGFORM = ("longform", ".venv/bin/longform")
EMULATOR_MODULE = ("python", "python3", ".venv/bin/python")
FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
# fenced blocks in these languages hold code, not shell commands
NOT_SHELL = {"python", "py", "json", "jsonl", "yaml", "yml", "toml", "http"}
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
PROMPT = re.compile(r"^\s*\$\s+")
# `<job id>`, `<id>`: a placeholder, not a redirection
PLACEHOLDER = re.compile(r"<([A-Za-z][^<>\n]*)>")
# `$(pyenv prefix 3.13.0)`: a value, one word
SUBSTITUTION = re.compile(r"\$\([^()\n]*\)")
OPTION = re.compile(r"^(--?[A-Za-z][\w-]*)")
ENDS_COMMAND = {"|", "||", "&&", ";", "&", ";;", "|&"}
MAKE_RULE = re.compile(r"^([A-Za-z0-9_.%/-]+(?:[ \t]+[A-Za-z0-9_.%/-]+)*)[ \t]*::?(?!=)")


@dataclass(frozen=True)
class Shown:
    """One command as a doc shows it: where, and its words after the program name."""

    where: str
    program: str  # "longform" or "make"
    words: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: `{self.program} {' '.join(self.words)}`"


def _tokens(line: str) -> list[str]:
    text = SUBSTITUTION.sub("VALUE", PLACEHOLDER.sub("ID", line))
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote in prose-like output: read it word by word
        return text.split()


def _invocation(words: list[str], i: int) -> tuple[str, list[str], int]:
    """The program a command starting at words[i] runs ("" for another one), its first words, and
    where its arguments start."""
    word = words[i]
    if word in LONGFORM:
        return "longform", [], i + 1
    if word in EMULATOR_MODULE and words[i + 1 : i + 3] == ["-m", "longform.emulator"]:
        return "longform", ["emulator"], i + 3
    if word == "make":
        return "make", [], i + 1
    return "", [], i + 1


def _commands(line: str, where: str) -> list[Shown]:
    """The longform and make commands in one shell line (a pipeline or a list may hold several)."""
    words = _tokens(PROMPT.sub("", line))
    found: list[Shown] = []
    i, at_start = 0, True
    while i < len(words):
        if at_start and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[i]):  # VAR=value cmd
            i += 1
            continue
        program, args, i = _invocation(words, i) if at_start else ("", [], i + 1)
        if not program:
            at_start = words[i - 1] in ENDS_COMMAND
            continue
        depth = 0  # inside a synopsis' ( ... | ... ) or [ ... ], a | is not a pipe
        while i < len(words) and not (depth == 0 and words[i] in ENDS_COMMAND):
            word = words[i]
            if depth == 0 and word[0] in "<>" and set(word) <= set("<>&"):
                i += 2  # a redirection and its target
                continue
            depth = max(0, depth + word.count("(") + word.count("[") - word.count(")") - word.count("]"))
            args.append(word)
            i += 1
        if program != "longform" or args:  # a bare `longform` names no command
            found.append(Shown(where, program, tuple(args)))
        at_start, i = True, i + 1
    return found


def shown_commands(text: str, name: str) -> list[Shown]:
    """Every longform/make command in a Markdown text: fenced shell blocks and inline code."""
    found: list[Shown] = []
    lines = text.splitlines()
    fence: str | None = None
    shell = False
    pending, pending_at = "", 0
    for number, line in enumerate(lines, start=1):
        opened = FENCE.match(line)
        if fence is None:
            if opened:
                fence, shell = opened.group(1), opened.group(2).lower() not in NOT_SHELL
                continue
            for span in INLINE.findall(line):
                found += _commands(span, f"{name}:{number}")
            continue
        if line.strip().startswith(fence):
            if pending:
                found += _commands(pending, f"{name}:{pending_at}")
            fence, pending = None, ""
            continue
        if not shell:
            continue
        # a synopsis goes on over indented lines that open an option group: `    [--json]`
        if pending and not pending.endswith("\\") and re.match(r"^\s+[\[(]", line):
            pending += " " + line.strip()
            continue
        if pending.endswith("\\"):
            pending = pending[:-1] + " " + line.strip()
            continue
        if pending:
            found += _commands(pending, f"{name}:{pending_at}")
        pending, pending_at = line.strip(), number
    if pending:
        found += _commands(pending, f"{name}:{pending_at}")
    return found


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def longform_problems(command: Shown, parser: argparse.ArgumentParser) -> list[str]:
    """What does not parse in one `longform ...` command: an unknown command, or unknown options."""
    words = [w for w in command.words if w not in {"(", ")", "|"}]
    first = words[0].lstrip("[(")
    if first.startswith("-"):
        known, name, rest = _option_strings(parser), "longform", words
    else:
        commands = _subparsers(parser)
        if first not in commands:
            return [f"{command}: no command {first!r} (longform has {', '.join(sorted(commands))})"]
        known, name, rest = _option_strings(commands[first]), f"longform {first}", words[1:]
    problems = []
    for word in rest:
        match = OPTION.match(word.lstrip("[("))
        if match and match.group(1) not in known:
            problems.append(f"{command}: `{name}` has no option {match.group(1)}")
    return problems


@cache
def make_targets(makefile: Path) -> frozenset[str]:
    targets: set[str] = set()
    for line in makefile.read_text(encoding="utf-8").splitlines():
        rule = MAKE_RULE.match(line)
        if rule and not line.startswith("\t"):
            targets.update(rule.group(1).split())
    return frozenset(targets)


def make_problems(command: Shown, root: Path = ROOT) -> list[str]:
    """What does not exist in one `make ...` command: a target its Makefile lacks."""
    makefile, targets, words = root / "Makefile", [], list(command.words)
    while words:
        word = words.pop(0)
        if word == "-C" and words:
            makefile = root / words.pop(0) / "Makefile"
        elif word.startswith("-") or "=" in word:
            continue
        else:
            targets.append(word)
    if not makefile.is_file():
        return [f"{command}: no Makefile at {makefile.relative_to(root)}"]
    have = make_targets(makefile)
    return [f"{command}: {makefile.relative_to(root)} has no target {t!r}" for t in targets if t not in have]


def problems_in(text: str, name: str) -> list[str]:
    parser = build_parser()
    problems: list[str] = []
    for command in shown_commands(text, name):
        if command.program == "make":
            problems += make_problems(command)
        else:
            problems += longform_problems(command, parser)
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_a_doc_shows_parses(doc: Path) -> None:
    assert problems_in(doc.read_text(encoding="utf-8"), str(doc.relative_to(ROOT))) == []


def test_the_docs_show_many_commands_and_the_readme_the_two_that_matter() -> None:
    # guards the extraction itself: a reader that finds nothing checks nothing
    readme = shown_commands((ROOT / "README.md").read_text(encoding="utf-8"), "README.md")
    assert {"make run", "make test"} <= {f"make {' '.join(c.words)}" for c in readme if c.program == "make"}
    assert {c.words[0] for c in readme if c.program == "longform"} >= {"run", "submit"}
    every = [c for doc in DOCS for c in shown_commands(doc.read_text(encoding="utf-8"), doc.name)]
    assert len([c for c in every if c.program == "longform"]) >= 40
    assert {c.words[0] for c in every if c.program == "longform"} >= {
        "run",
        "resume",
        "list",
        "show",
        "serve",
        "drop",
        "submit",
        "status",
        "output",
        "cancel",
        "batch",
        "emulator",
    }


DOC_WITH_MISTAKES = """
Run it:

```
$ .venv/bin/longform run --prompt "Write --like-this inside a quote" --out a.md --no-such-option
longform: the emulator at http://127.0.0.1:1/v1 (output, not a command)
longform resume ID --out a.md --max-chunsk 3 | tee log.txt --tee-option-is-not-ours
longform frobnicate --json
make run && make no-such-target
make -C layers/longform_core no-such-layer-target
```

Also inline: `longform list --limit 3 --sort` and `longform run (--prompt TEXT | --promt -) [--json]`,
`make test`, `longform: a message`; not code: longform run --never-checked.

```
longform run (--prompt TEXT | --prompt-file FILE)
             [--jsn] [--quiet]
```

```python
subprocess.run(["longform", "run", "--python-is-not-shell"])
```
"""


def test_a_doc_naming_what_does_not_exist_fails() -> None:
    problems = problems_in(DOC_WITH_MISTAKES, "doc.md")
    assert problems == [
        "doc.md:5: `longform run --prompt Write --like-this inside a quote --out a.md --no-such-option`: "
        "`longform run` has no option --no-such-option",
        "doc.md:7: `longform resume ID --out a.md --max-chunsk 3`: "
        "`longform resume` has no option --max-chunsk",
        "doc.md:8: `longform frobnicate --json`: no command 'frobnicate' (longform has "
        + ", ".join(sorted(_subparsers(build_parser())))
        + ")",
        "doc.md:9: `make no-such-target`: Makefile has no target 'no-such-target'",
        "doc.md:10: `make -C layers/longform_core no-such-layer-target`: "
        "layers/longform_core/Makefile has no target 'no-such-layer-target'",
        "doc.md:13: `longform list --limit 3 --sort`: `longform list` has no option --sort",
        "doc.md:13: `longform run ( --prompt TEXT | --promt - ) [--json]`: "
        "`longform run` has no option --promt",
        "doc.md:17: `longform run ( --prompt TEXT | --prompt-file FILE ) [--jsn] [--quiet]`: "
        "`longform run` has no option --jsn",
    ]


def test_the_same_commands_spelled_right_pass() -> None:
    fixed = (
        DOC_WITH_MISTAKES.replace(" --no-such-option", "")
        .replace("--max-chunsk 3", "--json")
        .replace("frobnicate", "list")
        .replace("no-such-target", "test")
        .replace("no-such-layer-target", "build-RuntimeLayer")
        .replace(" --sort", "")
        .replace("--promt", "--prompt")
        .replace("--jsn", "--json")
    )
    assert problems_in(fixed, "doc.md") == []
