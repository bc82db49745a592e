"""SSE parsing and chat-completion stream accumulation."""

from __future__ import annotations

import json
from typing import Any

from longform_core.sse import DONE, StreamAccumulator, Usage, iter_sse_data


def lines(text: str) -> list[str]:
    """Split like a socket reader would: line ends kept (CR, LF or CRLF)."""
    return text.splitlines(keepends=True)


# ---- iter_sse_data ----------------------------------------------------------------------------


def test_plain_events() -> None:
    assert list(iter_sse_data(lines('data: {"a":1}\n\ndata: {"b":2}\n\n'))) == ['{"a":1}', '{"b":2}']


def test_keep_alive_comments_are_ignored() -> None:
    text = ": keep-alive\n\ndata: one\n: ping\n\n:\n\ndata: two\n\n"
    assert list(iter_sse_data(lines(text))) == ["one", "two"]


def test_crlf_line_ends() -> None:
    text = "data: one\r\n\r\ndata: two\r\n\r\n"
    assert list(iter_sse_data(lines(text))) == ["one", "two"]


def test_lines_without_line_ends_as_httpx_gives_them() -> None:
    assert list(iter_sse_data(["data: one", "", "data: two", ""])) == ["one", "two"]


def test_multi_line_data_is_joined_with_newlines() -> None:
    text = "data: first\ndata: second\ndata:third\n\n"
    assert list(iter_sse_data(lines(text))) == ["first\nsecond\nthird"]


def test_only_one_leading_space_is_removed() -> None:
    assert list(iter_sse_data(lines("data:   indented\n\n"))) == ["  indented"]


def test_event_id_and_retry_fields_are_skipped() -> None:
    text = "event: message\nid: 17\nretry: 1000\ndata: payload\n\nevent: ping\n\n"
    assert list(iter_sse_data(lines(text))) == ["payload"]


def test_final_event_without_blank_line() -> None:
    assert list(iter_sse_data(lines("data: one\n\ndata: last"))) == ["one", "last"]


def test_done_stops_the_stream() -> None:
    text = "data: one\n\ndata: [DONE]\n\ndata: after\n\n"
    assert list(iter_sse_data(lines(text))) == ["one", DONE]


def test_done_stops_even_when_the_source_never_ends() -> None:
    def endless() -> Any:
        yield "data: a"
        yield ""
        yield "data: [DONE]"
        yield ""
        while True:
            yield ": keep-alive"

    assert list(iter_sse_data(endless())) == ["a", DONE]


# ---- StreamAccumulator ------------------------------------------------------------------------


def chunk(
    content: str | None = None, *, reasoning: str | None = None, finish: str | None = None, **extra: Any
) -> str:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    obj: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m/1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    obj.update(extra)
    return json.dumps(obj)


def feed_all(*events: str) -> StreamAccumulator:
    acc = StreamAccumulator()
    for e in events:
        acc.feed_data(e)
    return acc


def test_content_deltas_are_concatenated() -> None:
    acc = feed_all(chunk("Hel"), chunk("lo"), chunk(", world"), chunk(finish="stop"), DONE)
    assert acc.text == "Hello, world"
    assert acc.reasoning_text == ""
    assert acc.finish_reason == "stop"
    assert acc.done
    assert acc.deltas == 3
    assert acc.model == "m/1"
    assert acc.response_id == "chatcmpl-1"


def test_reasoning_content_is_kept_apart() -> None:
    acc = feed_all(
        chunk(reasoning="Let me "), chunk(reasoning="think."), chunk("Answer."), chunk(finish="length")
    )
    assert acc.reasoning_text == "Let me think."
    assert acc.text == "Answer."
    assert acc.finish_reason == "length"
    assert acc.deltas == 3


def test_reasoning_field_alias() -> None:
    acc = StreamAccumulator()
    acc.feed({"choices": [{"index": 0, "delta": {"reasoning": "hmm"}}]})
    assert acc.reasoning_text == "hmm"


def test_deepinfra_usage_in_the_last_chunk_with_finish_reason() -> None:
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "estimated_cost": 0.00042,
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    acc = feed_all(chunk("a"), chunk("b"), chunk("c", finish="stop", usage=usage), DONE)
    assert acc.text == "abc"
    assert acc.finish_reason == "stop"
    assert acc.usage == Usage(
        prompt_tokens=12, completion_tokens=3, total_tokens=15, cached_tokens=8, estimated_cost=0.00042
    )


def test_openai_usage_only_last_chunk_with_empty_choices() -> None:
    usage_only = json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }
    )
    acc = feed_all(chunk("x", usage=None), chunk("y", finish="stop", usage=None), usage_only, DONE)
    assert acc.text == "xy"
    assert acc.finish_reason == "stop"
    assert acc.usage is not None
    assert (acc.usage.prompt_tokens, acc.usage.completion_tokens, acc.usage.total_tokens) == (5, 2, 7)
    assert acc.usage.cached_tokens == 0
    assert acc.usage.estimated_cost is None


def test_usage_missing() -> None:
    acc = feed_all(chunk("x"), chunk(finish="stop"), DONE)
    assert acc.usage is None
    assert acc.text == "x"


def test_malformed_json_is_skipped() -> None:
    acc = feed_all(chunk("a"), '{"choices": [', "not json at all", chunk("b"), DONE)
    assert acc.text == "ab"
    assert acc.error is None
    assert acc.done


def test_error_event() -> None:
    acc = feed_all(chunk("partial"), json.dumps({"error": {"message": "overloaded", "code": 503}}))
    assert acc.error == {"message": "overloaded", "code": 503}
    assert acc.text == "partial"


def test_error_event_as_a_string() -> None:
    acc = feed_all(json.dumps({"error": "boom"}))
    assert acc.error == {"message": "boom"}


def test_other_choices_and_empty_deltas_are_ignored() -> None:
    acc = StreamAccumulator()
    acc.feed({"choices": [{"index": 1, "delta": {"content": "other"}}]})
    acc.feed({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    acc.feed({"choices": [{"index": 0, "delta": {"content": None}}]})
    assert acc.text == ""
    assert acc.deltas == 0
