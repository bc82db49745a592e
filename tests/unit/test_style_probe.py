"""style_probe.py: a prefill style is verified before it is learned, by a prefill cut mid-word."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from longform_core.prefill import LearnedStyle, Rung
from longform_core.provider import StreamOutcome
from longform_core.request import parse_request
from longform_core.style_probe import (
    continues_the_word,
    evict_style,
    opens_new_turn,
    probe_style,
    prompt_excess,
    word_cut,
)

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


# ---- the prompt tokens the server reports, and eviction (issue 19) ---------------------------


def test_prompt_tokens_past_an_honoured_prefill_fail_the_style_without_a_request() -> None:
    # llama-cpp-python 0.3.36, measured: 44 reported where an honoured prefill costs 38 (34 + 4)
    server = Answer("hthouse")  # would pass the word test: the prompt alone decides
    result = probe_style(
        server,
        REQUEST,
        model="m",
        rung=Rung("assistant"),
        prefill=PREFILL,
        reply=REPLY,
        deadline=100,
        now=0,
        prompt_tokens=44,
        expected_prompt_tokens=38,
    )
    assert result is not None and not result.passed and result.prompt_excess == 6
    assert server.bodies == []  # the probe was not even sent


def test_an_honoured_prompt_leaves_the_word_to_decide() -> None:
    for reply, passed in (("hthouse", True), ("Jameson's", False)):
        server = Answer(reply)
        result = probe_style(
            server,
            REQUEST,
            model="m",
            rung=Rung("assistant"),
            prefill=PREFILL,
            reply=REPLY,
            deadline=100,
            now=0,
            prompt_tokens=37,  # a seam re-tokenised a token shorter
            expected_prompt_tokens=38,
        )
        assert result is not None and result.passed is passed and result.prompt_excess == -1
        assert len(server.bodies) == 1


def test_a_new_turn_is_an_end_of_turn_and_a_header_more_unknown_is_not_one() -> None:
    assert opens_new_turn(44, 38) and opens_new_turn(41, 38)
    assert not opens_new_turn(40, 38) and not opens_new_turn(37, 38)
    assert not opens_new_turn(None, 38) and not opens_new_turn(44, None)
    assert prompt_excess(None, 1) is None and prompt_excess(44, 38) == 6


class Styles:
    """The style cache of a job store (get, delete), in memory."""

    def __init__(self, cached: LearnedStyle | None) -> None:
        self.cached = cached
        self.deleted: list[tuple[str, str]] = []

    def get_learned_style(self, base_url: str, model: str) -> LearnedStyle | None:
        return self.cached

    def delete_learned_style(self, base_url: str, model: str) -> None:
        self.deleted.append((base_url, model))
        self.cached = None


def cached(style: str) -> LearnedStyle:
    return LearnedStyle(
        base_url="http://x/v1", model="m", style=style, learned_at=datetime.now(UTC), job_id="j"
    )


def test_a_style_found_wrong_is_evicted_only_when_the_cache_holds_it() -> None:
    store = Styles(cached("assistant"))
    assert evict_style(store, "http://x/v1", "m", Rung("assistant"))  # type: ignore[arg-type]
    assert store.deleted == [("http://x/v1", "m")] and store.cached is None
    other = Styles(cached("completion"))  # another job already learned better: kept
    assert not evict_style(other, "http://x/v1", "m", Rung("assistant"))  # type: ignore[arg-type]
    assert other.deleted == [] and other.cached is not None
    empty = Styles(None)
    assert not evict_style(empty, "http://x/v1", "m", Rung("vllm"))  # type: ignore[arg-type]
    assert empty.deleted == []
