"""style_probe.py: a prefill style is verified before it is learned, by a prefill cut mid-word."""

from __future__ import annotations

from typing import Any

from longform_core.prefill import Rung
from longform_core.provider import StreamOutcome
from longform_core.request import parse_request
from longform_core.style_probe import continues_the_word, probe_style, word_cut

REQUEST = parse_request({"prompt": "Write a story.", "temperature": 0.7})
PREFILL = "Once upon a time, a keeper named Arthur"
REPLY = " tended the lighthouse on a rock"


class Answer:
    """A provider that answers every request with one text, and keeps the bodies."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.bodies: list[dict[str, Any]] = []

    def chat(self, body: dict[str, Any], **_: Any) -> StreamOutcome:
        self.bodies.append(body)
        return StreamOutcome(self.text, "", "length", "finished", None, 1, "m", 1, None, streamed=False)


def test_the_cut_is_inside_the_servers_own_last_long_word() -> None:
    text = PREFILL + REPLY
    at = word_cut(text, len(PREFILL))
    assert at is not None and text[:at].endswith(" lig")  # "rock": too short to cut
    assert word_cut("Hi. Ok.", 0) is None


def test_a_word_completed_passes_a_new_turn_fails() -> None:
    assert continues_the_word("hthouse", "hthouse on")
    assert continues_the_word("hthouse", "ht on the")  # finished differently, still inside the word
    assert not continues_the_word("hthouse", "Jameson's life")  # a new turn, glued
    assert not continues_the_word("hthouse", " the keeper")
    assert not continues_the_word("hthouse", "\n\nOnce")
    assert not continues_the_word("hthouse", "")


def test_the_probe_sends_the_style_greedy_and_short_and_reads_the_echo() -> None:
    honest = Answer(PREFILL + REPLY[: REPLY.index("lig") + 3] + "hthouse")  # llama.cpp echoes
    result = probe_style(
        honest, REQUEST, model="m", rung=Rung("vllm"), prefill=PREFILL, reply=REPLY, deadline=100, now=0
    )
    assert result is not None and result.passed and result.reply == "hthouse"
    body = honest.bodies[0]
    assert body["temperature"] == 0 and body["max_tokens"] == 4 and body["continue_final_message"] is True
    assert body["messages"][-1]["content"].endswith("tended the lig")

    glued = Answer("Jameson's life was a tale")
    result = probe_style(
        glued, REQUEST, model="m", rung=Rung("assistant"), prefill=PREFILL, reply=REPLY, deadline=100, now=0
    )
    assert result is not None and not result.passed


def test_no_probe_without_a_word_to_cut_or_time_to_ask() -> None:
    provider = Answer("x")
    assert probe_style(provider, REQUEST, model="m", rung=Rung("assistant"), prefill="A", reply=" ok.",
                       deadline=100, now=0) is None  # fmt: skip
    assert probe_style(provider, REQUEST, model="m", rung=Rung("assistant"), prefill=PREFILL, reply=REPLY,
                       deadline=1, now=0) is None  # fmt: skip
    assert provider.bodies == []
