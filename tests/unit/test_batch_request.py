"""The batch input format: JSONL lines in the OpenAI Batch shape or as plain prompts, validated whole."""

from __future__ import annotations

import json
from typing import Any

import pytest
from longform_core.batch.request import MAX_PROBLEMS_LISTED, content_digest, parse_batch
from longform_core.errors import BatchInvalid


def openai_line(custom_id: str, content: str = "Write a report.", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": content}], **body},
    }


def jsonl(*lines: Any) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


def problems_of(exc: BatchInvalid) -> list[tuple[int, str | None, str]]:
    return [(p.line, p.custom_id, p.field) for p in exc.line_problems]


def test_the_openai_batch_shape_with_longform_fields() -> None:
    data = jsonl(
        openai_line("acme", max_output_tokens=30_000, max_chunks=40, prefill_style="assistant"),
        openai_line("globex", "Another", temperature=0.2, seed=7, stop=["END"]),
    )
    lines = parse_batch(data)
    assert [(line.line, line.custom_id) for line in lines] == [(1, "acme"), (2, "globex")]
    first = lines[0].request
    assert first.model == "m"
    assert first.max_output_tokens == 30_000
    assert first.max_chunks == 40
    assert first.prefill_style == "assistant"
    assert first.all_messages()[0].content == "Write a report."
    second = lines[1].request
    assert (second.temperature, second.seed, second.stop) == (0.2, 7, ["END"])


def test_a_chat_requests_max_tokens_is_the_jobs_budget() -> None:
    (line,) = parse_batch(jsonl(openai_line("a", max_tokens=50_000)))
    assert line.request.max_output_tokens == 50_000
    (line,) = parse_batch(jsonl(openai_line("a", max_completion_tokens=1234)))
    assert line.request.max_output_tokens == 1234
    with pytest.raises(BatchInvalid) as caught:
        parse_batch(jsonl(openai_line("a", max_tokens=10, max_output_tokens=20)))
    assert problems_of(caught.value) == [(1, "a", "body.max_tokens")]


def test_text_parts_are_joined_into_one_content_string() -> None:
    line = openai_line("a")
    line["body"]["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]}
    ]
    (parsed,) = parse_batch(jsonl(line))
    assert parsed.request.all_messages()[0].content == "Hello, world"


def test_plain_prompts_with_or_without_a_custom_id() -> None:
    data = jsonl({"custom_id": "x", "prompt": "One", "max_chunks": 3}, {"prompt": "Two"}, "", "   ")
    lines = parse_batch(data)
    assert [(line.custom_id, line.request.prompt) for line in lines] == [("x", "One"), ("line-2", "Two")]
    assert lines[0].request.max_chunks == 3


def test_defaults_fill_what_a_line_leaves_out() -> None:
    data = jsonl({"prompt": "One"}, {"prompt": "Two", "model": "own"})
    lines = parse_batch(data, defaults={"model": "cli", "max_tokens_per_request": 100})
    assert [line.request.model for line in lines] == ["cli", "own"]
    assert {line.request.max_tokens_per_request for line in lines} == {100}


def test_every_bad_line_is_named_by_number_and_field() -> None:
    bad_role = openai_line("b")
    bad_role["body"]["messages"][0]["role"] = "robot"
    data = jsonl(
        openai_line("good"),
        "{not json",
        bad_role,
        {"custom_id": "c", "method": "GET", "url": "/v1/embeddings", "body": {"messages": []}},
        openai_line("d", temperature=9),
        "[1, 2]",
        {"custom_id": "e", "prompt": "x", "colour": "red"},
        {"method": "POST", "url": "/v1/chat/completions", "body": {"prompt": "no id"}},
        openai_line("f", n=3),
    )
    with pytest.raises(BatchInvalid) as caught:
        parse_batch(data)
    found = problems_of(caught.value)
    assert (2, None, "(line)") in found
    assert (3, "b", "body.messages[0].role") in found
    assert (4, "c", "method") in found
    assert (4, "c", "url") in found
    assert (4, "c", "body.messages") in found
    assert (5, "d", "body.temperature") in found
    assert (6, None, "(line)") in found
    assert (7, "e", "colour") in found
    assert (8, None, "custom_id") in found
    assert (9, "f", "body.n") in found
    assert not any(line == 1 for line, _, _ in found)  # the good line is not blamed
    body = caught.value.to_dict()
    assert body["error"] == "BatchInvalid"
    assert any(p["line"] == 5 and p["field"] == "body.temperature" for p in body["lines"])
    # the plain problems name the line too (what the API's 400 lists)
    assert any(p["field"] == "line 3: body.messages[0].role" for p in body["problems"])


def test_duplicate_custom_ids_are_an_error_naming_the_first_line() -> None:
    data = jsonl(openai_line("same"), openai_line("other"), openai_line("same"))
    with pytest.raises(BatchInvalid) as caught:
        parse_batch(data)
    (problem,) = caught.value.line_problems
    assert (problem.line, problem.custom_id, problem.field) == (3, "same", "custom_id")
    assert problem.message == "duplicate of line 1"


def test_a_batch_over_the_configured_size_is_refused() -> None:
    data = jsonl(*(openai_line(f"c{i}") for i in range(5)))
    with pytest.raises(BatchInvalid) as caught:
        parse_batch(data, max_lines=4)
    assert caught.value.problems[0].field == "(batch)"
    assert "5 lines; the limit is 4" in caught.value.problems[0].message
    with pytest.raises(BatchInvalid) as caught:
        parse_batch(data, max_bytes=len(data) - 1)
    assert f"{len(data)} bytes; the limit is {len(data) - 1}" in caught.value.problems[0].message
    assert len(parse_batch(data, max_lines=5, max_bytes=len(data))) == 5


def test_an_empty_batch_is_refused() -> None:
    for data in (b"", b"\n\n  \n"):
        with pytest.raises(BatchInvalid) as caught:
            parse_batch(data)
        assert "empty" in caught.value.problems[0].message


def test_a_byte_order_mark_and_crlf_line_ends_are_fine() -> None:
    first, second = json.dumps({"prompt": "a"}).encode(), json.dumps({"prompt": "b"}).encode()
    data = b"\xef\xbb\xbf" + first + b"\r\n" + second
    assert [line.custom_id for line in parse_batch(data)] == ["line-1", "line-2"]


def test_problems_are_capped_with_a_count_of_the_rest() -> None:
    data = b"".join(b"nope\n" for _ in range(MAX_PROBLEMS_LISTED + 5))
    with pytest.raises(BatchInvalid) as caught:
        parse_batch(data, max_lines=10_000)
    assert len(caught.value.line_problems) == MAX_PROBLEMS_LISTED
    assert caught.value.not_listed == 5
    assert caught.value.to_dict()["problems_not_listed"] == 5


def test_hostile_lines_are_problems_not_crashes() -> None:
    deep = "[" * 3000 + "]" * 3000
    huge = '{"prompt": "x", "seed": ' + "9" * 5000 + "}"
    with pytest.raises(BatchInvalid) as caught:
        parse_batch(jsonl(deep, huge, b"\xff\xfe".decode("latin-1")))
    assert [p.line for p in caught.value.line_problems] == [1, 2, 3]


def test_the_content_digest_is_of_the_bytes() -> None:
    assert content_digest(b"a") == content_digest(b"a") != content_digest(b"b")


def test_lone_surrogates_are_problems_named_by_line_and_field() -> None:
    """A lone UTF-16 surrogate (valid JSON, not encodable text) anywhere in a line is named."""
    data = jsonl(
        openai_line("ok"),
        '{"custom_id": "\\ud800", "method": "POST", "url": "/v1/chat/completions", '
        '"body": {"messages": [{"role": "user", "content": "Write."}]}}',
        json.dumps(openai_line("stop", stop=["\ud800"])),
        json.dumps(openai_line("parts", [{"type": "text", "text": "a\udfff"}])),
        '{"custom_id": "plain", "prompt": "Write", "stop": "\\udbff"}',
        '{"custom_id": "key", "method": "POST", "\\ud800": 1, "body": {"prompt": "Write"}}',
    )
    with pytest.raises(BatchInvalid) as caught:
        parse_batch(data)
    found = problems_of(caught.value)
    assert (2, None, "custom_id") in found
    assert (3, "stop", "body.stop[0]") in found
    assert (4, "parts", "body.messages[0].content") in found
    assert (5, "plain", "stop") in found
    assert (6, "key", "\\ud800") in found
    assert 1 not in [line for line, _, _ in found]
    body = caught.value.to_dict()
    json.dumps(body, ensure_ascii=False).encode()  # the error is text: it can be answered and stored
    assert all("surrogate" in p["message"] for p in body["lines"])
