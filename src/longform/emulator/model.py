"""The emulator's deterministic "model": tokens and canonical outputs.

The full output of the model is a pure function of the conversation (every message
except a trailing assistant prefill), the request ``seed`` and the length settings. A
token is a match of ``TOKEN_RE``; the canonical texts are built from whole tokens, so
``tokenize(answer)`` gives back exactly the pieces the server streams. How a prefill is
continued from the canonical output is ``emulator.continuation``.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol

from longform.emulator import textgen

__all__ = [
    "DEFAULT_MODEL",
    "MAX_GENERATED_TOKENS",
    "TOKEN_RE",
    "Canonical",
    "GenerationSettings",
    "LengthSettings",
    "ReasoningMode",
    "Style",
    "canonical_output",
    "conversation_messages",
    "count_tokens",
    "full_content",
    "message_text",
    "prompt_tokens",
    "reasoning_style",
    "requested_lengths",
    "tokenize",
    "uncapped_answer",
    "uncapped_content",
]

TOKEN_RE = re.compile(r"\s*\S+|\s+")
DEFAULT_MODEL = "longform/emulator"
MAX_GENERATED_TOKENS = 2_000_000
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

Style = Literal["none", "field", "inline"]
ReasoningMode = Literal["auto", "none", "field", "inline"]

_ANSWER_DIRECTIVE = re.compile(r"\[emulator\s+answer_tokens\s*=\s*(\d+)\s*\]", re.IGNORECASE)
_REASONING_DIRECTIVE = re.compile(r"\[emulator\s+reasoning_tokens\s*=\s*(\d+)\s*\]", re.IGNORECASE)
_ANY_DIRECTIVE = re.compile(r"\[emulator\b[^\]]*\]", re.IGNORECASE)
# "[emulator emoji]": the answer carries astral characters (outside the BMP: two UTF-16 code units
# each), for the split-surrogate fault ("split_surrogates")
_EMOJI_DIRECTIVE = re.compile(r"\[emulator\s+emoji\s*\]", re.IGNORECASE)
EMOJI = ("\U0001f30a", "\U0001f3ee", "\U0001f6a2", "\U0001f600")
EMOJI_EVERY = 7
_LENGTH_PHRASE = re.compile(r"(\d[\d,]*)[- ](?:word|token)s?", re.IGNORECASE)


# --------------------------------------------------------------------------- tokens


def tokenize(text: str) -> list[str]:
    """Split ``text`` into emulator tokens; ``"".join(tokenize(t)) == t``."""
    return TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Number of emulator tokens in ``text``."""
    return sum(1 for _ in TOKEN_RE.finditer(text))


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message (``None`` -> "", content parts joined)."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return str(content)


MESSAGE_OVERHEAD = 4  # prompt tokens a message costs besides its content


def prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Prompt tokens of a request: 3 + sum(MESSAGE_OVERHEAD + tokens of each message's content)."""
    return 3 + sum(MESSAGE_OVERHEAD + count_tokens(message_text(m)) for m in messages)


# --------------------------------------------------------------------------- settings


class LengthSettings(Protocol):
    """What ``canonical_output`` reads from the server settings."""

    @property
    def answer_tokens(self) -> int: ...

    @property
    def reasoning_tokens(self) -> int: ...

    @property
    def reasoning(self) -> str: ...


@dataclass(frozen=True)
class GenerationSettings:
    """Default length settings (the server's ``EmulatorSettings`` fits the same protocol)."""

    answer_tokens: int = 2000
    reasoning_tokens: int = 300
    reasoning: ReasoningMode = "auto"


_DEFAULT_SETTINGS = GenerationSettings()


def reasoning_style(model: str, reasoning: str = "auto") -> Style:
    """Reasoning style: forced by the setting, else by the model name."""
    if reasoning in ("none", "field", "inline"):
        return reasoning  # type: ignore[return-value]
    name = model.lower()
    if "think" in name:
        return "inline"
    if "reason" in name:
        return "field"
    return "none"


def conversation_messages(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The messages that determine the output: all but a trailing assistant message."""
    if messages and messages[-1].get("role") == "assistant":
        return list(messages[:-1])
    return list(messages)


def _conversation_text(conversation: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(message_text(m) for m in conversation)


def requested_lengths(
    messages: Sequence[Mapping[str, Any]], settings: LengthSettings | None = None
) -> tuple[int, int]:
    """(answer tokens, reasoning tokens) the conversation asks for.

    Answer: the directive ``[emulator answer_tokens=N]``, else the first phrase like
    ``40,000-word`` / ``2000 tokens``, else ``settings.answer_tokens``. Reasoning: the
    directive ``[emulator reasoning_tokens=M]``, else ``settings.reasoning_tokens``.
    """
    settings = settings or _DEFAULT_SETTINGS
    text = _conversation_text(conversation_messages(messages))
    answer = settings.answer_tokens
    match = _ANSWER_DIRECTIVE.search(text)
    if match:
        answer = int(match.group(1))
    else:
        for phrase in _LENGTH_PHRASE.finditer(_ANY_DIRECTIVE.sub(" ", text)):
            digits = phrase.group(1).replace(",", "")
            if digits:
                answer = int(digits)
                break
    reasoning = settings.reasoning_tokens
    match = _REASONING_DIRECTIVE.search(text)
    if match:
        reasoning = int(match.group(1))
    return _clamp(answer), _clamp(reasoning)


def _clamp(n: int) -> int:
    return max(0, min(int(n), MAX_GENERATED_TOKENS))


# --------------------------------------------------------------------------- canonical output


@dataclass(frozen=True)
class Canonical:
    """What an uncapped model says: reasoning (maybe empty), answer, reasoning style."""

    reasoning: str
    answer: str
    style: Style
    reasoning_pieces: tuple[str, ...] = field(default=(), repr=False, compare=False)
    answer_pieces: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.reasoning_pieces and self.reasoning:
            object.__setattr__(self, "reasoning_pieces", tuple(tokenize(self.reasoning)))
        if not self.answer_pieces and self.answer:
            object.__setattr__(self, "answer_pieces", tuple(tokenize(self.answer)))

    @cached_property
    def content(self) -> str:
        """The content of an uncapped non-streaming reply (see ``full_content``)."""
        if self.style == "inline":
            return f"{THINK_OPEN}\n{self.reasoning}\n{THINK_CLOSE}\n\n{self.answer}"
        return self.answer

    @cached_property
    def content_pieces(self) -> tuple[str, ...]:
        if self.style != "inline":
            return self.answer_pieces
        return tuple(tokenize(self.content))

    @cached_property
    def _offsets(self) -> dict[str, list[int]]:
        return {
            "reasoning": _offsets(self.reasoning_pieces),
            "answer": _offsets(self.answer_pieces),
            "content": _offsets(self.content_pieces),
        }

    def rest(self, which: Literal["reasoning", "answer", "content"], start: int) -> tuple[str, ...]:
        """The pieces of ``which`` from character offset ``start`` (mid-token: the rest of it)."""
        pieces = {
            "reasoning": self.reasoning_pieces,
            "answer": self.answer_pieces,
            "content": self.content_pieces,
        }[which]
        if start <= 0:
            return pieces
        offsets = self._offsets[which]
        index = bisect.bisect_right(offsets, start) - 1
        if index >= len(pieces):
            return ()
        skip = start - offsets[index]
        if skip == 0:
            return pieces[index:]
        head = pieces[index][skip:]
        return ((head,) if head else ()) + pieces[index + 1 :]


def _offsets(pieces: Sequence[str]) -> list[int]:
    out: list[int] = []
    position = 0
    for piece in pieces:
        out.append(position)
        position += len(piece)
    out.append(position)  # sentinel: the end
    return out


def full_content(canonical: Canonical) -> str:
    """``content`` of an uncapped non-streaming call (inline style includes the think block)."""
    return canonical.content


def canonical_output(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str = DEFAULT_MODEL,
    seed: int | None = None,
    answer_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    settings: LengthSettings | None = None,
) -> Canonical:
    """The full output an uncapped model gives for ``messages`` (a trailing assistant
    message is ignored: it is the prefill, not part of the question)."""
    settings = settings or _DEFAULT_SETTINGS
    conversation = conversation_messages(messages)
    asked_answer, asked_reasoning = requested_lengths(conversation, settings)
    n_answer = _clamp(answer_tokens) if answer_tokens is not None else asked_answer
    n_reasoning = _clamp(reasoning_tokens) if reasoning_tokens is not None else asked_reasoning
    style = reasoning_style(model, settings.reasoning)
    normalized = [[str(m.get("role", "")), message_text(m)] for m in conversation]
    key = json.dumps(
        {"messages": normalized, "seed": seed, "answer_tokens": n_answer, "reasoning_tokens": n_reasoning},
        sort_keys=True,
        ensure_ascii=True,
        separators=(",", ":"),
    )
    digest = hashlib.sha256(key.encode("ascii")).hexdigest()
    last_user = next((m for m in reversed(normalized) if m[0] == "user"), None)
    topic_source = _ANY_DIRECTIVE.sub(" ", last_user[1] if last_user else _conversation_text(conversation))
    emoji = bool(_EMOJI_DIRECTIVE.search(_conversation_text(conversation)))
    return _generate(digest, topic_source, n_answer, n_reasoning if style != "none" else 0, style, emoji)


@functools.lru_cache(maxsize=24)
def _generate(
    digest: str, topic_source: str, n_answer: int, n_reasoning: int, style: Style, emoji: bool = False
) -> Canonical:
    base = int(digest[:32], 16)
    topics = textgen.topic_words(topic_source)
    answer_rng = random.Random(base)
    title = textgen.title_words(topic_source, lambda: answer_rng.choice(textgen.NOUNS))
    answer = textgen.answer_pieces(answer_rng, n_answer, title, topics)
    if emoji:  # one token in EMOJI_EVERY ends with an astral character (still one token)
        answer = [
            p + EMOJI[i // EMOJI_EVERY % len(EMOJI)] if i % EMOJI_EVERY == EMOJI_EVERY - 1 else p
            for i, p in enumerate(answer)
        ]
    reasoning = textgen.reasoning_pieces(random.Random(base ^ 0x5EA5_0A1E), n_reasoning, topics)
    return Canonical(
        reasoning="".join(reasoning),
        answer="".join(answer),
        style=style,
        reasoning_pieces=tuple(reasoning),
        answer_pieces=tuple(answer),
    )


def uncapped_answer(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str = DEFAULT_MODEL,
    seed: int | None = None,
    settings: LengthSettings | None = None,
) -> str:
    """The answer an uncapped model gives (for inline style without the think block)."""
    return canonical_output(messages, model=model, seed=seed, settings=settings).answer


def uncapped_content(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str = DEFAULT_MODEL,
    seed: int | None = None,
    settings: LengthSettings | None = None,
) -> str:
    """The ``content`` an uncapped call returns (inline style: with the think block)."""
    return canonical_output(messages, model=model, seed=seed, settings=settings).content
