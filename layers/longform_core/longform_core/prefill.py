"""The prefill ladder: how the answer so far is given back to the model (pure, no I/O).

Styles, best first (the *ladder*):

1. ``assistant``: the answer so far as a trailing assistant message (DeepInfra, llama.cpp,
   Ollama, OpenRouter, Anthropic's older models);
2. ``vllm``: the same plus ``continue_final_message: true, add_generation_prompt: false``;
3. ``prefix``: ``"prefix": true`` on that message (DeepSeek, Mistral);
4. ``completion``: no chat prefill at all: the conversation and the answer so far rendered with the
   model's chat template (``chat_template.py``) and continued as a raw completion
   (``/v1/completions``, ``raw_completion.py``); on the ladder only when a template is known;
5. ``continue_message``: the answer so far as a *finished* assistant turn and a user turn asking
   to continue (:data:`CONTINUE_INSTRUCTION`); works everywhere, and the seam is cleaned
   (``seam.py``). A reasoning model's thinking is never put in that turn.

With ``auto`` (the default) a (base URL, model) not seen before is learned from the job's own first
continuation: a reply that continues the prefill proves the style; a refusal (a 400 recognised by
meaning, :class:`~longform_core.errors.PrefillRejected`) or an *ignored* prefill
(:func:`starts_over`: the reply begins again with the answer's opening) steps down one rung, in the
same invocation. A refusal of trailing whitespace (Anthropic) keeps the style and trims the
prefill instead. What was learned is cached next to the jobs (``styles/{digest}.json``,
:class:`LearnedStyle`, trusted for ``PREFILL_STYLE_TTL_SECONDS``) and kept in the manifest for the
rest of the job; the check runs on every chunk, so a style that stops working is stepped down from
and the cache updated. An explicit style (the request's ``prefill_style``, or a deployment
``PrefillStyle`` other than ``auto``) is used as it is: only the whitespace trim applies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, PlainSerializer, PlainValidator, WithJsonSchema

from .reasoning import CLOSE, OPEN

ConcreteStyle = Literal["assistant", "vllm", "prefix", "completion", "continue_message"]
LADDER: tuple[ConcreteStyle, ...] = ("assistant", "vllm", "prefix", "completion", "continue_message")


class StepReason(StrEnum):
    """Why a rung failed (the part after the colon of a ``prefill_ladder`` entry)."""

    REFUSED = "refused"  # a 400 refused the prefill in this form (or the rung is not served)
    TRAILING_WHITESPACE = "trailing_whitespace"  # refused for its trailing whitespace: trim it
    IGNORED = "ignored"  # the server answered afresh (starts_over, or the style probe)
    REPEATED = "repeated"  # a continue message asked again after a reply that only repeated the answer


CONTINUE_INSTRUCTION = (
    "Continue exactly where you stopped, without repeating anything and without any preamble."
)
# asked again after a continuation that only repeated the answer (once per chunk, then the job stops)
CONTINUE_AGAIN_INSTRUCTION = (
    "Your last reply repeated text that is already written. Do not repeat any of it: write only the "
    "text that comes next, without any preamble."
)
QUOTE_CHARS = 160  # the end of the answer quoted in the continue message


def continue_instruction(answer: str, *, again: bool = False) -> str:
    """The user turn of the continue-message rung: the instruction, and the end of the answer
    quoted so the model resumes mid-sentence (``again``: the wording after a reply that only
    repeated the answer)."""
    head = CONTINUE_AGAIN_INSTRUCTION if again else CONTINUE_INSTRUCTION
    tail = answer[-QUOTE_CHARS:]
    if len(answer) > QUOTE_CHARS and " " in tail:
        tail = "…" + tail[tail.index(" ") + 1 :]
    if not tail.strip():
        return head
    return (
        f"{head} The text so far ends with:\n\n{tail}\n\n"
        "Continue from the very next word (mid-sentence if it ends mid-sentence)."
    )


# a reply starts over when it begins with the answer's first OPENING_CHARS characters (or all of
# them when the answer is shorter, but never fewer than MIN_OPENING_CHARS: below that a model may
# really begin a continuation with the same words)
OPENING_CHARS = 40
MIN_OPENING_CHARS = 20
# prompt tokens beyond "last prompt + last completion" that mean the prefill was closed as a turn
# (a continued prefill re-tokenises at the seam within a token or two)
FRESH_TURN_PROMPT_EXCESS = 3


def prompt_excess(prompt_tokens: int | None, expected_prompt_tokens: int | None) -> int | None:
    """Prompt tokens the server reports past what an honoured prefill costs (the last prompt plus
    the last completion); None when either figure is unknown."""
    if prompt_tokens is None or expected_prompt_tokens is None:
        return None
    return prompt_tokens - expected_prompt_tokens


def opens_new_turn(prompt_tokens: int | None, expected_prompt_tokens: int | None) -> bool:
    """Does the prompt the server reports hold an end-of-turn and a new assistant header more than
    an honoured prefill would cost? (A seam re-tokenised differently moves it by a token or so.)"""
    excess = prompt_excess(prompt_tokens, expected_prompt_tokens)
    return excess is not None and excess >= FRESH_TURN_PROMPT_EXCESS


@dataclass(frozen=True)
class Rung:
    """A style and whether its prefill is sent without trailing whitespace."""

    style: ConcreteStyle
    trim: bool = False

    def describe(self) -> str:
        return f"{self.style}{'+trim' if self.trim else ''}"

    @classmethod
    def parse(cls, text: str) -> Rung:
        """The rung :meth:`describe` wrote (``"assistant+trim"``)."""
        style, plus, trim = text.partition("+")
        if style not in LADDER or (plus and trim != "trim"):
            raise ValueError(f"not a prefill rung: {text!r}")
        return cls(style, trim=bool(plus))


@dataclass(frozen=True)
class LadderStep:
    """One rung that failed before the one a chunk used, and why. Stored (chunk records, the style
    cache) as the string ``"{rung}:{reason}"``: ``"assistant:refused"``, ``"prefix+trim:ignored"``."""

    rung: Rung
    reason: StepReason

    def __str__(self) -> str:
        return f"{self.rung.describe()}:{self.reason.value}"

    @classmethod
    def parse(cls, text: str) -> LadderStep:
        rung, colon, reason = text.rpartition(":")
        if not colon or reason not in StepReason.__members__.values():
            raise ValueError(f"not a prefill ladder step: {text!r}")
        return cls(Rung.parse(rung), StepReason(reason))


def _steps(value: Any) -> list[LadderStep]:
    if not isinstance(value, (list, tuple)):
        raise ValueError("prefill ladder steps must be a list")
    return [s if isinstance(s, LadderStep) else LadderStep.parse(str(s)) for s in value]


# a list of ladder steps in a pydantic model: read from and written as the strings above
LadderSteps = Annotated[
    list[LadderStep],
    PlainValidator(_steps),
    PlainSerializer(lambda steps: [str(s) for s in steps], return_type=list[str]),
    WithJsonSchema({"type": "array", "items": {"type": "string"}}),
]


def next_rung(rung: Rung, reason: StepReason, *, ladder: bool, completion: bool = False) -> Rung | None:
    """Where to go after ``rung`` failed for ``reason`` (None: nowhere left). ``completion``: a
    chat template is known, so the raw-completion rung can be tried (else it is skipped)."""
    no_trim = ("continue_message", "completion")
    if reason == StepReason.TRAILING_WHITESPACE and not rung.trim and rung.style not in no_trim:
        return Rung(rung.style, trim=True)
    if not ladder:
        return None
    for style in LADDER[LADDER.index(rung.style) + 1 :]:
        if style == "completion" and not completion:
            continue
        return Rung(style, trim=rung.trim and style != "completion")
    return None


def trim_prefill(text: str) -> tuple[str, str]:
    """(the prefill without trailing whitespace, the whitespace removed)."""
    body = text.rstrip()
    return body, text[len(body) :]


def _opening(text: str) -> str:
    body = text.lstrip()
    return body[:OPENING_CHARS] if len(body) >= MIN_OPENING_CHARS else ""


def _answer_part(content: str) -> str:
    """A fresh reply's answer: without a leading inline think block."""
    body = content.lstrip()
    if body.startswith(OPEN):
        end = body.find(CLOSE)
        return body[end + len(CLOSE) :] if end >= 0 else ""
    return content


def starts_over(
    *,
    answer_so_far: str,
    reasoning_so_far: str,
    raw_content: str,
    raw_reasoning: str = "",
    content: str,
    reasoning: str,
    completion_tokens: int,
    echo_seen: bool,
    prompt_tokens: int | None = None,
    expected_prompt_tokens: int | None = None,
) -> bool:
    """Did the server ignore the prefill and answer afresh? (``content``/``reasoning``: echo stripped.)

    Evidence, any of:

    - the new answer text begins with the answer's opening (its first 40 characters, at least 20);
    - the new reasoning begins with the reasoning's opening;
    - a new turn: the prompt is :data:`FRESH_TURN_PROMPT_EXCESS` or more tokens longer than the
      last prompt and completion (the prefill was closed as a message and a new assistant header
      added) and the reply begins with a capital glued to the answer's last character;
    - the whole reply was the text so far again (or a part of it), while the model says it
      generated tokens and the job has never seen an echo (an echo is not counted in usage).
    """
    opening = _opening(answer_so_far)
    if opening and _answer_part(content).lstrip().startswith(opening):
        return True
    if (
        opening
        and opens_new_turn(prompt_tokens, expected_prompt_tokens)
        and not answer_so_far[-1].isspace()
        and content[:1].isupper()
    ):
        # a new turn: the server closed the prefill as a finished message (its prompt grew by an
        # end-of-turn and a new assistant header, not by the text sent) and the model began a new
        # sentence glued to the last word (llama-server --no-prefill-assistant)
        return True
    thought = _opening(reasoning_so_far)
    if thought and reasoning.lstrip().startswith(thought):
        return True
    return bool(
        (opening or thought)
        and not content
        and not reasoning
        and (raw_content.strip() or raw_reasoning.strip())
        and completion_tokens > 0
        and not echo_seen
    )


class LearnedStyle(BaseModel):
    """``styles/{digest}.json``: how a (base URL, model) continues, and when that was learned."""

    base_url: str
    model: str
    style: ConcreteStyle
    trim_trailing_whitespace: bool = False
    learned_at: datetime
    job_id: str | None = None
    requests: int = 1  # requests it took to learn (the rungs tried, this one included)
    steps: LadderSteps = []

    def fresh(self, now: datetime, ttl_seconds: int) -> bool:
        return now - self.learned_at < timedelta(seconds=ttl_seconds)

    @property
    def rung(self) -> Rung:
        return Rung(self.style, trim=self.trim_trailing_whitespace)


def style_digest(base_url: str, model: str) -> str:
    """The cache key of a (base URL, model): sha256 of both, so no URL appears in a key."""
    return hashlib.sha256(f"{base_url.rstrip('/')}\n{model}".encode()).hexdigest()
