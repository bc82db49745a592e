"""Whole continuation jobs through statemachine/generation.asl.json (see conftest.py)."""

from __future__ import annotations

import pytest
from longform_core.errors import RequestInvalid
from longform_core.job_store import JobKeys

from .conftest import WRITER, CloudFactory, answer_requests, expected, is_probe, run_job
from .virtual_time import virtual_time

pytestmark = pytest.mark.integration


def prompt(tokens: int, topic: str = "the history of lighthouses") -> str:
    return f"Write about {topic}. [emulator answer_tokens={tokens}]"


def test_one_chunk_that_stops(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(300)}
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "SUCCEEDED"
        assert result.status == "succeeded"
        assert result.finish_reason == "stop"
        assert result.chunks == 1
        assert result.output_tokens == 300
        assert output == expected(request, emulator).answer
        assert cloud.states_entered(result.job_id) == [
            "GenerateChunk",
            "MoreToGenerate",
            "Finalize",
            "JobOutcome",
            "JobDone",
        ]


def test_many_chunks_equal_the_uncapped_answer_byte_for_byte(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(5_300), "max_tokens_per_request": 1_000}
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        uncapped = expected(request, emulator).answer
        assert output == uncapped
        assert result.status == "succeeded"
        assert result.finish_reason == "stop"
        assert result.chunks == 6
        assert result.output_tokens == 5_300
        # every request asked for at most the per-request cap
        chat = answer_requests(emulator)
        assert [r["completion_tokens"] for r in chat] == [1000] * 5 + [300]
        # and one small greedy probe before the prefill style was learned (style_probe.py)
        assert len([r for r in emulator.requests if is_probe(r)]) == 1
        # two state transitions per chunk, plus Finalize, JobOutcome and JobDone once
        assert cloud.state_transitions(result.job_id) == 2 * result.chunks + 3
        # each chunk is stored on its own key; the seams add up to the whole
        texts = [cloud.store.get_chunk(result.job_id, i).text for i in range(result.chunks)]
        assert "".join(texts) == uncapped
        assert JobKeys(result.job_id).chunk(5).endswith("chunks/000005.json")


def test_context_exhausted_fills_the_context(make_cloud: CloudFactory, emulator) -> None:
    emulator.configure(context_length=6_000)
    request = {"prompt": prompt(50_000), "max_tokens_per_request": 2_000}
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "SUCCEEDED"
        assert result.status == "context_exhausted"
        assert result.context_length == 6_000  # learned from the provider's 400
        room = 6_000 - result.prompt_tokens
        assert result.output_tokens >= 0.99 * room
        assert result.context_used is not None and result.context_used >= 0.99
        uncapped = expected(request, emulator).answer
        assert uncapped.startswith(output)  # nothing doubled or dropped
        assert len(output) > 0
        entered = cloud.states_entered(result.job_id)
        assert entered[-3:] == ["Finalize", "JobOutcome", "JobDone"]
        # the provider's own numbers said the context was full: no extra round trip to find out
        assert entered.count("GenerateChunk") == result.chunks


def test_prompt_larger_than_the_context_ends_through_the_catch(make_cloud: CloudFactory, emulator) -> None:
    emulator.configure(context_length=3_000)
    request = {"prompt": "Summarise this. " + "word " * 4_000}
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "SUCCEEDED"
        assert result.status == "context_exhausted"
        assert result.chunks == 0
        assert output == ""
        assert result.context_length == 3_000
        entered = cloud.states_entered(result.job_id)
        assert entered == ["GenerateChunk", "ContextExhausted", "Finalize", "JobOutcome", "JobDone"]


@pytest.mark.parametrize(
    ("style", "body", "known"),
    [("too_large", "flat", False), ("requested", "nested", True), ("too_large", "nested", True)],
)
def test_context_arithmetic_in_every_wording(make_cloud: CloudFactory, emulator, style, body, known) -> None:
    emulator.configure(context_length=5_000, context_error_style=style, error_body=body)
    request = {"prompt": prompt(20_000), "max_tokens_per_request": 1_500}
    if known:
        request["context_length"] = 5_000
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert result.status == "context_exhausted"
        assert result.output_tokens >= 0.99 * (5_000 - result.prompt_tokens)
        assert expected(request, emulator).answer.startswith(output)


def test_transient_429_and_500_are_retried_without_doubling(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(3_500), "max_tokens_per_request": 1_000}
    # more failures than the in-process attempts (4), so the state machine's Retry runs too
    emulator.inject(
        {"type": "status", "status": 429, "retry_after": 0.01},
        {"type": "status", "status": 500},
        {"type": "status", "status": 503},
        {"type": "status", "status": 502},
        {"type": "status", "status": 429},
    )
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert result.status == "succeeded"
        assert output == expected(request, emulator).answer
        assert result.chunks == 4
        failed = [i for i in cloud.invocations if i.error_type]
        assert [i.error_type for i in failed] == ["ProviderUnavailable"]  # after 4 in-process attempts


def test_stream_cut_midway_is_continued_seamlessly(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(2_500), "max_tokens_per_request": 1_000}
    emulator.inject({"type": "cut", "after_tokens": 377})
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert output == expected(request, emulator).answer
        first = cloud.store.get_chunk(result.job_id, 0)
        assert first.finish_reason == "interrupted"
        assert first.usage_estimated
        assert len(first.text) > 0


def test_deadline_cuts_a_slow_chunk_and_the_job_goes_on(
    make_cloud: CloudFactory, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk whose request would outlast the invocation is cut at the deadline (its text
    committed), and the next chunks continue it. In virtual time (``virtual_time.py``): the deadline
    comes after exactly (timeout - margin) / delay tokens, however loaded the machine; a full
    request (1,500 tokens, 75 s) would run 15 s past the 60 s timeout."""
    timeout, margin, delay = 60.0, 20.0, 0.05
    request = {"prompt": prompt(2_000), "max_tokens_per_request": 1_500}
    with make_cloud(timeouts={"GenerateChunkFunction": timeout}, deadline_margin_seconds=margin) as cloud:
        with virtual_time(cloud, monkeypatch, seconds_per_delta=delay):
            result, _, output = run_job(cloud, request)
        assert output == expected(request, emulator).answer
        chunks = [cloud.store.get_chunk(result.job_id, i) for i in range(result.chunks)]
        finishes = [c.finish_reason for c in chunks]
        # 2,000 tokens: 800 before each of two deadlines (the 801st read is when the check finds the
        # clock past it: 800 x 0.05 s adds up to a hair under 40), then the 398 left, and a stop
        assert finishes == ["deadline", "deadline", "stop"], finishes
        cut_after = round((timeout - margin) / delay)
        assert all(cut_after <= c.completion_tokens <= cut_after + 1 for c in chunks[:2]), chunks
        assert all(not i.timed_out for i in cloud.invocations), [
            (i.function, i.duration_seconds) for i in cloud.invocations if i.timed_out
        ]


def test_bad_request_is_rejected_with_every_problem_named(make_cloud: CloudFactory) -> None:
    with make_cloud() as cloud:
        bad = {"messages": [{"role": "robot", "content": "hi"}], "max_output_tokens": -5, "temperature": 9}
        with pytest.raises(RequestInvalid) as info:
            cloud.submit(bad)
        fields = {p.field for p in info.value.problems}
        assert {"messages[0].role", "max_output_tokens", "temperature"} <= fields
        assert cloud.s3.list_objects_v2(Bucket=cloud.store.bucket).get("KeyCount", 0) == 0
        assert cloud.sfn.list_executions(stateMachineArn=cloud.state_machine_arn)["executions"] == []


def test_user_start_of_the_answer_is_continued(make_cloud: CloudFactory, emulator) -> None:
    start = "Dear reader,"
    request = {
        "messages": [
            {"role": "user", "content": prompt(1_200, "tide clocks")},
            {"role": "assistant", "content": start},
        ],
        "max_tokens_per_request": 500,
    }
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        assert result.status == "succeeded"
        assert output.startswith(start)
        assert output == start + expected(request, emulator).answer  # the emulator writes its answer after it


def test_budget_stops_the_job(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(10_000), "max_tokens_per_request": 1_000, "max_output_tokens": 2_500}
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, request)
        # cut by its own budget, the text is not finished: incomplete, never succeeded
        assert (result.status, result.incomplete_reason) == ("incomplete", "max_output_tokens")
        assert result.stop_reason == "max_output_tokens"
        assert result.stop_detail == (
            "the max_output_tokens budget (2,500 tokens) was reached: 2,500 tokens generated; "
            "the text is not finished"
        )
        assert desc["status"] == "SUCCEEDED"  # not an error: the execution ends as asked
        manifest, _ = cloud.store.get_manifest(result.job_id)
        assert (manifest.status, manifest.incomplete_reason) == ("incomplete", "max_output_tokens")
        assert result.output_tokens == 2_500
        assert result.chunks == 3
        assert expected(request, emulator).answer.startswith(output)


@pytest.mark.parametrize("model", ["longform/emulated-reasoner", "longform/emulated-thinker"])
def test_reasoning_models_keep_reasoning_apart(make_cloud: CloudFactory, emulator, model) -> None:
    request = {
        "prompt": prompt(2_000) + " [emulator reasoning_tokens=700]",
        "model": model,
        "max_tokens_per_request": 500,
    }
    with make_cloud() as cloud:
        result, _, output = run_job(cloud, request)
        want = expected(request, emulator, model=model)
        assert want.style in ("field", "inline")
        assert result.status == "succeeded"
        assert output == want.answer
        reasoning = cloud.store.get_text(result.reasoning_key)
        assert reasoning == want.reasoning.strip("\n")
        assert result.output_tokens >= 2_700
        # the continuation prefills carried the reasoning block first (DeepInfra's form)
        assert result.chunks >= 6


def test_a_model_that_only_reasons_is_stopped(make_cloud: CloudFactory, emulator) -> None:
    request = {
        "prompt": prompt(100) + " [emulator reasoning_tokens=100000]",
        "model": "longform/emulated-reasoner",
        "max_tokens_per_request": 200,
    }
    with make_cloud() as cloud:
        result, desc, _ = run_job(cloud, request)
        # the no-progress guard stopped it: incomplete (its answer never began), not an error
        assert desc["status"] == "SUCCEEDED"
        assert (result.status, result.incomplete_reason) == ("incomplete", "no_progress")
        assert result.stop_reason == "reasoning_loop"
        assert result.chunks == 8
        assert result.error is None
        assert "only reasoning for 8 chunks in a row" in (result.stop_detail or "")


def test_provider_auth_error_fails_fast_with_partial_output_kept(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(3_000), "max_tokens_per_request": 1_000}
    with make_cloud() as cloud:
        # let the first chunk through, then the key stops working
        emulator.configure(api_key=None)
        calls = {"n": 0}

        def revoke_after_first(function: str, event: dict) -> None:
            if function == "GenerateChunkFunction":
                calls["n"] += 1
                if calls["n"] == 2:
                    emulator.configure(api_key="a-key-we-do-not-have")
            return None

        cloud.fault_hook = revoke_after_first
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "FAILED"
        assert result.status == "failed"
        assert "ProviderAuthenticationFailed" in (result.error or "")
        assert result.chunks == 1
        assert output == expected(request, emulator).answer[: len(output)] and len(output) > 0
        gen = [i for i in cloud.invocations if i.function == "GenerateChunkFunction"]
        assert len(gen) == 2  # not retried


def test_idempotent_submit_starts_one_execution(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(200)}
    with make_cloud() as cloud:
        first = cloud.submit(request, idempotency_key="abc")
        second = cloud.submit(request, idempotency_key="abc")
        assert first.job_id == second.job_id
        assert first.created and not second.created
        cloud.wait(first.job_id)
        assert len(cloud.sfn.list_executions(stateMachineArn=cloud.state_machine_arn)["executions"]) == 1


def test_writer_default_model_name_is_used(make_cloud: CloudFactory) -> None:
    with make_cloud() as cloud:
        job = cloud.submit({"prompt": prompt(50)})
        assert job.model == WRITER
        cloud.wait(job.job_id)


def test_the_largest_job_fits_one_executions_history(make_cloud: CloudFactory, emulator) -> None:
    """Measured on the real ASL: the history events of a job, per chunk and fixed, and of a retry.
    max_chunks is bounded so the largest job, with one retry in every chunk, fits 25,000 events."""
    from longform_core.request import MAX_CHUNKS_PER_JOB, parse_request

    with make_cloud() as cloud:
        short, _, _ = run_job(cloud, {"prompt": prompt(1_500), "max_tokens_per_request": 1_000})
        long, _, _ = run_job(cloud, {"prompt": prompt(3_500), "max_tokens_per_request": 1_000})
        emulator.inject({"type": "status", "status": 500}, {"type": "status", "status": 500},
                        {"type": "status", "status": 500}, {"type": "status", "status": 500})  # fmt: skip
        retried, _, _ = run_job(cloud, {"prompt": prompt(1_500), "max_tokens_per_request": 1_000})
        events = {r.job_id: len(cloud.history(r.job_id)) for r in (short, long, retried)}
    per_chunk = (events[long.job_id] - events[short.job_id]) / (long.chunks - short.chunks)
    fixed = events[short.job_id] - per_chunk * short.chunks
    per_retry = events[retried.job_id] - events[short.job_id]  # one state-machine Retry of a chunk
    assert per_chunk == 7 and per_retry > 0
    assert MAX_CHUNKS_PER_JOB * (per_chunk + per_retry) + fixed < 25_000
    with pytest.raises(RequestInvalid):
        parse_request({"prompt": "Write", "max_chunks": MAX_CHUNKS_PER_JOB + 1})
