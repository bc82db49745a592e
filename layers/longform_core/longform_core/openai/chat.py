"""OpenAI Chat Completions in longform's terms: a chat request becomes a ``GenerationRequest`` (its
``max_tokens`` the whole answer's budget), and a job becomes a ``chat.completion`` or a stream of
``chat.completion.chunk`` objects (pure, no I/O).

The request: OpenAI's fields that mean the same thing pass as they are (``model``, ``messages``,
``temperature``, ``top_p``, ``seed``, ``stop``, ``reasoning_effort``); ``max_tokens`` /
``max_completion_tokens`` become ``max_output_tokens``; ``stream`` and ``stream_options`` are the
client's (how longform answers, not how it calls the provider); fields that change nothing about the
text (``user``, ``store``, ``metadata``, ...) are dropped; every other field goes on as longform's own
(``max_tokens_per_request``, ``prefill_style``, ...: the SDK's ``extra_body``), so an unknown one is a
400 naming it, as are OpenAI features longform does not have (``n`` > 1, tools, images, logprobs).
"""

from __future__ import annotations

from typing import Any

from ..errors import Problem, RequestInvalid

CHAT_COMPLETION = "chat.completion"
CHAT_COMPLETION_CHUNK = "chat.completion.chunk"
# fields of OpenAI's request that do not change the text: accepted and dropped
IGNORED_FIELDS = frozenset(
    {
        "user",
        "store",
        "metadata",
        "service_tier",
        "parallel_tool_calls",
        "safety_identifier",
        "prompt_cache_key",
    }
)
# OpenAI features longform has no equivalent of: a 400 naming them, never a silent difference
UNSUPPORTED_FIELDS = {
    "tools": "tools are not supported: longform generates text",
    "tool_choice": "tools are not supported: longform generates text",
    "functions": "functions are not supported: longform generates text",
    "function_call": "functions are not supported: longform generates text",
    "response_format": "response_format is not supported (a long answer is text)",
    "logprobs": "logprobs are not supported",
    "top_logprobs": "logprobs are not supported",
    "logit_bias": "logit_bias is not supported",
    "audio": "audio output is not supported",
    "modalities": "only text output is supported",
    "prediction": "predicted outputs are not supported",
    "frequency_penalty": "frequency_penalty is not supported",
    "presence_penalty": "presence_penalty is not supported",
    "web_search_options": "web search is not supported",
}
# how a job's status ends an OpenAI answer: by status string, so a status this module does not
# know yet (a newer layer's) still maps when it means "cut short by a limit"
FINISH_REASONS = {"succeeded": "stop", "context_exhausted": "length", "incomplete": "length"}
BUDGET_STOPS = frozenset({"max_output_tokens", "max_chunks", "max_cost"})


def finish_reason(status: str, stop_reason: str | None = None) -> str | None:
    """OpenAI's ``finish_reason`` of a job that ended with ``status`` (None: it ended in error).

    ``stop_reason`` (``JobView.stop_reason``): a job that one of its budgets ended, under a layer that
    calls it ``succeeded``, is ``length`` too (the model had more to say)."""
    reason = FINISH_REASONS.get(status)
    if reason == "stop" and stop_reason in BUDGET_STOPS:
        return "length"
    return reason


def _text_content(content: Any, where: str, problems: list[Problem]) -> Any:
    """A message's content: a string, or OpenAI's list of text parts joined (other parts: a problem)."""
    if not isinstance(content, list):
        return content
    texts: list[str] = []
    for i, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            problems.append(
                Problem(f"{where}[{i}]", f"content part of type {kind!r}: only text is supported")
            )
    return "".join(texts)


def _messages(messages: Any, problems: list[Problem]) -> Any:
    if not isinstance(messages, list):
        return messages
    out: list[Any] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            out.append(message)
            continue
        kept = {k: v for k, v in message.items() if k not in ("name",)}
        if "content" in kept:
            kept["content"] = _text_content(kept["content"], f"messages[{i}].content", problems)
        if kept.get("role") in ("tool", "function"):
            problems.append(Problem(f"messages[{i}].role", f"role {kept['role']!r} is not supported"))
        out.append(kept)
    return out


def generation_request(body: Any) -> tuple[dict[str, Any], bool, bool]:
    """An OpenAI chat request as longform's request (still to be validated by ``parse_request``),
    whether to stream the answer and whether to include usage in the stream.

    Raises ``RequestInvalid`` for what OpenAI has and longform does not (every such field named).
    """
    if not isinstance(body, dict):
        raise RequestInvalid([Problem("(body)", f"expected a JSON object, got {type(body).__name__}")])
    problems: list[Problem] = []
    request: dict[str, Any] = {}
    for key, value in body.items():
        if key in IGNORED_FIELDS or key in ("stream", "stream_options"):
            continue
        if key in UNSUPPORTED_FIELDS:
            if value not in (None, False, [], {}):
                problems.append(Problem(key, UNSUPPORTED_FIELDS[key]))
            continue
        request[key] = value
    n = request.pop("n", None)
    if n not in (None, 1):
        problems.append(Problem("n", "only n=1 is supported: one long answer per request"))
    budgets = {
        k: request.pop(k) for k in ("max_tokens", "max_completion_tokens") if request.get(k) is not None
    }
    request.pop("max_tokens", None)
    request.pop("max_completion_tokens", None)
    if len(set(budgets.values())) > 1:
        problems.append(Problem("max_tokens", "give max_tokens or max_completion_tokens, not both"))
    elif budgets:
        request["max_output_tokens"] = next(iter(budgets.values()))
    if "messages" not in request:
        problems.append(Problem("messages", "required"))
    request["messages"] = _messages(request.get("messages"), problems)
    if problems:
        raise RequestInvalid(problems)
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    return request, stream, include_usage


def usage_object(progress: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ``usage`` of a whole job: every request's tokens summed (``JobView.progress``)."""
    prompt = int(progress.get("prompt_tokens_total") or 0)
    completion = int(progress.get("output_tokens") or 0)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(progress.get("cached_tokens") or 0)},
    }
    return usage


def completion_object(
    job_id: str, created: int, model: str, text: str, reason: str, usage: dict[str, Any]
) -> dict[str, Any]:
    """The ``chat.completion`` of a finished job."""
    return {
        "id": job_id,
        "object": CHAT_COMPLETION,
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": reason,
            }
        ],
        "usage": usage,
        "system_fingerprint": None,
    }


def chunk_object(
    job_id: str,
    created: int,
    model: str,
    *,
    delta: dict[str, Any] | None = None,
    reason: str | None = None,
    usage: dict[str, Any] | None = None,
    include_usage: bool = False,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``: a delta (or the finish), or with ``usage`` the last one, whose
    ``choices`` is empty; with ``include_usage`` every other chunk carries ``usage: null``."""
    chunk: dict[str, Any] = {
        "id": job_id,
        "object": CHAT_COMPLETION_CHUNK,
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": []
        if usage is not None
        else [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": reason}],
    }
    if usage is not None or include_usage:
        chunk["usage"] = usage
    return chunk


def model_list(models: list[str], created: int) -> dict[str, Any]:
    """``GET /v1/models``."""
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": created, "owned_by": "longform"} for m in models],
    }
