"""How the emulator's model continues a prefill: the pieces still to emit (``Plan``).

Successive continuations, each given all the text so far as the prefill, add up to the
canonical output (``model.Canonical``): a prefix is continued, a user-written prefill that holds
the canonical output is realigned, anything else gets the whole canonical output appended.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Literal

from longform.emulator.model import THINK_CLOSE, THINK_OPEN, Canonical

__all__ = ["Plan", "overlap", "penalised", "plan_continuation", "split_prefill"]


@dataclass(frozen=True)
class Plan:
    """What is still to emit: reasoning pieces (field style) then content pieces.

    ``mode``: "fresh" (no prefill), "prefix" (the prefill is a prefix of the canonical
    output), "realigned" (the canonical output was found inside a user-written prefill),
    "appended" (the whole canonical output follows the prefill).
    """

    reasoning: tuple[str, ...]
    content: tuple[str, ...]
    mode: Literal["fresh", "prefix", "realigned", "appended"] = "fresh"

    @property
    def tokens(self) -> int:
        return len(self.reasoning) + len(self.content)


def overlap(text: str, target: str) -> int:
    """Length of the longest suffix of ``text`` that is a prefix of ``target`` (0 if none)."""
    if not text or not target:
        return 0
    if target.startswith(text):
        return len(text)
    first = target[0]
    head_len = min(64, len(target))
    j = text.find(first, max(0, len(text) - len(target)))
    while j >= 0:
        size = len(text) - j
        if text.startswith(target[: min(size, head_len)], j) and (
            size <= head_len or text.endswith(target[:size])
        ):
            return size
        j = text.find(first, j + 1)
    return 0


def split_prefill(prefill: str) -> tuple[bool, str, str]:
    """(reasoning still open, reasoning part, answer part) of a prefill."""
    if not prefill.startswith(THINK_OPEN):
        return False, "", prefill
    rest = prefill[len(THINK_OPEN) :]
    if rest.startswith("\n"):
        rest = rest[1:]
    end = rest.find(THINK_CLOSE)
    if end < 0:
        return True, rest, ""
    reasoning = rest[:end]
    if reasoning.endswith("\n"):
        reasoning = reasoning[:-1]
    return False, reasoning, rest[end + len(THINK_CLOSE) :].lstrip("\n")


def plan_continuation(canonical: Canonical, prefill: str | None) -> Plan:
    """The pieces a model emits after ``prefill`` so that successive continuations
    (each given all text so far as the prefill) add up to the canonical output."""
    if not prefill:
        return Plan(
            canonical.reasoning_pieces if canonical.style == "field" else (), canonical.content_pieces
        )
    if canonical.style == "inline":
        full = canonical.content
        if full.startswith(prefill):
            return Plan((), canonical.rest("content", len(prefill)), "prefix")
        found = overlap(prefill, full)
        return Plan((), canonical.rest("content", found), "realigned" if found else "appended")
    is_open, reasoning_part, answer_part = split_prefill(prefill)
    if is_open:
        reasoning = canonical.reasoning if canonical.style == "field" else ""
        mode: Literal["prefix", "realigned", "appended"] = "prefix"
        found = len(reasoning_part)
        if not reasoning.startswith(reasoning_part):
            found = overlap(reasoning_part, reasoning)
            mode = "realigned" if found else "appended"
        rest = canonical.rest("reasoning", found) if canonical.style == "field" else ()
        return Plan(rest, canonical.answer_pieces, mode)
    if canonical.answer.startswith(answer_part):
        return Plan((), canonical.rest("answer", len(answer_part)), "prefix")
    found = overlap(answer_part, canonical.answer)
    return Plan((), canonical.rest("answer", found), "realigned" if found else "appended")


def penalised(plan: Plan) -> Plan:
    """``plan`` (a continuation) as a sampler with a repetition penalty over the current request's
    tokens only continues it (llama-cpp-python 0.3.36's ``repeat_penalty`` 1.1 by default): as
    long, but not the uncapped answer's words past the seam (deterministic)."""
    content = list(plan.content)
    random.Random(len(content)).shuffle(content)
    return replace(plan, content=tuple(content))
