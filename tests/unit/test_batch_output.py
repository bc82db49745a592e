"""The batch output line: the OpenAI Batch output shape, its body an OpenAI chat.completion.

``BatchOutputLine`` is the line as OpenAI documents its batch output files (``id``, ``custom_id``,
``response`` {``status_code``, ``request_id``, ``body``}, ``error`` {``code``, ``message``}); the body
is validated with the ``openai`` package's own ``ChatCompletion`` type.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from longform_core.batch.models import BatchItem
from longform_core.batch.output import encode_line, openai_finish_reason, output_line
from longform_core.models import JobResult
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict


class BatchResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status_code: int
    request_id: str
    body: dict[str, Any]


class BatchError(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    message: str


class BatchOutputLine(BaseModel):
    """One line of an OpenAI Batch output file (plus longform's own key)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    custom_id: str
    response: BatchResponse | None
    error: BatchError | None
    longform: dict[str, Any]


def validate(line: dict[str, Any]) -> BatchOutputLine:
    """The line as a user's parser sees it: through JSON, then the types."""
    parsed = BatchOutputLine.model_validate(json.loads(encode_line(line)))
    if parsed.response is not None:
        ChatCompletion.model_validate(parsed.response.body)
    return parsed


def result(status: str = "succeeded", **overrides: Any) -> JobResult:
    finished = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    fields: dict[str, Any] = {
        "job_id": "b-" + "0" * 40 + "-000003",
        "status": status,
        "finish_reason": "stop",
        "stop_reason": "stop",
        "model": "deepseek-ai/DeepSeek-V3.2",
        "chunks": 3,
        "prompt_tokens": 40,
        "prompt_tokens_total": 3_000,
        "output_tokens": 40_000,
        "cached_tokens": 1_200,
        "estimated_cost_usd": 0.0123,
        "context_length": None,
        "output_key": "jobs/x/output.md",
        "reasoning_key": None,
        "output_chars": 11,
        "reasoning_chars": 0,
        "created_at": finished - timedelta(minutes=5),
        "started_at": finished - timedelta(minutes=4),
        "finished_at": finished,
        "duration_seconds": 240.0,
        "chunk_durations_ms": [1, 2, 3],
    }
    fields.update(overrides)
    return JobResult(**fields)


ITEM = BatchItem(job_id="b-" + "0" * 40 + "-000003", custom_id="acme", line=4)


def test_a_succeeded_line_is_a_chat_completion_with_the_whole_text_and_summed_usage() -> None:
    line = output_line(ITEM, result(), text="Whole text.", reasoning=None, manifest=None)
    parsed = validate(line)
    assert parsed.id == f"batch_req_{ITEM.job_id}"
    assert parsed.custom_id == "acme"
    assert parsed.error is None
    assert parsed.response is not None
    assert parsed.response.status_code == 200
    completion = ChatCompletion.model_validate(parsed.response.body)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Whole text."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 3_000  # every chunk's prompt
    assert completion.usage.completion_tokens == 40_000
    assert completion.usage.total_tokens == 43_000
    assert completion.created == int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp())
    own = parsed.longform
    assert (own["status"], own["stop_reason"], own["chunks"], own["line"]) == ("succeeded", "stop", 3, 4)
    assert own["estimated_cost_usd"] == 0.0123


def test_reasoning_rides_along_as_reasoning_content() -> None:
    line = output_line(ITEM, result(), text="Answer", reasoning="Thoughts", manifest=None)
    body = validate(line).response.body  # type: ignore[union-attr]
    assert body["choices"][0]["message"]["reasoning_content"] == "Thoughts"


@pytest.mark.parametrize(
    ("status", "finish", "stop", "expected"),
    [
        ("succeeded", "stop", "stop", "stop"),
        ("incomplete", "budget", "max_output_tokens", "length"),
        ("incomplete", "repetition", "repetition", "length"),
        ("incomplete", "no_progress", "no_progress", "length"),
        ("succeeded", "content_filter", "content_filter", "content_filter"),
        ("context_exhausted", "context_exhausted", "context_exhausted", "length"),
        ("cancelled", "length", None, "length"),
        ("failed", "length", "error", "length"),
    ],
)
def test_finish_reasons_keep_to_openais_values(status: str, finish: str, stop: str, expected: str) -> None:
    assert openai_finish_reason(result(status, finish_reason=finish, stop_reason=stop)) == expected


def test_a_context_exhausted_line_is_a_200_with_its_text() -> None:
    line = output_line(
        ITEM,
        result("context_exhausted", finish_reason="context_exhausted", stop_reason="context_exhausted"),
        text="All that fit.",
        reasoning=None,
        manifest=None,
    )
    parsed = validate(line)
    assert parsed.error is None
    assert parsed.response is not None
    assert parsed.response.status_code == 200
    assert parsed.longform["status"] == "context_exhausted"


def test_a_failed_line_carries_its_error_and_partial_text() -> None:
    failed = result("failed", finish_reason="length", stop_reason="error", error="ProviderUnavailable: 503")
    parsed = validate(output_line(ITEM, failed, text="Half of it", reasoning=None, manifest=None))
    assert parsed.error == BatchError(code="failed", message="ProviderUnavailable: 503")
    assert parsed.response is not None
    assert parsed.response.status_code == 500
    assert parsed.response.body["choices"][0]["message"]["content"] == "Half of it"
    assert parsed.response.body["choices"][0]["finish_reason"] == "length"


def test_a_cancelled_line_without_text_has_no_response() -> None:
    cancelled = result("cancelled", finish_reason=None, stop_reason=None, output_tokens=0, chunks=0)
    parsed = validate(output_line(ITEM, cancelled, text="", reasoning=None, manifest=None))
    assert parsed.response is None
    assert parsed.error == BatchError(code="cancelled", message="cancelled on request")


def test_a_line_that_never_started_is_cancelled_without_a_job() -> None:
    parsed = validate(output_line(ITEM, None, text="", reasoning=None, manifest=None))
    assert parsed.response is None
    assert parsed.error is not None
    assert parsed.error.code == "cancelled"
    assert parsed.longform["status"] == "cancelled"
    assert parsed.longform["line"] == 4


def test_lines_are_one_json_document_each() -> None:
    data = encode_line(output_line(ITEM, result(), text="a\nb\n", reasoning=None, manifest=None))
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1  # newlines in the text are escaped
