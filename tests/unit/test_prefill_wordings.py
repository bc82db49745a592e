"""Refusals of a prefill (a final assistant message) as servers and gateways answer, each with its source.

``classify_error`` must recognise each as :class:`PrefillRejected` with the right ``reason``
(``trailing_whitespace``: the same prefill, trimmed, is accepted; ``prefill``: step down the
ladder, ``prefill.py``), and must leave 400s that are not about the prefill alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from longform_core.errors import ContextWindowExceeded, PrefillRejected, ProviderRequestInvalid
from longform_core.provider_errors import classify_error


@dataclass(frozen=True)
class Wording:
    server: str
    status: int
    body: Any
    reason: str
    source: str


def anthropic(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


REFUSALS = [
    Wording(
        "Anthropic (Claude Sonnet 4.6, Opus 4.7 and later: no prefill)",
        400,
        anthropic(
            "This model does not support assistant message prefill. "
            "The conversation must end with a user message."
        ),
        "prefill",
        "https://github.com/aaif-goose/goose/issues/7425, "
        "https://github.com/jikig-ai/soleur/issues/3250 (the response body pasted)",
    ),
    Wording(
        "GitHub Copilot's proxy (the same wording, passed through)",
        400,
        {
            "error": {
                "message": "This model does not support assistant message prefill. "
                "The conversation must end with a user message."
            }
        },
        "prefill",
        "https://github.com/NousResearch/hermes-agent/pull/50055",
    ),
    Wording(
        "Anthropic (trailing whitespace in the prefill)",
        400,
        anthropic("messages: final assistant content cannot end with trailing whitespace"),
        "trailing_whitespace",
        "Anthropic Messages API; the emulator's PREFILL_WHITESPACE_MESSAGE models it",
    ),
    Wording(
        "llama.cpp llama-server (a thinking template with enable_thinking)",
        400,
        {
            "error": {
                "code": 400,
                "message": "Assistant response prefill is incompatible with enable_thinking.",
                "type": "invalid_request_error",
            }
        },
        "prefill",
        "llama.cpp tools/server/utils.hpp (oaicompat_chat_params_parse); the emulator's "
        "LLAMACPP_PREFILL_THINKING_MESSAGE",
    ),
    Wording(
        "an OpenAI-compatible gateway that requires a final user message",
        400,
        {"error": {"message": "The final message must be a user message"}},
        "prefill",
        "the emulator's GATEWAY_PREFILL_MESSAGE (issue 9)",
    ),
    Wording(
        "Mistral La Plateforme (a final assistant message without prefix: true)",
        400,
        {
            "object": "error",
            "message": "Expected last role User or Tool (or Assistant with prefix True) for "
            "serving but got assistant",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
        "prefill",
        "https://github.com/0xPlaygrounds/rig/issues/708 (the response body pasted)",
    ),
    Wording(
        "a strict OpenAI-compatible server refusing the vLLM flag (pydantic extra=forbid)",
        422,
        {
            "detail": [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "continue_final_message"],
                    "msg": "Extra inputs are not permitted",
                }
            ]
        },
        "prefill",
        "the shape of FastAPI/pydantic validation errors (no server's capture: a pattern, not a quote)",
    ),
]

NOT_PREFILL = [
    Wording("OpenAI unknown model", 400, {"error": {"message": "The model `x` does not exist"}}, "", "-"),
    Wording("a bad temperature", 400, {"error": {"message": "temperature must be <= 2"}}, "", "-"),
]


@pytest.mark.parametrize("wording", REFUSALS, ids=lambda w: w.server)
def test_refusals_are_recognised_by_meaning(wording: Wording) -> None:
    error = classify_error(wording.status, wording.body)
    assert isinstance(error, PrefillRejected), (wording.server, error)
    assert error.reason == wording.reason
    assert not error.retryable  # the ladder steps down in the same invocation, never a blind retry


@pytest.mark.parametrize("wording", NOT_PREFILL, ids=lambda w: w.server)
def test_other_400s_are_not_refusals(wording: Wording) -> None:
    error = classify_error(wording.status, wording.body)
    assert type(error) is ProviderRequestInvalid


def test_a_context_error_stays_a_context_error() -> None:
    body = {
        "error": {
            "message": "This model's maximum context length is 4096 tokens. However, you "
            "requested 5000 tokens (4000 in the messages, 1000 in the completion)."
        }
    }
    assert isinstance(classify_error(400, body), ContextWindowExceeded)
