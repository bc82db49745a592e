"""The manifest's rules (models.Manifest): every change a chunk attempt or finalize makes to a
manifest is one of its methods, and the attempt changes its own copy, never the job it read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from longform_core.chunk_job import ChunkJob
from longform_core.echo import SentPrefill
from longform_core.models import ChunkRecord, Manifest, TextState
from longform_core.request import GenerationRequest

T = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def manifest(**kw: object) -> Manifest:
    return Manifest.model_validate({"job_id": "j", "model": "m", "status": "running", **kw})


def record(**kw: object) -> ChunkRecord:
    base = {"job_id": "j", "index": 0, "text": "", "finish_reason": "length", "max_tokens": 10}
    return ChunkRecord.model_validate({**base, "started_at": T, "duration_ms": 1, **kw})


def test_record_outcome_keeps_what_a_guard_saw_only_for_the_guards_stops() -> None:
    m = manifest(stop_detail="old")
    m.record_outcome("repetition", "repetition", detail="the last 200 characters repeated 3 times")
    assert (m.last_finish_reason, m.stop_reason, m.stop_detail) == (
        "repetition",
        "repetition",
        "the last 200 characters repeated 3 times",
    )
    m.record_outcome("budget", "max_chunks", detail="seen but not a guard's stop")
    assert (m.last_finish_reason, m.stop_reason, m.stop_detail) == ("budget", "max_chunks", None)
    m.record_outcome("length", None, detail=None)
    assert (m.last_finish_reason, m.stop_reason, m.stop_detail) == ("length", None, None)


def test_record_stop_without_chunk_is_a_budget_finish_with_the_reason() -> None:
    m = manifest(chunks=3)
    m.record_stop_without_chunk("max_output_tokens")
    assert (m.last_finish_reason, m.stop_reason, m.chunks) == ("budget", "max_output_tokens", 3)


@pytest.mark.parametrize(("learned", "expected"), [(4096, 4096), (None, 8192), (0, 8192)])
def test_record_context_exhausted_keeps_a_learned_context_length(learned: int | None, expected: int) -> None:
    m = manifest(context_length=8192)
    m.record_context_exhausted(learned)
    assert (m.stop_reason, m.context_length) == ("context_exhausted", expected)


def test_record_style_source() -> None:
    m = manifest(prefill_style_source="cache")
    m.record_style_source("learned")
    assert m.prefill_style_source == "learned"


def test_record_end_commits_the_terminal_status_and_keeps_what_was_known() -> None:
    m = manifest(error="earlier", stop_detail="a guard saw it", context_length=None)
    m.record_end(
        "failed",
        now=T,
        error=None,
        incomplete_reason=None,
        detail=None,
        context_length=32768,
        answer_chars=10,
        reasoning_chars=2,
    )
    assert (m.status, m.finished_at, m.error, m.stop_detail) == ("failed", T, "earlier", "a guard saw it")
    assert (m.stop_reason, m.context_length, m.answer_chars, m.reasoning_chars) == ("error", 32768, 10, 2)
    ended = manifest(stop_reason="max_chunks", context_length=4096)
    ended.record_end(
        "incomplete",
        now=T,
        error=None,
        incomplete_reason="max_chunks",
        detail="8 chunks",
        context_length=32768,
        answer_chars=0,
        reasoning_chars=0,
    )
    assert (ended.stop_reason, ended.context_length, ended.incomplete_reason, ended.stop_detail) == (
        "max_chunks",
        4096,
        "max_chunks",
        "8 chunks",
    )


def test_text_state_after_a_chunk_is_the_recorded_split_and_the_committed_lengths() -> None:
    chunk = record(
        text="def", reasoning="xy", format_after="inline", phase_after="reasoning", held_after="</th"
    )
    state = TextState.after_chunk(chunk, answer_before="abc", reasoning_before="r")
    assert state == TextState(
        reasoning_format="inline",
        reasoning_phase="reasoning",
        held_text="</th",
        answer_chars=6,
        reasoning_chars=3,
    )


def test_an_attempt_moves_its_own_copy_of_the_manifest_never_the_job_it_read() -> None:
    read = manifest(chunks=2, stop_reason=None)
    job = ChunkJob(GenerationRequest.model_validate({"prompt": "p"}), read, '"e"', "a", "", SentPrefill("a"))
    mine = job.next_manifest()
    mine.record_stop_without_chunk("max_chunks")
    mine.infra.lambda_invocations += 1
    assert (job.manifest.stop_reason, job.manifest.last_finish_reason) == (None, None)
    assert job.manifest.infra.lambda_invocations == read.infra.lambda_invocations == 0
