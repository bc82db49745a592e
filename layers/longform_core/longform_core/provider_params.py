"""A request's ``provider_params``: fields sent to the provider as they are, in every request of the job.

OpenAI-compatible servers take sampling settings of their own beside OpenAI's (llama.cpp's and
llama-cpp-python's ``repeat_penalty``, ``top_k``, ``min_p``; vLLM's ``repetition_penalty``; ...),
as the OpenAI SDK's ``extra_body`` sends them. Some of them change what ``temperature: 0`` means:
llama-cpp-python 0.3.36 applies ``repeat_penalty`` 1.1 unless told otherwise, over the tokens the
*current request* generated (its sampler is made afresh per request and never sees the prompt), so
a job in several requests cannot reproduce one uncapped call unless it asks for ``repeat_penalty``
1.0 (``docs/conformance.md``). longform sends them on the chat rungs and the raw-completion rung
alike; a field longform sets itself (the model, the messages, the limits, the stream, OpenAI's
sampling fields that have their own request field) cannot be given here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

MAX_PARAMS = 32
MAX_PARAMS_BYTES = 16_384
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
# what longform builds or owns in a provider request (and what would change the reply's shape)
RESERVED = frozenset(
    {
        "model",
        "messages",
        "prompt",
        "suffix",
        "echo",
        "max_tokens",
        "max_completion_tokens",
        "stream",
        "stream_options",
        "stop",
        "temperature",
        "top_p",
        "seed",
        "reasoning_effort",
        "continue_final_message",
        "add_generation_prompt",
        "n",
        "best_of",
        "logprobs",
        "top_logprobs",
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "response_format",
    }
)


def check_provider_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as given, or ValueError naming what is wrong (a reserved or malformed key, too many,
    too large)."""
    if len(params) > MAX_PARAMS:
        raise ValueError(f"at most {MAX_PARAMS} provider params")
    for key in params:
        if not KEY.fullmatch(key):
            raise ValueError(f"{key!r} is not a field name (letters, digits, '_', '.', '-'; at most 64)")
        if key in RESERVED:
            raise ValueError(f"{key!r} is set by longform (use the request's own field, if it has one)")
    size = len(json.dumps(params, ensure_ascii=False).encode("utf-8"))
    if size > MAX_PARAMS_BYTES:
        raise ValueError(f"provider params take {size} bytes as JSON, at most {MAX_PARAMS_BYTES}")
    return dict(params)


def with_provider_params(body: dict[str, Any], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``body`` with the request's provider params added (they never replace a field of longform's)."""
    for key, value in (params or {}).items():
        if key not in RESERVED:
            body.setdefault(key, value)
    return body
