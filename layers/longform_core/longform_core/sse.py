"""Server-Sent Events parsing and chat-completion stream accumulation (pure, no I/O)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

DONE = "[DONE]"


def iter_sse_data(lines: Iterable[str]) -> Iterator[str]:
    """Yield the ``data`` payload of each SSE event.

    Handles comment lines (``: keep-alive``), multi-line ``data:`` fields, CRLF line ends, other
    fields (``event:``, ``id:``, ``retry:``) and a final event without a trailing blank line.
    Stops after ``[DONE]`` (which is yielded, so the caller knows the stream ended cleanly).
    """
    buffer: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if buffer:
                payload = "\n".join(buffer)
                buffer = []
                yield payload
                if payload == DONE:
                    return
            continue
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if not sep:
            name, value = line, ""
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            buffer.append(value)
    if buffer:
        yield "\n".join(buffer)


@dataclass
class Usage:
    """Token usage of one provider response (DeepInfra adds cost and cached tokens)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    estimated_cost: float | None = None
    estimated: bool = False  # True when counted by us because the provider sent no usage

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Usage | None:
        """The usage a server sent, read leniently: a field that cannot be read (``"n/a"``, ``"3"``,
        a list, a negative number) is missing. None when ``completion_tokens`` cannot be read: the
        usage is then estimated (counted deltas), as when a server sends none."""
        prompt = wire_count(data.get("prompt_tokens"))
        completion = wire_count(data.get("completion_tokens"))
        total = wire_count(data.get("total_tokens"))
        if completion is None:
            return None
        details = data.get("prompt_tokens_details")
        cached = wire_count(details.get("cached_tokens")) if isinstance(details, dict) else None
        return cls(
            prompt_tokens=prompt or 0,
            completion_tokens=completion or 0,
            total_tokens=total or 0,
            cached_tokens=cached or 0,
            estimated_cost=wire_number(data.get("estimated_cost")),
        )


def wire_count(value: Any) -> int | None:
    """A token count as a server sent it: a non-negative integer (``12`` or ``12.0``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0 and value.is_integer():
        return int(value)
    return None


def wire_number(value: Any) -> float | None:
    """A non-negative finite number (a cost), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def wire_text(value: Any) -> str | None:
    """A string field (model, id) as text that can be stored: other types are missing."""
    if not isinstance(value, str) or not value:
        return None
    return replace_lone_surrogates(value)[0]


# ---- surrogates -------------------------------------------------------------------------------
# JSON lets a string escape a lone UTF-16 surrogate ("\ud83d"), and a JavaScript proxy that slices
# text by UTF-16 code units sends an astral character as two events ("\ud83d", then "\ude00").
# Python keeps each as a lone surrogate code point, which cannot be encoded as UTF-8 (a chunk record
# holding one fails at commit). Pairs split across events are joined again; a surrogate with no
# partner becomes U+FFFD, and is counted.

REPLACEMENT = "\ufffd"
_HIGH = range(0xD800, 0xDC00)
_LOW = range(0xDC00, 0xE000)


def replace_lone_surrogates(text: str) -> tuple[str, int]:
    """``text`` with each surrogate pair joined and each lone surrogate replaced; (text, replaced)."""
    if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return text, 0
    out: list[str] = []
    replaced = 0
    i = 0
    while i < len(text):
        code = ord(text[i])
        if code in _HIGH and i + 1 < len(text) and ord(text[i + 1]) in _LOW:
            out.append(chr(0x10000 + ((code - 0xD800) << 10) + (ord(text[i + 1]) - 0xDC00)))
            i += 2
            continue
        if 0xD800 <= code <= 0xDFFF:
            out.append(REPLACEMENT)
            replaced += 1
        else:
            out.append(text[i])
        i += 1
    return "".join(out), replaced


@dataclass
class _TextChannel:
    """The pieces of one text channel (content or reasoning), surrogates repaired across pieces."""

    pieces: list[str] = field(default_factory=list)
    pending: str = ""  # a high surrogate that ended the last piece: its partner may come next
    replaced: int = 0

    def add(self, piece: str) -> str:
        """Add a piece; returns the text it appended (may be empty while a surrogate waits)."""
        piece = self.pending + piece
        self.pending = ""
        if piece and ord(piece[-1]) in _HIGH:
            piece, self.pending = piece[:-1], piece[-1]
        clean, replaced = replace_lone_surrogates(piece)
        self.replaced += replaced
        if clean:
            self.pieces.append(clean)
        return clean

    @property
    def text(self) -> str:
        return "".join(self.pieces) + (REPLACEMENT if self.pending else "")

    @property
    def lone_surrogates(self) -> int:
        return self.replaced + (1 if self.pending else 0)


# finish reasons that report a failure, not an end: OpenRouter's "error" (beside an ``error``
# object, https://openrouter.ai/docs/api/reference/streaming#handling-errors-during-streaming) and
# "abort"
ERROR_FINISHES = frozenset({"error", "abort"})


def _error_of(value: Any) -> dict[str, Any] | None:
    """An ``error`` field as an error object; None when it is absent, null or empty."""
    if isinstance(value, dict):
        return value or None
    if isinstance(value, str) and value:
        return {"message": value}
    return None


@dataclass
class StreamAccumulator:
    """Collects the deltas of a ``chat.completion.chunk`` stream.

    Lenient: a field of the wrong type is missing, an event that is not an object is skipped;
    only the text decides. An error reported anywhere in the stream (an ``error`` object beside or
    instead of ``choices``, a choice's own ``error``, ``finish_reason`` "error"/"abort", vLLM's
    ``{"object": "error", ...}``) is kept in ``error``.

    ``prefill`` (the text a server may echo at the start of the reply) lets ``new_deltas`` count
    only the deltas after such an echo: the estimate of new tokens a reply is held to.
    """

    prefill: str = ""
    answer: _TextChannel = field(default_factory=_TextChannel)
    thought: _TextChannel = field(default_factory=_TextChannel)
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    response_id: str | None = None
    done: bool = False
    deltas: int = 0
    new_deltas: int = 0  # deltas past an echo of ``prefill`` (about one token each)
    error: dict[str, Any] | None = None
    first_content: str | None = None  # the first content delta as it arrived
    _echo_at: int = 0  # characters of the content that repeat the prefill so far; -1: past it

    def feed_data(self, data: str) -> None:
        if data == DONE:
            self.done = True
            return
        try:
            obj = json.loads(data)
        except ValueError:  # JSONDecodeError, or a number too long to convert
            return  # a malformed event is skipped; the text it carried is lost only if it had any
        if isinstance(obj, dict):
            self.feed(obj)

    def feed(self, obj: dict[str, Any]) -> None:
        error = _error_of(obj.get("error"))
        if error is None and obj.get("object") == "error":
            error = obj  # vLLM's flat error object
        if error is not None:
            self.error = error
        self.model = wire_text(obj.get("model")) or self.model
        self.response_id = wire_text(obj.get("id")) or self.response_id
        usage = obj.get("usage")
        if isinstance(usage, dict) and usage:
            self.usage = Usage.from_wire(usage) or self.usage
        choices = obj.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, dict) and wire_count(choice.get("index", 0)) in (0, None):
                self._feed_choice(choice)

    def _feed_choice(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = choice.get("message")
        if not isinstance(delta, dict):
            delta = {}
        piece = delta.get("content")
        if isinstance(piece, str) and piece:
            if not (self.answer.pending and ord(piece[0]) in _LOW):  # not the rest of a split token
                self._count(piece)
            added = self.answer.add(piece)
            if self.first_content is None and added:
                self.first_content = added
        thought = delta.get("reasoning_content")
        if thought is None:
            thought = delta.get("reasoning")
        if isinstance(thought, str) and thought:
            self.deltas += 1
            self.new_deltas += 1
            self.thought.add(thought)
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            self.finish_reason = finish
            if finish in ERROR_FINISHES and self.error is None:
                self.error = {"message": f"the provider ended the reply with finish_reason {finish!r}"}
        error = _error_of(choice.get("error"))
        if error is not None:
            self.error = error

    def _count(self, piece: str) -> None:
        self.deltas += 1
        if self._echo_at >= 0 and self.prefill:
            if self.prefill.startswith(piece, self._echo_at):
                self._echo_at += len(piece)
                return  # still (part of) the echo
            self._echo_at = -1
        self.new_deltas += 1

    @property
    def content(self) -> list[str]:
        return self.answer.pieces

    @property
    def reasoning(self) -> list[str]:
        return self.thought.pieces

    @property
    def has_text(self) -> bool:
        """Any text received, a surrogate still waiting for its partner included (U+FFFD if none
        comes): what the provider sent is never dropped for looking incomplete."""
        return any(channel.pieces or channel.pending for channel in (self.answer, self.thought))

    @property
    def text(self) -> str:
        return self.answer.text

    @property
    def reasoning_text(self) -> str:
        return self.thought.text

    @property
    def lone_surrogates(self) -> int:
        """Surrogates with no partner, replaced by U+FFFD in the text."""
        return self.answer.lone_surrogates + self.thought.lone_surrogates
