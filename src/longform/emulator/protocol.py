"""A chat-completions request validated and its reply planned, with no HTTP I/O.

``plan_reply`` turns a request body into a ``ReplyPlan`` (what to send: the tokens, the
echoed prefill, usage, finish reason, the fault to apply) or an ``ErrorReply`` (see
``longform.emulator.errors``). ``longform.emulator.sse`` renders a plan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from longform.emulator.continuation import penalised, plan_continuation
from longform.emulator.emission import Emission, select, stop_strings
from longform.emulator.errors import (
    ErrorReply,
    Rejected,
    context_error_message,
    litellm_context_error_body,
    llamacpp_context_error_body,
    llamacpp_context_error_message,
    unexpected_fields_body,
)
from longform.emulator.model import (
    MESSAGE_OVERHEAD,
    Canonical,
    Style,
    canonical_output,
    conversation_messages,
    message_text,
    prompt_tokens,
    tokenize,
)
from longform.emulator.prefill import (
    Delta,
    Echo,
    Trailing,
    continue_reply,
    echo_of,
    read_trailing,
    with_echo,
)
from longform.emulator.settings import (
    EchoPrefillMode,
    EmulatorSettings,
    Fault,
    UsageChunkMode,
    is_int,
)

__all__ = ["CachedTokens", "Delta", "Echo", "Emission", "ReplyPlan", "log_entry", "plan_reply"]

CachedTokens = Callable[[str, str, int], int]
"""(conversation key, prefill, prompt tokens) -> cached prompt tokens; remembers the request."""
FirstAsk = Callable[[str], bool]
"""(a key) -> whether this is the first time it is seen (and remembers it)."""


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ReplyPlan:
    """Everything the reply to a valid chat request is made of (rendered by ``sse``)."""

    model: str
    response_id: str
    created: int
    stream: bool
    include_usage: bool
    emission: Emission
    echo: Echo
    style: Style
    """The reasoning style of the canonical output ("field": a ``reasoning_content`` field)."""
    usage: dict[str, Any]
    silent: bool
    """overflow="silent_stream": end the stream cleanly with no finish, usage or [DONE]."""
    fault: Fault | None
    """The fault to apply while sending ("cut", "stall", "slow"), if any."""
    delay: float
    """Seconds per emitted token."""
    echo_mode: EchoPrefillMode
    usage_chunk: UsageChunkMode
    keepalive_every: int
    keepalive_comment: str = "keep-alive"
    done_marker: bool = True

    @property
    def finish_reason(self) -> str:
        return self.emission.finish_reason

    def deltas(self) -> tuple[list[Delta], list[Delta]]:
        """(deltas sent before the new tokens, one delta per new token), the echo applied."""
        new: list[Delta] = [("reasoning_content", p) for p in self.emission.reasoning]
        new.extend(("content", p) for p in self.emission.content)
        return with_echo(new, self.echo, self.echo_mode)


@dataclass(frozen=True)
class _Request:
    body: dict[str, Any]
    messages: list[dict[str, Any]]
    model: str
    max_tokens: int | None
    seed: int | None
    stream: bool
    include_usage: bool
    stops: list[str]


def plan_reply(
    raw: bytes,
    settings: EmulatorSettings,
    fault: Fault | None,
    cached_tokens: CachedTokens,
    log: MutableMapping[str, Any],
    first_ask: FirstAsk | None = None,
) -> ReplyPlan | ErrorReply:
    """Validate a chat request body and plan the reply, or the error to answer with.

    ``log`` (the request's log entry) gets the fields learnt on the way, also when the
    request is rejected."""
    try:
        return _plan(raw, settings, fault, cached_tokens, log, first_ask)
    except Rejected as rejected:
        return rejected.reply


def _plan(
    raw: bytes,
    settings: EmulatorSettings,
    fault: Fault | None,
    cached_tokens: CachedTokens,
    log: MutableMapping[str, Any],
    first_ask: FirstAsk | None = None,
) -> ReplyPlan:
    request = _parse(raw)
    messages = request.messages
    if fault is not None and fault["type"] == "new_turn":  # this request's prefill: a finished turn
        lead, header = str(fault.get("lead", "")), int(fault.get("header_tokens", 6))
        settings = dataclasses.replace(
            settings, prefill_style="new_turn", new_turn_header_tokens=header, new_turn_lead=lead
        )
    log.update(
        model=request.model, messages=len(messages), max_tokens=request.max_tokens, stream=request.stream
    )
    unknown = [f for f in ("continue_final_message", "add_generation_prompt") if f in request.body]
    if unknown and settings.unknown_fields == "reject":
        raise Rejected(422, "Unexpected fields in the request", body=unexpected_fields_body(sorted(unknown)))
    trailing = read_trailing(messages, request.body, settings)
    log.update(trailing.log_fields())
    prompt = prompt_tokens(messages)
    if trailing.continued:
        # a continued prefill is billed its text only: no end of message (real servers: the
        # last prompt plus what it generated)
        prompt -= MESSAGE_OVERHEAD
    if trailing.ignored and settings.prefill_style == "new_turn":
        # the prompt it reports: no more than a continued prefill would cost (gives nothing away),
        # or an end-of-turn and a new header more (llama-cpp-python 0.3.36: 6)
        prompt += -MESSAGE_OVERHEAD + (settings.new_turn_header_tokens or 0)
    log["prompt_tokens"] = prompt
    ignore = settings.ignore_max_tokens or (fault is not None and fault["type"] == "ignore_max_tokens")
    limit, silent = _limit(
        dataclasses.replace(request, max_tokens=None) if ignore else request, prompt, settings
    )
    log["effective_max_tokens"] = limit
    canonical = canonical_output(
        trailing.conversation, model=request.model, seed=request.seed, settings=settings
    )
    penalty = request.body.get("repeat_penalty", settings.repeat_penalty)
    log["repeat_penalty"] = penalty
    emission = _emit(canonical, trailing, limit, request.stops, settings, log, first_ask, penalty != 1.0)
    echo = Echo()
    if trailing.continued and trailing.prefill and settings.echo_prefill != "off":
        echo = echo_of(trailing.prefill, canonical.style)
    log["echoed_chars"] = echo.chars
    cached = cached_tokens(_conversation_key(request), trailing.prefill or "", prompt)
    log.update(
        completion_tokens=emission.completion_tokens,
        finish_reason=None if silent else emission.finish_reason,
        cached_tokens=cached,
        silent_stream=silent,
    )
    delay = settings.token_delay
    if fault is not None and fault["type"] == "slow":
        delay = float(fault["token_delay"])
    return ReplyPlan(
        model=request.model,
        response_id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
        created=int(time.time()),
        stream=request.stream,
        include_usage=request.include_usage,
        emission=emission,
        echo=echo,
        style=canonical.style,
        usage=_usage(prompt, emission, cached, canonical.style, settings),
        silent=silent,
        fault=fault,
        delay=delay,
        echo_mode=settings.echo_prefill,
        usage_chunk=settings.usage_chunk,
        keepalive_every=settings.keepalive_every,
        keepalive_comment=settings.keepalive_comment,
        done_marker=settings.done_marker,
    )


def _parse(raw: bytes) -> _Request:
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise Rejected(400, f"invalid request: body is not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise Rejected(400, "invalid request: the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Rejected(400, "invalid request: 'messages' must be a non-empty list")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise Rejected(400, "invalid request: every message needs a string 'role'")
        if not isinstance(m.get("content"), str | list | None):
            raise Rejected(400, "invalid request: message 'content' must be a string, a list or null")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Rejected(400, "invalid request: 'model' must be a non-empty string")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_completion_tokens")
    if max_tokens is not None and (not is_int(max_tokens) or max_tokens < 1):
        raise Rejected(400, "invalid request: 'max_tokens' must be an integer >= 1 or null")
    seed = body.get("seed")
    if seed is not None and not is_int(seed):
        raise Rejected(400, "invalid request: 'seed' must be an integer")
    stream_options = body.get("stream_options")
    return _Request(
        body=body,
        messages=messages,
        model=model,
        max_tokens=max_tokens,
        seed=seed,
        stream=body.get("stream") is True,
        include_usage=isinstance(stream_options, dict) and stream_options.get("include_usage") is True,
        stops=stop_strings(body.get("stop")),
    )


def _emit(
    canonical: Canonical,
    trailing: Trailing,
    limit: int,
    stops: Sequence[str],
    settings: EmulatorSettings,
    log: MutableMapping[str, Any],
    first_ask: FirstAsk | None = None,
    penalised_seam: bool = False,
) -> Emission:
    """What is sent after the answer so far (the continuation plan's mode logged; a continuation
    under a per-request repetition penalty parts from the uncapped answer: ``penalised``)."""
    plan = plan_continuation(canonical, trailing.answer_so_far)
    if penalised_seam and plan.mode != "fresh":
        plan = penalised(plan)
    log["plan"] = plan.mode
    if trailing.ignored and settings.prefill_style == "new_turn":
        new_turn = _new_turn(plan.content, len(trailing.prefill or ""))
        return select(plan.reasoning, (*tokenize(settings.new_turn_lead), *new_turn), limit, stops)
    if trailing.so_far is None:
        return select(plan.reasoning, plan.content, limit, stops)
    repeat = settings.continue_repeat
    key = hashlib.sha256(trailing.so_far.encode("utf-8", "surrogatepass")).hexdigest()
    if repeat == "always" or (repeat == "once" and first_ask is not None and first_ask(key)):
        # the model repeats the end of the answer (its previous chunk) instead of continuing it
        log["repeated"] = True
        said = tokenize(trailing.so_far)
        emission = select((), said[-limit:], limit, stops)
        if len(said) > limit and emission.finish_reason == "stop" and len(emission.content) == limit:
            emission = dataclasses.replace(emission, finish_reason="length")  # it used its whole budget
        return emission
    reply = continue_reply(plan, trailing.so_far, settings)
    log.update(overlap_chars=reply.overlap_chars, preamble_chars=reply.preamble_chars)
    return select(reply.reasoning, reply.content, limit, stops)


def _new_turn(pieces: Sequence[str], skip_chars: int) -> tuple[str, ...]:
    """llama-cpp-python's new turn: the answer from the first sentence starting at or past
    ``skip_chars`` characters, glued to the text before it (its leading whitespace dropped)."""
    at, prev = 0, ""
    for index, piece in enumerate(pieces):
        starts_sentence = piece.strip()[:1].isupper() and prev.rstrip().endswith((".", "!", "?"))
        if at >= skip_chars and starts_sentence:
            return (piece.lstrip(), *pieces[index + 1 :])
        at += len(piece)
        prev = piece
    return tuple(pieces)


def _limit(request: _Request, prompt: int, settings: EmulatorSettings) -> tuple[int, bool]:
    """(the most tokens to generate, whether the stream ends silently), or the overflow error."""
    max_tokens = request.max_tokens
    limit = settings.cap if max_tokens is None else min(max_tokens, settings.cap)
    context = settings.context_length
    if not context:
        return limit, False
    overflow = settings.overflow
    if overflow == "none":
        return limit, False
    if overflow in ("llamacpp", "litellm"):
        # llama.cpp (server-context.cpp) rejects only `n_tokens >= n_ctx`, then stops when full
        if prompt >= context:
            message = llamacpp_context_error_message(prompt, context)
            body = (litellm_context_error_body if overflow == "litellm" else llamacpp_context_error_body)(
                prompt, context
            )
            raise Rejected(400, message, body=body)
        return min(limit, context - prompt), False
    if prompt >= context or (
        max_tokens is not None and prompt + max_tokens > context and overflow != "clamp"
    ):
        if overflow == "silent_stream" and request.stream:
            return min(limit, settings.silent_stream_tokens), True
        message = context_error_message(context, prompt, max_tokens, settings.context_error_style)
        raise Rejected(400, message)
    return min(limit, context - prompt), False


def _conversation_key(request: _Request) -> str:
    """The prefix cache's key: the model and the conversation before any prefill."""
    conversation = [[str(m.get("role")), message_text(m)] for m in conversation_messages(request.messages)]
    return hashlib.sha256(json.dumps([request.model, conversation]).encode()).hexdigest()


def _usage(
    prompt: int, emission: Emission, cached: int, style: Style, settings: EmulatorSettings
) -> dict[str, Any]:
    cost = (
        prompt * settings.price_input_per_mtok + emission.completion_tokens * settings.price_output_per_mtok
    ) / 1e6
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": emission.completion_tokens,
        "total_tokens": prompt + emission.completion_tokens,
        "estimated_cost": round(cost, 8),
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    if style != "none":
        usage["completion_tokens_details"] = {"reasoning_tokens": len(emission.reasoning)}
    return usage


def log_entry(path: str) -> dict[str, Any]:
    """A request-log entry before anything is known of the request (``plan_reply`` fills it)."""
    return {
        "time": time.time(),
        "path": path,
        "model": None,
        "messages": 0,
        "prompt_tokens": None,
        "max_tokens": None,
        "effective_max_tokens": None,
        "prefill_chars": 0,
        "continued": False,
        "prefill_ignored": False,
        "continue_message": False,
        "overlap_chars": 0,
        "preamble_chars": 0,
        "echoed_chars": 0,
        "stream": False,
        "status": None,
        "completion_tokens": 0,
        "finish_reason": None,
        "cached_tokens": 0,
        "fault": None,
        "silent_stream": False,
    }
