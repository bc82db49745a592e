"""One chunk through the real client and commit path on wire shapes a lenient reader must survive
(issue 15): fields of the wrong type (item 2), surrogates split or alone (item 3), errors inside the
200 reply (item 1), a server that ignores max_tokens (item 5). Asserts on the committed chunk."""

from __future__ import annotations

from typing import Any

import pytest
from longform_core.errors import ProviderUnavailable
from longform_core.job_store import JobStore

from .stream_harness import RawProvider, content_event, event, run_chunk, usage

TEXT = ("The keeper", " climbed", " the stair.")


def stream(*events: bytes, done: bool = True) -> bytes:
    return b"".join(events) + (b"data: [DONE]\n\n" if done else b"")


def story(last: dict[str, Any] | None = None, *, first: dict[str, Any] | None = None) -> bytes:
    """TEXT in three events, then a final event (``last``: its fields replace the usual ones)."""
    final = content_event(finish="stop", usage=usage())
    final.update(last or {})
    head = content_event(TEXT[0])
    head.update(first or {})
    return stream(event(head), event(content_event(TEXT[1])), event(content_event(TEXT[2])), event(final))


# ---- item 2: a field that cannot be read is missing --------------------------------------------

UNREADABLE_USAGE = {
    "prompt_tokens n/a": usage(prompt="n/a"),
    "completion_tokens as a string": usage(completion="3"),
    "prompt_tokens_details a list": usage(prompt_tokens_details=[1]),
    "estimated_cost free": usage(estimated_cost="free"),
    "total_tokens null": usage(total_tokens=None),
    "usage a list": [1, 2],
}


@pytest.mark.parametrize("bad", UNREADABLE_USAGE.values(), ids=UNREADABLE_USAGE.keys())
def test_unreadable_usage_loses_no_text(store: JobStore, bad: Any) -> None:
    run = run_chunk(store, RawProvider(story({"usage": bad})))
    assert run.error is None and run.chunk is not None
    assert run.chunk.text == "".join(TEXT)
    assert run.chunk.finish_reason == "stop" and run.chunk.attempts == 1
    if isinstance(bad, dict) and not isinstance(bad.get("completion_tokens"), int):
        assert run.chunk.usage_estimated and run.chunk.completion_tokens == 3  # counted deltas
    if isinstance(bad, dict) and bad.get("prompt_tokens") == "n/a":
        assert run.chunk.prompt_tokens == 0 and run.chunk.completion_tokens == 5
    if isinstance(bad, dict) and "estimated_cost" in bad:
        assert run.chunk.estimated_cost_usd is None


@pytest.mark.parametrize(
    "first",
    [{"model": 123}, {"id": ["x"]}, {"choices": {"0": "x"}}, {"error": None}, {"object": 7}],
    ids=["model 123", "id a list", "choices an object", "error null", "object a number"],
)
def test_unreadable_fields_of_an_event_lose_nothing_else(store: JobStore, first: dict[str, Any]) -> None:
    run = run_chunk(store, RawProvider(story(first=first)))
    assert run.error is None and run.chunk is not None
    lost = TEXT[0] if "choices" in first else ""  # an event whose choices cannot be read has no text
    assert run.chunk.text == "".join(TEXT).removeprefix(lost)
    assert run.chunk.model == "m/1"


def test_a_delta_sent_as_a_string_is_skipped(store: JobStore) -> None:
    garbage = {"id": "c1", "choices": [{"index": 0, "delta": "garbage", "finish_reason": None}]}
    body = stream(event(content_event(TEXT[0])), event(garbage), event(content_event(TEXT[1], finish="stop")))
    run = run_chunk(store, RawProvider(body))
    assert run.chunk is not None and run.chunk.text == TEXT[0] + TEXT[1]


# ---- item 3: surrogates -----------------------------------------------------------------------


def test_a_surrogate_pair_split_across_two_events_is_joined(store: JobStore) -> None:
    body = stream(
        event('{"choices":[{"index":0,"delta":{"content":"Waves \\ud83c"}}]}'),
        event('{"choices":[{"index":0,"delta":{"content":"\\udf0a and light"}}]}'),
        event(content_event(finish="stop")),
    )
    run = run_chunk(store, RawProvider(body))
    assert run.chunk is not None
    assert run.chunk.text == "Waves \U0001f30a and light"
    assert run.chunk.lone_surrogates == 0
    assert store.get_text(f"jobs/{run.manifest.job_id}/output.md") == "Waves \U0001f30a and light"


@pytest.mark.parametrize(
    ("pieces", "text", "replaced"),
    [
        (['"a\\ud800b"'], "a\ufffdb", 1),  # a lone high surrogate inside a piece
        (['"a\\udc00"'], "a\ufffd", 1),  # a lone low one
        (['"end \\ud83d"'], "end \ufffd", 1),  # a high one that nothing follows
        (['"x\\ud83d"', '"y"'], "x\ufffdy", 1),  # a high one whose next piece is no partner
        (['"\\ude00\\ud83d\\ude00"'], "\ufffd\U0001f600", 1),
    ],
)
def test_a_lone_surrogate_becomes_a_replacement_character_and_is_counted(
    store: JobStore, pieces: list[str], text: str, replaced: int
) -> None:
    events = [event(f'{{"choices":[{{"index":0,"delta":{{"content":{p}}}}}]}}') for p in pieces]
    run = run_chunk(store, RawProvider(stream(*events, event(content_event(finish="stop")))))
    assert run.error is None and run.chunk is not None
    assert run.chunk.text == text
    assert run.chunk.lone_surrogates == replaced


def test_a_lone_surrogate_in_an_error_message_is_storable(store: JobStore) -> None:
    body = stream(
        event(content_event("Half a")),
        event('{"error":{"message":"bad \\ud800 news","code":"server_error"},"choices":[]}'),
        done=False,
    )
    run = run_chunk(store, RawProvider(body))
    assert isinstance(run.error, ProviderUnavailable) and "bad \ufffd news" in str(run.error)
    assert run.chunk is not None and run.chunk.text == "Half a"


# ---- item 1: an error inside the 200 reply ----------------------------------------------------

ERRORS = {
    "openrouter": content_event(
        "", finish="error", error={"code": "server_error", "message": "Provider gone"}
    ),
    "openai": {"error": {"message": "The server had an error", "type": "server_error"}},
    "finish error": content_event("", finish="error"),
    "finish abort": content_event("", finish="abort"),
    "choice error": {
        "choices": [{"index": 0, "delta": {}, "finish_reason": "error", "error": {"code": 502}}]
    },
    "vllm": {"object": "error", "message": "internal", "type": "InternalServerError", "code": 500},
}


@pytest.mark.parametrize("error", ERRORS.values(), ids=ERRORS.keys())
def test_an_error_after_text_commits_the_text_and_fails_the_chunk(store: JobStore, error: Any) -> None:
    body = stream(event(content_event(TEXT[0])), event(content_event(TEXT[1])), event(error), done=False)
    run = run_chunk(store, RawProvider(body))
    assert isinstance(run.error, ProviderUnavailable) and "error mid-reply" in str(run.error)
    assert run.chunk is not None and run.chunk.text == TEXT[0] + TEXT[1]
    assert run.chunk.finish_reason == "interrupted"  # the job goes on from it when retried
    assert run.manifest.stop_reason is None and run.manifest.chunks == 1


@pytest.mark.parametrize("error", ERRORS.values(), ids=ERRORS.keys())
def test_an_error_before_any_text_is_an_outage_retried_in_process(store: JobStore, error: Any) -> None:
    provider = RawProvider(stream(event(content_event("")), event(error), done=False))
    run = run_chunk(store, provider, attempts=3)
    assert isinstance(run.error, ProviderUnavailable)
    assert run.chunk is None and run.manifest.chunks == 0
    assert sum(1 for r in provider.requests if r.get("stream")) == 3


# ---- item 5: a server that ignores max_tokens -------------------------------------------------


def test_a_reply_longer_than_asked_is_read_to_max_tokens_plus_the_margin(store: JobStore) -> None:
    words = [f" w{i}" for i in range(500)]
    body = stream(*(event(content_event(w)) for w in words), event(content_event(finish="stop")))
    run = run_chunk(store, RawProvider(body), {"prompt": "Write.", "max_tokens_per_request": 100})
    assert run.chunk is not None
    assert run.chunk.text == "".join(words[: 100 + 8 + 5])  # max_tokens + 8 + 5 %
    assert run.chunk.finish_reason == "length"
    assert "ignored max_tokens" in (run.chunk.detail or "")


def test_an_echoed_prefill_does_not_count_against_max_tokens() -> None:
    from longform_core.sse import StreamAccumulator

    acc = StreamAccumulator(prefill="Once upon a time")
    for piece in ("Once ", "upon a", " time", ", a", " sailor"):
        acc.feed(content_event(piece))
    assert acc.deltas == 5 and acc.new_deltas == 2


def test_a_high_surrogate_then_an_error_commits_its_replacement(store: JobStore) -> None:
    """Found by the property test's long profile: the text before the error was only the first
    half of a split pair; it was taken for no text and not committed."""
    body = stream(
        event('{"choices":[{"index":0,"delta":{"content":"\\ud800"}}]}'),
        event(content_event("", finish="error", error={"code": "server_error", "message": "gone"})),
        event('{"choices":[{"index":0,"delta":{"content":"\\udf48"}}]}'),
        done=False,
    )
    run = run_chunk(store, RawProvider(body))
    assert isinstance(run.error, ProviderUnavailable)
    assert run.chunk is not None and run.chunk.text == "\ufffd" and run.chunk.lone_surrogates == 1
