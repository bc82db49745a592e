"""The OpenAI-compatible provider client (DeepInfra, vLLM, llama.cpp, Ollama, OpenRouter, ...).

One call = one chat completion, streamed by default and read until the model finishes, the stream
breaks, or the caller's deadline arrives, whichever is first. Whatever text arrived is always
returned: losing generated text is never the right answer to a broken stream.

A stream that *ends* cleanly but wrong (no ``finish_reason``, no ``[DONE]``) is evidence, not an
outage: some servers answer a streamed request that does not fit their context with HTTP 200 and
an empty (or short) stream, while the same request without streaming gets the proper 400. Such a
stream is asked once more without streaming, and that answer (the context error, or the text)
decides. ``stream=False`` sends every request without streaming (for gateways that buffer SSE);
the whole reply then arrives at once, so the deadline can only be a read timeout.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import httpx

from .draft import StreamProgress
from .errors import ProviderError, ProviderRateLimited, ProviderUnavailable, bounded
from .provider_errors import classify_error, error_message
from .retry import RetryPolicy, parse_retry_after
from .sse import StreamAccumulator, Usage, iter_sse_data

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[StreamProgress], None]
EndedBy = Literal["finished", "deadline", "interrupted"]

# below this many seconds to the deadline a new request isn't worth starting
MIN_SECONDS_FOR_A_REQUEST = 2.0
ENDED_WITHOUT_FINISH = "stream ended without finish_reason or [DONE]"
# a server that ignores max_tokens: the reply is read up to max_tokens plus this margin (new deltas,
# about one token each, counted past any echo of the prefill), then the client stops reading
OVERRUN_MARGIN_TOKENS = 8
OVERRUN_MARGIN_RATIO = 0.05


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

    @property
    def has_text(self) -> bool:
        return bool(self.content or self.reasoning)


def describe_retryable(exc: ProviderError) -> str:
    """A retried error in a few words: "rate limited (429)", "provider unreachable", ..."""
    if isinstance(exc, ProviderRateLimited):
        return "rate limited by the provider (429)"
    text = str(exc)
    if "connection failed" in text or "ConnectError" in text:
        return "provider unreachable"
    if "timed out" in text:
        return "provider timed out"
    return f"provider unavailable ({text[:80]})"


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


class ProviderClient:
    """Streams chat completions from an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        api_key: Callable[[], str | None] | str | None = None,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._http = http
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._retry = retry or RetryPolicy()
        self._connect_timeout = connect_timeout
        self._clock = clock
        self._sleep = sleep

    @property
    def url(self) -> str:
        return self._url

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        key = self._api_key() if callable(self._api_key) else self._api_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def chat(
        self,
        body: dict[str, Any],
        *,
        deadline: float,
        stream: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> StreamOutcome:
        """One completion, retrying rate limits and outages that happen before any text.

        ``deadline`` is a ``clock()`` value: reading stops there and what arrived is returned with
        ``ended_by="deadline"``. Raises a :class:`ProviderError` subclass when no text was produced.
        ``on_progress`` is called after every streamed delta (the draft checkpoints, ``draft.py``);
        an exception it raises ends the call.
        """
        payload = dict(body)
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        else:
            payload.pop("stream", None)
            payload.pop("stream_options", None)
        attempt = 0
        while True:
            try:
                if stream:
                    outcome = self._stream_once(
                        payload, deadline=deadline, attempt=attempt + 1, on_progress=on_progress
                    )
                    if outcome.detail == ENDED_WITHOUT_FINISH:
                        outcome = self._ask_without_streaming(payload, outcome, deadline=deadline)
                else:
                    outcome = self._complete_once(payload, deadline=deadline, attempt=attempt + 1)
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                attempt += 1
                retry_after = getattr(exc, "retry_after", None)
                delay = self._retry.delay(attempt - 1, retry_after)
                out_of_attempts = attempt >= self._retry.max_attempts
                out_of_time = self._clock() + delay + MIN_SECONDS_FOR_A_REQUEST > deadline
                too_long = retry_after is not None and retry_after > self._retry.max_retry_after
                if out_of_attempts or out_of_time or too_long:
                    raise
                logger.warning(
                    "%s; retry %d/%d in %.1f s",
                    describe_retryable(exc),
                    attempt,
                    self._retry.max_attempts - 1,
                    delay,
                    extra={"retry_attempt": attempt, "retry_delay_seconds": round(delay, 3)},
                )
                self._sleep(delay)
                continue
            return outcome

    def _timeout(self, deadline: float) -> tuple[float, httpx.Timeout]:
        started = self._clock()
        remaining = deadline - started
        if remaining <= 0:
            raise ProviderUnavailable("no time left before the invocation deadline")
        return started, httpx.Timeout(
            connect=min(self._connect_timeout, remaining),
            read=max(0.05, remaining),
            write=min(30.0, remaining),
            pool=min(10.0, remaining),
        )

    def _ask_without_streaming(
        self, payload: dict[str, Any], streamed: StreamOutcome, *, deadline: float
    ) -> StreamOutcome:
        """The stream ended without a finish: ask once without streaming and let that answer decide.

        A context error (or any other permanent error) is raised; a complete answer replaces the
        stream's; when the second request fails for a passing reason, or the deadline is too near
        for it, the stream's text (if any) stands as an interrupted chunk.
        """
        if self._clock() + MIN_SECONDS_FOR_A_REQUEST > deadline:
            return self._streamed_or_unavailable(streamed)
        plain = {k: v for k, v in payload.items() if k not in ("stream", "stream_options")}
        try:
            answer = self._complete_once(plain, deadline=deadline, attempt=streamed.attempts)
        except ProviderError as exc:
            if not exc.retryable:
                raise
            return self._streamed_or_unavailable(streamed)
        return replace(
            answer,
            detail=f"{ENDED_WITHOUT_FINISH}; answered without streaming",
            first_delta=None,
        )

    @staticmethod
    def _streamed_or_unavailable(streamed: StreamOutcome) -> StreamOutcome:
        if not streamed.has_text:
            raise ProviderUnavailable(f"stream produced no text: {ENDED_WITHOUT_FINISH}")
        return streamed

    def _complete_once(self, payload: dict[str, Any], *, deadline: float, attempt: int) -> StreamOutcome:
        """One request without streaming: the whole reply at once (a timeout keeps nothing)."""
        started, timeout = self._timeout(deadline)
        try:
            response = self._http.post(self._url, json=payload, headers=self._headers(), timeout=timeout)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"provider timed out: {exc!r}") from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise ProviderUnavailable(f"provider connection failed: {exc!r}") from exc
        if response.status_code != 200:
            raise classify_error(
                response.status_code,
                response.content,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        try:
            obj = response.json()
        except ValueError as exc:
            raise ProviderUnavailable(f"the provider's answer is not JSON: {response.text[:200]!r}") from exc
        acc = StreamAccumulator()
        if isinstance(obj, dict):
            acc.feed(obj)
        if acc.error is not None and not acc.has_text:
            raise _stream_error(acc.error)
        if acc.finish_reason is None and not acc.has_text:
            raise ProviderUnavailable("the provider answered without a choice")
        return StreamOutcome(
            content=acc.text,
            reasoning=acc.reasoning_text,
            finish_reason=acc.finish_reason,
            ended_by="finished" if acc.finish_reason is not None and acc.error is None else "interrupted",
            usage=acc.usage,
            deltas=acc.deltas,
            model=acc.model,
            attempts=attempt,
            ttft_seconds=self._clock() - started,
            detail=_error_detail(acc.error)
            if acc.error is not None
            else None
            if acc.finish_reason is not None
            else "the answer has no finish_reason",
            streamed=False,
            error=bounded(error_message({"error": acc.error})) if acc.error is not None else None,
            lone_surrogates=acc.lone_surrogates,
        )

    def _stream_once(
        self,
        payload: dict[str, Any],
        *,
        deadline: float,
        attempt: int,
        on_progress: ProgressCallback | None = None,
    ) -> StreamOutcome:
        started, timeout = self._timeout(deadline)
        acc = StreamAccumulator(prefill=sent_prefill(payload))
        limit = read_limit(payload)
        ttft: float | None = None
        ended_by: EndedBy = "finished"
        detail: str | None = None
        try:
            with self._http.stream(
                "POST", self._url, json=payload, headers=self._headers(), timeout=timeout
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise classify_error(
                        response.status_code,
                        response.content,
                        retry_after=parse_retry_after(response.headers.get("retry-after")),
                    )
                past_deadline = False
                watchdog = _DeadlineWatchdog(response, max(0.0, deadline - self._clock()))

                def lines_until_deadline() -> Iterator[str]:
                    # checked per line, not per data event: comment lines (keep-alives, "processing"
                    # notes) alone must not keep the invocation reading past its deadline
                    nonlocal past_deadline
                    for line in response.iter_lines():
                        yield line
                        if self._clock() >= deadline:
                            past_deadline = True
                            return

                try:
                    for data in iter_sse_data(lines_until_deadline()):
                        before = acc.deltas
                        acc.feed_data(data)
                        if acc.deltas > before:
                            if ttft is None:
                                ttft = self._clock() - started
                            if on_progress is not None:
                                on_progress(
                                    StreamProgress(
                                        acc.content,
                                        acc.reasoning,
                                        deltas=acc.deltas,
                                        first_delta=acc.first_content,
                                        attempt=attempt,
                                        model=acc.model,
                                    )
                                )
                        if acc.error is not None:
                            ended_by, detail = "interrupted", _error_detail(acc.error)
                            break
                        if limit is not None and acc.new_deltas >= limit and acc.finish_reason is None:
                            # the server ignores max_tokens: stop reading, as if it had not
                            acc.finish_reason, ended_by = "length", "finished"
                            detail = (
                                f"the server ignored max_tokens ({payload.get('max_tokens')}): "
                                f"stopped reading after {acc.new_deltas} new deltas"
                            )
                            break
                        if acc.done:
                            break
                        if self._clock() >= deadline:
                            ended_by = "deadline"
                            break
                    else:
                        if past_deadline:
                            ended_by = "deadline"
                except httpx.TimeoutException as exc:
                    ended_by = "deadline" if self._clock() >= deadline - 0.5 else "interrupted"
                    detail = f"read timed out: {exc!r}"
                except (httpx.TransportError, httpx.StreamError) as exc:
                    if watchdog.fired:
                        ended_by, detail = "deadline", "the model went silent until the deadline"
                    else:
                        ended_by, detail = "interrupted", f"stream broke: {exc!r}"
                finally:
                    watchdog.cancel()
        except ProviderError:
            raise
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"provider timed out: {exc!r}") from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            if not acc.deltas:
                raise ProviderUnavailable(f"provider connection failed: {exc!r}") from exc
            ended_by, detail = "interrupted", f"stream broke: {exc!r}"

        if ended_by != "finished" and acc.finish_reason is not None and acc.error is None:
            # the model had already finished: only what follows its last chunk (usage, [DONE]) was
            # lost, and continuing a finished answer would append text the model never meant
            ended_by = "finished"
        if ended_by == "finished" and not acc.done and acc.finish_reason is None:
            # the server closed the stream cleanly without saying why: evidence for chat() to weigh
            return self._outcome(acc, "interrupted", ENDED_WITHOUT_FINISH, attempt, ttft)
        if ended_by == "finished" and acc.finish_reason is None:
            # [DONE] without a finish reason: treat as a cut so the job continues rather than stops
            ended_by, detail = "interrupted", "stream ended without a finish_reason"
        if ended_by != "finished" and not acc.has_text:
            if acc.error is not None:
                raise _stream_error(acc.error)
            if ended_by == "deadline":
                raise ProviderUnavailable("no text arrived before the invocation deadline")
            raise ProviderUnavailable(f"stream produced no text: {detail}")
        return self._outcome(acc, ended_by, detail, attempt, ttft)

    @staticmethod
    def _outcome(
        acc: StreamAccumulator, ended_by: EndedBy, detail: str | None, attempt: int, ttft: float | None
    ) -> StreamOutcome:
        return StreamOutcome(
            content=acc.text,
            reasoning=acc.reasoning_text,
            finish_reason=acc.finish_reason if ended_by == "finished" else None,
            ended_by=ended_by,
            usage=acc.usage,
            deltas=acc.deltas,
            model=acc.model,
            attempts=attempt,
            ttft_seconds=ttft,
            detail=detail,
            first_delta=acc.first_content,
            error=bounded(error_message({"error": acc.error})) if acc.error is not None else None,
            lone_surrogates=acc.lone_surrogates,
        )


def _stream_error(error: dict[str, Any]) -> ProviderError:
    """The typed error of an error reported inside a 200 reply with no text: classified by its
    ``code`` when that is an HTTP status, else an outage (retried like a 5xx)."""
    code = str(error.get("code", ""))
    return classify_error(int(code) if code.isdigit() and len(code) == 3 else 503, {"error": error})


def _error_detail(error: dict[str, Any]) -> str:
    return f"error event in stream: {bounded(error_message({'error': error}), 500)}"


__all__ = ["ProviderClient", "ProviderRateLimited", "StreamOutcome"]
