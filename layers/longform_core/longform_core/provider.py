"""The OpenAI-compatible provider client (DeepInfra, vLLM, llama.cpp, Ollama, OpenRouter, ...).

One call = one chat completion, streamed by default and read until the model finishes, the stream
breaks, or the caller's deadline arrives, whichever is first (``provider_stream.py`` reads it).
Whatever text arrived is always returned: losing generated text is never the right answer to a
broken stream. Rate limits and outages that happen before any text are retried here.

A stream that *ends* cleanly but wrong (no ``finish_reason``, no ``[DONE]``) is evidence, not an
outage: some servers answer a streamed request that does not fit their context with HTTP 200 and
an empty (or short) stream, while the same request without streaming gets the proper 400. Such a
stream is asked once more without streaming, and that answer (the context error, or the text)
decides. ``stream=False`` sends every request without streaming (for gateways that buffer SSE);
the whole reply then arrives at once, so the deadline can only be a read timeout.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx

from .errors import OutageCause as OutageCause
from .errors import ProviderError, ProviderRateLimited, ProviderUnavailable, bounded
from .provider_errors import classify_error, describe_retryable, error_message
from .provider_stream import ENDED_WITHOUT_FINISH as ENDED_WITHOUT_FINISH
from .provider_stream import OVERRUN_MARGIN_RATIO as OVERRUN_MARGIN_RATIO
from .provider_stream import OVERRUN_MARGIN_TOKENS as OVERRUN_MARGIN_TOKENS
from .provider_stream import EndedBy as EndedBy
from .provider_stream import OutcomeKind as OutcomeKind
from .provider_stream import ProgressCallback as ProgressCallback
from .provider_stream import StreamOutcome as StreamOutcome
from .provider_stream import StreamRead, error_detail, stream_error
from .retry import RetryPolicy, parse_retry_after
from .sse import StreamAccumulator

logger = logging.getLogger(__name__)

# below this many seconds to the deadline a new request isn't worth starting
MIN_SECONDS_FOR_A_REQUEST = 2.0


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
        self._base_url = base_url.rstrip("/")
        self._url = self._base_url + "/chat/completions"
        self._props: tuple[dict[str, Any] | None] | None = None  # GET /props, asked once
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
        if "prompt" in body and "messages" not in body and self._url.endswith("/chat/completions"):
            # a raw completion (the completion rung, raw_completion.py): the same call on /completions
            return self._completions().chat(body, deadline=deadline, stream=stream, on_progress=on_progress)
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
                    if outcome.kind is OutcomeKind.ENDED_WITHOUT_FINISH:
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

    def _completions(self) -> ProviderClient:
        """This client on the provider's ``/completions`` endpoint (raw prompts)."""
        other = copy.copy(self)
        other._url = self._base_url + "/completions"
        return other

    def server_props(self) -> dict[str, Any] | None:
        """The server's ``GET /props`` (llama.cpp: ``chat_template``, ``bos_token``, ...), or None.

        Asked at the server's root (the base URL without ``/v1...``), once per client; any error, or
        an answer that is not a JSON object, is None."""
        if self._props is None:
            self._props = (self._fetch_props(),)
        return self._props[0]

    def _fetch_props(self) -> dict[str, Any] | None:
        # the server's root: the base URL without its API path (".../v1", ".../v1/openai")
        root = re.sub(r"/v1(?:/.*)?$", "", self._base_url)
        headers = {k: v for k, v in self._headers().items() if k == "Authorization"}
        try:
            response = self._http.get(root + "/props", headers=headers, timeout=10.0)
            obj = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        return obj if isinstance(obj, dict) else None

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
            kind=OutcomeKind.ANSWERED_WITHOUT_STREAMING,
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
            raise ProviderUnavailable(f"provider timed out: {exc!r}", cause=OutageCause.TIMED_OUT) from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            message = f"provider connection failed: {exc!r}"
            raise ProviderUnavailable(message, cause=OutageCause.UNREACHABLE) from exc
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
            raise stream_error(acc.error)
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
            detail=error_detail(acc.error)
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
        read = StreamRead(payload, deadline, attempt, self._clock, started, on_progress)
        return read.run(self._http, self._url, self._headers(), timeout)


__all__ = ["ProviderClient", "ProviderRateLimited", "StreamOutcome"]
