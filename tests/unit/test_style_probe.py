"""style_probe.py: a prefill style is verified before it is learned, by a prefill cut mid-word; and
every reply that reports its prompt is checked for a new turn (chunk_style.new_turn_shown)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from longform_core.chunk_style import new_turn_shown
from longform_core.config import Settings
from longform_core.finalize import FinalizeTaskInput, finalize
from longform_core.job_store import JobStore
from longform_core.prefill import LearnedStyle, Rung, opens_new_turn, prompt_excess
from longform_core.provider import StreamOutcome
from longform_core.request import parse_request
from longform_core.services import Services
from longform_core.style_probe import continues_the_word, evict_style, probe_style, word_cut

from .test_chunk_and_finalize import ScriptedProvider, outcome, run, start

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


# ---- the per-reply check: every reply whose usage reports its prompt (chunk_style.new_turn_shown) ----

OPENING = "The keepers of the Eddystone light climbed the tower every evening at dusk"


def chunk_services(store: JobStore, provider: ScriptedProvider, **settings: Any) -> Services:
    settings = {"prefill_probe": False, **settings}
    return Services(settings=Settings(jobs_bucket=store.bucket, **settings), store=store, provider=provider)


def cache(store: JobStore, services: Services, style: str) -> None:
    base_url, model = services.settings.provider_base_url, services.settings.default_model
    store.put_learned_style(
        LearnedStyle(
            base_url=base_url, model=model, style=style, learned_at=datetime.now(UTC), job_id="older"
        )
    )


@pytest.mark.parametrize(
    "lead", ["\n\n", "## The Keepers\n\n", "Sure! "], ids=["paragraph", "heading", "preamble"]
)
def test_a_reply_whose_prompt_shows_a_new_turn_is_not_kept_and_the_cached_style_leaves(
    store: JobStore, lead: str
) -> None:
    # the first chunk's prompt (20) and completion (12): an honoured prefill costs 32 next; the
    # server reports 38 (an end-of-turn and an assistant header more) and begins a new answer
    provider = ScriptedProvider(
        outcome(OPENING, "length", prompt=20, completion=12),
        outcome(lead + "The lighthouse stood on a rock.", "length", prompt=38, completion=8),
        outcome(" and slept.", "stop", prompt=32, completion=4),  # vllm: continued
    )
    services = chunk_services(store, provider)
    cache(store, services, "assistant")
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "stop"]
    assert provider.bodies[2]["continue_final_message"] is True
    chunk = store.get_chunk(job, 1)
    assert [str(s) for s in chunk.prefill_ladder] == ["assistant:ignored"]
    assert (chunk.prefill_style, chunk.discarded_completion_tokens) == ("vllm", 8)
    finalize(FinalizeTaskInput(job_id=job), services)
    assert store.get_text(f"jobs/{job}/output.md") == OPENING + " and slept."  # no new turn committed
    learned = store.get_learned_style(services.settings.provider_base_url, services.settings.default_model)
    assert learned is not None and (learned.style, learned.job_id) == ("vllm", job)


def test_a_prompt_within_the_seams_slack_is_an_honoured_prefill(store: JobStore) -> None:
    # re-tokenised at the seam: two tokens more than the sum is still a continued prefill
    provider = ScriptedProvider(
        outcome(OPENING, "length", prompt=20, completion=12),
        outcome(" and slept,", "length", prompt=34, completion=3),
        outcome(" dreaming.", "stop", prompt=36, completion=2),  # 34 + 3 = 37 due: one fewer
    )
    services = chunk_services(store, provider)
    cache(store, services, "assistant")
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "length", "stop"]
    assert all("continue_final_message" not in body for body in provider.bodies)
    assert [store.get_chunk(job, i).prefill_ladder for i in (1, 2)] == [[], []]
    learned = store.get_learned_style(services.settings.provider_base_url, services.settings.default_model)
    assert learned is not None and learned.job_id == "older"  # the cached style stands


def test_a_reply_without_usage_cannot_show_a_new_turn(store: JobStore) -> None:
    # llama-cpp-python streams no usage: nothing to compare (its cached style is probed once a job)
    new_turn = replace(outcome("\n\nThe lighthouse stood.", "stop", completion=5), usage=None)
    provider = ScriptedProvider(outcome(OPENING, "length", prompt=20, completion=12), new_turn)
    services = chunk_services(store, provider)
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "stop"]
    assert len(provider.bodies) == 2 and store.get_chunk(job, 1).prefill_ladder == []


def test_the_completion_rung_and_a_carried_thought_are_not_checked() -> None:
    def job(reasoning: str = "") -> Any:
        return SimpleNamespace(reasoning_so_far=reasoning, prefill=SimpleNamespace(text=OPENING))

    assert new_turn_shown(job(), Rung("assistant"), 38, 32)  # type: ignore[arg-type]
    assert new_turn_shown(job(), Rung("prefix", trim=True), 35, 32)  # type: ignore[arg-type]
    assert not new_turn_shown(job(), Rung("assistant"), 34, 32)  # type: ignore[arg-type]
    assert not new_turn_shown(job(), Rung("assistant"), 38, None)  # type: ignore[arg-type]
    assert not new_turn_shown(job(), Rung("completion"), 38, 32)  # type: ignore[arg-type]
    assert not new_turn_shown(job("a plan"), Rung("assistant"), 38, 32)  # type: ignore[arg-type]
