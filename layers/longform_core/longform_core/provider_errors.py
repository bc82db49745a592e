"""Classifying provider error answers (pure): status + body -> a typed error.

The context-window 400 comes in several wordings (vLLM, DeepInfra, OpenAI-compatible servers);
:func:`parse_context_limit` reads the numbers out of each of them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import (
    ContextLimit,
    ContextWindowExceeded,
    ProviderAuthenticationFailed,
    ProviderError,
    ProviderRateLimited,
    ProviderRequestInvalid,
    ProviderUnavailable,
)

_MAX_CONTEXT = re.compile(r"maximum context length is\s+(\d+)\s*tokens", re.IGNORECASE)
# "However, you requested 17165 tokens (13069 in the messages, 4096 in the completion)"
_REQUESTED = re.compile(
    r"requested\s+(\d+)\s*tokens\s*\((\d+)\s*in the messages,\s*(\d+)\s*in the completion\)",
    re.IGNORECASE,
)
# "'max_tokens' or 'max_completion_tokens' is too large: 16384."
_TOO_LARGE = re.compile(r"too large:\s*(\d+)", re.IGNORECASE)
# "your request has 52189 input tokens"
_INPUT_TOKENS = re.compile(r"request has\s+(\d+)\s*input tokens", re.IGNORECASE)
# "(16384 > 65536 - 52189)"
_ARITHMETIC = re.compile(r"\((\d+)\s*>\s*(\d+)\s*-\s*(\d+)\)")
# a few other servers: "context length of 8192 ... prompt is 9001 tokens"
_CONTEXT_HINT = re.compile(r"context[ _](?:length|window)", re.IGNORECASE)


def parse_context_limit(message: str) -> ContextLimit | None:
    """The context length, prompt tokens and requested completion in a context-window error."""
    m_ctx = _MAX_CONTEXT.search(message)
    m_arith = _ARITHMETIC.search(message)
    if m_ctx is None and m_arith is None:
        return None
    context_length = int(m_ctx.group(1)) if m_ctx else int(m_arith.group(2))  # type: ignore[union-attr]
    prompt: int | None = None
    requested: int | None = None
    if m := _REQUESTED.search(message):
        prompt, requested = int(m.group(2)), int(m.group(3))
    if m := _INPUT_TOKENS.search(message):
        prompt = int(m.group(1))
    if m := _TOO_LARGE.search(message):
        requested = int(m.group(1))
    if m_arith is not None:
        requested = int(m_arith.group(1))
        prompt = int(m_arith.group(3))
    return ContextLimit(context_length=context_length, prompt_tokens=prompt, requested_completion=requested)


def error_message(body: Any) -> str:
    """The human message in an error body: ``{"error": {"message": ...}}``, flat, or plain text."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            parsed: Any = json.loads(body)
        except json.JSONDecodeError:
            return str(body).strip()[:2000]
        body = parsed
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail")
            if msg:
                return str(msg)
        if isinstance(err, str) and err:
            return err
        for key in ("message", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value:  # FastAPI-style validation detail
                return json.dumps(value)[:2000]
    return json.dumps(body)[:2000] if body is not None else ""


def classify_error(status: int, body: Any, *, retry_after: float | None = None) -> ProviderError:
    """Map an HTTP error answer to the error taxonomy."""
    message = error_message(body) or f"HTTP {status}"
    if status in (400, 413, 422):
        limit = parse_context_limit(message)
        if limit is not None:
            return ContextWindowExceeded(message, limit=limit, status=status)
        if _CONTEXT_HINT.search(message) and "exceed" in message.lower():
            return ContextWindowExceeded(message, limit=ContextLimit(context_length=0), status=status)
        return ProviderRequestInvalid(message, status=status)
    if status in (401, 403):
        return ProviderAuthenticationFailed(message, status=status)
    if status in (408, 409, 425, 429):
        return ProviderRateLimited(message, status=status, retry_after=retry_after)
    if status >= 500:
        return ProviderUnavailable(message, status=status, retry_after=retry_after)
    return ProviderRequestInvalid(message, status=status)
