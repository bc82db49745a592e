"""Classifying provider error answers and reading the numbers of a context-window 400."""

from __future__ import annotations

import json

import pytest
from longform_core.errors import (
    ContextLimit,
    ContextWindowExceeded,
    ProviderAuthenticationFailed,
    ProviderRateLimited,
    ProviderRequestInvalid,
    ProviderUnavailable,
)
from longform_core.provider_errors import classify_error, error_message, parse_context_limit

# the three wordings of the brief, verbatim
REQUESTED_WORDING = (
    "This model's maximum context length is 16000 tokens. However, you requested 17165 tokens "
    "(13069 in the messages, 4096 in the completion). Please reduce the length of the messages or completion."
)
TOO_LARGE_WORDING = (
    "'max_tokens' or 'max_completion_tokens' is too large: 16384. This model's maximum context length is "
    "65536 tokens and your request has 52189 input tokens (16384 > 65536 - 52189)."
)
INPUT_ONLY_WORDING = (
    "This model's maximum context length is 8192 tokens. However, your request has 9001 input tokens. "
    "Please reduce the length of the input messages."
)


# ---- parse_context_limit ----------------------------------------------------------------------


def test_parse_requested_wording() -> None:
    assert parse_context_limit(REQUESTED_WORDING) == ContextLimit(
        context_length=16000, prompt_tokens=13069, requested_completion=4096
    )
    assert parse_context_limit(REQUESTED_WORDING).room == 16000 - 13069  # type: ignore[union-attr]


def test_parse_too_large_wording() -> None:
    assert parse_context_limit(TOO_LARGE_WORDING) == ContextLimit(
        context_length=65536, prompt_tokens=52189, requested_completion=16384
    )
    assert parse_context_limit(TOO_LARGE_WORDING).room == 13347  # type: ignore[union-attr]


def test_parse_input_only_wording() -> None:
    limit = parse_context_limit(INPUT_ONLY_WORDING)
    assert limit == ContextLimit(context_length=8192, prompt_tokens=9001, requested_completion=None)
    assert limit is not None
    assert limit.room == 8192 - 9001  # negative: nothing fits


def test_parse_is_not_fooled_by_other_numbers_or_case() -> None:
    msg = "Error 400 (req 1234): THIS MODEL'S MAXIMUM CONTEXT LENGTH IS 32768 TOKENS."
    assert parse_context_limit(msg) == ContextLimit(context_length=32768)


@pytest.mark.parametrize(
    "message",
    [
        "",
        "Model not found: foo/bar",
        "context length exceeded",
        "Invalid value for temperature: 7",
    ],
)
def test_parse_without_numbers_is_none(message: str) -> None:
    assert parse_context_limit(message) is None


def test_room_unknown_without_prompt() -> None:
    assert ContextLimit(context_length=4096).room is None


# ---- error_message ----------------------------------------------------------------------------


def test_error_message_nested() -> None:
    body = {"error": {"message": REQUESTED_WORDING, "type": "invalid_request_error", "code": None}}
    assert error_message(body) == REQUESTED_WORDING
    assert error_message(json.dumps(body)) == REQUESTED_WORDING


def test_error_message_flat() -> None:
    body = {"object": "error", "message": TOO_LARGE_WORDING, "type": "BadRequestError", "code": 400}
    assert error_message(body) == TOO_LARGE_WORDING
    assert error_message(json.dumps(body).encode()) == TOO_LARGE_WORDING


def test_error_message_plain_text_and_bytes() -> None:
    assert error_message("  upstream connect error  \n") == "upstream connect error"
    assert error_message(b"Bad Gateway") == "Bad Gateway"
    assert error_message(bytearray(b"Service Unavailable")) == "Service Unavailable"
    # undecodable bytes still give a message rather than an exception
    assert "oops" in error_message(b"\xffoops")


def test_error_message_error_as_string_and_detail() -> None:
    assert error_message({"error": "model is overloaded"}) == "model is overloaded"
    assert error_message({"detail": "Not authenticated"}) == "Not authenticated"
    assert "temperature" in error_message({"detail": [{"loc": ["body", "temperature"], "msg": "bad"}]})


def test_error_message_of_empty_body() -> None:
    assert error_message(b"") == ""
    assert error_message(None) == ""


# ---- classify_error ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"message": REQUESTED_WORDING}}, ContextLimit(16000, 13069, 4096)),
        (
            {"object": "error", "message": TOO_LARGE_WORDING, "type": "BadRequestError", "code": 400},
            ContextLimit(65536, 52189, 16384),
        ),
        (json.dumps({"error": {"message": INPUT_ONLY_WORDING}}).encode(), ContextLimit(8192, 9001, None)),
    ],
)
def test_400_context_is_context_window_exceeded(body: object, expected: ContextLimit) -> None:
    err = classify_error(400, body)
    assert type(err) is ContextWindowExceeded
    assert err.limit == expected
    assert err.status == 400
    assert not err.retryable


def test_400_context_without_numbers_still_typed() -> None:
    err = classify_error(400, {"error": {"message": "Input exceeds the context window of this model"}})
    assert isinstance(err, ContextWindowExceeded)
    assert err.limit.context_length == 0


def test_400_other_is_request_invalid() -> None:
    err = classify_error(400, {"error": {"message": "Unknown field: foo"}})
    assert type(err) is ProviderRequestInvalid
    assert str(err) == "Unknown field: foo"
    assert err.status == 400
    assert not err.retryable


def test_404_unknown_model_is_request_invalid() -> None:
    err = classify_error(404, b"model not found")
    assert type(err) is ProviderRequestInvalid
    assert err.status == 404


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures(status: int) -> None:
    err = classify_error(status, {"error": {"message": "invalid api key"}})
    assert type(err) is ProviderAuthenticationFailed
    assert err.status == status
    assert str(err) == "invalid api key"
    assert not err.retryable


def test_429_is_rate_limited_with_retry_after() -> None:
    err = classify_error(429, {"error": {"message": "Model is busy"}}, retry_after=7.0)
    assert type(err) is ProviderRateLimited
    assert err.retry_after == 7.0
    assert err.status == 429
    assert err.retryable
    assert str(err) == "Model is busy"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_unavailable(status: int) -> None:
    err = classify_error(status, b"", retry_after=3.0)
    assert type(err) is ProviderUnavailable
    assert err.status == status
    assert err.retryable
    assert err.retry_after == 3.0
    assert str(err) == f"HTTP {status}"  # an empty body still gives a message
