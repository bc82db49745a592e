"""ProviderClient against httpx.MockTransport, with an injected clock and sleep."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from longform_core.errors import (
    ContextWindowExceeded,
    ProviderAuthenticationFailed,
    ProviderRateLimited,
    ProviderRequestInvalid,
    ProviderUnavailable,
)
from longform_core.provider import OutcomeKind, ProviderClient
from longform_core.retry import RetryPolicy

BASE_URL = "https://provider.test/v1/openai/"
BODY: dict[str, Any] = {"model": "m/1", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 64}


class FakeClock:
    """A clock that only moves when told to (by sleep, by the stream, or by a fixed step per call)."""

    def __init__(self, start: float = 1000.0, step: float = 0.0):
        self.now = start
        self.step = step
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def event(obj: dict[str, Any] | str) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return f"data: {data}\n\n".encode()


def delta(
    content: str | None = None, *, finish: str | None = None, usage: dict[str, Any] | None = None
) -> bytes:
    obj: dict[str, Any] = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m/1",
        "choices": [
            {"index": 0, "delta": {} if content is None else {"content": content}, "finish_reason": finish}
        ],
    }
    if usage is not None:
        obj["usage"] = usage
    return event(obj)


USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12, "estimated_cost": 1e-05}


def good_stream() -> list[bytes]:
    return [
        b": keep-alive\n\n",
        delta("Hello"),
        delta(", "),
        delta("world", finish="stop", usage=USAGE),
        event("[DONE]"),
    ]


def sse(
    parts: list[bytes] | Iterator[bytes], status: int = 200, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        status,
        content=iter(parts) if isinstance(parts, list) else parts,
        headers={"content-type": "text/event-stream", **(headers or {})},
    )


class Recorder:
    """A MockTransport handler that answers from a list of responders, one per request."""

    def __init__(self, *responders: Callable[[httpx.Request], httpx.Response]):
        self.responders = list(responders)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        index = min(len(self.requests) - 1, len(self.responders) - 1)
        return self.responders[index](request)

    @property
    def calls(self) -> int:
        return len(self.requests)


def make_client(
    handler: Callable[[httpx.Request], httpx.Response],
    clock: FakeClock,
    *,
    api_key: Any = "sk-test",
    max_attempts: int = 4,
) -> ProviderClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return ProviderClient(
        http,
        base_url=BASE_URL,
        api_key=api_key,
        retry=RetryPolicy(max_attempts=max_attempts, base_delay=0.5, max_delay=4.0, rng=random.Random(0)),
        clock=clock,
        sleep=clock.sleep,
    )


def error_response(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    def respond(_: httpx.Request) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers=headers or {})

    return respond


def ok(parts_factory: Callable[[], list[bytes]] = good_stream) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: sse(parts_factory())


# ---- a normal stream --------------------------------------------------------------------------


def test_normal_stream() -> None:
    clock = FakeClock()
    rec = Recorder(ok())
    client = make_client(rec, clock)
    out = client.chat(BODY, deadline=clock.now + 600)
    assert out.content == "Hello, world"
    assert out.reasoning == ""
    assert out.finish_reason == "stop"
    assert out.ended_by == "finished"
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.estimated_cost) == (9, 3, 1e-05)
    assert out.deltas == 3
    assert out.model == "m/1"
    assert out.attempts == 1
    assert out.has_text
    assert rec.calls == 1
    assert clock.sleeps == []


def test_request_body_url_and_headers() -> None:
    clock = FakeClock()
    rec = Recorder(ok())
    keys = iter(["key-1", "key-2"])
    client = make_client(rec, clock, api_key=lambda: next(keys))
    body = dict(BODY)
    client.chat(body, deadline=clock.now + 600)
    client.chat(body, deadline=clock.now + 600)
    first = rec.requests[0]
    assert str(first.url) == "https://provider.test/v1/openai/chat/completions"
    assert first.method == "POST"
    sent = json.loads(first.content)
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "m/1"
    assert sent["messages"] == BODY["messages"]
    assert sent["max_tokens"] == 64
    assert body == BODY  # the caller's body is not modified
    # the key is read through the callable on every request (a rotated secret is picked up)
    assert first.headers["authorization"] == "Bearer key-1"
    assert rec.requests[1].headers["authorization"] == "Bearer key-2"
    assert first.headers["accept"] == "text/event-stream"


def test_no_authorization_header_without_a_key() -> None:
    clock = FakeClock()
    rec = Recorder(ok())
    make_client(rec, clock, api_key=lambda: None).chat(BODY, deadline=clock.now + 600)
    assert "authorization" not in rec.requests[0].headers


# ---- retries ----------------------------------------------------------------------------------


def test_429_with_retry_after_is_retried_after_waiting() -> None:
    clock = FakeClock()
    rec = Recorder(error_response(429, {"error": {"message": "Model is busy"}}, {"Retry-After": "3"}), ok())
    client = make_client(rec, clock)
    out = client.chat(BODY, deadline=clock.now + 600)
    assert out.content == "Hello, world"
    assert out.attempts == 2
    assert rec.calls == 2
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] >= 3.0


def test_retry_after_longer_than_the_in_process_limit_goes_to_the_workflow() -> None:
    clock = FakeClock()
    rec = Recorder(error_response(429, {"error": {"message": "busy"}}, {"Retry-After": "120"}), ok())
    client = make_client(rec, clock)
    with pytest.raises(ProviderRateLimited) as info:
        client.chat(BODY, deadline=clock.now + 900)
    assert info.value.retry_after == 120.0
    assert rec.calls == 1
    assert clock.sleeps == []


def test_5xx_exhausts_attempts() -> None:
    clock = FakeClock()
    rec = Recorder(error_response(500, b"Internal Server Error"))
    client = make_client(rec, clock, max_attempts=3)
    with pytest.raises(ProviderUnavailable) as info:
        client.chat(BODY, deadline=clock.now + 600)
    assert info.value.status == 500
    assert rec.calls == 3
    assert len(clock.sleeps) == 2
    assert all(0.0 <= s <= 4.0 for s in clock.sleeps)


@pytest.mark.parametrize("status", [502, 503])
def test_5xx_then_success(status: int) -> None:
    clock = FakeClock()
    rec = Recorder(error_response(status, b"bad gateway"), ok())
    out = make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert out.content == "Hello, world"
    assert out.attempts == 2


def test_context_400_raises_immediately() -> None:
    clock = FakeClock()
    message = (
        "This model's maximum context length is 16000 tokens. However, you requested 17165 tokens "
        "(13069 in the messages, 4096 in the completion). "
        "Please reduce the length of the messages or completion."
    )
    rec = Recorder(
        error_response(400, {"object": "error", "message": message, "type": "BadRequestError", "code": 400})
    )
    with pytest.raises(ContextWindowExceeded) as info:
        make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert info.value.limit.context_length == 16000
    assert info.value.limit.prompt_tokens == 13069
    assert rec.calls == 1
    assert clock.sleeps == []


def test_other_400_raises_immediately() -> None:
    clock = FakeClock()
    rec = Recorder(error_response(400, {"error": {"message": "unknown model"}}))
    with pytest.raises(ProviderRequestInvalid):
        make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert rec.calls == 1


def test_401_is_not_retried() -> None:
    clock = FakeClock()
    rec = Recorder(error_response(401, {"error": {"message": "bad key"}}))
    with pytest.raises(ProviderAuthenticationFailed) as info:
        make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert info.value.status == 401
    assert rec.calls == 1
    assert clock.sleeps == []


def test_no_retry_when_the_deadline_is_too_near() -> None:
    clock = FakeClock()
    rec = Recorder(error_response(429, {"error": {"message": "busy"}}, {"Retry-After": "1"}), ok())
    with pytest.raises(ProviderRateLimited):
        make_client(rec, clock).chat(BODY, deadline=clock.now + 2.5)
    assert rec.calls == 1
    assert clock.sleeps == []


def test_connection_failure_is_unavailable_and_retried() -> None:
    clock = FakeClock()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    rec = Recorder(refuse)
    with pytest.raises(ProviderUnavailable):
        make_client(rec, clock, max_attempts=2).chat(BODY, deadline=clock.now + 600)
    assert rec.calls == 2


# ---- broken and cut streams -------------------------------------------------------------------


def breaking(parts: list[bytes]) -> Callable[[httpx.Request], httpx.Response]:
    def respond(request: httpx.Request) -> httpx.Response:
        def gen() -> Iterator[bytes]:
            yield from parts
            raise httpx.ReadError("connection reset by peer", request=request)

        return sse(gen())

    return respond


def completion(content: str, finish: str = "stop", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "c2",
        "object": "chat.completion",
        "model": "m/1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
        ],
        "usage": usage or USAGE,
    }


def json_response(obj: Any, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(status, json=obj)


CONTEXT_400 = {
    "error": {
        "code": 400,
        "message": (
            "request (2060 tokens) exceeds the available context size (2048 tokens), try increasing it"
        ),
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 2060,
        "n_ctx": 2048,
    }
}


def test_stream_that_ends_without_finish_is_asked_again_without_streaming() -> None:
    clock = FakeClock()
    rec = Recorder(
        ok(lambda: [delta("Once upon"), delta(" a time")]), json_response(completion("Once upon a time."))
    )
    out = make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert rec.calls == 2
    second = json.loads(rec.requests[1].content)
    assert "stream" not in second and "stream_options" not in second
    assert second["messages"] == BODY["messages"] and second["max_tokens"] == BODY["max_tokens"]
    # the complete, non-streamed answer replaces the stream's partial one
    assert (out.content, out.finish_reason, out.ended_by) == ("Once upon a time.", "stop", "finished")
    assert out.streamed is False
    assert out.detail is not None and "answered without streaming" in out.detail
    assert out.kind is OutcomeKind.ANSWERED_WITHOUT_STREAMING


def test_empty_stream_that_ends_without_finish_learns_the_context_error() -> None:
    """HTTP 200, no text, no finish, no [DONE]; the same request without streaming gets the 400."""
    clock = FakeClock()
    rec = Recorder(
        ok(lambda: [event({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})]),
        json_response(CONTEXT_400, 400),
    )
    with pytest.raises(ContextWindowExceeded) as info:
        make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert info.value.limit.context_length == 2048
    assert info.value.limit.prompt_tokens == 2060
    assert rec.calls == 2
    assert clock.sleeps == []


def test_stream_without_finish_keeps_its_text_when_the_second_request_fails_for_a_passing_reason() -> None:
    clock = FakeClock()
    rec = Recorder(
        ok(lambda: [delta("Once upon"), delta(" a time")]),
        error_response(503, {"error": {"message": "busy"}}),
    )
    out = make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert rec.calls == 2
    assert (out.content, out.ended_by, out.finish_reason) == ("Once upon a time", "interrupted", None)


def test_stream_without_finish_and_no_time_for_a_second_request_keeps_its_text() -> None:
    clock = FakeClock()
    rec = Recorder(ok(lambda: [delta("Once upon")]), json_response(completion("never asked")))
    out = make_client(rec, clock).chat(BODY, deadline=clock.now + 1.5)
    assert rec.calls == 1
    assert (out.content, out.ended_by) == ("Once upon", "interrupted")


def test_without_streaming_the_body_has_no_stream_fields_and_the_answer_is_whole() -> None:
    clock = FakeClock()
    rec = Recorder(json_response(completion("Hello, world", "length")))
    out = make_client(rec, clock).chat(BODY, deadline=clock.now + 600, stream=False)
    body = json.loads(rec.requests[0].content)
    assert "stream" not in body and "stream_options" not in body
    assert (out.content, out.finish_reason, out.ended_by, out.streamed) == (
        "Hello, world",
        "length",
        "finished",
        False,
    )
    assert out.usage is not None and out.usage.completion_tokens == 3
    assert out.first_delta is None


def test_without_streaming_errors_are_classified_and_retried_like_streams() -> None:
    clock = FakeClock()
    rec = Recorder(
        error_response(429, {"error": {"message": "busy"}}, {"Retry-After": "2"}),
        json_response(completion("Hi")),
    )
    out = make_client(rec, clock).chat(BODY, deadline=clock.now + 600, stream=False)
    assert out.content == "Hi" and rec.calls == 2
    assert len(clock.sleeps) == 1 and clock.sleeps[0] >= 2.0  # Retry-After honoured
    rec = Recorder(json_response(CONTEXT_400, 400))
    with pytest.raises(ContextWindowExceeded):
        make_client(rec, clock).chat(BODY, deadline=clock.now + 600, stream=False)
    assert rec.calls == 1


def test_without_streaming_a_timeout_keeps_nothing_and_is_unavailable() -> None:
    clock = FakeClock()

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(ProviderUnavailable):
        make_client(Recorder(slow), clock, max_attempts=1).chat(BODY, deadline=clock.now + 600, stream=False)


def test_first_delta_is_reported_as_it_arrived() -> None:
    clock = FakeClock()
    rec = Recorder(
        ok(lambda: [delta("Once upon a time, a sailor named"), delta(" Jo"), delta("", finish="length")])
    )
    out = make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert out.first_delta == "Once upon a time, a sailor named"
    assert out.content == "Once upon a time, a sailor named Jo"


def test_done_without_finish_reason_is_interrupted() -> None:
    clock = FakeClock()
    rec = Recorder(ok(lambda: [delta("Once"), event("[DONE]")]))
    out = make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert out.ended_by == "interrupted"
    assert out.content == "Once"


def test_stream_that_breaks_after_text_keeps_it() -> None:
    clock = FakeClock()
    rec = Recorder(breaking([delta("Once upon"), delta(" a time")]))
    out = make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert out.ended_by == "interrupted"
    assert out.content == "Once upon a time"
    assert out.detail is not None
    assert "broke" in out.detail
    assert rec.calls == 1  # text arrived: no retry, the text is returned


def test_stream_that_breaks_before_any_text_is_unavailable() -> None:
    clock = FakeClock()
    rec = Recorder(breaking([b": keep-alive\n\n", delta(None)]))
    with pytest.raises(ProviderUnavailable):
        make_client(rec, clock, max_attempts=2).chat(BODY, deadline=clock.now + 600)
    assert rec.calls == 2  # retried, since nothing was lost


def test_stream_that_breaks_before_text_then_succeeds() -> None:
    clock = FakeClock()
    rec = Recorder(breaking([]), ok())
    out = make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert out.content == "Hello, world"
    assert out.attempts == 2


def test_break_after_the_finish_chunk_is_still_finished() -> None:
    """OpenAI-style: finish_reason, then a usage-only chunk and [DONE]; the cut loses only usage."""
    clock = FakeClock()
    rec = Recorder(breaking([delta("All"), delta(" done.", finish="stop")]))
    out = make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert out.content == "All done."
    assert out.ended_by == "finished"
    assert out.finish_reason == "stop"


def test_error_event_before_any_text_is_classified() -> None:
    clock = FakeClock()
    rec = Recorder(ok(lambda: [event({"error": {"message": "bad key", "code": 401}})]))
    with pytest.raises(ProviderAuthenticationFailed):
        make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert rec.calls == 1


def test_error_event_after_text_keeps_the_text() -> None:
    clock = FakeClock()
    rec = Recorder(ok(lambda: [delta("Part"), event({"error": {"message": "overloaded", "code": 503}})]))
    out = make_client(rec, clock).chat(BODY, deadline=clock.now + 600)
    assert out.content == "Part"
    assert out.ended_by == "interrupted"
    assert out.detail is not None
    assert "overloaded" in out.detail


# ---- the deadline -----------------------------------------------------------------------------


def ticking(
    clock: FakeClock, parts: list[bytes], seconds_per_event: float
) -> Callable[[httpx.Request], httpx.Response]:
    """A slow model: every event takes ``seconds_per_event`` of (fake) time to arrive."""

    def respond(_: httpx.Request) -> httpx.Response:
        def gen() -> Iterator[bytes]:
            for part in parts:
                clock.now += seconds_per_event
                yield part

        return sse(gen())

    return respond


def test_deadline_mid_stream_returns_the_text_so_far() -> None:
    clock = FakeClock(start=0.0)
    words = [f"w{i} " for i in range(20)]
    parts = [delta(w) for w in words] + [delta(finish="stop"), event("[DONE]")]
    rec = Recorder(ticking(clock, parts, seconds_per_event=1.0))
    out = make_client(rec, clock).chat(BODY, deadline=5.5)
    assert out.ended_by == "deadline"
    assert out.finish_reason is None
    assert out.content == "".join(words[:6])  # events at t=1..6; reading stops at the first past 5.5
    assert clock.now <= 6.0  # nothing was read after the deadline
    assert rec.calls == 1


def test_deadline_on_the_finish_chunk_is_still_finished() -> None:
    clock = FakeClock(start=0.0)
    parts = [delta("a"), delta("b", finish="length", usage=USAGE), event("[DONE]")]
    rec = Recorder(ticking(clock, parts, seconds_per_event=1.0))
    out = make_client(rec, clock).chat(BODY, deadline=1.5)
    assert out.content == "ab"
    assert out.ended_by == "finished"
    assert out.finish_reason == "length"


def test_deadline_before_any_text_is_unavailable() -> None:
    clock = FakeClock(start=0.0)
    parts = [b": keep-alive\n\n", b": keep-alive\n\n", delta("late")]
    rec = Recorder(ticking(clock, parts, seconds_per_event=5.0))
    with pytest.raises(ProviderUnavailable):
        make_client(rec, clock).chat(BODY, deadline=3.0)
    assert rec.calls == 1  # no time left for another try


def test_keep_alives_after_the_deadline_do_not_keep_it_reading() -> None:
    clock = FakeClock(start=0.0)
    parts = [delta("kept"), *([b": keep-alive\n\n"] * 50), delta("too late"), delta(finish="stop")]
    rec = Recorder(ticking(clock, parts, seconds_per_event=1.0))
    out = make_client(rec, clock).chat(BODY, deadline=3.5)
    assert out.ended_by == "deadline"
    assert out.content == "kept"
    assert clock.now <= 5.0


def test_past_deadline_sends_nothing() -> None:
    clock = FakeClock(start=10.0)
    rec = Recorder(ok())
    with pytest.raises(ProviderUnavailable):
        make_client(rec, clock).chat(BODY, deadline=9.0)
    assert rec.calls == 0
