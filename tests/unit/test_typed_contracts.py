"""Typed contracts instead of strings (issue 17 item 7): the prefill ladder's steps, the provider's
outcome kinds and the causes of a retried outage. Stored files keep their wire form: a chunk record,
a manifest and a learned style written before the types existed (``tests/unit/stored/``, written by
the code of commit 6961bcc) read back and write out byte for byte the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from longform_core.errors import OutageCause, ProviderRateLimited, ProviderUnavailable
from longform_core.models import ChunkRecord, Manifest
from longform_core.prefill import LadderStep, LearnedStyle, Rung, StepReason, next_rung
from longform_core.provider_errors import classify_error, describe_retryable
from longform_core.provider_stream import OutcomeKind, StreamOutcome
from pydantic import ValidationError

STORED = Path(__file__).parent / "stored"


@pytest.mark.parametrize(
    ("name", "model"),
    [("chunk_000003.json", ChunkRecord), ("manifest.json", Manifest), ("style.json", LearnedStyle)],
)
def test_a_stored_file_round_trips_byte_for_byte(
    name: str, model: type[ChunkRecord | Manifest | LearnedStyle]
) -> None:
    """Files written by 6961bcc's code read back and are written again unchanged; a field added
    since (``ADDED_SINCE``) is only added, at its default, nothing else moves."""
    raw = (STORED / name).read_text()
    again = model.model_validate_json(raw).model_dump_json(indent=1)
    added = ADDED_SINCE.get(name)
    if added is None:
        assert again == raw
    else:
        assert json.loads(again) == {**json.loads(raw), **added}
        assert list(json.loads(again))[: len(json.loads(raw))] == list(json.loads(raw))


# fields a model gained after the stored files were written (their defaults)
ADDED_SINCE: dict[str, dict[str, object]] = {
    "manifest.json": {"reopened": [], "last_usage_estimated": False},
    "chunk_000003.json": {"billed_request": None, "billed_records": 0, "completion_counted": False},
}


def test_stored_ladder_strings_read_as_typed_steps() -> None:
    chunk = ChunkRecord.model_validate_json((STORED / "chunk_000003.json").read_text())
    assert chunk.prefill_ladder == [
        LadderStep(Rung("assistant", trim=True), StepReason.TRAILING_WHITESPACE),
        LadderStep(Rung("vllm", trim=True), StepReason.REFUSED),
        LadderStep(Rung("prefix", trim=True), StepReason.IGNORED),
        LadderStep(Rung("completion"), StepReason.REFUSED),
        LadderStep(Rung("continue_message"), StepReason.REPEATED),
    ]
    assert chunk.model_dump()["prefill_ladder"][0] == "assistant+trim:trailing_whitespace"
    style = LearnedStyle.model_validate_json((STORED / "style.json").read_text())
    assert style.steps == [
        LadderStep(Rung("assistant", trim=True), StepReason.TRAILING_WHITESPACE),
        LadderStep(Rung("vllm", trim=True), StepReason.IGNORED),
    ]


def test_the_json_schema_of_a_ladder_is_the_list_of_strings_it_was() -> None:
    """(the schemas as commit 6961bcc's ``list[str]`` fields gave them)"""
    schema = ChunkRecord.model_json_schema()["properties"]["prefill_ladder"]
    assert schema == {"items": {"type": "string"}, "title": "Prefill Ladder", "type": "array"}
    steps = LearnedStyle.model_json_schema()["properties"]["steps"]
    assert steps == {"default": [], "items": {"type": "string"}, "title": "Steps", "type": "array"}


@pytest.mark.parametrize("text", ["assistant:refused", "prefix+trim:ignored", "continue_message:repeated"])
def test_a_step_parses_what_it_writes(text: str) -> None:
    assert str(LadderStep.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    ["assistant", "assistant:", "chat:refused", "assistant:bored", "assistant+cut:refused", ":refused", ""],
)
def test_a_malformed_step_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a prefill"):
        LadderStep.parse(text)
    with pytest.raises(ValidationError):
        ChunkRecord.model_validate(
            {
                "job_id": "j",
                "index": 0,
                "text": "",
                "finish_reason": "stop",
                "max_tokens": 1,
                "started_at": "2026-11-30T12:00:00Z",
                "duration_ms": 0,
                "prefill_ladder": [text],
            }
        )


def test_next_rung_takes_the_typed_reason() -> None:
    assert next_rung(Rung("assistant"), StepReason.TRAILING_WHITESPACE, ladder=False) == Rung(
        "assistant", trim=True
    )
    assert next_rung(Rung("assistant"), StepReason.REFUSED, ladder=True) == Rung("vllm")


def test_an_outcome_is_a_reply_unless_said_otherwise() -> None:
    outcome = StreamOutcome("t", "", "stop", "finished", None, 1, None, 1, None)
    assert outcome.kind is OutcomeKind.REPLY
    # the words of a detail never decide: only the kind does (provider.ProviderClient.chat)
    worded = StreamOutcome("", "", None, "interrupted", None, 0, None, 1, None, detail="stream ended without")
    assert worded.kind is OutcomeKind.REPLY


def test_a_retried_error_is_described_by_its_type_and_cause_not_its_words() -> None:
    assert describe_retryable(ProviderRateLimited("slow down")) == "rate limited by the provider (429)"
    unreachable = ProviderUnavailable(
        "provider connection failed: ConnectError()", cause=OutageCause.UNREACHABLE
    )
    assert describe_retryable(unreachable) == "provider unreachable"
    timed_out = ProviderUnavailable("provider timed out: ReadTimeout()", cause=OutageCause.TIMED_OUT)
    assert describe_retryable(timed_out) == "provider timed out"
    # a 5xx whose message happens to use those words is an outage, said with its message
    server = classify_error(502, json.dumps({"error": {"message": "upstream connection failed"}}))
    assert isinstance(server, ProviderUnavailable) and server.cause is OutageCause.OUTAGE
    assert describe_retryable(server) == "provider unavailable (upstream connection failed)"
