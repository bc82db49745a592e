"""A ``ReplyPlan`` rendered: as an SSE stream (chunked) or as one JSON body.

The stream is a role chunk, one chunk per delta (SSE ``: keep-alive`` comments every
``keepalive_every`` tokens), a final chunk with the finish reason and usage (or usage in a
separate chunk), then ``data: [DONE]``. The plan's fault is applied while sending: "cut"
drops the connection, "stall" pauses, "slow" sets the per-token delay (in the plan),
"error_event" reports an error inside the reply and ends it, "malformed" sends fields of the
wrong type, "split_surrogates" sends each astral character as two events (see
``settings.FAULT_TYPES``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from longform.emulator.protocol import Delta, ReplyPlan

__all__ = ["STREAM_HEADERS", "Channel", "send_json_reply", "send_stream"]

STREAM_HEADERS = (
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache"),
    ("Transfer-Encoding", "chunked"),
)
_FLUSH_EVERY = 64
"""Chunks buffered before a write (when there is no per-token delay)."""


class Channel(Protocol):
    """Where a reply goes: the HTTP connection and the request log."""

    def record(self, status: int = 200, **fields: Any) -> None:
        """Log the request (once) with ``fields`` updated."""

    def send_headers(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        """The status line and headers."""

    def write(self, data: bytes) -> None:
        """Bytes of the body, as they are."""

    def send_json(self, status: int, payload: Any) -> None:
        """A whole JSON response."""

    def cut(self) -> None:
        """Drop the connection abruptly."""


# the documented mid-stream error shapes: OpenRouter's unified error event
# (https://openrouter.ai/docs/api/reference/streaming#handling-errors-during-streaming) and OpenAI's
# one ``data: {"error": ...}`` line before it closes the stream
OPENROUTER_ERROR = {"code": "server_error", "message": "Provider disconnected unexpectedly"}
OPENAI_ERROR = {
    "message": "The server had an error while processing your request. Sorry about that!",
    "type": "server_error",
}
_MALFORMED_USAGE = {
    "prompt_tokens": "n/a",
    "prompt_tokens_details": [1],
    "estimated_cost": "free",
}


def _kind(plan: ReplyPlan) -> str | None:
    return plan.fault["type"] if plan.fault else None


def _malformed(plan: ReplyPlan, name: str) -> bool:
    fault = plan.fault
    return fault is not None and fault["type"] == "malformed" and name in fault.get("fields", (name,))


def _usage(plan: ReplyPlan) -> dict[str, Any]:
    if not _malformed(plan, "usage"):
        return plan.usage
    return {**plan.usage, **_MALFORMED_USAGE, "completion_tokens": str(plan.usage["completion_tokens"])}


def send_json_reply(plan: ReplyPlan, channel: Channel) -> None:
    """The non-streamed reply: one ``chat.completion`` body after the whole generation time."""
    emission, fault = plan.emission, plan.fault
    pause = plan.delay * (len(emission.reasoning) + len(emission.content))
    if fault is not None and fault["type"] == "stall":
        pause += float(fault["seconds"])
    if pause > 0:
        time.sleep(pause)
    if fault is not None and fault["type"] == "cut":
        channel.record(finish_reason=None)
        channel.cut()
        return
    echo = plan.echo
    content, finish = emission.content, emission.finish_reason
    choice: dict[str, Any] = {"index": 0}
    if fault is not None and fault["type"] == "error_event":  # OpenRouter's in-band error
        content = content[: max(0, int(fault["after_tokens"]) - len(emission.reasoning))]
        finish = str(fault.get("finish_reason", "error"))
        choice["error"] = {"code": 502, "message": OPENROUTER_ERROR["message"]}
    message: dict[str, Any] = {"role": "assistant", "content": echo.content + "".join(content)}
    if plan.style == "field":
        message["reasoning_content"] = echo.reasoning + "".join(emission.reasoning) or None
    choice.update(message=message, finish_reason=finish)
    payload = {
        "id": plan.response_id,
        "object": "chat.completion",
        "created": plan.created,
        "model": 123 if _malformed(plan, "model") else plan.model,
        "choices": [choice],
        "usage": _usage(plan),
    }
    channel.record()
    channel.send_json(200, payload)


_BETWEEN_SURROGATES = re.compile(r"(?<=\\ud[89ab][0-9a-f]{2})(?=\\ud[c-f][0-9a-f]{2})")


def _split_at_surrogates(piece: str) -> list[bytes]:
    """``piece`` as JSON string literals (ASCII escapes) cut between the two UTF-16 code units of
    each astral character: ``"word\\ud83c"``, then ``"\\udf0a"``."""
    body = json.dumps(piece)[1:-1]  # ensure_ascii: an astral character is \\uXXXX\\uXXXX
    return [b'"' + part.encode() + b'"' for part in _BETWEEN_SURROGATES.split(body)]


def send_stream(plan: ReplyPlan, channel: Channel) -> None:
    """The streamed reply (``stream: true``)."""
    channel.send_headers(200, STREAM_HEADERS)
    out = _Writer(plan, channel)
    out.add(out.chunk({"role": "assistant", "content": ""}))
    if _malformed(plan, "delta"):  # one event whose delta is a string: read as no delta
        out.add(
            b"data: " + out.head + b',"choices":[{"index":0,"delta":"garbage","finish_reason":null}]}\n\n'
        )
    before, pieces = plan.deltas()
    for field_name, piece in before:
        out.add(out.delta(field_name, piece))
    if _send_pieces(plan, pieces, out):
        _finish(plan, len(pieces), out)


class _Writer:
    """Formats the chunks of one stream and writes them, buffered, as HTTP chunks."""

    def __init__(self, plan: ReplyPlan, channel: Channel) -> None:
        self.channel = channel
        self.buffer: list[bytes] = []
        identity = {
            "id": plan.response_id,
            "object": "chat.completion.chunk",
            "created": plan.created,
            "model": 123 if _malformed(plan, "model") else plan.model,
        }
        self.split = _kind(plan) == "split_surrogates"
        self.head = json.dumps(identity, ensure_ascii=False, separators=(",", ":"))[:-1].encode()
        # the per-token chunks differ only in the piece: format them without a json.dumps per dict
        self.openers = {
            name: b"data: " + self.head + b',"choices":[{"index":0,"delta":{"' + name.encode() + b'":'
            for name in ("content", "reasoning_content")
        }

    def chunk(self, delta: Mapping[str, Any], finish: str | None = None, extra: str = "") -> bytes:
        choice = json.dumps(
            {"index": 0, "delta": delta, "finish_reason": finish}, ensure_ascii=False, separators=(",", ":")
        )
        return b"".join(
            (b"data: ", self.head, b',"choices":[', choice.encode(), b"]", extra.encode(), b"}\n\n")
        )

    def delta(self, field_name: str, piece: str) -> bytes:
        if self.split and any(ord(ch) > 0xFFFF for ch in piece):
            return b"".join(
                self.openers[field_name] + literal + b'},"finish_reason":null}]}\n\n'
                for literal in _split_at_surrogates(piece)
            )
        return (
            self.openers[field_name]
            + json.dumps(piece, ensure_ascii=False).encode()
            + b'},"finish_reason":null}]}\n\n'
        )

    def error_event(self, fault: Mapping[str, Any]) -> bytes:
        """The fault's mid-stream error, in the shape it names."""
        shape = fault.get("shape", "openrouter")
        finish = str(fault.get("finish_reason", "error"))
        if shape == "openai":
            return b"data: " + json.dumps({"error": OPENAI_ERROR}).encode() + b"\n\n"
        extra = "" if shape == "finish" else ',"error":' + json.dumps(OPENROUTER_ERROR)
        return self.chunk({"content": ""}, finish, extra)

    def add(self, data: bytes) -> None:
        self.buffer.append(data)

    def flush(self) -> None:
        if self.buffer:
            data = b"".join(self.buffer)
            self.buffer.clear()
            self.channel.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end(self) -> None:
        """The last (empty) HTTP chunk: a clean end of the body."""
        self.channel.write(b"0\r\n\r\n")


def _send_pieces(plan: ReplyPlan, pieces: Sequence[Delta], out: _Writer) -> bool:
    """The new tokens, with keep-alives, the per-token delay and a "cut" or "stall" fault
    at ``after_tokens``; False when the connection was cut."""
    fault = plan.fault
    kind = fault["type"] if fault else None
    after = int(fault["after_tokens"]) if fault and kind in ("cut", "stall", "error_event") else -1
    every, delay = plan.keepalive_every, plan.delay
    for index, (field_name, piece) in enumerate(pieces):
        if index == after:
            out.flush()
            if kind == "cut":
                out.channel.record(finish_reason=None, completion_tokens=index)
                out.channel.cut()
                return False
            if kind == "error_event" and fault is not None:
                _end_with_error(out, fault, index)
                return False
            time.sleep(float(fault["seconds"]) if fault else 0.0)
        if delay > 0:
            out.flush()
            time.sleep(delay)
        out.add(out.delta(field_name, piece))
        if every and (index + 1) % every == 0:
            out.add(b": keep-alive\n\n")
        if len(out.buffer) >= _FLUSH_EVERY or delay > 0:
            out.flush()
    return True


def _finish(plan: ReplyPlan, sent: int, out: _Writer) -> None:
    """After ``sent`` new tokens: a fault past the last token, then the final chunk, usage and
    [DONE] (or, for a silent stream, only the end of the body)."""
    fault, channel = plan.fault, out.channel
    kind = fault["type"] if fault else None
    if kind == "cut":  # after_tokens >= the pieces there were: cut before the final chunk
        out.flush()
        channel.record(finish_reason=None)
        channel.cut()
        return
    if kind == "error_event" and fault is not None:  # instead of the final chunk
        _end_with_error(out, fault, sent)
        return
    if fault is not None and kind == "stall" and int(fault["after_tokens"]) >= sent:
        out.flush()
        time.sleep(float(fault["seconds"]))
    if plan.silent:  # a clean end of the body with no finish_reason, no usage, no [DONE]
        channel.record()
        out.flush()
        out.end()
        return
    usage_json = json.dumps(_usage(plan), separators=(",", ":"))
    if plan.usage_chunk == "last":
        out.add(out.chunk({}, plan.finish_reason, ',"usage":' + usage_json))
    else:
        out.add(out.chunk({}, plan.finish_reason))
        if plan.include_usage:
            out.add(b"data: " + out.head + b',"choices":[],"usage":' + usage_json.encode() + b"}\n\n")
    channel.record()
    out.add(b"data: [DONE]\n\n")
    out.flush()
    out.end()


def _end_with_error(out: _Writer, fault: Mapping[str, Any], sent: int) -> None:
    """The error event after ``sent`` tokens, then a clean end of the body (no [DONE])."""
    out.add(out.error_event(fault))
    out.channel.record(finish_reason="error", completion_tokens=sent)
    out.flush()
    out.end()
