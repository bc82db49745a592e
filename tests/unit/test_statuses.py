"""The status model (``job_status.py``): one definition, and every case where the status used to lie.

Each case below was seen on main: a job cut by its own budget shown ``succeeded``; a job ``queued``
while it generated; a cancel that dropped the chunk in flight; a looping model ended ``failed``
with "the continuation added no text". Each asserts on content: the status, ``result.json``, the
API view, the completion event, the batch line and the text in S3.
"""

from __future__ import annotations

from typing import Any, get_args

import pytest
from longform_core.batch.models import BatchCounts, BatchItem
from longform_core.batch.output import output_line
from longform_core.cancel import cancel_job
from longform_core.config import Settings
from longform_core.errors import ManifestConflict
from longform_core.finalize import FinalizeTaskInput, finalize
from longform_core.job_status import (
    INCOMPLETE_REASONS,
    NATURAL_ENDS,
    STATUSES,
    TERMINAL_STATUSES,
    JobStatus,
    exit_code,
    incomplete_reason,
)
from longform_core.job_store import JobKeys, JobStore
from longform_core.models import InFlightChunk, JobResult, StopReason
from longform_core.notify import finished_event_detail
from longform_core.services import Services
from longform_core.status import get_job

from tests.unit import test_draft as drafts
from tests.unit.test_chunk_and_finalize import OPENING, ScriptedProvider, outcome, run, start


@pytest.fixture
def make_services(store: JobStore) -> Any:
    def factory(provider: ScriptedProvider, **settings: Any) -> Services:
        return Services(
            settings=Settings(jobs_bucket=store.bucket, **settings), store=store, provider=provider
        )

    return factory


# ---- the definition --------------------------------------------------------------------------------


def test_one_definition_covers_every_status() -> None:
    assert set(STATUSES) == set(get_args(JobStatus))
    assert {s for s, m in STATUSES.items() if m.exit_code is not None} == TERMINAL_STATUSES
    assert NATURAL_ENDS <= TERMINAL_STATUSES
    assert {s: exit_code(s) for s in TERMINAL_STATUSES} == {
        "succeeded": 0,
        "context_exhausted": 0,
        "incomplete": 3,
        "failed": 1,
        "cancelled": 1,
    }
    # every status that is not the model's own end is `length` on a batch line
    assert {s for s, m in STATUSES.items() if m.openai_finish == "length"} == TERMINAL_STATUSES - {
        "succeeded"
    }
    # a batch's counts have a field for every status
    assert set(STATUSES) <= set(BatchCounts.model_fields)


@pytest.mark.parametrize("stop", get_args(StopReason))
def test_every_stop_reason_maps_to_at_most_one_incomplete_reason(stop: str) -> None:
    reason = incomplete_reason(stop)
    budgets_and_guards = {"max_output_tokens", "max_chunks", "max_cost", "repetition", "no_progress"}
    if stop in budgets_and_guards:
        assert reason == stop
    elif stop == "reasoning_loop":
        assert reason == "no_progress"  # only reasoning: no progress on the answer
    else:
        assert reason is None
    assert reason is None or reason in INCOMPLETE_REASONS


# ---- a job cut by its own budget is incomplete everywhere ---------------------------------------------


class Events:
    def __init__(self) -> None:
        self.published: list[JobResult] = []

    def publish(self, result: JobResult) -> None:
        self.published.append(result)


def test_a_budget_cut_job_is_incomplete_in_the_result_the_api_the_event_and_the_batch_line(
    store: JobStore, make_services: Any
) -> None:
    """Seen: ``succeeded`` in the API, list, show, result.json and the event, while ``run`` said
    "the text is not finished" and exited 3."""
    provider = ScriptedProvider(outcome(OPENING, "length", completion=50))
    services = make_services(provider)
    services.publisher = Events()
    job = start(store, {"prompt": "q", "max_output_tokens": 50})
    assert run(services, job) == ["budget"]
    out = finalize(FinalizeTaskInput(job_id=job), services)
    assert out.status == "incomplete"
    result = store.get_result(job)
    assert result is not None
    assert (result.status, result.incomplete_reason, result.stop_reason) == (
        "incomplete",
        "max_output_tokens",
        "max_output_tokens",
    )
    assert result.stop_detail == (
        "the max_output_tokens budget (50 tokens) was reached: 50 tokens generated; the text is not finished"
    )
    assert result.error is None
    assert store.get_text(result.output_key) == OPENING  # the text is kept
    view = get_job(job, services)
    assert (view.status, view.incomplete_reason) == ("incomplete", "max_output_tokens")
    assert view.stop_detail == result.stop_detail
    (event,) = services.publisher.published
    detail = finished_event_detail(event, bucket=store.bucket)
    assert (detail["status"], detail["incomplete_reason"]) == ("incomplete", "max_output_tokens")
    manifest, _ = store.get_manifest(job)
    line = output_line(
        BatchItem(job_id=job, custom_id="c", line=1), result, text=OPENING, reasoning=None, manifest=manifest
    )
    assert line["error"] is None and line["response"]["status_code"] == 200
    assert line["response"]["body"]["choices"][0]["finish_reason"] == "length"
    assert line["response"]["body"]["choices"][0]["message"]["content"] == OPENING
    assert (line["longform"]["status"], line["longform"]["incomplete_reason"]) == (
        "incomplete",
        "max_output_tokens",
    )
    assert exit_code(result.status) == 3


def test_max_chunks_ends_incomplete_with_its_reason(store: JobStore, make_services: Any) -> None:
    services = make_services(ScriptedProvider(outcome("One. ", "length"), outcome("Two. ", "length")))
    job = start(store, {"prompt": "q", "max_chunks": 2})
    assert run(services, job) == ["length", "budget"]
    assert finalize(FinalizeTaskInput(job_id=job), services).status == "incomplete"
    result = store.get_result(job)
    assert result is not None and result.incomplete_reason == "max_chunks"
    assert (
        result.stop_detail
        == "the max_chunks budget (2 chunks) was reached: 10 tokens generated; the text is not finished"
    )


def test_max_cost_ends_incomplete_with_its_reason(store: JobStore, make_services: Any) -> None:
    from dataclasses import replace

    from longform_core.sse import Usage

    usage = Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15, estimated_cost=0.002)
    services = make_services(ScriptedProvider(replace(outcome("One. ", "length"), usage=usage)))
    job = start(store, {"prompt": "q", "max_cost_usd": 0.001})
    assert run(services, job) == ["budget"]
    assert finalize(FinalizeTaskInput(job_id=job), services).status == "incomplete"
    result = store.get_result(job)
    assert result is not None and result.incomplete_reason == "max_cost"
    assert (
        result.stop_detail
        == "the max_cost_usd budget ($0.001) was reached: $0.002 estimated; the text is not finished"
    )


# ---- running from the first chunk attempt ----------------------------------------------------------


def test_a_job_is_running_from_the_moment_its_first_chunk_starts(store: JobStore) -> None:
    """Seen: ``queued`` with ``started_at: null`` for 87 s and a 7,674-token draft."""
    words = [f"word{n} " for n in range(30)]
    provider = drafts.ScriptedProvider(words, seconds_per_delta=0.1)
    services = drafts.make_services(store, provider, draft_interval_seconds=1.0, draft_min_tokens=0)
    drafts.start(store)
    assert get_job(drafts.JOB, services).status == "queued"  # nothing started yet
    provider.watch = lambda n: (lambda v: (v.status, v.started_at is not None, v.draft is not None))(
        get_job(drafts.JOB, services)
    )
    drafts.chunk(services)
    assert provider.during[0] == ("running", True, False)  # before the first draft: running already
    assert provider.during[-1] == ("running", True, True)
    manifest, _ = store.get_manifest(drafts.JOB)
    assert manifest.status == "running" and manifest.started_at is not None
    assert manifest.started_at <= store.get_chunk(drafts.JOB, 0).started_at


def test_a_draft_implies_running_even_on_a_queued_manifest(store: JobStore) -> None:
    """A manifest written before the chunk marked it (or by an older version) with a draft beside it."""
    drafts.start(store)
    _, etag = store.get_manifest(drafts.JOB)
    store.put_draft(drafts.a_draft(index=0, base_etag=etag, content="Some text", answer_text="Some text"))
    services = drafts.make_services(store, drafts.ScriptedProvider())
    view = get_job(drafts.JOB, services)
    assert view.status == "running" and view.started_at is not None and view.draft is not None


# ---- cancel keeps the chunk in flight ---------------------------------------------------------------


def test_cancel_keeps_the_text_of_the_chunk_in_flight(store: JobStore) -> None:
    """Seen: ``output --follow`` showed about 1,500 words; after ``cancel`` the output was empty."""
    drafts.commit_first_chunk(store)
    words = [f"word{n} " for n in range(50)]
    provider = drafts.ScriptedProvider(words, seconds_per_delta=0.1)
    services = drafts.make_services(store, provider, draft_interval_seconds=1.0, draft_min_tokens=0)
    seen: dict[str, Any] = {}

    def cancel_mid_stream(n: int) -> None:
        if n == 35:  # mid-stream, after a few checkpoints
            draft = store.get_draft(drafts.JOB, 1)
            assert draft is not None
            seen["draft"] = draft
            seen["cancel"] = cancel_job(drafts.JOB, services)

    provider.watch = cancel_mid_stream
    with pytest.raises(ManifestConflict):  # the attempt's own commit loses to the cancel
        drafts.chunk(services)
    view, cancelled = seen["cancel"]
    assert cancelled and view.status == "cancelled"
    draft = seen["draft"]
    assert draft.answer_text and "".join(words).startswith(draft.answer_text)
    result = store.get_result(drafts.JOB)
    assert result is not None and result.status == "cancelled"
    # the committed chunk and the in-flight chunk's draft, marked as such in result.json
    assert store.get_text(JobKeys(drafts.JOB).output) == drafts.FIRST + draft.answer_text
    assert result.output_chars == len(drafts.FIRST + draft.answer_text)
    assert result.in_flight_chunk == InFlightChunk(
        chunk_index=1, chars=len(draft.answer_text), tokens=draft.tokens
    )
    assert result.chunks == 2
    record = store.get_chunk(drafts.JOB, 1)
    assert record.cancelled_draft and record.from_draft and record.finish_reason == "interrupted"
    # the job stays ended, with that text: the stale attempt wrote nothing over it
    manifest, _ = store.get_manifest(drafts.JOB)
    assert manifest.status == "cancelled" and manifest.chunks == 2


def test_cancel_ignores_a_draft_of_another_manifest_version(store: JobStore) -> None:
    drafts.commit_first_chunk(store)
    store.put_draft(
        drafts.a_draft(index=1, base_etag='"stale"', content="stale words", answer_text="stale words")
    )
    services = drafts.make_services(store, drafts.ScriptedProvider())
    cancel_job(drafts.JOB, services)
    result = store.get_result(drafts.JOB)
    assert result is not None and result.in_flight_chunk is None and result.chunks == 1
    assert store.get_text(JobKeys(drafts.JOB).output) == drafts.FIRST


# ---- a looping model is incomplete (repetition), not failed -------------------------------------------

LOOP = " and the stories would spread,"  # 30 characters, what SmolLM2 said over and over


def test_a_looping_model_ends_incomplete_repetition_not_failed(store: JobStore, make_services: Any) -> None:
    """Seen against llama.cpp: ``failed``, ``no_progress``, "the continuation added no text" while
    the model was adding text: repeating itself."""
    provider = ScriptedProvider(outcome(OPENING + LOOP * 10, "length"), outcome(LOOP * 8, "length"))
    services = make_services(provider, prefill_style="assistant")
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "repetition"]
    assert finalize(FinalizeTaskInput(job_id=job), services).status == "incomplete"
    result = store.get_result(job)
    assert result is not None
    assert (result.status, result.incomplete_reason, result.error) == ("incomplete", "repetition", None)
    assert (
        result.stop_detail
        == "the continuation only repeated 240 characters of the answer (the model is looping)"
    )
    assert "added no text" not in (result.stop_detail or "")
    assert store.get_text(result.output_key) == OPENING + LOOP * 10  # the loop is not appended again


def test_stop_on_repetition_false_lets_the_model_run_on(store: JobStore, make_services: Any) -> None:
    """The naive semantics, asked for: the repeated text is kept and the job goes on to its end."""
    provider = ScriptedProvider(
        outcome(OPENING + LOOP * 10, "length"),
        outcome(LOOP * 8, "length"),
        outcome(LOOP * 30, "length"),  # the in-chunk guard (last 200 characters 3 times) is off too
        outcome(" The end.", "stop"),
    )
    services = make_services(provider, prefill_style="assistant")
    job = start(store, {"prompt": "q", "stop_on_repetition": False})
    assert run(services, job) == ["length", "length", "length", "stop"]
    assert finalize(FinalizeTaskInput(job_id=job), services).status == "succeeded"
    assert store.get_text(f"jobs/{job}/output.md") == OPENING + LOOP * 48 + " The end."


def test_a_loop_inside_one_chunk_says_what_was_seen(store: JobStore, make_services: Any) -> None:
    provider = ScriptedProvider(outcome(OPENING, "length"), outcome(LOOP * 30, "length"))
    services = make_services(provider, prefill_style="assistant")
    job = start(store, {"prompt": "q"})
    assert run(services, job) == ["length", "repetition"]
    finalize(FinalizeTaskInput(job_id=job), services)
    result = store.get_result(job)
    assert result is not None and (result.status, result.incomplete_reason) == ("incomplete", "repetition")
    assert result.stop_detail is not None
    assert result.stop_detail.startswith("the last 200 characters repeated ")
    assert store.get_text(result.output_key) == OPENING + LOOP * 30  # nothing generated is lost


def test_cancel_keeps_a_draft_that_is_being_rewritten_as_it_reads(store: JobStore) -> None:
    """The local runtime's S3 (moto) can hand a reader the buffer of a draft the chunk is replacing
    ("I/O operation on closed file"): seen in the soak as a cancel that raised and left the job
    ``running``. The read is tried again; the cancel ends the job with the draft kept."""
    drafts.commit_first_chunk(store)
    _, etag = store.get_manifest(drafts.JOB)
    store.put_draft(drafts.a_draft(index=1, base_etag=etag, content="More words.", answer_text="More words."))
    real_get = store.s3.get_object
    replaced: list[str] = []

    def get_object(**kwargs: Any) -> Any:
        if kwargs["Key"] == JobKeys(drafts.JOB).draft(1) and not replaced:
            replaced.append(kwargs["Key"])
            raise ValueError("I/O operation on closed file.")
        return real_get(**kwargs)

    store.s3.get_object = get_object  # type: ignore[method-assign]
    view, cancelled = cancel_job(drafts.JOB, drafts.make_services(store, drafts.ScriptedProvider()))
    assert replaced and cancelled and view.status == "cancelled"
    result = store.get_result(drafts.JOB)
    assert result is not None and result.in_flight_chunk is not None
    assert store.get_text(JobKeys(drafts.JOB).output) == drafts.FIRST + "More words."
