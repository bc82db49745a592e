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
