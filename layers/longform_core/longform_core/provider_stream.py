"""Reading one streamed chat completion (SSE) until the model finishes, the stream breaks, or the
deadline arrives, whichever is first; and what such a read produced (:class:`StreamOutcome`).

Whatever text arrived is always returned: losing generated text is never the right answer to a
broken stream. A stream that ends cleanly but says nothing of how (no ``finish_reason``, no
``[DONE]``) is returned as :attr:`OutcomeKind.ENDED_WITHOUT_FINISH`, evidence for the client
(``provider.py``) to weigh.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import httpx

from .draft import StreamProgress
from .errors import OutageCause as OutageCause
from .errors import ProviderError, ProviderUnavailable, bounded
from .provider_errors import classify_error, error_message
from .retry import parse_retry_after
from .sse import StreamAccumulator, Usage, iter_sse_data

ProgressCallback = Callable[[StreamProgress], None]
EndedBy = Literal["finished", "deadline", "interrupted"]

ENDED_WITHOUT_FINISH = "stream ended without finish_reason or [DONE]"
# a server that ignores max_tokens: the reply is read up to max_tokens plus this margin (new deltas,
# about one token each, counted past any echo of the prefill), then the client stops reading
OVERRUN_MARGIN_TOKENS = 8
OVERRUN_MARGIN_RATIO = 0.05


class OutcomeKind(StrEnum):
    """What kind of answer a completion call produced (``detail`` says it in words for people)."""

    REPLY = "reply"  # the reply as the server sent it (finished, or cut: see ``ended_by``)
    # the server closed the stream cleanly without a finish_reason or [DONE]: some servers answer a
    # streamed request that does not fit their context so; the client asks once without streaming
    ENDED_WITHOUT_FINISH = "ended_without_finish"
    ANSWERED_WITHOUT_STREAMING = "answered_without_streaming"  # that second request's answer


@dataclass(frozen=True)
class StreamOutcome:
    """What one streamed completion produced."""

    content: str
    reasoning: str
    finish_reason: str | None  # the provider's: "stop" | "length" | ... | None when cut off
    ended_by: EndedBy
    usage: Usage | None
    deltas: int
    model: str | None
    attempts: int
    ttft_seconds: float | None
    detail: str | None = None
    first_delta: str | None = None  # the first content delta of a stream (echo evidence)
    streamed: bool = True
    # the provider reported an error after this text (an error event mid-stream, finish_reason
    # "error"): the text is kept (committed) and the chunk then fails like a 5xx (chunk.py)
    error: str | None = None
    lone_surrogates: int = 0  # replaced by U+FFFD (sse.replace_lone_surrogates)
    kind: OutcomeKind = OutcomeKind.REPLY
    # the record of what this reply was billed (billed.py), when one was written
    billed_request: str | None = None

    @property
    def has_text(self) -> bool:
        return bool(self.content or self.reasoning)


def read_limit(payload: dict[str, Any]) -> int | None:
    """New deltas at which a reply is no longer read (None: the request set no max_tokens)."""
    asked = payload.get("max_tokens", payload.get("max_completion_tokens"))
    if not isinstance(asked, int) or isinstance(asked, bool) or asked < 1:
        return None
    return asked + OVERRUN_MARGIN_TOKENS + int(asked * OVERRUN_MARGIN_RATIO)


def sent_prefill(payload: dict[str, Any]) -> str:
    """The text of a trailing assistant message (what a server may echo), else ""."""
    messages = payload.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if isinstance(last, dict) and last.get("role") == "assistant" and isinstance(last.get("content"), str):
        return str(last["content"])
    return ""


class _DeadlineWatchdog:
    """Cuts a stream that has gone silent when the deadline arrives.

    httpx's read timeout applies to each socket read and is fixed when the request starts, so a
    model that stalls late in a stream could block one read past the deadline. At the deadline
    this shuts the socket down, which wakes the blocked read; the text received so far is kept.
    """

    def __init__(self, response: httpx.Response, delay: float):
        self.fired = False
        self._response = response
        self._timer = threading.Timer(delay, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        stream = self._response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            self.fired = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


@dataclass
class StreamRead:
    """One streamed request, read by :meth:`run`: what has arrived, and how the read ended."""

    payload: dict[str, Any]
    deadline: float
    attempt: int
    clock: Callable[[], float]
    started: float  # a clock() value: when the request was sent (the time to first token's start)
    on_progress: ProgressCallback | None = None

    def __post_init__(self) -> None:
        self.acc = StreamAccumulator(prefill=sent_prefill(self.payload))
        self.limit = read_limit(self.payload)
        self.ttft: float | None = None
        self.ended_by: EndedBy = "finished"
        self.detail: str | None = None

    def run(
        self, http: httpx.Client, url: str, headers: dict[str, str], timeout: httpx.Timeout
    ) -> StreamOutcome:
        acc = self.acc
        try:
            with http.stream("POST", url, json=self.payload, headers=headers, timeout=timeout) as response:
                if response.status_code != 200:
                    response.read()
                    raise classify_error(
                        response.status_code,
                        response.content,
                        retry_after=parse_retry_after(response.headers.get("retry-after")),
                    )
                self._read(response)
        except ProviderError:
            raise
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"provider timed out: {exc!r}", cause=OutageCause.TIMED_OUT) from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            if not acc.deltas:
                message = f"provider connection failed: {exc!r}"
                raise ProviderUnavailable(message, cause=OutageCause.UNREACHABLE) from exc
            self.ended_by, self.detail = "interrupted", f"stream broke: {exc!r}"
        return self._settle()

    def _read(self, response: httpx.Response) -> None:
        """Read the events until the reply ends; a stream that breaks or times out keeps its text."""
        watchdog = _DeadlineWatchdog(response, max(0.0, self.deadline - self.clock()))
        try:
            self._read_events(response)
        except httpx.TimeoutException as exc:
            self.ended_by = "deadline" if self.clock() >= self.deadline - 0.5 else "interrupted"
            self.detail = f"read timed out: {exc!r}"
        except (httpx.TransportError, httpx.StreamError) as exc:
            if watchdog.fired:
                self.ended_by, self.detail = "deadline", "the model went silent until the deadline"
            else:
                self.ended_by, self.detail = "interrupted", f"stream broke: {exc!r}"
        finally:
            watchdog.cancel()

    def _read_events(self, response: httpx.Response) -> None:
        acc, past_deadline = self.acc, False

        def lines_until_deadline() -> Iterator[str]:
            # checked per line, not per data event: comment lines (keep-alives, "processing"
            # notes) alone must not keep the invocation reading past its deadline
            nonlocal past_deadline
            for line in response.iter_lines():
                yield line
                if self.clock() >= self.deadline:
                    past_deadline = True
                    return

        for data in iter_sse_data(lines_until_deadline()):
            before = acc.deltas
            acc.feed_data(data)
            if acc.deltas > before:
                self._progress()
            if acc.error is not None:
                self.ended_by, self.detail = "interrupted", error_detail(acc.error)
                return
            if self.limit is not None and acc.new_deltas >= self.limit and acc.finish_reason is None:
                # the server ignores max_tokens: stop reading, as if it had not
                acc.finish_reason, self.ended_by = "length", "finished"
                self.detail = (
                    f"the server ignored max_tokens ({self.payload.get('max_tokens')}): "
                    f"stopped reading after {acc.new_deltas} new deltas"
                )
                return
            if acc.done:
                return
            if self.clock() >= self.deadline:
                self.ended_by = "deadline"
                return
        if past_deadline:
            self.ended_by = "deadline"

    def _progress(self) -> None:
        acc = self.acc
        if self.ttft is None:
            self.ttft = self.clock() - self.started
        if self.on_progress is not None:
            self.on_progress(
                StreamProgress(
                    acc.content,
                    acc.reasoning,
                    deltas=acc.deltas,
                    first_delta=acc.first_content,
                    attempt=self.attempt,
                    model=acc.model,
                )
            )

    def _settle(self) -> StreamOutcome:
        """How the read ended, as the outcome (or the error, when no text arrived)."""
        acc, ended_by, detail = self.acc, self.ended_by, self.detail
        if ended_by != "finished" and acc.finish_reason is not None and acc.error is None:
            # the model had already finished: only what follows its last chunk (usage, [DONE]) was
            # lost, and continuing a finished answer would append text the model never meant
            ended_by = "finished"
        if ended_by == "finished" and not acc.done and acc.finish_reason is None:
            # the server closed the stream cleanly without saying why: evidence for the client to weigh
            return self._outcome("interrupted", ENDED_WITHOUT_FINISH, OutcomeKind.ENDED_WITHOUT_FINISH)
        if ended_by == "finished" and acc.finish_reason is None:
            # [DONE] without a finish reason: treat as a cut so the job continues rather than stops
            ended_by, detail = "interrupted", "stream ended without a finish_reason"
        if ended_by != "finished" and not acc.has_text:
            if acc.error is not None:
                raise stream_error(acc.error)
            if ended_by == "deadline":
                raise ProviderUnavailable("no text arrived before the invocation deadline")
            raise ProviderUnavailable(f"stream produced no text: {detail}")
        return self._outcome(ended_by, detail, OutcomeKind.REPLY)

    def _outcome(self, ended_by: EndedBy, detail: str | None, kind: OutcomeKind) -> StreamOutcome:
        acc = self.acc
        return StreamOutcome(
            content=acc.text,
            reasoning=acc.reasoning_text,
            finish_reason=acc.finish_reason if ended_by == "finished" else None,
            ended_by=ended_by,
            usage=acc.usage,
            deltas=acc.deltas,
            model=acc.model,
            attempts=self.attempt,
            ttft_seconds=self.ttft,
            detail=detail,
            first_delta=acc.first_content,
            error=bounded(error_message({"error": acc.error})) if acc.error is not None else None,
            lone_surrogates=acc.lone_surrogates,
            kind=kind,
        )


def stream_error(error: dict[str, Any]) -> ProviderError:
    """The typed error of an error reported inside a 200 reply with no text: classified by its
    ``code`` when that is an HTTP status, else an outage (retried like a 5xx)."""
    code = str(error.get("code", ""))
    return classify_error(int(code) if code.isdigit() and len(code) == 3 else 503, {"error": error})


def error_detail(error: dict[str, Any]) -> str:
    return f"error event in stream: {bounded(error_message({'error': error}), 500)}"
