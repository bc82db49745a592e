"""A ``ReplyPlan`` rendered: as an SSE stream (chunked) or as one JSON body.

The stream is a role chunk, one chunk per delta (SSE ``: keep-alive`` comments every
``keepalive_every`` tokens), a final chunk with the finish reason and usage (or usage in a
separate chunk), then ``data: [DONE]``. The plan's fault is applied while sending: "cut"
drops the connection, "stall" pauses, "slow" sets the per-token delay (in the plan).
"""

from __future__ import annotations

import json
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
    message: dict[str, Any] = {"role": "assistant", "content": echo.content + "".join(emission.content)}
    if plan.style == "field":
        message["reasoning_content"] = echo.reasoning + "".join(emission.reasoning) or None
    payload = {
        "id": plan.response_id,
        "object": "chat.completion",
        "created": plan.created,
        "model": plan.model,
        "choices": [{"index": 0, "message": message, "finish_reason": emission.finish_reason}],
        "usage": plan.usage,
    }
    channel.record()
    channel.send_json(200, payload)


def send_stream(plan: ReplyPlan, channel: Channel) -> None:
    """The streamed reply (``stream: true``)."""
    channel.send_headers(200, STREAM_HEADERS)
    out = _Writer(plan, channel)
    out.add(out.chunk({"role": "assistant", "content": ""}))
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
            "model": plan.model,
        }
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
        return (
            self.openers[field_name]
            + json.dumps(piece, ensure_ascii=False).encode()
            + b'},"finish_reason":null}]}\n\n'
        )

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
    after = int(fault["after_tokens"]) if fault and kind in ("cut", "stall") else -1
    every, delay = plan.keepalive_every, plan.delay
    for index, (field_name, piece) in enumerate(pieces):
        if index == after:
            out.flush()
            if kind == "cut":
                out.channel.record(finish_reason=None, completion_tokens=index)
                out.channel.cut()
                return False
            time.sleep(float(fault["seconds"]) if fault else 0.0)
        if delay > 0:
            out.flush()
            time.sleep(delay)
        out.add(out.delta(field_name, piece))
        if every and (index + 1) % every == 0:
            out.add(b": " + plan.keepalive_comment.encode() + b"\n\n")
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
    if fault is not None and kind == "stall" and int(fault["after_tokens"]) >= sent:
        out.flush()
        time.sleep(float(fault["seconds"]))
    if plan.silent:  # a clean end of the body with no finish_reason, no usage, no [DONE]
        channel.record()
        out.flush()
        out.end()
        return
    usage_json = json.dumps(plan.usage, separators=(",", ":"))
    if plan.usage_chunk == "last":
        out.add(out.chunk({}, plan.finish_reason, ',"usage":' + usage_json))
    else:
        out.add(out.chunk({}, plan.finish_reason))
        if plan.include_usage:
            out.add(b"data: " + out.head + b',"choices":[],"usage":' + usage_json.encode() + b"}\n\n")
    channel.record()
    if plan.done_marker:
        out.add(b"data: [DONE]\n\n")
    out.flush()
    out.end()
