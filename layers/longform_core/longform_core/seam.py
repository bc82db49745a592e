"""The seam between the answer so far and a continuation (pure, no I/O).

A prefill continued by the server (``assistant``, ``vllm``, ``prefix``) meets the answer at a token
boundary and is appended as it is (after ``echo.py``). Two cases need the seam repaired:

- **a trimmed prefill** (a server that refuses trailing whitespace in the prefill): the stored
  answer keeps its whitespace, so the model's own leading whitespace is dropped
  (:func:`after_trimmed_prefill`);
- **the continue-message fallback** (a fresh assistant turn asked to continue): the model may
  start with a preamble ("Sure, continuing where I left off:"), repeat the end of the text so far,
  or drop the space between two words. :func:`clean_continuation` removes the preamble, then the
  longest overlap (at least :data:`MIN_OVERLAP_CHARS`), then repairs the whitespace. It is
  deliberately conservative: a first line that could be the answer's own text is kept.

And the job's stop conditions that read the text: :func:`only_repeats` (a continuation that adds
nothing new) and :func:`stuck_repeating` (one long passage over and over).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .preamble import may_be_preamble

MIN_OVERLAP_CHARS = 20
MAX_OVERLAP_CHARS = 8_000
MAX_PREAMBLE_CHARS = 120
# a continuation at least this long that is found verbatim in the answer so far adds nothing
MIN_REPEAT_CHARS = 40

# a preamble: an optional acknowledgement, then a phrase about continuing, ending in ":" (or a
# lone line). Only these phrases count: "Continuing the tradition, ..." is the answer's own text.
_ACK = r"(?:(?:sure|okay|ok|certainly|of course|alright|all right|absolutely|got it|no problem)[!,.]?\s+)?"
_CONTINUING = (
    r"(?:here(?:'s| is) the (?:rest|continuation)(?: of [^:\n]{1,60})?"
    r"|(?:i'll |i will |let me |let's )?(?:continu(?:e|ing)|resum(?:e|ing)|pick(?:ing)? up)"
    r"(?: (?:from )?where (?:i|we) (?:left off|stopped))?(?: (?:from|with) [^:\n]{1,40})?"
    r"|continuing(?: on)?)"
)
_PREAMBLE = re.compile(
    rf"\A\s*{_ACK}{_CONTINUING}\s*(?::|\.\.\.|…)[ \t]*(?:\r?\n)*",
    re.IGNORECASE,
)
# the same phrase alone on its first line, ending in "." or "!" (e.g. "Sure, continuing.\n\n")
_PREAMBLE_LINE = re.compile(
    rf"\A\s*{_ACK}{_CONTINUING}[.!]?[ \t]*\r?\n(?:\r?\n)*",
    re.IGNORECASE,
)
_ACK_ONLY_LINE = re.compile(
    r"\A\s*(?:sure|okay|ok|certainly|of course|alright|absolutely)[!.]?[ \t]*\r?\n(?:\r?\n)*", re.IGNORECASE
)
_WORD_END = re.compile(r"(\w+)\Z")
_HEADING = re.compile(r"#{1,6} \S")
_FENCE_LINE = re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE)
_OPENING_FENCE = re.compile(r"\A[ \t]*(?:```|~~~)[ \t]*[\w+#.-]+[^\n`]*\r?\n")
_WORD_START = re.compile(r"\A(\w+)")


@dataclass(frozen=True)
class SeamResult:
    """The continuation as appended, and what was done at the seam (for the chunk record)."""

    text: str
    overlap_chars: int = 0
    preamble: str = ""
    whitespace: str = ""  # "", "inserted_space", "inserted_paragraph", "dropped_leading"
    held: str = ""  # a cut reply not committed: it may still be a preamble or a repeat (undecided)


def after_trimmed_prefill(trimmed: str, new: str) -> SeamResult:
    """The continuation of a prefill sent without its trailing whitespace ``trimmed``.

    The stored answer still ends with ``trimmed``; the model usually writes its own whitespace
    first, which would double it, so leading whitespace is dropped. Without any, the text is
    appended as is (the stored whitespace is the seam).
    """
    if not trimmed or not new:
        return SeamResult(new)
    body = new.lstrip()
    if body == new:
        return SeamResult(new)
    return SeamResult(body, whitespace="dropped_leading")


def longest_overlap(so_far: str, new: str, *, minimum: int = MIN_OVERLAP_CHARS) -> int:
    """Length of the longest ``k >= minimum`` with ``so_far.endswith(new[:k])``, else 0."""
    top = min(len(so_far), len(new), MAX_OVERLAP_CHARS)
    for k in range(top, minimum - 1, -1):
        if so_far.endswith(new[:k]):
            return k
    return 0


def strip_preamble(new: str) -> tuple[str, str]:
    """(the text without a leading "continuing" preamble, the preamble removed or '')."""
    for pattern in (_PREAMBLE, _PREAMBLE_LINE, _ACK_ONLY_LINE):
        m = pattern.match(new)
        if m and len(m.group(0).strip()) <= MAX_PREAMBLE_CHARS and m.end() < len(new):
            return new[m.end() :], new[: m.end()]
    return new, ""


def repair_whitespace(so_far: str, new: str) -> tuple[str, str]:
    """(the continuation with the seam's whitespace repaired, what was done or '').

    - both sides whitespace: the continuation's leading whitespace is dropped (no doubled blank
      lines at the seam);
    - a Markdown heading glued to the text ("end.## Part 2"): the blank line before it is put back;
    - a sentence end glued to a capital ("end.The"), or a comma, colon or semicolon glued to a
      letter ("way,the"): a space is inserted (not after "3." or "1," before digits: a number);
    - two words glued ("lampat"): a fresh turn almost never begins with a space, and the chunk
      before it was cut at a token boundary, most often a word's end, so a space is inserted,
      unless the glued word occurs as a whole word in the text so far (a word cut in two:
      "light" + "house" where "lighthouse" occurs is left alone). Without that evidence a cut
      word gets a space too: the price of the common case.
    """
    if not so_far or not new:
        return new, ""
    if so_far[-1].isspace():
        # inside a code block a line's indentation is code: only blank lines are dropped there
        body = new.lstrip("\r\n") if so_far[-1] == "\n" and fence_open(so_far) else new.lstrip()
        return (body, "dropped_leading") if body != new and body else (new, "")
    if new[0].isspace():
        return new, ""
    if _HEADING.match(new):
        return "\n\n" + new, "inserted_paragraph"  # a heading begins a line: its blank line was dropped
    if so_far[-1] in ".!?;:," and new[0].isalpha() and (new[0].isupper() or so_far[-1] in ";:,"):
        return " " + new, "inserted_space"
    end, start = _WORD_END.search(so_far), _WORD_START.match(new)
    if end is None or start is None:
        return new, ""
    glued = end.group(1) + start.group(1)
    if end.group(1).isdigit() and start.group(1).isdigit():
        return new, ""  # "12" + "34": a number cut in two
    if re.search(rf"(?<!\w){re.escape(glued)}(?!\w)", so_far) is None:
        return " " + new, "inserted_space"
    return new, ""


def fence_open(text: str) -> bool:
    """Does ``text`` end inside a fenced code block (an odd number of fence lines)?"""
    return len(_FENCE_LINE.findall(text)) % 2 == 1


def strip_reopened_fence(so_far: str, new: str) -> tuple[str, str]:
    """(the continuation without a redundant opening fence, the fence removed or '').

    A fresh turn asked to continue inside a code block often opens the block again
    ("```python\n"): with a fence open at the seam that line is dropped. Only an *opening* fence
    (with an info string) is: a bare fence may be the one closing the block, and is kept.
    """
    if not fence_open(so_far):
        return new, ""
    m = _OPENING_FENCE.match(new)
    if m is None or m.end() >= len(new):
        return new, ""
    return new[m.end() :], m.group(0)


def clean_continuation(so_far: str, new: str) -> SeamResult:
    """A continue-message reply made to follow ``so_far``: preamble (and a code fence reopened at
    the seam, recorded with it), overlap, whitespace."""
    if not so_far or not new:
        return SeamResult(new)
    text, preamble = strip_preamble(new)
    text, fence = strip_reopened_fence(so_far, text)
    preamble += fence
    overlap = longest_overlap(so_far, text)
    text = text[overlap:]
    text, whitespace = repair_whitespace(so_far, text)
    return SeamResult(text, overlap_chars=overlap, preamble=preamble, whitespace=whitespace)


def undecided(so_far: str, new: str) -> bool:
    """A continue-message reply *cut short* (a broken stream, a draft of a crashed attempt) that may
    still be the server's preamble or a repeat of the answer's end: committing it could paste
    ``"Sure, continuing where I"`` or a doubled phrase into the answer, and only the rest of the
    reply would tell. Such a fragment is held back; the next request (built from the answer without
    it) gets a whole reply, which :func:`clean_continuation` decides.

    Undecided: the start of a preamble (``preamble.may_be_preamble``), or, after a whole preamble,
    text the end of the answer holds (the start of a repeated overlap: it could not yet be matched
    against the answer's end, or is shorter than :data:`MIN_OVERLAP_CHARS`).
    """
    if not so_far or not new:
        return False
    if may_be_preamble(new):
        return True
    text, _ = strip_preamble(new)
    body = text.lstrip()
    return bool(body) and body in so_far[-MAX_OVERLAP_CHARS:]


def only_repeats(so_far: str, new: str, *, minimum: int = MIN_REPEAT_CHARS) -> bool:
    """The continuation is text the answer already holds (at least ``minimum`` characters)."""
    body = new.strip()
    return len(body) >= minimum and body in so_far


def stuck_repeating(text: str, *, min_chars: int, max_repeats: int) -> bool:
    """The last ``min_chars`` characters of ``text`` occur ``max_repeats`` times or more in it."""
    return repetition_seen(text, min_chars=min_chars, max_repeats=max_repeats) is not None


def repetition_seen(text: str, *, min_chars: int, max_repeats: int) -> str | None:
    """What shows a model stuck repeating itself, in one line ("the last 200 characters repeated
    3 times"), or None: the last ``min_chars`` characters occur ``max_repeats`` times or more."""
    if max_repeats < 2 or len(text) < min_chars * max_repeats:
        return None
    tail = text[-min_chars:]
    if not tail.strip():
        return None
    count = text.count(tail)
    if count < max_repeats:
        return None
    return f"the last {min_chars} characters repeated {count} times"
