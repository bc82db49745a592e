"""The continuation policy: token planning, shrinking, request bodies, deadlines, stop conditions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from longform_core.chunk_record import ChunkRecord, TextState
from longform_core.config import Settings
from longform_core.continuation import (
    Budget,
    build_body,
    chunk_deadline,
    chunk_finish,
    estimate_prompt_tokens,
    job_budget,
    next_step,
    plan_max_tokens,
    rough_prompt_tokens,
    shrink_after_context_error,
)
from longform_core.errors import ContextLimit
from longform_core.models import CONTINUE_FINISHES, Manifest
from longform_core.prefill import CONTINUE_INSTRUCTION, QUOTE_CHARS
from longform_core.request import parse_request


def budget(**kw: Any) -> Budget:
    values: dict[str, Any] = {
        "cap": 4000,
        "context_length": None,
        "max_output_tokens": None,
        "max_chunks": 200,
        "max_cost_usd": None,
    }
    values.update(kw)
    return Budget(**values)


def manifest(**kw: Any) -> Manifest:
    return Manifest(job_id="job-1", model="m/1", **kw)


# ---- plan_max_tokens --------------------------------------------------------------------------


def test_plan_uses_the_cap_when_nothing_else_limits() -> None:
    assert plan_max_tokens(budget(), manifest(), prompt_tokens=100, prompt_exact=False) == 4000


def test_plan_limited_by_the_job_budget_left() -> None:
    b = budget(max_output_tokens=10_000)
    assert (
        plan_max_tokens(b, manifest(completion_tokens_total=9_100), prompt_tokens=50, prompt_exact=True)
        == 900
    )
    assert (
        plan_max_tokens(b, manifest(completion_tokens_total=0), prompt_tokens=50, prompt_exact=True) == 4000
    )
    assert (
        plan_max_tokens(b, manifest(completion_tokens_total=10_000), prompt_tokens=50, prompt_exact=True) <= 0
    )


def test_plan_plenty_of_context_room() -> None:
    b = budget(context_length=32_000)
    assert plan_max_tokens(b, manifest(), prompt_tokens=2_000, prompt_exact=True) == 4000


def test_plan_context_room_limits_the_ask() -> None:
    """With the prompt size known exactly (the provider's usage), the ask is exactly the room left:
    no margin, so no tiny extra chunk at the end; a seam that re-tokenises longer gets a 400 with
    the exact numbers and shrinks (see shrink_after_context_error)."""
    b = budget(context_length=10_000)
    assert plan_max_tokens(b, manifest(), prompt_tokens=7_000, prompt_exact=True) == 3000
    assert plan_max_tokens(b, manifest(), prompt_tokens=10_000 - 4_010, prompt_exact=True) == 4000
    assert plan_max_tokens(b, manifest(), prompt_tokens=10_000 - 3_999, prompt_exact=True) == 3_999


@pytest.mark.parametrize("room", [1, 5, 16, 31, 32])
def test_plan_tail_of_the_context_asks_exactly_what_is_left(room: int) -> None:
    b = budget(context_length=10_000)
    assert plan_max_tokens(b, manifest(), prompt_tokens=10_000 - room, prompt_exact=True) == room


def test_plan_full_context_means_nothing_fits() -> None:
    b = budget(context_length=10_000)
    assert plan_max_tokens(b, manifest(), prompt_tokens=10_000, prompt_exact=True) <= 0
    assert plan_max_tokens(b, manifest(), prompt_tokens=10_500, prompt_exact=True) <= 0


def test_plan_with_a_rough_estimate() -> None:
    b = budget(context_length=10_000)
    assert plan_max_tokens(b, manifest(), prompt_tokens=9_000, prompt_exact=False) == 1_000
    assert plan_max_tokens(b, manifest(), prompt_tokens=1_000, prompt_exact=False) == 4000
    # the guess says nothing fits: ask for one token, and let the provider's 400 tell the truth
    assert plan_max_tokens(b, manifest(), prompt_tokens=12_000, prompt_exact=False) == 1


def test_plan_fills_the_context_over_successive_chunks() -> None:
    """Chunk after chunk with exact usage, at least 99% of the room after the prompt is used."""
    b = budget(context_length=20_000, cap=4096)
    prompt, produced = 1_234, 0
    for _ in range(100):
        asked = plan_max_tokens(b, manifest(), prompt_tokens=prompt + produced, prompt_exact=True)
        if asked <= 0:
            break
        assert prompt + produced + asked <= 20_000
        produced += asked
    assert produced >= 0.99 * (20_000 - prompt)


def test_estimate_prompt_tokens() -> None:
    req = parse_request({"prompt": "x" * 3000})
    exact = estimate_prompt_tokens(manifest(last_prompt_tokens=1000, last_completion_tokens=500), req, "p")
    assert exact == (1500, True)
    guess, is_exact = estimate_prompt_tokens(manifest(), req, "y" * 300)
    assert not is_exact
    assert guess == rough_prompt_tokens(req, "y" * 300)
    assert guess >= (3000 + 300) // 3  # generous: at least a token per 3 characters


def _after_chunks(*usages: tuple[int, int, bool] | tuple[int, int, bool, bool]) -> Manifest:
    """A manifest after chunks of (prompt tokens, completion tokens, usage estimated[, completion
    counted])."""
    m, answer = manifest(), ""
    for index, (prompt, completion, estimated, *counted) in enumerate(usages):
        chunk = ChunkRecord(
            job_id="job-1",
            index=index,
            text="x" * completion,
            finish_reason="length",
            max_tokens=1000,
            prompt_tokens=0 if estimated else prompt,
            completion_tokens=completion,
            usage_estimated=estimated,
            completion_counted=bool(counted and counted[0]),
            started_at=datetime.now(UTC),
            duration_ms=1000,
        )
        text = TextState.after_chunk(chunk, answer_before=answer, reasoning_before="")
        m.record_chunk(chunk, text, learned_context=None, max_tokens_per_request=1000)
        answer += chunk.text
    return m


def test_a_prompt_after_a_chunk_without_usage_is_a_guess() -> None:
    # a chunk whose usage never came counts its deltas (a gateway may send several tokens in one):
    # the next prompt's figure is no longer the server's, so the per-reply new-turn check (which
    # compares it with what the server reports, 3 tokens apart) must not run on it
    req = parse_request({"prompt": "hello"})
    assert estimate_prompt_tokens(_after_chunks((100, 500, False)), req, "p") == (600, True)
    assert estimate_prompt_tokens(_after_chunks((100, 500, False), (0, 400, True)), req, "p") == (1000, False)
    # the server's usage again: exact again
    back = _after_chunks((100, 500, False), (0, 400, True), (1012, 300, False))
    assert estimate_prompt_tokens(back, req, "p") == (1312, True)
    # usage with the prompt but no completion tokens: the completion is counted deltas, a guess too
    counted = _after_chunks((100, 500, False), (612, 400, False, True))
    assert estimate_prompt_tokens(counted, req, "p") == (1012, False)


def test_job_budget_prefers_learned_context() -> None:
    settings = Settings(jobs_bucket="b", max_tokens_per_request=16_384, context_length=64_000)
    req = parse_request({"prompt": "x", "context_length": 32_000, "max_tokens_per_request": 1000})
    got = job_budget(req, settings, manifest(context_length=30_000))
    assert (got.cap, got.context_length) == (1000, 30_000)
    got = job_budget(req, settings, manifest())
    assert got.context_length == 32_000
    got = job_budget(parse_request({"prompt": "x"}), settings, manifest())
    assert (got.cap, got.context_length) == (16_384, 64_000)


# ---- shrink_after_context_error ---------------------------------------------------------------


def test_shrink_with_the_prompt_numbers() -> None:
    limit = ContextLimit(context_length=16_000, prompt_tokens=13_069, requested_completion=4096)
    assert shrink_after_context_error(limit, sent_max_tokens=4096, estimated_prompt=None) == 2931


def test_shrink_with_only_the_context_length_uses_the_estimate() -> None:
    limit = ContextLimit(context_length=16_000)
    assert shrink_after_context_error(limit, sent_max_tokens=4096, estimated_prompt=13_000) == 3000


def test_shrink_without_any_numbers_halves() -> None:
    assert (
        shrink_after_context_error(
            ContextLimit(context_length=0), sent_max_tokens=4096, estimated_prompt=None
        )
        == 2048
    )
    assert (
        shrink_after_context_error(
            ContextLimit(context_length=16_000), sent_max_tokens=4096, estimated_prompt=None
        )
        == 2048
    )


@pytest.mark.parametrize(
    ("limit", "estimate"),
    [
        (ContextLimit(16_000, 1_000, 4096), None),  # numbers say it fits: still strictly less
        (ContextLimit(16_000), 100),
        (ContextLimit(0), None),
        (ContextLimit(8192, 9001), None),
        (ContextLimit(16_000, 15_999), None),
    ],
)
@pytest.mark.parametrize("sent", [1, 2, 3, 100, 4096])
def test_shrink_is_always_strictly_less(limit: ContextLimit, estimate: int | None, sent: int) -> None:
    assert shrink_after_context_error(limit, sent_max_tokens=sent, estimated_prompt=estimate) < sent


def test_shrink_when_the_prompt_alone_is_too_long_means_nothing_fits() -> None:
    assert (
        shrink_after_context_error(ContextLimit(8192, 9001), sent_max_tokens=100, estimated_prompt=None) < 1
    )


# ---- build_body -------------------------------------------------------------------------------


CONVERSATION = [{"role": "system", "content": "Be vivid."}, {"role": "user", "content": "A long tale."}]


def test_body_without_prefill_has_no_assistant_message() -> None:
    req = parse_request({"messages": CONVERSATION})
    body = build_body(req, model="m/1", prefill="", max_tokens=500, prefill_style="vllm")
    assert body == {"model": "m/1", "messages": CONVERSATION, "max_tokens": 500}


def test_body_assistant_prefill() -> None:
    req = parse_request({"messages": CONVERSATION})
    body = build_body(req, model="m/1", prefill="Once upon", max_tokens=500, prefill_style="assistant")
    assert body["messages"] == [*CONVERSATION, {"role": "assistant", "content": "Once upon"}]
    assert "continue_final_message" not in body
    assert "add_generation_prompt" not in body


def test_body_vllm_prefill() -> None:
    req = parse_request({"messages": CONVERSATION})
    body = build_body(req, model="m/1", prefill="Once upon", max_tokens=500, prefill_style="vllm")
    assert body["messages"][-1] == {"role": "assistant", "content": "Once upon"}
    assert body["continue_final_message"] is True
    assert body["add_generation_prompt"] is False


def test_body_prefix_prefill() -> None:
    req = parse_request({"messages": CONVERSATION})
    body = build_body(req, model="m/1", prefill="Once upon", max_tokens=500, prefill_style="prefix")
    assert body["messages"][-1] == {"role": "assistant", "content": "Once upon", "prefix": True}
    assert "continue_final_message" not in body


def test_body_replaces_the_users_answer_start_with_the_prefill() -> None:
    req = parse_request({"messages": [*CONVERSATION, {"role": "assistant", "content": "Once"}]})
    body = build_body(req, model="m/1", prefill="Once upon a time", max_tokens=10, prefill_style="assistant")
    assert body["messages"] == [*CONVERSATION, {"role": "assistant", "content": "Once upon a time"}]


def test_body_passes_sampling_fields_through() -> None:
    req = parse_request(
        {
            "prompt": "Hi",
            "temperature": 0.0,
            "top_p": 0.9,
            "seed": 7,
            "stop": "THE END",
            "reasoning_effort": "low",
        }
    )
    body = build_body(req, model="m/2", prefill="", max_tokens=99, prefill_style="assistant")
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["model"] == "m/2"
    assert body["max_tokens"] == 99
    assert body["temperature"] == 0.0  # zero is a value, not "unset"
    assert body["top_p"] == 0.9
    assert body["seed"] == 7
    assert body["stop"] == ["THE END"]
    assert body["reasoning_effort"] == "low"


def test_body_omits_unset_sampling_fields() -> None:
    body = build_body(
        parse_request({"prompt": "Hi"}), model="m", prefill="", max_tokens=1, prefill_style="assistant"
    )
    assert set(body) == {"model", "messages", "max_tokens"}


# ---- chunk_deadline ---------------------------------------------------------------------------


def test_deadline_subtracts_the_margin() -> None:
    assert chunk_deadline(100.0, 900_000, 30.0) == pytest.approx(970.0)


def test_deadline_margin_capped_at_half_the_remaining_time() -> None:
    assert chunk_deadline(100.0, 20_000, 30.0) == pytest.approx(110.0)
    assert chunk_deadline(0.0, 60_000, 30.0) == pytest.approx(30.0)
    assert chunk_deadline(0.0, 1_000, 30.0) == pytest.approx(0.5)


def test_deadline_with_zero_margin() -> None:
    assert chunk_deadline(5.0, 10_000, 0.0) == pytest.approx(15.0)


# ---- chunk_finish -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "ended_by", "expected"),
    [
        ("stop", "finished", "stop"),
        ("eos", "finished", "stop"),
        ("length", "finished", "length"),
        ("max_tokens", "finished", "length"),
        ("content_filter", "finished", "content_filter"),
        (None, "finished", "interrupted"),
        (None, "deadline", "deadline"),
        ("stop", "deadline", "deadline"),
        (None, "interrupted", "interrupted"),
    ],
)
def test_chunk_finish(provider: str | None, ended_by: str, expected: str) -> None:
    assert chunk_finish(provider, ended_by) == expected


# ---- next_step --------------------------------------------------------------------------------


def test_next_step_stop_ends_the_job() -> None:
    assert next_step("stop", manifest(chunks=1), budget(), max_reasoning_only_chunks=8) == ("stop", "stop")


@pytest.mark.parametrize("finish", sorted(CONTINUE_FINISHES))
def test_next_step_continues(finish: str) -> None:
    assert next_step(finish, manifest(chunks=3), budget(), max_reasoning_only_chunks=8) == (finish, None)


def test_next_step_token_budget() -> None:
    b = budget(max_output_tokens=1000)
    assert next_step(
        "length", manifest(chunks=1, completion_tokens_total=1000), b, max_reasoning_only_chunks=8
    ) == (
        "budget",
        "max_output_tokens",
    )
    assert next_step(
        "length", manifest(chunks=1, completion_tokens_total=999), b, max_reasoning_only_chunks=8
    ) == (
        "length",
        None,
    )


def test_next_step_chunk_budget() -> None:
    b = budget(max_chunks=3)
    assert next_step("length", manifest(chunks=3), b, max_reasoning_only_chunks=8) == ("budget", "max_chunks")
    assert next_step("length", manifest(chunks=2), b, max_reasoning_only_chunks=8) == ("length", None)


def test_next_step_cost_budget() -> None:
    b = budget(max_cost_usd=0.5)
    assert next_step(
        "length", manifest(chunks=1, estimated_cost_usd=0.5), b, max_reasoning_only_chunks=8
    ) == (
        "budget",
        "max_cost",
    )
    assert next_step(
        "length", manifest(chunks=1, estimated_cost_usd=0.49), b, max_reasoning_only_chunks=8
    ) == (
        "length",
        None,
    )
    # no cost reported by the provider: the cost budget cannot stop the job
    assert next_step("length", manifest(chunks=1), b, max_reasoning_only_chunks=8) == ("length", None)


def test_next_step_reasoning_loop() -> None:
    m = manifest(chunks=5, reasoning_only_streak=4)
    assert next_step("length", m, budget(), max_reasoning_only_chunks=4) == (
        "reasoning_loop",
        "reasoning_loop",
    )
    assert next_step("length", m, budget(), max_reasoning_only_chunks=5) == ("length", None)


def test_next_step_full_context_ends_the_job() -> None:
    b = budget(context_length=10_000)
    full = manifest(chunks=2, last_prompt_tokens=9_000, last_completion_tokens=1_000)
    assert next_step("length", full, b, max_reasoning_only_chunks=8) == (
        "context_exhausted",
        "context_exhausted",
    )
    one_left = manifest(chunks=2, last_prompt_tokens=9_000, last_completion_tokens=999)
    assert next_step("length", one_left, b, max_reasoning_only_chunks=8) == ("length", None)


def test_next_step_other_finish_ends_the_job() -> None:
    assert next_step("content_filter", manifest(chunks=1), budget(), max_reasoning_only_chunks=8) == (
        "content_filter",
        "content_filter",
    )


def test_next_step_stop_wins_over_an_exhausted_budget() -> None:
    b = budget(max_chunks=1, max_output_tokens=10)
    assert next_step(
        "stop", manifest(chunks=1, completion_tokens_total=10), b, max_reasoning_only_chunks=8
    ) == (
        "stop",
        "stop",
    )


def test_body_continue_message_quotes_the_end_of_the_answer() -> None:
    """The last resort asks for a continuation quoting where the answer stops, so a model resumes
    mid-sentence instead of starting a new one; asked again after a repeat, it says so."""
    req = parse_request({"messages": CONVERSATION})
    answer = "The keeper climbed the stairs. " * 10 + "At dusk the keeper lit the"
    body = build_body(req, model="m/1", prefill=answer, max_tokens=500, prefill_style="continue_message")
    assistant, user = body["messages"][-2:]
    assert assistant == {"role": "assistant", "content": answer}
    assert user["role"] == "user"
    assert user["content"].startswith(CONTINUE_INSTRUCTION)
    assert "At dusk the keeper lit the\n\n" in user["content"] and "mid-sentence" in user["content"]
    quoted = user["content"].split("ends with:\n\n")[1].split("\n\n")[0]
    assert quoted.startswith("…") and answer.endswith(quoted[1:]) and len(quoted) <= QUOTE_CHARS + 1
    again = build_body(
        req, model="m/1", prefill=answer, max_tokens=500, prefill_style="continue_message", ask_again=True
    )
    assert again["messages"][-1]["content"].startswith(
        "Your last reply repeated text that is already written"
    )
    assert "At dusk the keeper lit the" in again["messages"][-1]["content"]
