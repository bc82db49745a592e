"""A request's ``provider_params``: sent as they are in every provider request of the job (chat and
raw completion), never replacing a field longform sets, checked at the edge."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st
from longform_core.chat_template import SMOLLM2_TEMPLATE, ChatTemplate
from longform_core.continuation import build_body
from longform_core.errors import RequestInvalid
from longform_core.provider_params import RESERVED
from longform_core.raw_completion import completion_body, render_for
from longform_core.request import parse_request

from longform.commands.arguments import add_request_arguments
from longform.commands.common import UsageError, request_from_args

GREEDY = {"repeat_penalty": 1.0, "top_k": 1}


def test_every_chat_body_carries_them_beside_longforms_own_fields() -> None:
    request = parse_request({"prompt": "Write.", "temperature": 0, "provider_params": GREEDY})
    for style, prefill in (
        ("assistant", ""),
        ("assistant", "Once"),
        ("vllm", "Once"),
        ("continue_message", "Once"),
    ):
        body = build_body(request, model="m", prefill=prefill, max_tokens=32, prefill_style=style)  # type: ignore[arg-type]
        assert body["repeat_penalty"] == 1.0 and body["top_k"] == 1, body
        assert body["temperature"] == 0 and body["max_tokens"] == 32 and body["model"] == "m"


def test_the_raw_completion_body_carries_them() -> None:
    """llama-cpp-python's /v1/completions defaults to repeat_penalty 1.1 as its chat does: the
    completion rung must ask what the chat rungs ask."""
    request = parse_request({"prompt": "Write.", "temperature": 0, "provider_params": GREEDY})
    chat = build_body(request, model="m", prefill="Once upon", max_tokens=32, prefill_style="assistant")
    prompt = render_for(request, ChatTemplate(SMOLLM2_TEMPLATE, "family:smollm2"), "Once upon").text
    body = completion_body(chat, prompt)
    assert body["repeat_penalty"] == 1.0 and body["top_k"] == 1 and body["prompt"] == prompt
    assert "messages" not in body


def test_none_given_sends_nothing_more() -> None:
    request = parse_request({"prompt": "Write."})
    body = build_body(request, model="m", prefill="", max_tokens=8, prefill_style="assistant")
    assert set(body) == {"model", "messages", "max_tokens"}


@pytest.mark.parametrize("key", sorted(RESERVED))
def test_a_field_longform_sets_is_refused_naming_it(key: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_request({"prompt": "Write.", "provider_params": {key: 1}})
    assert "provider_params" in str(caught.value) and key in str(caught.value)


@pytest.mark.parametrize(
    "params",
    [{"": 1}, {"a b": 1}, {"x" * 65: 1}, {f"k{i}": i for i in range(33)}, {"big": "x" * 20_000}],
)
def test_malformed_too_many_or_too_large_is_refused(params: dict[str, object]) -> None:
    with pytest.raises(RequestInvalid):
        parse_request({"prompt": "Write.", "provider_params": params})


def test_they_are_part_of_the_fingerprint() -> None:
    plain = parse_request({"prompt": "Write."})
    greedy = parse_request({"prompt": "Write.", "provider_params": GREEDY})
    assert plain.fingerprint() != greedy.fingerprint()


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True).filter(lambda k: k not in RESERVED),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**31), 2**31),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=20),
        ),
        max_size=8,
    )
)
def test_any_valid_params_reach_the_body_unchanged(params: dict[str, object]) -> None:
    request = parse_request({"prompt": "Write.", "provider_params": params})
    body = build_body(request, model="m", prefill="x", max_tokens=4, prefill_style="assistant")
    assert {k: body[k] for k in params} == params


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_request_arguments(parser)
    return parser.parse_args(["--prompt", "Write.", *argv])


def test_the_cli_reads_values_as_json_else_text() -> None:
    args = parsed(
        "--provider-param",
        "repeat_penalty=1.0",
        "--provider-param",
        "mirostat_mode=0",
        "--provider-param",
        "grammar=root ::= [a-z]+",
    )
    data = request_from_args(args)
    assert data["provider_params"] == {
        "repeat_penalty": 1.0,
        "mirostat_mode": 0,
        "grammar": "root ::= [a-z]+",
    }
    assert parse_request(data).provider_params == data["provider_params"]


def test_the_cli_refuses_a_pair_without_a_key_in_one_line() -> None:
    with pytest.raises(UsageError, match="KEY=VALUE"):
        request_from_args(parsed("--provider-param", "repeat_penalty"))
