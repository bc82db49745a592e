"""The batch output format: one line per input line, in input order, in the OpenAI Batch output shape.

Pure: a line is a function of the item, the job's terminal manifest, its result and its text::

    {"id": "batch_req_{job_id}", "custom_id": "acme",
     "response": {"status_code": 200, "request_id": "{job_id}",
                  "body": {an OpenAI chat.completion: the whole assembled text as the message content,
                           finish_reason, usage summed over every chunk}},
     "error": null,
     "longform": {"job_id", "status", "finish_reason", "stop_reason", "chunks", "estimated_cost_usd", ...}}

The status decides (``job_status.STATUSES``): ``succeeded``, ``context_exhausted`` and
``incomplete`` lines answer 200 with ``error`` null (an ``incomplete`` line is what a provider
answers for a reply cut by ``max_tokens``: a 200 whose ``finish_reason`` is ``length``; why is in
``longform.incomplete_reason``). A ``failed`` line answers 500 and a ``cancelled`` one 499 (the
request was given up), each with ``error`` (``code`` = the status, ``message`` = why) and, when the
job had generated anything, the partial text in ``body`` as a chat.completion whose
``finish_reason`` is ``length``; a line that never started has ``response`` null.
``finish_reason`` in the body keeps to OpenAI's values (``stop``, ``length``, ``content_filter``,
``tool_calls``): ``length`` for every status but ``succeeded``; longform's own finish and stop
reasons are under ``longform``.
"""

from __future__ import annotations

import json
from typing import Any

from ..job_status import STATUSES
from ..models import JobResult, JobStatus, Manifest
from .models import BatchItem

OPENAI_FINISH = {"stop": "stop", "content_filter": "content_filter", "tool_calls": "tool_calls"}
NOT_STARTED = "cancelled before it started"
NEVER_RAN = "the batch failed before this line started"


def openai_finish_reason(result: JobResult) -> str:
    """``stop`` when the model said so; a job that is not finished (incomplete, its context window
    full, failed, cancelled) is ``length``."""
    forced = STATUSES[result.status].openai_finish
    return forced if forced is not None else OPENAI_FINISH.get(str(result.finish_reason), "length")


def status_code(result: JobResult) -> int:
    return STATUSES[result.status].batch_status_code or 500


def chat_completion(result: JobResult, *, text: str, reasoning: str | None, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if reasoning:
        message["reasoning_content"] = reasoning
    completion = result.output_tokens
    return {
        "id": f"chatcmpl-{result.job_id}",
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": openai_finish_reason(result), "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": result.prompt_tokens_total,
            "completion_tokens": completion,
            "total_tokens": result.prompt_tokens_total + completion,
            "prompt_tokens_details": {"cached_tokens": result.cached_tokens},
        },
    }


def longform_fields(result: JobResult) -> dict[str, Any]:
    return {
        **result.ending_fields(),
        "output_tokens": result.output_tokens,
        "output_chars": result.output_chars,
        "estimated_cost_usd": result.estimated_cost_usd,
        "context_used": result.context_used,
        "duration_seconds": result.duration_seconds,
        "prefill_style": result.prefill_style,
        "error": result.error,
    }


def not_started_status(manifest: Manifest | None, batch_failed: bool) -> JobStatus:
    """The status of a line whose job never ran: failed with its batch, else cancelled."""
    if manifest is not None:
        return manifest.status
    return "failed" if batch_failed else "cancelled"


def output_line(
    item: BatchItem,
    result: JobResult | None,
    *,
    text: str,
    reasoning: str | None,
    manifest: Manifest | None,
    batch_error: str | None = None,
) -> dict[str, Any]:
    """The output line of one input line (``result`` None: the line's job never started).

    ``batch_error``: the batch failed (its SplitBatch, say) with this error, so a line that never
    started failed with it: nobody cancelled it.
    """
    if result is None:
        failed = batch_error is not None
        code = "failed" if failed else "cancelled"
        message = f"{NEVER_RAN}: {batch_error}" if failed else NOT_STARTED
        return {
            "id": f"batch_req_{item.job_id}",
            "custom_id": item.custom_id,
            "response": None,
            "error": {"code": code, "message": message},
            "longform": {
                "job_id": item.job_id,
                "status": not_started_status(manifest, failed),
                "line": item.line,
                "chunks": 0,
                "output_tokens": 0,
                "estimated_cost_usd": None,
                "error": message,
            },
        }
    created = int(result.finished_at.timestamp())
    ok = status_code(result) == 200
    response: dict[str, Any] | None = None
    if ok or text or reasoning:
        response = {
            "status_code": status_code(result),
            "request_id": result.job_id,
            "body": chat_completion(result, text=text, reasoning=reasoning, created=created),
        }
    error = None
    if not ok:
        message = result.error or ("cancelled on request" if result.status == "cancelled" else "failed")
        error = {"code": result.status, "message": message}
    return {
        "id": f"batch_req_{item.job_id}",
        "custom_id": item.custom_id,
        "response": response,
        "error": error,
        "longform": {**longform_fields(result), "line": item.line},
    }


def encode_line(line: dict[str, Any]) -> bytes:
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()
