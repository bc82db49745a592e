"""The task entry points with a scripted provider (no HTTP): seams that the emulator can't produce."""

from __future__ import annotations

from typing import Any

import pytest
from longform_core.chunk import ChunkTaskInput, generate_chunk
from longform_core.config import Settings
from longform_core.errors import ContextExhausted, ContextLimit, ContextWindowExceeded, JobStateInvalid
from longform_core.finalize import FinalizeTaskInput, finalize
from longform_core.job_store import JobStore
from longform_core.models import CONTINUE_FINISHES, Manifest
from longform_core.provider import StreamOutcome
from longform_core.request import parse_request
from longform_core.services import Services
from longform_core.sse import Usage


class ScriptedProvider:
    """Answers each call with the next scripted outcome (or raises it) and records the bodies."""

    def __init__(self, *script: StreamOutcome | Exception):
        self.script = list(script)
        self.bodies: list[dict[str, Any]] = []
        self.streamed: list[bool] = []

    def chat(
        self, body: dict[str, Any], *, deadline: float, stream: bool = True, on_progress: Any = None
    ) -> StreamOutcome:
        self.bodies.append(body)
        self.streamed.append(stream)
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def outcome(
    content: str,
    finish: str | None = "length",
    *,
    reasoning: str = "",
    prompt: int = 10,
    completion: int = 5,
    ended_by: str = "finished",
    first_delta: str | None = None,
) -> StreamOutcome:
    return StreamOutcome(
        content=content,
        reasoning=reasoning,
        finish_reason=finish,
        ended_by=ended_by,  # type: ignore[arg-type]
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion),
        deltas=completion,
        model="m",
        attempts=1,
        ttft_seconds=0.01,
        first_delta=first_delta,
    )


@pytest.fixture
def make_services(store: JobStore):
    def factory(provider: ScriptedProvider, **settings: Any) -> Services:
        # a script answers in order, not as a model: no style probe unless a test asks for one
        settings = {"prefill_probe": False, **settings}
        return Services(
            settings=Settings(jobs_bucket=store.bucket, **settings), store=store, provider=provider
        )

    return factory


def start(store: JobStore, raw: dict[str, Any], job_id: str = "job1") -> str:
    request = parse_request(raw)
    store.put_request(job_id, request)
    store.put_manifest(
        Manifest(job_id=job_id, model="m", reasoning_phase="answer" if request.answer_start() else "start")
    )
    return job_id


def run(services: Services, job_id: str) -> list[str]:
    finishes = []
    for _ in range(50):
        out = generate_chunk(ChunkTaskInput(job_id=job_id), services, remaining_ms=lambda: 60_000)
        finishes.append(out.finish_reason)
        if out.finish_reason not in CONTINUE_FINISHES:
            break
    return finishes


def test_close_tag_cut_between_two_chunks(store: JobStore, make_services) -> None:
    provider = ScriptedProvider(
        outcome("<think>\nplan the book\n</thi", "length"),
        outcome("nk>\n\nChapter one.", "stop"),
    )
    services = make_services(provider)
    job = start(store, {"prompt": "write"})
    assert run(services, job) == ["length", "stop"]
    # the second prefill is exactly what the model wrote so far, partial tag included
    assert provider.bodies[1]["messages"][-1] == {
        "role": "assistant",
        "content": "<think>\nplan the book\n</thi",
    }
    result = finalize(FinalizeTaskInput(job_id=job), services)
    assert result.status == "succeeded"
    assert store.get_text(f"jobs/{job}/output.md") == "Chapter one."
    assert store.get_text(f"jobs/{job}/reasoning.md") == "plan the book"


def test_field_reasoning_prefill_is_deepinfra_form(store: JobStore, make_services) -> None:
    provider = ScriptedProvider(
        outcome("", "length", reasoning="Let me think"),
        outcome("The answer", "length", reasoning=" more."),
        outcome(" continues.", "stop"),
    )
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "length", "stop"]
    assert provider.bodies[1]["messages"][-1]["content"] == "<think>\nLet me think"
    assert (
        provider.bodies[2]["messages"][-1]["content"] == "<think>\nLet me think more.\n</think>\n\nThe answer"
    )


def test_context_400_shrinks_then_exhausts(store: JobStore, make_services) -> None:
    limit = ContextLimit(context_length=100, prompt_tokens=90, requested_completion=50)
    provider = ScriptedProvider(
        ContextWindowExceeded("too long", limit=limit),
        outcome("x" * 10, "length", prompt=90, completion=10),
    )
    services = make_services(provider, max_tokens_per_request=50)
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["context_exhausted"]
    assert [b["max_tokens"] for b in provider.bodies] == [50, 10]
    manifest, _ = store.get_manifest(job)
    assert manifest.context_length == 100
    assert finalize(FinalizeTaskInput(job_id=job), services).status == "context_exhausted"


def test_nothing_fits_raises_the_named_error(store: JobStore, make_services) -> None:
    limit = ContextLimit(context_length=100, prompt_tokens=120)
    provider = ScriptedProvider(ContextWindowExceeded("too long", limit=limit))
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    with pytest.raises(ContextExhausted):
        generate_chunk(ChunkTaskInput(job_id=job), services, remaining_ms=lambda: 60_000)
    # a retry (should one happen) raises again rather than looping
    with pytest.raises(ContextExhausted):
        generate_chunk(ChunkTaskInput(job_id=job), services, remaining_ms=lambda: 60_000)


def test_a_retry_after_the_last_commit_replays_it(store: JobStore, make_services) -> None:
    provider = ScriptedProvider(outcome("Done.", "stop"))
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    first = generate_chunk(ChunkTaskInput(job_id=job), services, remaining_ms=lambda: 60_000)
    again = generate_chunk(ChunkTaskInput(job_id=job), services, remaining_ms=lambda: 60_000)
    assert (first.finish_reason, again.finish_reason, again.replayed) == ("stop", "stop", True)
    assert len(provider.bodies) == 1


def test_a_finished_job_is_not_generated_again(store: JobStore, make_services) -> None:
    provider = ScriptedProvider(outcome("Done.", "stop"))
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    run(services, job)
    finalize(FinalizeTaskInput(job_id=job), services)
    with pytest.raises(JobStateInvalid):
        generate_chunk(ChunkTaskInput(job_id=job), services, remaining_ms=lambda: 60_000)


def test_prefill_styles_reach_the_body(store: JobStore, make_services) -> None:
    provider = ScriptedProvider(outcome("a", "length"), outcome("b", "stop"))
    services = make_services(provider, prefill_style="vllm")
    job = start(store, {"prompt": "q"})
    run(services, job)
    assert provider.bodies[1]["continue_final_message"] is True
    assert provider.bodies[1]["add_generation_prompt"] is False


def test_first_prompt_tokens_when_the_first_chunk_carried_no_usage(store: JobStore, make_services) -> None:
    cut = StreamOutcome(
        content="abc",
        reasoning="",
        finish_reason=None,
        ended_by="deadline",
        usage=None,
        deltas=300,
        model="m",
        attempts=1,
        ttft_seconds=None,
    )
    provider = ScriptedProvider(cut, outcome("def", "stop", prompt=325, completion=5))
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["deadline", "stop"]
    manifest, _ = store.get_manifest(job)
    assert manifest.first_prompt_tokens == 25  # 325 minus the 300 tokens the cut chunk produced
    assert manifest.completion_tokens_total == 305


def test_finalize_reads_each_chunk_once(store: JobStore, make_services, monkeypatch) -> None:
    provider = ScriptedProvider(outcome("a", "length"), outcome("b", "length"), outcome("c", "stop"))
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    run(services, job)
    reads: list[int] = []
    original = JobStore.get_chunk
    monkeypatch.setattr(JobStore, "get_chunk", lambda self, j, i: reads.append(i) or original(self, j, i))
    finalize(FinalizeTaskInput(job_id=job), services)
    assert reads == [0, 1, 2]
    result = store.get_result(job)
    assert result is not None
    assert len(result.chunk_durations_ms) == 3
    assert result.chunk_chars == [1, 1, 1]
    assert store.get_text(result.output_key) == "abc"


# ---- servers that echo the prefill (llama.cpp) ------------------------------------------------

A = "Once upon a time, a sailor named Jo kept the light."  # 51 characters: a full echo is evidence
B = " Every night he climbed the stairs."
C = " The end."


def test_an_echoing_server_doubles_nothing(store: JobStore, make_services) -> None:
    provider = ScriptedProvider(
        outcome(A, "length"),
        outcome(A + B, "length", first_delta=A + " Every"),  # the echo merged into the first delta
        outcome(A + B + C, "stop"),
    )
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "length", "stop"]
    assert [b["messages"][-1]["content"] for b in provider.bodies[1:]] == [A, A + B]
    finalize(FinalizeTaskInput(job_id=job), services)
    result = store.get_result(job)
    assert result is not None and store.get_text(result.output_key) == A + B + C
    manifest, _ = store.get_manifest(job)
    assert manifest.prefill_echo is True
    chunks = store.read_chunks(manifest)
    assert [(c.echo, c.echo_stripped_chars, c.text) for c in chunks] == [
        ("none", 0, A),
        ("stripped", len(A), B),
        ("stripped", len(A + B), C),
    ]


def test_a_users_short_start_echoed_merged_is_stripped_and_expected_from_then_on(
    store: JobStore, make_services
) -> None:
    start_text = "Dear keeper,"  # 12 characters: only the merged first delta is evidence
    provider = ScriptedProvider(
        outcome(start_text + " the light", "length", first_delta=start_text + " the"),
        outcome(start_text + " the light" + " is out.", "stop"),
    )
    services = make_services(provider)
    job = start(
        store, {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": start_text}]}
    )
    assert run(services, job) == ["length", "stop"]
    finalize(FinalizeTaskInput(job_id=job), services)
    result = store.get_result(job)
    assert result is not None and store.get_text(result.output_key) == start_text + " the light is out."


def test_a_users_short_start_repeated_by_the_model_is_kept(store: JobStore, make_services) -> None:
    start_text = "Ho, ho,"
    provider = ScriptedProvider(outcome(" ho, ho, ho!", "stop"))  # no echo: the model's own words
    services = make_services(provider)
    job = start(
        store, {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": start_text}]}
    )
    run(services, job)
    finalize(FinalizeTaskInput(job_id=job), services)
    result = store.get_result(job)
    assert result is not None and store.get_text(result.output_key) == "Ho, ho, ho, ho, ho!"


# ---- replies that add nothing -----------------------------------------------------------------


def test_a_continuation_that_adds_nothing_and_stops_is_a_normal_stop(store: JobStore, make_services) -> None:
    provider = ScriptedProvider(outcome(A, "length"), outcome("", "stop", completion=0))
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "stop"]
    assert finalize(FinalizeTaskInput(job_id=job), services).status == "succeeded"
    result = store.get_result(job)
    assert result is not None and store.get_text(result.output_key) == A


def test_an_echo_alone_that_stops_is_a_normal_stop(store: JobStore, make_services) -> None:
    provider = ScriptedProvider(outcome(A, "length"), outcome(A, "stop", completion=0))
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "stop"]
    finalize(FinalizeTaskInput(job_id=job), services)
    result = store.get_result(job)
    assert result is not None and store.get_text(result.output_key) == A


def test_a_length_cut_before_any_new_token_means_the_context_is_full(store: JobStore, make_services) -> None:
    # llama.cpp stops a full context with finish "length" and nothing new, without an error
    provider = ScriptedProvider(outcome(A, "length"), outcome(A, "length", prompt=511, completion=0))
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    generate_chunk(ChunkTaskInput(job_id=job), services, remaining_ms=lambda: 60_000)
    with pytest.raises(ContextExhausted):
        generate_chunk(ChunkTaskInput(job_id=job), services, remaining_ms=lambda: 60_000)
    out = finalize(FinalizeTaskInput(job_id=job, status="context_exhausted"), services)
    assert out.status == "context_exhausted"
    result = store.get_result(job)
    assert result is not None and store.get_text(result.output_key) == A


# ---- context errors without numbers, streaming off --------------------------------------------


def test_a_context_error_without_numbers_halves_until_it_fits(store: JobStore, make_services) -> None:
    vague = ContextWindowExceeded("context window exceeded", limit=ContextLimit(context_length=0))
    provider = ScriptedProvider(vague, vague, vague, outcome("fits", "stop"))
    services = make_services(provider, max_tokens_per_request=1000)
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["stop"]
    assert [b["max_tokens"] for b in provider.bodies] == [1000, 500, 250, 125]


def test_a_context_error_without_numbers_ends_exhausted_when_nothing_fits(
    store: JobStore, make_services
) -> None:
    vague = ContextWindowExceeded("context window exceeded", limit=ContextLimit(context_length=0))
    provider = ScriptedProvider(*([vague] * 12))
    services = make_services(provider, max_tokens_per_request=1000)
    job = start(store, {"prompt": "q"})
    with pytest.raises(ContextExhausted):
        generate_chunk(ChunkTaskInput(job_id=job), services, remaining_ms=lambda: 60_000)
    assert [b["max_tokens"] for b in provider.bodies] == [1000, 500, 250, 125, 62, 31, 15, 7, 3, 1]


def test_streaming_is_the_deployments_default_and_a_request_may_turn_it_off(
    store: JobStore, make_services
) -> None:
    provider = ScriptedProvider(outcome("a", "stop"), outcome("b", "stop"), outcome("c", "stop"))
    run(make_services(provider), start(store, {"prompt": "q"}, "j1"))
    run(make_services(provider, provider_stream=False), start(store, {"prompt": "q"}, "j2"))
    run(make_services(provider, provider_stream=False), start(store, {"prompt": "q", "stream": True}, "j3"))
    assert provider.streamed == [True, False, True]


def test_cancel_reads_the_manifest_twice_and_keeps_the_output(
    store: JobStore, make_services, monkeypatch
) -> None:
    from longform_core.cancel import cancel_job
    from longform_core.objects import Objects

    provider = ScriptedProvider(outcome("Once upon a time", "length"))
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    generate_chunk(ChunkTaskInput(job_id=job), services, remaining_ms=lambda: 60_000)
    reads: list[str] = []
    original = Objects.get  # every read of the store goes through the one object layer
    monkeypatch.setattr(Objects, "get", lambda self, key: reads.append(key) or original(self, key))
    view, cancelled = cancel_job(job, services)
    assert (cancelled, view.status) == (True, "cancelled")
    assert sum(key.endswith("manifest.json") for key in reads) == 2  # once to look, once to commit
    result = store.get_result(job)
    assert result is not None and result.status == "cancelled"
    assert store.get_text(result.output_key) == "Once upon a time"
    # a second cancel finds the job ended: one read, nothing written
    reads.clear()
    view, cancelled = cancel_job(job, services)
    assert (cancelled, view.status) == (False, "cancelled")
    assert sum(key.endswith("manifest.json") for key in reads) == 1


# ---- finalize and cancel racing: the commit decides, every other file follows it ---------------


class Events:
    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    def publish(self, result: Any) -> None:
        self.published.append((result.job_id, result.status))


def _a_job_with_one_chunk(store: JobStore, make_services) -> tuple[Services, str, Events]:
    from longform_core.chunk import ChunkTaskInput as Task

    events = Events()
    services = make_services(ScriptedProvider(outcome("Once upon a time", "stop")))
    services.publisher = events
    job = start(store, {"prompt": "q"})
    generate_chunk(Task(job_id=job), services, remaining_ms=lambda: 60_000)
    return services, job, events


def test_a_cancel_that_commits_while_finalize_assembles_wins_and_finalize_writes_nothing(
    store: JobStore, make_services, monkeypatch
) -> None:
    from longform_core.cancel import cancel_job
    from longform_core.errors import JobStateInvalid as Conflict

    services, job, events = _a_job_with_one_chunk(store, make_services)
    original = JobStore.read_chunks
    raced: list[bool] = []

    def read_chunks_while_a_cancel_commits(self: JobStore, manifest: Manifest) -> Any:
        chunks = original(self, manifest)
        if not raced:
            raced.append(True)
            cancel_job(job, services)  # the user's DELETE, between finalize's read and its commit
        return chunks

    monkeypatch.setattr(JobStore, "read_chunks", read_chunks_while_a_cancel_commits)
    with pytest.raises(Conflict):
        finalize(FinalizeTaskInput(job_id=job), services)
    manifest, _ = store.get_manifest(job)
    result = store.get_result(job)
    assert result is not None
    assert manifest.status == result.status == "cancelled"
    assert events.published == [(job, "cancelled")]
    assert store.get_text(result.output_key) == "Once upon a time"


def test_a_finalize_that_commits_while_cancel_assembles_wins_and_cancel_reports_it(
    store: JobStore, make_services, monkeypatch
) -> None:
    from longform_core.cancel import cancel_job

    services, job, events = _a_job_with_one_chunk(store, make_services)
    original = JobStore.read_chunks
    raced: list[bool] = []

    def read_chunks_while_finalize_commits(self: JobStore, manifest: Manifest) -> Any:
        chunks = original(self, manifest)
        if not raced:
            raced.append(True)
            finalize(FinalizeTaskInput(job_id=job), services)  # the workflow's own Finalize
        return chunks

    monkeypatch.setattr(JobStore, "read_chunks", read_chunks_while_finalize_commits)
    view, cancelled = cancel_job(job, services)
    assert (view.status, cancelled) == ("succeeded", False)
    manifest, _ = store.get_manifest(job)
    result = store.get_result(job)
    assert result is not None
    assert manifest.status == result.status == "succeeded"
    assert events.published == [(job, "succeeded")]


def test_a_finalize_that_crashed_after_its_commit_writes_the_same_files_when_it_runs_again(
    store: JobStore, make_services, monkeypatch
) -> None:
    services, job, events = _a_job_with_one_chunk(store, make_services)
    original = JobStore.write_running_text
    crashes: list[bool] = []

    def crash_once(self: JobStore, job_id: str, *, answer: str, reasoning: str | None) -> None:
        if not crashes:
            crashes.append(True)
            raise ConnectionError("the invocation died after the commit")
        original(self, job_id, answer=answer, reasoning=reasoning)

    monkeypatch.setattr(JobStore, "write_running_text", crash_once)
    with pytest.raises(ConnectionError):
        finalize(FinalizeTaskInput(job_id=job), services)
    manifest, _ = store.get_manifest(job)
    assert manifest.status == "succeeded" and store.get_result(job) is None
    first = finalize(FinalizeTaskInput(job_id=job), services)  # the Retry
    result_bytes = store.s3.get_object(Bucket=store.bucket, Key=f"jobs/{job}/result.json")["Body"].read()
    again = finalize(FinalizeTaskInput(job_id=job), services)  # and once more: nothing changes
    assert first == again and first.status == "succeeded"
    assert (
        store.s3.get_object(Bucket=store.bucket, Key=f"jobs/{job}/result.json")["Body"].read() == result_bytes
    )
    assert events.published == [(job, "succeeded")]
    result = store.get_result(job)
    assert result is not None and store.get_text(result.output_key) == "Once upon a time"


def test_overlapping_attempts_of_one_chunk_commit_one_text(store: JobStore, make_services) -> None:
    """Step Functions retries while the first attempt still runs (a Lambda.ServiceException, a
    timeout the runtime did not see): the stale attempt ends without touching the stored chunk."""
    from longform_core.errors import JobStateInvalid as Conflict

    job = start(store, {"prompt": "q"})
    retry = make_services(ScriptedProvider(outcome("retry text", "length")))

    class StaleAttempt:
        def chat(
            self, body: dict[str, Any], *, deadline: float, stream: bool = True, on_progress: Any = None
        ) -> StreamOutcome:
            # while this attempt waits on the model, the retry runs to its commit
            generate_chunk(ChunkTaskInput(job_id=job), retry, remaining_ms=lambda: 60_000)
            return outcome("stale text", "length")

    with pytest.raises(Conflict):
        generate_chunk(ChunkTaskInput(job_id=job), make_services(StaleAttempt()), remaining_ms=lambda: 60_000)
    assert store.get_chunk(job, 0).text == "retry text"
    manifest, _ = store.get_manifest(job)
    assert store.read_running_text(manifest, answer_start="") == ("retry text", "")
    rest = make_services(ScriptedProvider(outcome(" and the end.", "stop")))
    assert run(rest, job) == ["stop"]
    assert rest.provider.bodies[0]["messages"][-1]["content"] == "retry text"  # continues the committed text
    finalize(FinalizeTaskInput(job_id=job), rest)
    result = store.get_result(job)
    assert result is not None and store.get_text(result.output_key) == "retry text and the end."


def test_a_length_that_adds_no_text_ends_with_a_named_stop_not_a_loop(store: JobStore, make_services) -> None:
    provider = ScriptedProvider(outcome(A, "length"), outcome("", "length", completion=3))
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "no_progress"]
    out = finalize(FinalizeTaskInput(job_id=job), services)
    result = store.get_result(job)
    assert result is not None
    # longform's own guard stopped an unfinished job: incomplete, not an error
    assert (out.status, result.incomplete_reason) == ("incomplete", "no_progress")
    assert result.stop_reason == "no_progress"
    assert result.error is None
    assert result.stop_detail == "the continuation was cut for length without any text (3 tokens generated)"
    assert store.get_text(result.output_key) == A  # the output is kept


def test_a_huge_provider_error_is_bounded_before_it_reaches_the_state_machine() -> None:
    from longform_core.errors import ERROR_TEXT_MAX, ProviderRequestInvalid
    from longform_core.provider_errors import classify_error

    error = classify_error(400, {"error": {"message": "x" * 300_000}})
    assert isinstance(error, ProviderRequestInvalid)
    assert ERROR_TEXT_MAX < len(str(error)) < ERROR_TEXT_MAX + 50
    assert str(error).endswith("(296000 more characters)")


# ---- the prefill ladder (prefill.py, seam.py) ----------------------------------------------------

OPENING = "The keepers of the Eddystone light climbed the tower every evening at dusk"


def test_a_refused_prefill_steps_down_and_the_style_is_cached(store: JobStore, make_services) -> None:
    from longform_core.errors import PrefillRejected

    refused = PrefillRejected("This model does not support assistant message prefill.")
    provider = ScriptedProvider(
        outcome(OPENING, "length"),
        refused,
        outcome(" and slept.", "stop"),  # vllm accepts it
    )
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "stop"]
    assert provider.bodies[2]["continue_final_message"] is True
    chunk = store.get_chunk(job, 1)
    assert (chunk.prefill_style, [str(s) for s in chunk.prefill_ladder]) == ("vllm", ["assistant:refused"])
    learned = store.get_learned_style(services.settings.provider_base_url, "deepseek-ai/DeepSeek-V3.2")
    assert learned is not None and (learned.style, learned.requests) == ("vllm", 2)
    # the next job starts from what was learned
    provider2 = ScriptedProvider(outcome(OPENING, "length"), outcome(" Done.", "stop"))
    job2 = start(store, {"prompt": "q"}, job_id="job2")
    assert run(make_services(provider2), job2) == ["length", "stop"]
    assert provider2.bodies[1].get("continue_final_message") is True
    assert [str(s) for s in store.get_chunk(job2, 1).prefill_ladder] == []


def test_an_explicit_style_is_not_stepped_down(store: JobStore, make_services) -> None:
    from longform_core.errors import PrefillRejected

    provider = ScriptedProvider(outcome(OPENING, "length"), PrefillRejected("prefill not supported"))
    services = make_services(provider)
    job = start(store, {"prompt": "q", "prefill_style": "assistant"})
    with pytest.raises(PrefillRejected):
        run(services, job)


def test_trailing_whitespace_refused_is_trimmed_and_the_seam_keeps_one_space(
    store: JobStore, make_services
) -> None:
    from longform_core.errors import PrefillRejected

    provider = ScriptedProvider(
        outcome(OPENING + " ", "length"),
        PrefillRejected(
            "final assistant content cannot end with trailing whitespace", reason="trailing_whitespace"
        ),
        outcome(" and slept.", "stop"),
    )
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    run(services, job)
    assert provider.bodies[2]["messages"][-1]["content"] == OPENING
    finalize(FinalizeTaskInput(job_id=job), services)
    assert store.get_text(f"jobs/{job}/output.md") == OPENING + " and slept."
    chunk = store.get_chunk(job, 1)
    assert (chunk.prefill_trimmed_chars, chunk.seam_whitespace) == (1, "dropped_leading")


def test_an_ignored_prefill_falls_back_to_the_continue_message(store: JobStore, make_services) -> None:
    provider = ScriptedProvider(
        outcome(OPENING, "length"),
        outcome(OPENING, "length"),  # assistant: the same opening again, tokens generated
        # vllm: starts over, sampled differently (the whole opening then more would be an echo)
        outcome("The keepers of the Eddystone light climbed up the stairs", "length"),
        outcome(OPENING[:30], "length"),  # prefix: a part of the opening
        outcome("Sure, continuing where I left off:\n\nevery evening at dusk and slept.", "stop"),
    )
    services = make_services(provider)
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "stop"]
    last = provider.bodies[-1]["messages"]
    assert [m["role"] for m in last[-2:]] == ["assistant", "user"]
    assert last[-2]["content"] == OPENING
    chunk = store.get_chunk(job, 1)
    assert [str(s) for s in chunk.prefill_ladder] == ["assistant:ignored", "vllm:ignored", "prefix:ignored"]
    assert chunk.seam_preamble.startswith("Sure") and chunk.seam_overlap_chars == len("every evening at dusk")
    finalize(FinalizeTaskInput(job_id=job), services)
    assert store.get_text(f"jobs/{job}/output.md") == OPENING + " and slept."


def test_a_continuation_that_only_repeats_ends_no_progress(store: JobStore, make_services) -> None:
    provider = ScriptedProvider(
        outcome(OPENING, "length"),
        outcome("climbed the tower every evening at dusk", "length"),  # all overlap
        outcome("climbed the tower every evening at dusk", "length"),  # asked again: the same
    )
    services = make_services(provider, prefill_style="continue_message")
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "no_progress"]
    assert [str(s) for s in store.get_chunk(job, 1).prefill_ladder] == ["continue_message:repeated"]
    assert finalize(FinalizeTaskInput(job_id=job), services).status == "incomplete"
    result = store.get_result(job)
    assert result is not None and result.incomplete_reason == "no_progress"
    assert result.stop_detail == (
        "the continuation (39 characters) held no new text: all of it was in the answer"
    )
    assert store.get_text(f"jobs/{job}/output.md") == OPENING


def test_a_model_stuck_repeating_a_passage_ends_repetition(store: JobStore, make_services) -> None:
    passage = "".join(f" word{i}" for i in range(40))  # 270 characters
    provider = ScriptedProvider(outcome(OPENING, "length"), outcome(passage * 3, "length"))
    services = make_services(provider, prefill_style="assistant")
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "repetition"]
    result = finalize(FinalizeTaskInput(job_id=job), services)
    assert result.status == "incomplete"
    stored = store.get_result(job)
    assert stored is not None and stored.stop_reason == stored.incomplete_reason == "repetition"
    assert stored.error is None
    assert stored.stop_detail == "the last 200 characters repeated 3 times: the model is looping"
    assert stored.chunk_prefill_styles == ["none", "assistant"]
    assert store.get_text(f"jobs/{job}/output.md") == OPENING + passage * 3  # the output is kept


@pytest.mark.parametrize(
    ("script", "raw", "error"),
    [
        ((outcome("More text.", "stop"),), {"prompt": "p"}, None),  # a chunk committed
        (
            (ContextWindowExceeded("full", limit=ContextLimit(context_length=10, prompt_tokens=10)),),
            {"prompt": "p"},
            ContextExhausted,
        ),
        ((), {"prompt": "p", "max_output_tokens": 1}, None),  # a budget reached before the chunk
    ],
)
def test_an_attempt_never_changes_the_job_it_read(
    store: JobStore,
    make_services,
    monkeypatch: pytest.MonkeyPatch,
    script: tuple[Any, ...],
    raw: dict[str, Any],
    error: type[Exception] | None,
) -> None:
    """The attempt's snapshot (chunk_job.ChunkJob) stays as read: the commit, the context
    exhaustion and the budget stop each move their own copy of the manifest on (issue 17)."""
    import longform_core.chunk as chunk_module

    read: list[tuple[Any, dict[str, Any]]] = []

    def spy(*args: Any) -> Any:
        job = chunk_module.read_job.__wrapped__(*args)  # type: ignore[attr-defined]
        read.append((job, job.manifest.model_dump()))
        return job

    spy.__wrapped__ = chunk_module.read_job  # type: ignore[attr-defined]
    monkeypatch.setattr(chunk_module, "read_job", spy)
    job_id = start(store, raw)
    if raw.get("max_output_tokens"):
        manifest, etag = store.get_manifest(job_id)
        manifest.completion_tokens_total = 5
        store.put_manifest(manifest, if_match=etag)
    services = make_services(ScriptedProvider(*script))
    if error is None:
        generate_chunk(ChunkTaskInput(job_id=job_id), services, remaining_ms=lambda: 600_000)
    else:
        with pytest.raises(error):
            generate_chunk(ChunkTaskInput(job_id=job_id), services, remaining_ms=lambda: 600_000)
    ((job, as_read),) = read
    assert job.manifest.model_dump() == as_read
    assert store.get_manifest(job_id)[0].model_dump() != as_read  # the committed copy moved on
