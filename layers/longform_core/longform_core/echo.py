"""Prefill echoes: servers that send the prefill back at the start of their reply (pure, no I/O).

Seen on a current llama.cpp ``llama-server``: asked to continue a trailing assistant message
``"Once upon a time, a sailor"``, its first streamed delta is ``"Once upon a time, a sailor named"``
(the echo merged with the first new token); the non-streamed ``content`` starts with the prefill
too; ``usage.completion_tokens`` counts only the new tokens. Appending such a reply doubles the
text at every seam, so the echo has to be recognised and removed before anything is stored.

A model can also legitimately begin its continuation with the same words as a short prefill, so
the decision is made on evidence. **The rule** (:func:`strip_echo`):

1. A reply *echoes* when it begins with the whole prefill it was sent: ``content`` starts with the
   prefill, or (a reasoning server that parses the prefill's think block) ``reasoning_content``
   starts with the prefill's reasoning and ``content`` with its answer part.
2. It is stripped when there is evidence that it is an echo and not new text:

   a. the prefill is at least :data:`ECHO_MIN_CHARS` characters long: a continuation that
      rewrites the whole answer so far from its first character is not a continuation;
   b. the job has already seen an echo (``Manifest.prefill_echo``): a server that echoes does it
      on every chunk, so from then on a reply that begins with the prefill is stripped whatever
      the prefill's length;
   c. streamed, the *first delta alone* holds the whole prefill and more (llama.cpp's signature:
      one delta is one token, and no token spells a prefill of :data:`MERGED_DELTA_MIN_CHARS` or
      more characters plus new text).

3. Otherwise (a short prefill, no history, the echo not merged in one delta) the reply is kept as
   it is: that is the case where the model may really have written those words again.
4. A reply that is a strict prefix of the prefill while an echo is expected (rules a-c) is an echo
   cut short: it adds nothing.

Each chunk record says what was decided (``echo``: ``none``, ``stripped``, ``kept_ambiguous``,
``absent``) and how many characters were stripped. Usage stays authoritative for token counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ECHO_MIN_CHARS = 32
MERGED_DELTA_MIN_CHARS = 8

EchoVerdict = Literal["none", "stripped", "kept_ambiguous", "absent"]


@dataclass(frozen=True)
class SentPrefill:
    """The prefill as sent (``text``) and, when it holds a think block, its two parts."""

    text: str
    reasoning: str = ""
    answer: str = ""


@dataclass(frozen=True)
class EchoResult:
    content: str
    reasoning: str
    verdict: EchoVerdict
    stripped_chars: int = 0

    @property
    def stripped(self) -> bool:
        return self.verdict == "stripped"


def strip_echo(
    prefill: SentPrefill,
    *,
    content: str,
    reasoning: str,
    first_delta: str | None,
    echo_seen: bool,
) -> EchoResult:
    """The reply without its prefill echo, decided by the rule in the module docstring."""
    text = prefill.text
    if not text:
        return EchoResult(content, reasoning, "none")
    evidence = echo_seen or len(text) >= ECHO_MIN_CHARS
    merged = (
        first_delta is not None
        and len(text) >= MERGED_DELTA_MIN_CHARS
        and len(first_delta) > len(text)
        and first_delta.startswith(text)
    )
    # 1. the whole prefill at the start of content
    if content.startswith(text):
        if evidence or merged:
            return EchoResult(content[len(text) :], reasoning, "stripped", len(text))
        return EchoResult(content, reasoning, "kept_ambiguous")
    # 4. an echo cut short: only a part of the prefill arrived
    if evidence and content and not reasoning and text.startswith(content):
        return EchoResult("", reasoning, "stripped", len(content))
    # 1'. a reasoning server: the think block's text in reasoning_content, the answer in content
    split = _split_echo(prefill, content=content, reasoning=reasoning)
    if split is not None:
        if evidence:
            return split
        return EchoResult(content, reasoning, "kept_ambiguous")
    return EchoResult(content, reasoning, "absent" if echo_seen else "none")


def _split_echo(prefill: SentPrefill, *, content: str, reasoning: str) -> EchoResult | None:
    part = prefill.reasoning.strip()
    if not part or not reasoning:
        return None
    lead = len(reasoning) - len(reasoning.lstrip())
    if not reasoning[lead:].startswith(part):
        return None
    cut_reasoning = lead + len(part)
    new_reasoning = reasoning[cut_reasoning:]
    answer = prefill.answer
    if answer and content.startswith(answer):
        return EchoResult(content[len(answer) :], new_reasoning, "stripped", cut_reasoning + len(answer))
    if answer and content:
        return None  # the reasoning repeated but the answer did not: not an echo of this prefill
    return EchoResult(content, new_reasoning, "stripped", cut_reasoning)
