"""Whole jobs against stream shapes real servers send and the emulator's happy path never did
(issue 15, items 1, 2, 3 and 5): an error reported inside the 200 reply, fields of the wrong type,
a surrogate pair split across two events, a server that ignores ``max_tokens``. Each asserts on the
committed text, the chunk records and the final status."""

from __future__ import annotations

from typing import Any

import pytest

from longform.emulator.server import EmulatorServer

from .conftest import CloudFactory, expected, run_job

pytestmark = pytest.mark.integration


def prompt(tokens: int, extra: str = "") -> str:
    return f"Write about the keepers of the Eddystone light. [emulator answer_tokens={tokens}]{extra}"


def chunks_of(cloud: Any, result: Any) -> list[Any]:
    return [cloud.store.get_chunk(result.job_id, i) for i in range(result.chunks)]


# ---- 1. an error inside the stream ------------------------------------------------------------

ERROR_FAULTS = {
    "openrouter": {"type": "error_event", "shape": "openrouter"},  # error object + finish "error"
    "openai": {"type": "error_event", "shape": "openai"},  # one data: {"error": ...} line
    "finish-error": {"type": "error_event", "shape": "finish", "finish_reason": "error"},
    "finish-abort": {"type": "error_event", "shape": "finish", "finish_reason": "abort"},
}


@pytest.mark.parametrize("shape", ERROR_FAULTS)
def test_an_error_mid_stream_is_retried_and_its_text_kept(
    make_cloud: CloudFactory, emulator: EmulatorServer, shape: str
) -> None:
    emulator.inject({**ERROR_FAULTS[shape], "after_tokens": 40})
    request = {"prompt": prompt(900), "max_tokens_per_request": 400}
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert result.status == "succeeded"
        assert output == expected(request, emulator).answer  # nothing cut, nothing doubled
        first = chunks_of(cloud, result)[0]
        assert first.finish_reason == "interrupted"  # kept, and the job went on from it
        assert first.completion_tokens == 40 and first.text == output[: len(first.text)]
        assert "error event in stream" in (first.detail or "")


@pytest.mark.parametrize("shape", ["openrouter", "openai"])
def test_a_provider_failing_mid_stream_every_time_ends_failed_with_all_its_text(
    make_cloud: CloudFactory, emulator: EmulatorServer, shape: str
) -> None:
    emulator.inject(*[{**ERROR_FAULTS[shape], "after_tokens": 30}] * 20)
    request = {"prompt": prompt(2_000), "max_tokens_per_request": 400}
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert result.status == "failed"
        assert "error mid-reply" in (result.error or "")
        chunks = chunks_of(cloud, result)
        # the workflow's Retry (6) + the first attempt: each committed its 30 tokens, then failed
        assert len(chunks) == 7 and all(c.completion_tokens == 30 for c in chunks)
        assert output == expected(request, emulator).answer[: len(output)]
        assert output == "".join(c.text for c in chunks) and len(output) > 0


def test_an_error_before_any_text_is_retried_like_a_5xx(
    make_cloud: CloudFactory, emulator: EmulatorServer
) -> None:
    emulator.inject({**ERROR_FAULTS["openrouter"], "after_tokens": 0})
    request = {"prompt": prompt(500), "max_tokens_per_request": 400}
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert result.status == "succeeded"
        assert output == expected(request, emulator).answer
        assert chunks_of(cloud, result)[0].attempts == 2  # retried in-process


# ---- 2. fields of the wrong type --------------------------------------------------------------


@pytest.mark.parametrize("fields", [["usage"], ["model"], ["delta"], ["usage", "model", "delta"]])
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
def test_malformed_fields_lose_no_text(
    make_cloud: CloudFactory, emulator: EmulatorServer, fields: list[str], stream: bool
) -> None:
    if fields == ["delta"] and not stream:
        pytest.skip("a reply without streaming has no delta event")
    emulator.inject(*[{"type": "malformed", "fields": fields}] * 10)
    request = {"prompt": prompt(1_000), "max_tokens_per_request": 400, "stream": stream}
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert result.status == "succeeded"
        assert output == expected(request, emulator).answer
        chunks = chunks_of(cloud, result)
        assert len(chunks) == 3 and all(c.attempts == 1 for c in chunks)
        if "usage" in fields:  # unreadable: estimated, as when a server sends none
            assert all(c.usage_estimated and c.estimated_cost_usd is None for c in chunks)
        if "model" in fields:
            assert all(c.model is None for c in chunks)


# ---- 3. surrogate pairs split across events ---------------------------------------------------


def test_a_surrogate_pair_split_across_events_is_joined(
    make_cloud: CloudFactory, emulator: EmulatorServer
) -> None:
    emulator.inject(*[{"type": "split_surrogates"}] * 10)
    request = {"prompt": prompt(600, " [emulator emoji]"), "max_tokens_per_request": 250}
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        want = expected(request, emulator).answer
        assert sum(ord(ch) > 0xFFFF for ch in want) > 50  # the answer has astral characters
        assert result.status == "succeeded"
        assert output == want
        assert all(c.lone_surrogates == 0 for c in chunks_of(cloud, result))


# ---- 5. a server that ignores max_tokens ------------------------------------------------------


@pytest.mark.parametrize("budget", [50, 700])
def test_a_server_ignoring_max_tokens_is_held_to_the_budget(
    make_cloud: CloudFactory, emulator: EmulatorServer, budget: int
) -> None:
    emulator.configure(ignore_max_tokens=True)
    request = {"prompt": prompt(3_000), "max_tokens_per_request": 300, "max_output_tokens": budget}
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert result.stop_reason == "max_output_tokens"
        assert (result.status, result.incomplete_reason) == ("incomplete", "max_output_tokens")
        margin = 8 + budget // 20
        assert budget <= result.output_tokens <= budget + margin
        assert output == expected(request, emulator).answer[: len(output)]
        chunks = chunks_of(cloud, result)
        assert all(c.completion_tokens <= c.max_tokens + 8 + c.max_tokens // 20 for c in chunks)
        assert all(c.finish_reason in ("length", "budget") for c in chunks)
