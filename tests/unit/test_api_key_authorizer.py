"""The API key authorizer: x-api-key or OpenAI's Authorization: Bearer, the same key either way."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from longform_core.api_key_authorizer import api_key_of, authorize

ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123defg/v1/GET/v1/models"


def event(headers: dict[str, str] | None) -> dict[str, Any]:
    return {"type": "REQUEST", "methodArn": ARN, "headers": headers}


def test_bearer_and_x_api_key_give_the_same_usage_identifier() -> None:
    by_header = authorize(event({"x-api-key": "k-123"}))
    by_bearer = authorize(event({"Authorization": "Bearer k-123"}))
    assert by_header["usageIdentifierKey"] == by_bearer["usageIdentifierKey"] == "k-123"
    assert by_header["principalId"] == by_bearer["principalId"]
    assert by_bearer["context"] == {"keySource": "bearer"}
    assert by_bearer["policyDocument"]["Statement"][0]["Effect"] == "Allow"


def test_x_api_key_wins_and_headers_are_case_insensitive() -> None:
    assert api_key_of({"X-Api-Key": "a", "authorization": "bearer b"}) == ("a", "x-api-key")
    assert api_key_of({"AUTHORIZATION": "BEARER  b "}) == ("b", "bearer")


def test_no_key_is_denied_without_a_usage_identifier() -> None:
    for headers in (
        None,
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic abc"},
        {"x-api-key": " "},
    ):
        answer = authorize(event(headers))
        assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny", headers
        assert "usageIdentifierKey" not in answer


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=5))
def test_any_headers_give_an_answer_never_an_exception(headers: dict[str, str]) -> None:
    answer = authorize(event(headers))
    effect = answer["policyDocument"]["Statement"][0]["Effect"]
    assert (effect == "Allow") == ("usageIdentifierKey" in answer)
