"""The two wire formats that say how a job ended, pinned key by key and in order: the ``Generation
Finished`` event's detail (``notify.finished_event_detail``) and a batch line's ``longform`` object
(``batch/output.longform_fields``). They share their first seven fields, built by one function."""

from __future__ import annotations

from typing import Any

from longform_core.batch.output import longform_fields
from longform_core.models import JobResult
from longform_core.notify import finished_event_detail

RESULT = JobResult.model_validate_json("""{
    "job_id": "j1", "status": "incomplete", "finish_reason": "budget", "stop_reason": "max_chunks",
    "incomplete_reason": "max_chunks", "stop_detail": "3 chunks", "error": null, "model": "m",
    "chunks": 3, "prompt_tokens": 12, "prompt_tokens_total": 400, "output_tokens": 300,
    "cached_tokens": 20, "estimated_cost_usd": 0.25, "context_length": 4096, "context_used": 0.5,
    "output_key": "jobs/j1/output.md", "reasoning_key": null, "output_chars": 1200, "reasoning_chars": 0,
    "created_at": "2026-01-01T00:00:00Z", "started_at": "2026-01-01T00:00:00Z",
    "finished_at": "2026-01-01T00:00:00Z", "duration_seconds": 7.5, "chunk_durations_ms": [1, 2, 3],
    "prefill_style": "assistant"
}""")

SHARED: list[tuple[str, Any]] = [
    ("job_id", "j1"),
    ("status", "incomplete"),
    ("finish_reason", "budget"),
    ("stop_reason", "max_chunks"),
    ("incomplete_reason", "max_chunks"),
    ("stop_detail", "3 chunks"),
    ("chunks", 3),
]


def test_the_event_detail_is_pinned() -> None:
    assert list(finished_event_detail(RESULT, bucket="b").items()) == [
        *SHARED,
        ("prompt_tokens", 12),
        ("output_tokens", 300),
        ("estimated_cost_usd", 0.25),
        ("infrastructure_cost", None),
        ("output", {"bucket": "b", "key": "jobs/j1/output.md", "uri": "s3://b/jobs/j1/output.md"}),
        ("result_key", "jobs/j1/result.json"),
        ("error", None),
    ]


def test_the_batch_line_fields_are_pinned() -> None:
    assert list(longform_fields(RESULT).items()) == [
        *SHARED,
        ("output_tokens", 300),
        ("output_chars", 1200),
        ("estimated_cost_usd", 0.25),
        ("context_used", 0.5),
        ("duration_seconds", 7.5),
        ("prefill_style", "assistant"),
        ("error", None),
    ]
