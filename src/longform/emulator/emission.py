"""What one reply emits: up to a token limit, cut before the first stop string.

``select`` picks the pieces (reasoning first, then content) and the finish reason a real server
would report; ``stop_strings`` reads a request's ``stop`` the way OpenAI documents it (a string or
a list of strings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from longform.emulator.errors import Rejected

__all__ = ["Emission", "select", "stop_strings"]


@dataclass(frozen=True)
class Emission:
    """The new tokens sent (reasoning, then content) and why generation ended."""

    reasoning: tuple[str, ...]
    content: tuple[str, ...]
    completion_tokens: int
    finish_reason: str


def select(reasoning: Sequence[str], content: Sequence[str], limit: int, stops: Sequence[str]) -> Emission:
    """Up to ``limit`` pieces (reasoning first), cut before the first stop string in the content."""
    total = len(reasoning) + len(content)
    n = min(limit, total)
    r = tuple(reasoning[:n])
    c = tuple(content[: max(0, n - len(r))])
    finish = "stop" if n == total else "length"
    tokens = len(r) + len(c)
    if stops and c:
        text = "".join(c)
        hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
        if hits:
            at = min(hits)
            position = 0
            for index, piece in enumerate(c):
                if position + len(piece) > at:
                    head = piece[: at - position]
                    c = c[:index] + ((head,) if head else ())
                    tokens = len(r) + index + 1  # the token holding the stop string was generated
                    break
                position += len(piece)
            finish = "stop"
    return Emission(r, c, tokens, finish)


def stop_strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return [s for s in value if s]
    raise Rejected(400, "invalid request: 'stop' must be a string or a list of strings")
