"""OpenAI's request and answer shapes in longform's terms (pure: longform_core.openai)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from longform_core.errors import RequestInvalid
from longform_core.openai import chat
from longform_core.openai.errors import from_longform, openai_error
from longform_core.openai.files import split_output
from longform_core.openai.multipart import parse_form
from longform_core.request import parse_request

USER = [{"role": "user", "content": "Write a saga."}]


def test_max_tokens_becomes_the_whole_answers_budget_and_stream_is_the_clients() -> None:
    request, stream, usage = chat.generation_request(
        {
            "model": "m",
            "messages": USER,
            "max_tokens": 40000,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert request == {"model": "m", "messages": USER, "max_output_tokens": 40000}
    assert (stream, usage) == (True, True)
    request, stream, usage = chat.generation_request(
        {"messages": USER, "max_completion_tokens": 7, "user": "u"}
    )
    assert request == {"messages": USER, "max_output_tokens": 7}
    assert (stream, usage) == (False, False)
    parse_request(request)  # what it makes is a valid longform request


def test_longform_fields_pass_and_text_parts_are_joined() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        ],
        "max_tokens_per_request": 300,
        "prefill_style": "vllm",
    }
    request, _, _ = chat.generation_request(body)
    assert request["messages"] == [{"role": "user", "content": "ab"}]
    assert parse_request(request).max_tokens_per_request == 300


def test_what_longform_does_not_do_is_named() -> None:
    with pytest.raises(RequestInvalid) as info:
        chat.generation_request(
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                    {"role": "tool", "content": "r"},
                ],
                "n": 3,
                "tools": [{}],
                "logprobs": True,
                "max_tokens": 5,
                "max_completion_tokens": 6,
            }
        )
    fields = {p.field for p in info.value.problems}
    assert fields == {"messages[0].content[0]", "messages[1].role", "n", "tools", "logprobs", "max_tokens"}
    # falsy values of unsupported features change nothing: accepted
    chat.generation_request({"messages": USER, "tools": [], "logprobs": False, "n": 1})


@pytest.mark.parametrize(
    ("status", "stop_reason", "reason"),
    [
        ("succeeded", "stop", "stop"),
        ("succeeded", "max_output_tokens", "length"),
        ("succeeded", "max_cost", "length"),
        ("context_exhausted", None, "length"),
        ("incomplete", "repetition", "length"),
        ("failed", "error", None),
        ("cancelled", None, None),
    ],
)
def test_finish_reason_by_status_string(status: str, stop_reason: str | None, reason: str | None) -> None:
    assert chat.finish_reason(status, stop_reason) == reason


def test_chunks_carry_usage_null_until_the_usage_chunk() -> None:
    delta = chat.chunk_object("j", 1, "m", delta={"content": "x"}, include_usage=True)
    assert delta["usage"] is None and delta["choices"][0]["delta"] == {"content": "x"}
    assert "usage" not in chat.chunk_object("j", 1, "m", delta={"content": "x"})
    last = chat.chunk_object("j", 1, "m", usage={"total_tokens": 3}, include_usage=True)
    assert last["choices"] == [] and last["usage"] == {"total_tokens": 3}
    usage = chat.usage_object({"prompt_tokens_total": 10, "output_tokens": 5, "cached_tokens": 2})
    assert usage["total_tokens"] == 15 and usage["prompt_tokens_details"] == {"cached_tokens": 2}


def test_errors_in_openai_shape_name_every_problem() -> None:
    body = {
        "error": "RequestInvalid",
        "message": "invalid request (2 problem(s))",
        "problems": [{"field": "messages", "message": "required"}, {"field": "n", "message": "only n=1"}],
    }
    error = from_longform(400, body)["error"]
    assert error == {
        "message": "invalid request (2 problem(s)): messages: required; n: only n=1",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "request_invalid",
    }
    assert (
        from_longform(404, {"error": "BatchNotFound", "message": "no batch"})["error"]["code"]
        == "batch_not_found"
    )
    assert openai_error(500, "x")["error"]["type"] == "server_error"
    assert from_longform(502, "Bad gateway")["error"]["message"] == "Bad gateway"


@given(
    st.dictionaries(
        st.text(max_size=12), st.one_of(st.none(), st.integers(), st.text(max_size=8)), max_size=6
    )
)
def test_any_body_is_a_request_or_named_problems(body: dict[str, Any]) -> None:
    problems: list[Any] = []
    try:
        request, _, _ = chat.generation_request(body)
    except RequestInvalid as exc:
        problems = exc.problems
        request = {}
    assert problems or ("stream" not in request and "max_tokens" not in request)
    assert all(p.field and p.message for p in problems)


def test_batch_output_and_error_files_split_the_output() -> None:
    output = (
        b'{"custom_id":"a","error":null}\n{"custom_id":"b","error":{"code":"failed"}}\n\n'
        b'{"custom_id":"c","error":null}'
    )
    assert (
        split_output(output, errors=False)
        == b'{"custom_id":"a","error":null}\n{"custom_id":"c","error":null}\n'
    )
    assert split_output(output, errors=True) == b'{"custom_id":"b","error":{"code":"failed"}}\n'


def test_multipart_form_as_the_sdk_sends_it() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'
        b'Content-Type: application/octet-stream\r\n\r\n{"a": 1}\r\n\xff\x00binary\r\n--XyZ--\r\n'
    )
    form = parse_form("multipart/form-data; boundary=XyZ", body)
    assert form["purpose"].data == b"batch"
    assert form["file"].filename == "in.jsonl"
    assert form["file"].data == b'{"a": 1}\r\n\xff\x00binary'
    for bad in (("application/json", b"{}"), ("multipart/form-data", b"x")):
        with pytest.raises(RequestInvalid):
            parse_form(*bad)


@given(st.binary(max_size=300))
def test_any_multipart_body_parses_or_is_a_bad_request(body: bytes) -> None:
    with contextlib.suppress(RequestInvalid):  # never another exception
        parse_form("multipart/form-data; boundary=b", body)


def test_a_batch_whose_output_is_not_written_yet_is_finalizing() -> None:
    """The terminal status is committed before output.jsonl: until the summary names it, the batch is
    ``finalizing`` without output files, never ``completed`` without an ``output_file_id``."""
    from datetime import UTC, datetime

    from longform_core.batch.models import BatchCounts
    from longform_core.batch.status import BatchView
    from longform_core.openai.batches import batch_object

    now = datetime.now(UTC)
    view = BatchView(
        batch_id="b-" + "a" * 40,
        status="completed",
        created_at=now,
        started_at=now,
        updated_at=now,
        finished_at=now,
        lines=2,
        max_concurrency=2,
        counts=BatchCounts(total=2, succeeded=2),
    )
    writing = batch_object(view, {})
    assert writing["status"] == "finalizing"
    assert writing["output_file_id"] is None and writing["completed_at"] is None
    view.output_key = "batch-runs/x/output.jsonl"
    done = batch_object(view, {})
    assert done["status"] == "completed" and done["output_file_id"] == "file-out-" + view.batch_id
    assert done["completed_at"] == int(now.timestamp()) and done["error_file_id"] is None
