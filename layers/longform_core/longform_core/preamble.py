"""A continue-message reply cut short inside its preamble (pure, no I/O).

``seam.strip_preamble`` recognises a whole preamble ("Sure, continuing where I left off:"). A reply
cut a few tokens in (a broken stream, a crashed invocation resumed from its draft) holds only the
start of one, ``"Sure, continuing where I"``, which no whole-preamble pattern matches: committed, it
would stay in the answer. :func:`may_be_preamble` says whether a text is the start of some preamble,
so the chunk holds it back and the next reply decides.

The phrases are the ones ``seam.py``'s patterns accept, written once as a small grammar from which
the *prefix language* is built: every prefix of every string the grammar accepts (a regex per
node: a literal's prefixes, a sequence's complete head followed by the prefix of one part, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---- a tiny grammar and its prefix language ------------------------------------------------------


@dataclass(frozen=True)
class Rep:
    """``char_class`` repeated ``low`` to ``high`` times (``high`` None: no bound)."""

    char_class: str
    low: int
    high: int | None


Node = str | Rep | tuple["Node", ...] | frozenset["Node"]
# str: a literal (case-insensitive); tuple: a sequence; frozenset: alternatives; an optional part is
# an alternative with "" (the empty literal)


def _full(node: Node) -> str:
    if isinstance(node, str):
        return re.escape(node)
    if isinstance(node, Rep):
        return f"{node.char_class}{{{node.low},{'' if node.high is None else node.high}}}"
    if isinstance(node, tuple):
        return "(?:" + "".join(_full(part) for part in node) + ")"
    return "(?:" + "|".join(sorted(_full(part) for part in node)) + ")"


def _prefix(node: Node) -> str:
    """A regex for every prefix (empty and whole included) of what ``node`` accepts."""
    if isinstance(node, str):
        out = ""
        for char in reversed(node):
            out = f"(?:{re.escape(char)}{out})?"
        return out
    if isinstance(node, Rep):
        return f"{node.char_class}{{0,{'' if node.high is None else node.high}}}"
    if isinstance(node, tuple):
        heads = ["".join(_full(part) for part in node[:i]) + _prefix(node[i]) for i in range(len(node))]
        return "(?:" + "|".join(heads) + ")"
    return "(?:" + "|".join(sorted(_prefix(part) for part in node)) + ")"


def optional(node: Node) -> frozenset[Node]:
    return frozenset({node, ""})


def one_of(*nodes: Node) -> frozenset[Node]:
    return frozenset(nodes)


# ---- the preamble phrases (as seam._PREAMBLE, _PREAMBLE_LINE and _ACK_ONLY_LINE accept them) -------

_WS = Rep(r"\s", 0, None)
_ACK_WORDS = ("sure", "okay", "ok", "certainly", "of course", "alright", "all right", "absolutely")
_ACKS = one_of(*_ACK_WORDS, "got it", "no problem")
_ACK: Node = optional((_ACKS, optional(one_of("!", ",", ".")), Rep(r"\s", 1, None)))
_FREE_60, _FREE_40 = Rep(r"[^:\n]", 1, 60), Rep(r"[^:\n]", 1, 40)
_CONTINUING = one_of(
    ("here", one_of("'s", " is"), " the ", one_of("rest", "continuation"), optional((" of ", _FREE_60))),
    (
        optional(one_of("i'll ", "i will ", "let me ", "let's ")),
        one_of("continue", "continuing", "resume", "resuming", "pick up", "picking up"),
        optional((" ", optional("from "), "where ", one_of("i", "we"), " ", one_of("left off", "stopped"))),
        optional((" ", one_of("from", "with"), " ", _FREE_40)),
    ),
    ("continuing", optional(" on")),
)
_END = one_of(":", "...", "…", (optional(one_of(".", "!")), Rep(r"[ \t]", 0, None), optional("\r"), "\n"))
_BLANK_LINES = Rep(r"[\r\n]", 0, None)
PREAMBLE: Node = (_WS, _ACK, _CONTINUING, _WS, _END, _BLANK_LINES)
ACK_LINE: Node = (
    _WS,
    one_of(*(word for word in _ACK_WORDS if word != "all right")),
    optional(one_of("!", ".")),
    Rep(r"[ \t]", 0, None),
    optional("\r"),
    "\n",
    _BLANK_LINES,
)

_MAY_BE_PREAMBLE = re.compile(rf"(?:{_prefix(PREAMBLE)}|{_prefix(ACK_LINE)})\Z", re.IGNORECASE)
MAX_CUT_PREAMBLE_CHARS = 160


def may_be_preamble(text: str) -> bool:
    """Is ``text`` (a reply's start, cut short) the start of a continue-message preamble?"""
    return len(text) <= MAX_CUT_PREAMBLE_CHARS and _MAY_BE_PREAMBLE.match(text) is not None
