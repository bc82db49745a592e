"""The errors the emulator answers chat requests with, in the real providers' wordings.

The context-overflow messages (the OpenAI / vLLM ones and llama.cpp's), the prefill
refusals, the JSON error body in each provider's style, and ``ErrorReply``: a status,
message, headers and body to send.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from longform.emulator.settings import (
    ContextErrorStyle,
    EmulatorSettings,
    ErrorBodyStyle,
    Fault,
    PrefillRefusal,
)

__all__ = [
    "GATEWAY_PREFILL_MESSAGE",
    "LLAMACPP_PREFILL_THINKING_MESSAGE",
    "PREFILL_REFUSAL_MESSAGES",
    "PREFILL_REJECTED_MESSAGE",
    "PREFILL_WHITESPACE_MESSAGE",
    "ContextError",
    "ErrorReply",
    "Rejected",
    "auth_error",
    "context_error_message",
    "default_message",
    "error_body",
    "fault_error",
    "llamacpp_context_error_body",
    "llamacpp_context_error_message",
    "prefill_refusal",
]

PREFILL_WHITESPACE_MESSAGE = "messages: final assistant content cannot end with trailing whitespace"
"""Anthropic's 400 for a prefill ending in whitespace (``reject_trailing_whitespace_prefill``)."""
PREFILL_REJECTED_MESSAGE = (
    "This model does not support assistant message prefill. The conversation must end with a user message."
)
"""Anthropic's 400 for a prefill to a model without prefill (``prefill_refusal="anthropic"``)."""
LLAMACPP_PREFILL_THINKING_MESSAGE = "Assistant response prefill is incompatible with enable_thinking."
"""llama-server's 400 for a prefill with thinking on (``prefill_refusal="llamacpp_thinking"``)."""
GATEWAY_PREFILL_MESSAGE = "The final message must be a user message"
"""A gateway's generic refusal of a trailing assistant message (``prefill_refusal="gateway"``)."""
PREFILL_REFUSAL_MESSAGES: dict[PrefillRefusal, str] = {
    "anthropic": PREFILL_REJECTED_MESSAGE,
    "llamacpp_thinking": LLAMACPP_PREFILL_THINKING_MESSAGE,
    "gateway": GATEWAY_PREFILL_MESSAGE,
}


class ContextError(Exception):
    """A request that does not fit the context window (HTTP 400)."""


def context_error_message(
    context_length: int, prompt: int, max_tokens: int | None, style: ContextErrorStyle = "requested"
) -> str:
    """The provider wording for a context overflow (input alone, or input + max_tokens)."""
    if max_tokens is None or prompt >= context_length:
        return (
            f"This model's maximum context length is {context_length} tokens. However, your request "
            f"has {prompt} input tokens. Please reduce the length of the input messages."
        )
    if style == "too_large":
        return (
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum "
            f"context length is {context_length} tokens and your request has {prompt} input tokens "
            f"({max_tokens} > {context_length} - {prompt})."
        )
    return (
        f"This model's maximum context length is {context_length} tokens. However, you requested "
        f"{prompt + max_tokens} tokens ({prompt} in the messages, {max_tokens} in the completion). "
        "Please reduce the length of the messages or completion."
    )


def llamacpp_context_error_message(n_prompt_tokens: int, n_ctx: int) -> str:
    """llama-server's wording for a prompt that leaves no room in the context."""
    return (
        f"request ({n_prompt_tokens} tokens) exceeds the available context size ({n_ctx} tokens), "
        "try increasing it"
    )


def litellm_context_error_body(n_prompt_tokens: int, n_ctx: int) -> dict[str, Any]:
    """LiteLLM's proxy (1.110.2) in front of llama-server: llama.cpp's wording wrapped, its type and
    structured fields replaced (seen: ``"type": "invalid_request_error"``, ``"code": "400"``)."""
    return {
        "error": {
            "message": "litellm.ContextWindowExceededError: litellm.BadRequestError: OpenAIException - "
            + llamacpp_context_error_message(n_prompt_tokens, n_ctx),
            "type": "invalid_request_error",
            "param": None,
            "code": "400",
        }
    }


def unexpected_fields_body(fields: list[str]) -> dict[str, Any]:
    """``transformers serve``'s 422 for request fields it does not know."""
    return {"detail": f"Unexpected fields in the request: {set(fields)!r}"}


def llamacpp_context_error_body(n_prompt_tokens: int, n_ctx: int) -> dict[str, Any]:
    """llama-server's 400 body for a prompt that leaves no room (prompt tokens >= n_ctx)."""
    return {
        "error": {
            "code": 400,
            "message": llamacpp_context_error_message(n_prompt_tokens, n_ctx),
            "type": "exceed_context_size_error",
            "n_prompt_tokens": n_prompt_tokens,
            "n_ctx": n_ctx,
        }
    }


_NESTED_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
_LLAMACPP_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    500: "server_error",
    501: "not_supported_error",
    503: "unavailable_error",
}
_FLAT_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}
_DEFAULT_MESSAGES = {
    429: "Model is overloaded, please try again later",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}


def default_message(status: int) -> str:
    """The message of an error status when none is given."""
    return _DEFAULT_MESSAGES.get(status, HTTPStatus(status).phrase)


def error_body(status: int, message: str, style: ErrorBodyStyle = "nested") -> dict[str, Any]:
    """The JSON error body in the provider's style."""
    if style == "flat":
        kind = _FLAT_TYPES.get(status, "InternalServerError" if status >= 500 else "APIError")
        return {"object": "error", "message": message, "type": kind, "code": status}
    if style == "llamacpp":  # format_error_response in llama.cpp's tools/server/server-common.cpp
        kind = _LLAMACPP_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return {"error": {"code": status, "message": message, "type": kind}}
    nested = _NESTED_TYPES.get(status, "rate_limit_error" if status == 429 else "server_error")
    if 400 <= status < 500 and status not in _NESTED_TYPES and status != 429:
        nested = "invalid_request_error"
    return {"error": {"message": message, "type": nested, "code": status}}


@dataclass(frozen=True)
class ErrorReply:
    """An error to answer with: status, message, headers and, if fixed, the JSON body."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    """A fixed JSON body (else ``error_body`` in the configured style)."""

    def payload(self, style: ErrorBodyStyle) -> dict[str, Any]:
        return self.body if self.body is not None else error_body(self.status, self.message, style)


class Rejected(Exception):
    """Raised while validating a request: answer with ``reply``."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reply = ErrorReply(status, message, body=body)


def prefill_refusal(kind: PrefillRefusal) -> Rejected:
    """The 400 of ``prefill_style="reject"``: "llamacpp_thinking" in llama-server's body shape
    whatever ``error_body`` is, the others in the configured ``error_body`` style."""
    message = PREFILL_REFUSAL_MESSAGES[kind]
    body = error_body(400, message, "llamacpp") if kind == "llamacpp_thinking" else None
    return Rejected(400, message, body=body)


def auth_error(settings: EmulatorSettings, authorization: str) -> ErrorReply | None:
    """The 401 for a request without the configured API key (None: authorised)."""
    if settings.api_key is None or authorization == f"Bearer {settings.api_key}":
        return None
    return ErrorReply(401, "Invalid API key" if authorization else "Missing API key")


def fault_error(fault: Fault | None) -> ErrorReply | None:
    """The error a "status" fault answers with (None for no fault or another kind)."""
    if fault is None or fault["type"] != "status":
        return None
    status = int(fault["status"])
    message = str(fault.get("message") or default_message(status))
    headers = {}
    if fault.get("retry_after") is not None:
        retry = fault["retry_after"]
        headers["Retry-After"] = str(int(retry)) if float(retry).is_integer() else str(retry)
    return ErrorReply(status, message, headers)
