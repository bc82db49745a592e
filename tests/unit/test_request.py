"""parse_request: the public request format and its validation."""

from __future__ import annotations

import json

import pytest
from longform_core.errors import RequestInvalid
from longform_core.request import DEFAULT_MAX_CHUNKS, GenerationRequest, Message, parse_request


def problems_of(data: object) -> dict[str, list[str]]:
    """Every problem of an invalid request, by field."""
    with pytest.raises(RequestInvalid) as info:
        parse_request(data)
    out: dict[str, list[str]] = {}
    for p in info.value.problems:
        out.setdefault(p.field, []).append(p.message)
    return out


# ---- valid requests -----------------------------------------------------------------------------


def test_prompt_becomes_one_user_message() -> None:
    req = parse_request({"prompt": "Write a long story."})
    assert req.prompt == "Write a long story."
    assert req.all_messages() == [Message(role="user", content="Write a long story.")]
    assert req.conversation() == [Message(role="user", content="Write a long story.")]
    assert req.answer_start() == ""
    assert req.max_chunks == DEFAULT_MAX_CHUNKS


def test_messages_are_accepted_as_given() -> None:
    req = parse_request(
        {
            "model": "some/model",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Hello"},
            ],
            "temperature": 0.7,
            "max_output_tokens": 50_000,
        }
    )
    assert req.model == "some/model"
    assert [m.role for m in req.conversation()] == ["system", "user"]
    assert req.conversation()[1].content == "Hello"
    assert req.temperature == 0.7
    assert req.max_output_tokens == 50_000
    assert req.answer_start() == ""


def test_trailing_assistant_message_is_the_start_of_the_answer() -> None:
    req = parse_request(
        {
            "messages": [
                {"role": "user", "content": "Write a poem."},
                {"role": "assistant", "content": "Roses are red,"},
            ]
        }
    )
    assert req.answer_start() == "Roses are red,"
    assert req.conversation() == [Message(role="user", content="Write a poem.")]
    assert len(req.all_messages()) == 2


def test_trailing_assistant_message_may_be_empty() -> None:
    req = parse_request(
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]}
    )
    assert req.answer_start() == ""
    assert req.conversation() == [Message(role="user", content="Hi")]


def test_json_text_and_bytes_are_parsed() -> None:
    body = {"prompt": "Hi", "max_chunks": 3}
    assert parse_request(json.dumps(body)).max_chunks == 3
    assert parse_request(json.dumps(body).encode()).prompt == "Hi"


def test_stop_as_a_string_becomes_a_list() -> None:
    assert parse_request({"prompt": "x", "stop": "END"}).stop == ["END"]
    assert parse_request({"prompt": "x", "stop": ["A", "B"]}).stop == ["A", "B"]


# ---- every problem named at once --------------------------------------------------------------


def test_every_problem_is_named_in_one_error() -> None:
    data = {
        "messages": [
            {"role": "user", "content": ""},
            {"role": "robot", "content": "beep"},
        ],
        "max_output_tokens": -5,
        "temperature": 5,
        "colour": "blue",
    }
    with pytest.raises(RequestInvalid) as info:
        parse_request(data)
    fields = {p.field for p in info.value.problems}
    assert {
        "messages[0].content",
        "messages[1].role",
        "max_output_tokens",
        "temperature",
        "colour",
    } <= fields
    by_field = {p.field: p.message for p in info.value.problems}
    assert by_field["colour"] == "unknown field"
    assert "robot" in by_field["messages[1].role"]
    assert "must not be empty" in by_field["messages[0].content"]
    # the summary names them too, and the error serialises them all
    text = str(info.value)
    for field in ("messages[0].content", "messages[1].role", "max_output_tokens", "temperature", "colour"):
        assert field in text
    as_dict = info.value.to_dict()
    assert as_dict["error"] == "RequestInvalid"
    assert len(as_dict["problems"]) == len(info.value.problems)


def test_empty_messages_list_reported_with_other_problems() -> None:
    got = problems_of({"messages": [], "max_output_tokens": -1, "temperature": 5, "extra": 1})
    assert "must not be empty" in got["messages"]
    assert {"max_output_tokens", "temperature", "extra"} <= set(got)


def test_problems_are_not_repeated() -> None:
    with pytest.raises(RequestInvalid) as info:
        parse_request({"messages": [], "prompt": ""})
    pairs = [(p.field, p.message) for p in info.value.problems]
    assert len(pairs) == len(set(pairs))


def test_both_prompt_and_messages() -> None:
    got = problems_of({"prompt": "a", "messages": [{"role": "user", "content": "b"}]})
    assert any("not both" in m for m in got["prompt"])


def test_neither_prompt_nor_messages() -> None:
    got = problems_of({"temperature": 0.5})
    assert any("required" in m for m in got["messages"])


@pytest.mark.parametrize("prompt", ["", "   \n\t"])
def test_empty_prompt(prompt: str) -> None:
    got = problems_of({"prompt": prompt})
    assert got["prompt"] == ["must not be empty"]


@pytest.mark.parametrize(
    ("body", "kind"), [("[1, 2]", "list"), ("42", "int"), ('"text"', "str"), ("null", "NoneType")]
)
def test_non_object_json(body: str, kind: str) -> None:
    got = problems_of(body)
    assert list(got) == ["(body)"]
    assert got["(body)"] == [f"expected a JSON object, got {kind}"]


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\xfa", "", b'{"prompt": "x",}'])
def test_invalid_json(body: bytes | str) -> None:
    got = problems_of(body)
    assert list(got) == ["(body)"]
    assert got["(body)"][0].startswith("not valid JSON")


def test_absurd_budgets_are_rejected_together() -> None:
    got = problems_of(
        {"prompt": "x", "max_output_tokens": 10**9, "max_chunks": 0, "max_tokens_per_request": 0}
    )
    assert set(got) == {"max_output_tokens", "max_chunks", "max_tokens_per_request"}


def test_cap_must_be_smaller_than_context() -> None:
    got = problems_of({"prompt": "x", "max_tokens_per_request": 8192, "context_length": 8192})
    assert any("context_length" in m and "8192" in m for m in got["max_tokens_per_request"])
    got = problems_of({"prompt": "x", "max_tokens_per_request": 9000, "context_length": 8192})
    assert "max_tokens_per_request" in got
    ok = parse_request({"prompt": "x", "max_tokens_per_request": 8191, "context_length": 8192})
    assert ok.max_tokens_per_request == 8191


def test_only_an_assistant_message_is_rejected() -> None:
    got = problems_of({"messages": [{"role": "assistant", "content": "Once upon"}]})
    assert "messages" in got
    assert any("user" in m for m in got["messages"])


def test_empty_content_of_a_middle_assistant_message_is_rejected() -> None:
    got = problems_of(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": " "},
                {"role": "user", "content": "b"},
            ]
        }
    )
    assert "messages[1].content" in got


def test_empty_stop_sequence_rejected() -> None:
    assert "stop" in problems_of({"prompt": "x", "stop": ""})
    assert "stop" in problems_of({"prompt": "x", "stop": ["ok", ""]})


def test_unknown_field_inside_a_message() -> None:
    got = problems_of({"messages": [{"role": "user", "content": "x", "name": "bob"}]})
    assert got["messages[0].name"] == ["unknown field"]


# ---- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_is_stable_for_equal_requests() -> None:
    a = parse_request({"prompt": "Hi", "temperature": 0.2, "stop": "X"})
    b = parse_request(json.dumps({"stop": ["X"], "temperature": 0.2, "prompt": "Hi"}))
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 64
    # and survives the JSON round trip the job store does
    again = GenerationRequest.model_validate_json(a.model_dump_json(exclude_none=True))
    assert again.fingerprint() == a.fingerprint()


@pytest.mark.parametrize(
    "other",
    [
        {"prompt": "Hi!"},
        {"prompt": "Hi", "temperature": 0.3},
        {"prompt": "Hi", "max_chunks": 5},
        {"prompt": "Hi", "stop": "END"},
        {"prompt": "Hi", "model": "other/model"},
    ],
)
def test_fingerprint_differs_for_different_requests(other: dict[str, object]) -> None:
    base = parse_request({"prompt": "Hi"})
    assert parse_request(other).fingerprint() != base.fingerprint()
