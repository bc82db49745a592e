"""Classifying provider error answers (pure): status + body -> a typed error.

A context-window error is recognised by what it says, not by a list of sentences: the structured
fields where a server gives them, otherwise any 400/413/422 whose message is about the context
length/size/window; :func:`parse_context_limit` reads whatever numbers the wording carries. The
wordings of the servers and gateways this was checked against, each with its source, are the
table of ``tests/unit/test_context_wordings.py``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import (
    ContextLimit,
    ContextWindowExceeded,
    OutageCause,
    PrefillRejected,
    ProviderAuthenticationFailed,
    ProviderError,
    ProviderRateLimited,
    ProviderRequestInvalid,
    ProviderUnavailable,
)

# ---- is it about the context window? ----------------------------------------------------------
# structured signals: llama.cpp's error type, OpenAI's (and Groq's, LiteLLM's) error code
CONTEXT_ERROR_CODES = frozenset(
    {
        "exceed_context_size_error",
        "context_length_exceeded",
        "context_window_exceeded",
    }
)
# a message about the context length / size / window in any of the servers' wordings (not a
# parameter name such as `context_window`: Groq names it in an output-cap error)
_ABOUT_CONTEXT = re.compile(
    r"context[ -](?:length|size|window|limit)|context_length_exceeded|context_window_exceeded"
    r"|maximum (?:model|sequence) length|cannot be greater than max_model_len"
    r"|prompt is too long|maximum input length"
    r"|`inputs` tokens \+ `max_new_tokens`"
    r"|maximum number of tokens allowed"
    r"|contextwindowexceeded",
    re.IGNORECASE,
)

# ---- the numbers, wherever a wording puts them -------------------------------------------------
_N = r"(\d[\d,]*)"  # 16384 or 16,384
_CONTEXT_PATTERNS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"maximum context length is\s+(?:about\s+)?{_N}",  # OpenAI, vLLM, DeepSeek, OpenRouter
        rf"context (?:size|length|window|limit)\s*(?:of|is|:)?\s*(?:only\s+)?\(?{_N}",  # llama.cpp, SGLang
        rf"maximum model length (?:of|is)\s*{_N}",  # vLLM's decoder-prompt check
        rf"max_model_len\s*=\s*{_N}",  # vLLM >= 0.33
        rf"maximum input length\s*{_N}",  # DeepInfra
        rf"must be <=\s*{_N}",  # TGI, Together
        rf"tokens\s*>\s*{_N}\s*maximum",  # Anthropic
        rf"model with\s+{_N}\s+maximum context length",  # Mistral
        rf"maximum number of tokens allowed\s*\({_N}\)",  # Gemini
    )
]
_PROMPT_PATTERNS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"{_N}\s*in the messages",  # OpenAI, vLLM <= 0.9, DeepSeek
        rf"request has\s+{_N}\s*input tokens",  # vLLM 0.10-0.17
        rf"passed\s+{_N}\s*input tokens",  # vLLM 0.17
        rf"prompt contains\s+(?:at least\s+)?{_N}\s*(?:input\s+)?tokens",  # vLLM >= 0.19, Mistral
        rf"messages resulted in\s+{_N}\s*tokens",  # OpenAI
        rf"{_N}\s*of text input",  # OpenRouter
        rf"(?:request|input)\s*\({_N}\s*tokens\)",  # llama.cpp, SGLang
        rf"prompt \(length\s*{_N}\)",  # vLLM's decoder-prompt check
        rf"requested input length\s*{_N}",  # DeepInfra
        rf"given:\s*{_N}\s*`inputs` tokens",  # TGI
        rf"prompt is too long:\s*{_N}\s*tokens",  # Anthropic
        rf"input token count\s*\({_N}\)",  # Gemini
    )
]
_COMPLETION_PATTERNS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"{_N}\s*in the completion",
        rf"{_N}\s*in the output",
        rf"requested\s+{_N}\s*output tokens",
        rf"too large:\s*{_N}",
        rf"max_tokens\s*=\s*{_N}",
        rf"and\s+{_N}\s*`max_new_tokens`",
    )
]
# "(16384 > 65536 - 52189)": completion > context - prompt (vLLM)
_ARITHMETIC = re.compile(rf"\({_N}\s*>\s*{_N}\s*-\s*{_N}\)")
# "197451 + 8192 > 200000": prompt + completion > context (Anthropic)
_SUM = re.compile(rf"{_N}\s*\+\s*{_N}\s*>\s*{_N}")


# ---- is it a refusal of the prefill? ----------------------------------------------------------
# A 400 about continuing a final assistant message, recognised by meaning (the wordings, each with
# its source, are the table of tests/unit/test_prefill_wordings.py): trailing whitespace first
# (the same prefill, trimmed, is accepted), then any refusal of the prefill / the final assistant
# message / the continuation flags the ladder sends.
_TRAILING_WHITESPACE = re.compile(
    r"(?:assistant|prefill|final)[^.]{0,60}(?:end|ends|ending) with trailing whitespace"
    r"|trailing whitespace[^.]{0,40}(?:assistant|prefill)",
    re.IGNORECASE,
)
_ABOUT_PREFILL = re.compile(
    r"prefill"  # Anthropic, llama.cpp ("Assistant response prefill ..."), gateways
    r"|(?:final|last) (?:message|turn|role)[^.]{0,40}(?:must|should|has to|needs to) be[^.]{0,20}"
    r"(?:user|tool)"  # gateways: "The final message must be a user message"
    r"|(?:conversation|messages?) must end with a user"  # Anthropic's second sentence, Bedrock
    r"|expected (?:the )?last role[^.]{0,40}(?:user|tool)"  # Mistral
    r"|continue_final_message"  # vLLM-style flag refused or unknown
    r"|assistant message with prefix"  # DeepSeek beta: prefix needs the beta base URL
    r"|(?:prefix|continue_final_message)[`'\" ]*(?:is )?(?:not (?:supported|permitted|allowed)"
    r"|unrecognized|unknown|extra (?:inputs|fields))",
    re.IGNORECASE,
)


def prefill_refusal(message: str) -> str | None:
    """``"trailing_whitespace"`` or ``"prefill"`` when a 4xx message refuses the prefill, else None."""
    if _TRAILING_WHITESPACE.search(message):
        return "trailing_whitespace"
    if _ABOUT_PREFILL.search(message):
        return "prefill"
    return None


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _first(patterns: list[re.Pattern[str]], message: str) -> int | None:
    for pattern in patterns:
        if m := pattern.search(message):
            return _int(m.group(1))
    return None


def parse_context_limit(message: str) -> ContextLimit | None:
    """The context length, prompt tokens and requested completion in a context-window message.

    None when the message names no context length (it may still be about the context: see
    :func:`is_about_context`).
    """
    context = _first(_CONTEXT_PATTERNS, message)
    prompt = _first(_PROMPT_PATTERNS, message)
    requested = _first(_COMPLETION_PATTERNS, message)
    if m := _ARITHMETIC.search(message):
        requested, context, prompt = _int(m.group(1)), _int(m.group(2)), _int(m.group(3))
    elif m := _SUM.search(message):
        prompt, requested, context = _int(m.group(1)), _int(m.group(2)), _int(m.group(3))
    if context is None:
        return None
    return ContextLimit(context_length=context, prompt_tokens=prompt, requested_completion=requested)


def is_about_context(message: str) -> bool:
    return _ABOUT_CONTEXT.search(message) is not None


def _error_object(body: Any) -> dict[str, Any]:
    """The error object of a body (``{"error": {...}}`` or flat), or {}."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError:
            return {}
    if not isinstance(body, dict):
        return {}
    err = body.get("error")
    return err if isinstance(err, dict) else body


def _structured_int(obj: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = obj.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def context_limit_of(body: Any, message: str) -> ContextLimit | None:
    """The :class:`ContextLimit` of an error answer about the context window, else None.

    Structured fields win where a server gives them (llama.cpp's ``type:
    exceed_context_size_error`` with ``n_ctx`` / ``n_prompt_tokens``, OpenAI's ``code:
    context_length_exceeded``); otherwise a message about the context length/size/window, with
    its numbers when it has them (``context_length`` 0 when it has none: the caller halves).
    """
    err = _error_object(body)
    codes = {str(err.get(k, "")).lower() for k in ("type", "code")}
    structured = bool(codes & CONTEXT_ERROR_CODES)
    if not structured and not is_about_context(message):
        return None
    parsed = parse_context_limit(message) or ContextLimit(context_length=0)
    return ContextLimit(
        context_length=_structured_int(err, "n_ctx", "context_length") or parsed.context_length,
        prompt_tokens=_structured_int(err, "n_prompt_tokens", "prompt_tokens") or parsed.prompt_tokens,
        requested_completion=parsed.requested_completion,
    )


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
        limit = context_limit_of(body, message)
        if limit is not None:
            return ContextWindowExceeded(message, limit=limit, status=status)
        refusal = prefill_refusal(message)
        if refusal is not None:
            return PrefillRejected(message, reason=refusal, status=status)
        return ProviderRequestInvalid(message, status=status)
    if status in (401, 403):
        return ProviderAuthenticationFailed(message, status=status)
    if status in (408, 409, 425, 429):
        return ProviderRateLimited(message, status=status, retry_after=retry_after)
    if status >= 500:
        # a 5xx that names the numbers of a context overflow (DeepInfra has answered 500 so, a
        # wrapper may re-raise a 400 as 500): nothing a retry could change
        limit = context_limit_of(body, message)
        if limit is not None and limit.context_length and limit.prompt_tokens is not None:
            return ContextWindowExceeded(message, limit=limit, status=status)
        return ProviderUnavailable(message, status=status, retry_after=retry_after)
    return ProviderRequestInvalid(message, status=status)


def describe_retryable(exc: ProviderError) -> str:
    """A retried error in a few words: "rate limited (429)", "provider unreachable", ... (by its
    type and typed cause, never by its wording)."""
    if isinstance(exc, ProviderRateLimited):
        return "rate limited by the provider (429)"
    cause = exc.cause if isinstance(exc, ProviderUnavailable) else OutageCause.OUTAGE
    if cause is OutageCause.UNREACHABLE:
        return "provider unreachable"
    if cause is OutageCause.TIMED_OUT:
        return "provider timed out"
    return f"provider unavailable ({str(exc)[:80]})"
