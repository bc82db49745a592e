"""Keeping reasoning apart from the answer.

Reasoning models send their thinking either in a separate ``reasoning_content`` field ("field"
format) or inline in ``content`` as ``<think>...</think>`` before the answer ("inline" format).
Chunks can cut anywhere, including inside a tag, so the splitter is incremental and carries its
state (inside reasoning or not) from one chunk to the next.

For the inline format both parts are kept *verbatim* (the reasoning is exactly the text between
the tags, the answer exactly the text after ``</think>``) so that the prefill rebuilt from them is
byte for byte what the model wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OPEN = "<think>"
CLOSE = "</think>"

ReasoningFormat = Literal["none", "field", "inline"]
Phase = Literal["start", "reasoning", "answer"]


@dataclass
class SplitText:
    answer: str
    reasoning: str
    held: str = ""  # a possible partial tag at the end of a chunk, carried to the next one


class ThinkTagSplitter:
    """Incrementally splits inline ``<think>`` reasoning from answer text.

    ``phase`` is where the text so far left off: "start" (nothing decided yet: an opening tag may
    still come), "reasoning" (inside an open think block) or "answer".
    """

    def __init__(self, phase: Phase = "start", held: str = ""):
        self.phase: Phase = phase
        self._pending = ""  # text held back because it may be the start of a tag
        self._answer: list[str] = []
        self._reasoning: list[str] = []
        self.saw_tag = False
        if held:
            self.feed(held)

    def feed(self, text: str) -> None:
        self._pending += text
        while self._pending:
            if self.phase == "start":
                stripped = self._pending.lstrip()
                if stripped.startswith(OPEN):
                    self.saw_tag = True
                    self.phase = "reasoning"
                    self._pending = stripped[len(OPEN) :]
                    continue
                if OPEN.startswith(stripped):
                    return  # could still become "<think>": wait for more text
                self.phase = "answer"
                continue
            if self.phase == "reasoning":
                idx = self._pending.find(CLOSE)
                if idx >= 0:
                    self.saw_tag = True
                    self._reasoning.append(self._pending[:idx])
                    self._pending = self._pending[idx + len(CLOSE) :]
                    self.phase = "answer"
                    continue
                keep = _partial_suffix(self._pending, CLOSE)
                self._reasoning.append(self._pending[: len(self._pending) - keep])
                self._pending = self._pending[len(self._pending) - keep :]
                return
            # answer
            self._answer.append(self._pending)
            self._pending = ""

    def finish(self, *, final: bool = True) -> SplitText:
        """The split so far.

        With ``final=False`` (more chunks will follow) a possible partial tag at the very end
        (``<thi`` before any text, ``</thi`` inside reasoning) is returned as ``held`` instead of
        being filed: the next chunk's splitter starts with it, so a tag cut between two chunks
        still closes. With ``final=True`` it stays where it was.
        """
        held = ""
        if self._pending:
            if not final and self.phase in ("start", "reasoning"):
                held = self._pending
            elif self.phase == "reasoning":
                self._reasoning.append(self._pending)
            else:
                self._answer.append(self._pending)
            self._pending = ""
        if self.phase == "start" and self._answer:
            self.phase = "answer"
        return SplitText(answer="".join(self._answer), reasoning="".join(self._reasoning), held=held)


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def build_prefill(
    *,
    answer: str,
    reasoning: str,
    reasoning_format: ReasoningFormat,
    reasoning_open: bool,
) -> str:
    """The assistant prefill in DeepInfra's form: reasoning block first, then the answer so far.

    - no reasoning: the answer so far, as is;
    - "inline": the text exactly as the model wrote it (``<think>`` + reasoning [+ ``</think>`` + answer]);
    - "field": ``<think>\\n{reasoning}\\n</think>\\n\\n{answer}``, or an open ``<think>\\n{reasoning}``
      while the model is still reasoning.
    """
    if not reasoning and not reasoning_open:
        return answer
    if reasoning_format == "inline":
        if reasoning_open:
            return OPEN + reasoning
        return OPEN + reasoning + CLOSE + answer
    if reasoning_open:
        return f"{OPEN}\n{reasoning}"
    return f"{OPEN}\n{reasoning}\n{CLOSE}\n\n{answer}"


def clean_reasoning(raw: str) -> str:
    return raw.strip("\r\n")


@dataclass(frozen=True)
class ChunkText:
    """A chunk's reply filed as answer and reasoning, and where the text stands afterwards."""

    answer: str
    reasoning: str
    lead: str  # blank lines between a think block and the first answer text (kept out of answer)
    reasoning_format: ReasoningFormat
    phase: Phase
    held: str


def split_chunk(
    content: str,
    reasoning_field: str,
    *,
    reasoning_format: ReasoningFormat,
    phase: Phase,
    held: str,
    answer_so_far: str,
    reasoning_so_far: str,
    final: bool,
) -> ChunkText:
    """File one reply (``content`` and any ``reasoning_content``) after the text so far.

    The phase carries over from the previous chunk, so a think block (or a tag) cut between two
    chunks still closes; ``final`` (no chunk follows) files a held partial tag where it stands.
    """
    field_format = reasoning_format == "field" or bool(reasoning_field)
    splitter = ThinkTagSplitter("answer" if field_format else phase, held=held)
    splitter.feed(content)
    split = splitter.finish(final=final)
    new_answer = split.answer
    new_reasoning = reasoning_field + split.reasoning
    fmt: ReasoningFormat
    new_phase: Phase
    if field_format:
        fmt = "field"
        if new_answer or phase == "answer":
            new_phase = "answer"
        elif new_reasoning:
            new_phase = "reasoning"
        else:
            new_phase = phase
    else:
        fmt = "inline" if (splitter.saw_tag or reasoning_format == "inline") else "none"
        new_phase = splitter.phase
    # output.md is the clean answer at all times: the blank lines between a think block and the
    # first answer text are kept apart (Manifest.answer_lead), so the running output and the final
    # one are the same text and a late writer can never put a different version in place
    lead = ""
    if new_answer and not answer_so_far and (reasoning_so_far or new_reasoning):
        clean = new_answer.lstrip("\r\n")
        lead, new_answer = new_answer[: len(new_answer) - len(clean)], clean
    return ChunkText(new_answer, new_reasoning, lead, fmt, new_phase, split.held)
