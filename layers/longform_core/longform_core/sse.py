"""Server-Sent Events parsing and chat-completion stream accumulation (pure, no I/O)."""

from __future__ import annotations

import json
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
    def from_wire(cls, data: dict[str, Any]) -> Usage:
        details = data.get("prompt_tokens_details") or {}
        cost = data.get("estimated_cost")
        return cls(
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            total_tokens=int(data.get("total_tokens") or 0),
            cached_tokens=int((details or {}).get("cached_tokens") or 0),
            estimated_cost=float(cost) if cost is not None else None,
        )


@dataclass
class StreamAccumulator:
    """Collects the deltas of a ``chat.completion.chunk`` stream."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    response_id: str | None = None
    done: bool = False
    deltas: int = 0
    error: dict[str, Any] | None = None
    first_content: str | None = None  # the first content delta as it arrived

    def feed_data(self, data: str) -> None:
        if data == DONE:
            self.done = True
            return
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            return  # a malformed event is skipped; the text it carried is lost only if it had any
        if isinstance(obj, dict):
            self.feed(obj)

    def feed(self, obj: dict[str, Any]) -> None:
        if "error" in obj and not obj.get("choices"):
            err = obj["error"]
            self.error = err if isinstance(err, dict) else {"message": str(err)}
            return
        self.model = obj.get("model") or self.model
        self.response_id = obj.get("id") or self.response_id
        usage = obj.get("usage")
        if isinstance(usage, dict) and usage:
            self.usage = Usage.from_wire(usage)
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            piece = delta.get("content")
            if piece is None and isinstance(choice.get("text"), str):
                piece = choice["text"]  # a raw completion (/completions): the text is on the choice
            if isinstance(piece, str) and piece:
                if self.first_content is None:
                    self.first_content = piece
                self.content.append(piece)
                self.deltas += 1
            thought = delta.get("reasoning_content")
            if thought is None:
                thought = delta.get("reasoning")
            if isinstance(thought, str) and thought:
                self.reasoning.append(thought)
                self.deltas += 1
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])

    @property
    def text(self) -> str:
        return "".join(self.content)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)
