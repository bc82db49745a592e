"""How the end of a request's messages is read: the answer so far, and what the reply does with it.

- a trailing assistant message is a prefill: continued, ignored (the reply starts over from
  the beginning of the canonical answer) or refused, as ``prefill_style`` says;
- an assistant message followed by a trailing user message (any user message: "continue")
  is a "continue message" conversation: the assistant text is the answer so far, and the
  reply is a fresh message holding the rest of the canonical answer, made imperfect as real
  models are by ``continue_overlap_chars``, ``continue_preamble`` and
  ``continue_drop_seam_space``;
- a continued prefill may be sent back at the start of the reply (``echo_prefill``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from longform.emulator.continuation import Plan, split_prefill
from longform.emulator.errors import PREFILL_WHITESPACE_MESSAGE, Rejected, prefill_refusal
from longform.emulator.model import message_text, tokenize
from longform.emulator.settings import ECHO_PIECE_CHARS, EchoPrefillMode, EmulatorSettings

__all__ = [
    "Continuation",
    "Delta",
    "Echo",
    "Trailing",
    "continue_reply",
    "echo_of",
    "read_trailing",
    "with_echo",
]

VLLM_CONFLICT_MESSAGE = "Cannot set both `continue_final_message` and `add_generation_prompt` to True."


@dataclass(frozen=True)
class Trailing:
    """What the end of the messages says about the answer so far."""

    conversation: Sequence[Mapping[str, Any]]
    """The messages the canonical output is computed from (a trailing assistant message in
    them is ignored by ``canonical_output``)."""
    prefill: str | None = None
    """The text of a trailing assistant message."""
    continued: bool = False
    """The prefill is continued (else, if there is one, it is ignored)."""
    so_far: str | None = None
    """A "continue message" conversation: the assistant text before the trailing user message."""

    @property
    def ignored(self) -> bool:
        """A prefill was sent and not continued: the reply starts over."""
        return bool(self.prefill) and not self.continued

    @property
    def continue_message(self) -> bool:
        return self.so_far is not None

    def log_fields(self) -> dict[str, Any]:
        """The request-log fields of what was read."""
        return {
            "prefill_chars": len(self.prefill or ""),
            "continued": self.continued,
            "prefill_ignored": self.ignored,
            "continue_message": self.continue_message,
        }

    @property
    def answer_so_far(self) -> str | None:
        """What the reply carries on from: the continue message's text or the continued prefill."""
        if self.so_far is not None:
            return self.so_far
        return self.prefill if self.continued else None


def read_trailing(
    messages: Sequence[Mapping[str, Any]], body: Mapping[str, Any], settings: EmulatorSettings
) -> Trailing:
    """The request's trailing messages read; raises ``Rejected`` for a refused prefill."""
    last = messages[-1]
    role = last.get("role")
    if role == "user" and len(messages) >= 3 and messages[-2].get("role") == "assistant":
        return Trailing(messages[:-1], so_far=message_text(messages[-2]))
    if role != "assistant":
        return Trailing(messages)
    prefill = message_text(last)
    style = settings.prefill_style
    if style == "reject":
        raise prefill_refusal(settings.prefill_refusal)
    if style == "vllm":
        if body.get("continue_final_message") is True and body.get("add_generation_prompt") is True:
            raise Rejected(400, VLLM_CONFLICT_MESSAGE)
        continued = body.get("continue_final_message") is True
    elif style == "prefix":
        continued = last.get("prefix") is True
    else:
        continued = style == "assistant"
    if continued and settings.reject_trailing_whitespace_prefill and prefill[-1:].isspace():
        raise Rejected(400, PREFILL_WHITESPACE_MESSAGE)
    return Trailing(messages, prefill, continued)


@dataclass(frozen=True)
class Continuation:
    """The reply to a "continue message" conversation: the pieces to send."""

    reasoning: tuple[str, ...]
    content: tuple[str, ...]
    overlap_chars: int
    """Characters of the answer so far repeated at the start of the content."""
    preamble_chars: int


def continue_reply(plan: Plan, so_far: str, settings: EmulatorSettings) -> Continuation:
    """The pieces of ``plan`` (the true continuation of ``so_far``) as a model replying to
    "continue" sends them: ``continue_preamble``, then the repeated tail of the answer so
    far, then the continuation (its leading whitespace dropped if so configured)."""
    reasoning, content = list(plan.reasoning), list(plan.content)
    if settings.continue_drop_seam_space:
        _drop_leading_space(reasoning if reasoning else content)
    overlap = _tail(_answer_part(so_far), settings.continue_overlap_chars)
    head = settings.continue_preamble + overlap
    return Continuation(
        reasoning=tuple(reasoning),
        content=(*tokenize(head), *content),
        overlap_chars=len(overlap),
        preamble_chars=len(settings.continue_preamble),
    )


def _drop_leading_space(pieces: list[str]) -> None:
    while pieces:
        stripped = pieces[0].lstrip()
        if stripped:
            pieces[0] = stripped
            return
        pieces.pop(0)


def _answer_part(so_far: str) -> str:
    """The answer in the text so far (after a closed think block; "" while reasoning is open)."""
    is_open, _, answer = split_prefill(so_far)
    return "" if is_open else answer


def _tail(text: str, n: int) -> str:
    """The last ``n`` characters of ``text``, from the first word start among them if any."""
    if n <= 0 or not text:
        return ""
    start = max(0, len(text) - n)
    for i in range(start, len(text)):
        if not text[i].isspace() and (i == 0 or text[i - 1].isspace()):
            return text[i:]
    return text[start:]


# --------------------------------------------------------------------------- the echo


Delta = tuple[Literal["reasoning_content", "content"], str]
"""One streamed delta: the field and its text."""


@dataclass(frozen=True)
class Echo:
    """The prefill as the server sends it back: the reasoning part and the content part."""

    reasoning: str = ""
    content: str = ""

    @property
    def chars(self) -> int:
        return len(self.reasoning) + len(self.content)


def echo_of(prefill: str, style: str) -> Echo:
    """A reasoning parser's view of the prefill (field style), else the prefill as sent."""
    if style != "field":
        return Echo(content=prefill)
    _, reasoning, answer = split_prefill(prefill)
    return Echo(reasoning=reasoning, content=answer)


def with_echo(pieces: Sequence[Delta], echo: Echo, mode: EchoPrefillMode) -> tuple[list[Delta], list[Delta]]:
    """(deltas sent before the new pieces, the new pieces) with the echo applied.

    "split": the echo goes first in pieces of at most ``ECHO_PIECE_CHARS`` characters.
    "merged": each part is prepended to the first new delta of its field, or sent alone
    before the new pieces when there is none. A continued prefill with a content part has
    a closed reasoning part, so no new reasoning follows it and the order is preserved.
    """
    before: list[Delta] = []
    out = list(pieces)
    parts: tuple[Delta, ...] = (("reasoning_content", echo.reasoning), ("content", echo.content))
    for name, text in parts:
        if not text or mode == "off":
            continue
        if mode == "split":
            before.extend(
                (name, text[i : i + ECHO_PIECE_CHARS]) for i in range(0, len(text), ECHO_PIECE_CHARS)
            )
            continue
        index = next((i for i, (field_name, _) in enumerate(out) if field_name == name), None)
        if index is None:
            before.append((name, text))
        else:
            out[index] = (name, text + out[index][1])
    return before, out
