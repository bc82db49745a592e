"""The continuation policy (pure functions, no I/O).

- what the next request looks like: the conversation plus the answer so far as an assistant
  prefill (in the provider's prefill style);
- how many tokens it may ask for: ``min(per-request cap, job budget left, context - prompt)``
  (decision 2 of the brief; the prompt size is exact, from the provider's own usage, so the
  margin is zero), and how to shrink after a context-window 400 when the seam re-tokenises a
  few tokens differently;
- when the invocation must stop reading (decision 3);
- whether the job goes on after a chunk (stop, budget, reasoning that never ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import Settings
from .errors import ContextLimit
from .models import CONTINUE_FINISHES, FinishReason, Manifest, StopReason
from .prefill import ConcreteStyle, continue_instruction
from .provider_params import with_provider_params
from .request import GenerationRequest

STOP_FINISHES = frozenset({"stop", "eos", "end_turn", "stop_sequence"})
LENGTH_FINISHES = frozenset({"length", "max_tokens"})


@dataclass(frozen=True)
class Budget:
    """The limits that apply to the next chunk of one job."""

    cap: int
    context_length: int | None
    max_output_tokens: int | None
    max_chunks: int
    max_cost_usd: float | None


def job_budget(request: GenerationRequest, settings: Settings, manifest: Manifest) -> Budget:
    return Budget(
        cap=request.max_tokens_per_request or settings.max_tokens_per_request,
        # learned beats configured: the provider's own error message is authoritative
        context_length=manifest.context_length or request.context_length or settings.context_length,
        max_output_tokens=request.max_output_tokens,
        max_chunks=request.max_chunks,
        max_cost_usd=request.max_cost_usd,
    )


def rough_prompt_tokens(request: GenerationRequest, prefill: str) -> int:
    """A deliberately generous guess (3 characters a token) used before the provider told us."""
    chars = sum(len(m.content) for m in request.conversation()) + len(prefill)
    return chars // 3 + 4 * (len(request.conversation()) + 1) + 3


def estimate_prompt_tokens(manifest: Manifest, request: GenerationRequest, prefill: str) -> tuple[int, bool]:
    """Prompt tokens of the next request and whether the figure comes from the provider's usage.

    After a chunk the next prompt is the previous prompt plus what that chunk generated: exact when
    the server reported that chunk's usage, a guess when its tokens were counted deltas (then the
    per-reply new-turn check, which needs the server's own count, stays off: ``chunk_style``).
    """
    if manifest.last_prompt_tokens is not None and manifest.last_completion_tokens is not None:
        exact = not manifest.last_usage_estimated
        return manifest.last_prompt_tokens + manifest.last_completion_tokens, exact
    return rough_prompt_tokens(request, prefill), False


def output_budget_left(budget: Budget, manifest: Manifest) -> int | None:
    if budget.max_output_tokens is None:
        return None
    return budget.max_output_tokens - manifest.completion_tokens_total


def plan_max_tokens(budget: Budget, manifest: Manifest, *, prompt_tokens: int, prompt_exact: bool) -> int:
    """``max_tokens`` for the next request; 0 or less means nothing fits."""
    want = budget.cap
    left = output_budget_left(budget, manifest)
    if left is not None:
        want = min(want, left)
    if budget.context_length is not None:
        room = budget.context_length - prompt_tokens
        if room < 1 and not prompt_exact:
            # only a guess says nothing fits: ask for one token, the provider's 400 tells the truth
            want = min(want, 1)
        else:
            # the prompt size comes from the provider's usage (prompt + completion of the last
            # chunk): ask for exactly the room left; should the seam re-tokenise a few tokens
            # longer, the 400 carries the exact numbers and the chunk shrinks to them
            want = min(want, room)
    return want


def shrink_after_context_error(
    limit: ContextLimit, *, sent_max_tokens: int, estimated_prompt: int | None
) -> int:
    """``max_tokens`` to try after a context-window 400 (strictly less than what failed)."""
    if limit.context_length and limit.prompt_tokens is not None:
        room = limit.context_length - limit.prompt_tokens
    elif limit.context_length and estimated_prompt is not None:
        room = limit.context_length - estimated_prompt
    else:
        room = sent_max_tokens // 2
    return min(room, sent_max_tokens - 1)


def build_body(
    request: GenerationRequest,
    *,
    model: str,
    prefill: str,
    max_tokens: int,
    prefill_style: ConcreteStyle,
    ask_again: bool = False,
) -> dict[str, Any]:
    """The chat-completions body for the next chunk.

    ``continue_message``: ``prefill`` is the answer so far (never reasoning), sent as a finished
    assistant turn followed by a user turn asking to continue and quoting the answer's end
    (``ask_again``: worded for a model whose last reply only repeated the answer).
    """
    messages: list[dict[str, Any]] = [m.to_wire() for m in request.conversation()]
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    if prefill and prefill_style == "continue_message":
        messages.append({"role": "assistant", "content": prefill})
        messages.append({"role": "user", "content": continue_instruction(prefill, again=ask_again)})
    elif prefill:
        message: dict[str, Any] = {"role": "assistant", "content": prefill}
        if prefill_style == "prefix":
            message["prefix"] = True  # DeepSeek / Mistral native APIs
        messages.append(message)
        if prefill_style == "vllm":
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.seed is not None:
        body["seed"] = request.seed
    if request.stop:
        body["stop"] = list(request.stop)
    if request.reasoning_effort is not None:
        body["reasoning_effort"] = request.reasoning_effort
    return with_provider_params(body, request.provider_params)


def chunk_deadline(now: float, remaining_ms: int, margin_seconds: float) -> float:
    """When to stop reading: the invocation's own timeout minus a margin for saving the chunk.

    The margin is at most half the time left, so a short timeout still gets to read something.
    """
    remaining = remaining_ms / 1000.0
    margin = min(margin_seconds, remaining / 2.0)
    return now + remaining - margin


def chunk_finish(provider_finish: str | None, ended_by: str) -> FinishReason:
    """The workflow's finish reason for a chunk (the provider's own word stays in the chunk record)."""
    if ended_by == "deadline":
        return "deadline"
    if ended_by == "interrupted" or provider_finish is None:
        return "interrupted"
    if provider_finish in STOP_FINISHES:
        return "stop"
    if provider_finish in LENGTH_FINISHES:
        return "length"
    if provider_finish in ("tool_calls", "function_call"):
        return "tool_calls"
    if provider_finish == "content_filter":
        return "content_filter"
    return "other"


# the stop reason of a chunk whose own finish ends the job
_ENDING_STOP_REASON: dict[FinishReason, StopReason] = {
    "stop": "stop",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "no_progress": "no_progress",
    "repetition": "repetition",
    "reasoning_loop": "reasoning_loop",
    "context_exhausted": "context_exhausted",
}


def next_step(
    finish: FinishReason, manifest: Manifest, budget: Budget, *, max_reasoning_only_chunks: int
) -> tuple[FinishReason, StopReason | None]:
    """After a committed chunk: the finish reason to report and the job's stop reason (if it ends)."""
    if finish not in CONTINUE_FINISHES:
        # stop, content_filter and the like: the model will not go on
        return finish, _ENDING_STOP_REASON.get(finish, "other")
    left = output_budget_left(budget, manifest)
    if left is not None and left <= 0:
        return "budget", "max_output_tokens"
    if manifest.chunks >= budget.max_chunks:
        return "budget", "max_chunks"
    if (
        budget.max_cost_usd is not None
        and manifest.estimated_cost_usd is not None
        and manifest.estimated_cost_usd >= budget.max_cost_usd
    ):
        return "budget", "max_cost"
    if manifest.reasoning_only_streak >= max_reasoning_only_chunks:
        return "reasoning_loop", "reasoning_loop"
    if (
        budget.context_length is not None
        and manifest.last_prompt_tokens is not None
        and manifest.last_completion_tokens is not None
        and budget.context_length - (manifest.last_prompt_tokens + manifest.last_completion_tokens) < 1
    ):
        # the provider's own numbers say not one more token fits: end here, no extra round trip
        return "context_exhausted", "context_exhausted"
    return finish, None
