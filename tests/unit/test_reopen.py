"""The rule for reopening an ``incomplete`` job with larger budgets (``reopen.py``), pure."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from longform_core.models import Manifest
from longform_core.reopen import NewBudgets, reopen_problem, request_with
from longform_core.request import GenerationRequest


def stopped(reason: str = "max_chunks", **fields: Any) -> Manifest:
    base: dict[str, Any] = {
        "job_id": "job-1",
        "model": "m",
        "status": "incomplete",
        "incomplete_reason": reason,
        "stop_reason": reason,
        "last_finish_reason": "budget",
        "chunks": 2,
        "completion_tokens_total": 2000,
        "estimated_cost_usd": 0.0008,
    }
    base.update(fields)
    return Manifest(**base)


REQUEST = GenerationRequest(prompt="Write.", max_chunks=2, max_output_tokens=None, max_cost_usd=None)


def test_a_budget_stop_reopens_with_a_larger_budget() -> None:
    assert reopen_problem(stopped(), REQUEST, NewBudgets(max_chunks=3)) is None
    assert request_with(REQUEST, NewBudgets(max_chunks=3)).max_chunks == 3
    assert request_with(REQUEST, NewBudgets(max_chunks=3)).prompt == REQUEST.prompt  # nothing else changes


@pytest.mark.parametrize(
    ("status", "says"),
    [
        ("succeeded", "it succeeded"),
        ("context_exhausted", "its context window is full"),
        ("failed", "it failed"),
        ("cancelled", "it was cancelled"),
        ("running", "has not ended (running)"),
        ("queued", "has not ended (queued)"),
    ],
)
def test_only_an_incomplete_job_can_be_reopened(status: str, says: str) -> None:
    manifest = stopped(status=status, incomplete_reason=None)
    problem = reopen_problem(manifest, REQUEST, NewBudgets(max_chunks=50))
    assert problem is not None and says in problem


@pytest.mark.parametrize("guard", ["repetition", "no_progress"])
def test_a_loop_guard_stop_is_not_a_budget(guard: str) -> None:
    problem = reopen_problem(stopped(guard), REQUEST, NewBudgets(max_chunks=50))
    assert problem == f"job job-1 cannot be extended: it was stopped by the {guard} guard, not a budget"


def test_no_budget_given_says_which_one_stopped_it() -> None:
    assert reopen_problem(stopped(), REQUEST, NewBudgets()) == (
        "job job-1 stopped on its max_chunks budget: give a larger one to extend it"
    )


@pytest.mark.parametrize(
    ("budgets", "says"),
    [
        (NewBudgets(max_chunks=2), "has used 2 chunks: a new max_chunks must be larger than that (got 2)"),
        (NewBudgets(max_chunks=3, max_output_tokens=2000), "has used 2,000 output tokens"),
        (NewBudgets(max_chunks=3, max_cost_usd=0.0008), "has used $0.000800 estimated"),
        (NewBudgets(max_output_tokens=5000), "would stop at once: its max_chunks budget is reached"),
    ],
)
def test_budgets_must_exceed_what_was_used_and_raise_the_one_that_stopped_it(
    budgets: NewBudgets, says: str
) -> None:
    problem = reopen_problem(stopped(), REQUEST, budgets)
    assert problem is not None and says in problem


def test_every_budget_already_reached_is_named() -> None:
    request = REQUEST.model_copy(update={"max_output_tokens": 2000})
    problem = reopen_problem(stopped(), request, NewBudgets(max_cost_usd=1.0))
    assert problem is not None and "its max_chunks and max_output_tokens budget is reached" in problem
    assert reopen_problem(stopped(), request, NewBudgets(max_chunks=4, max_output_tokens=2001)) is None


def test_reopen_forgets_the_stop_and_records_it() -> None:
    manifest = stopped(stop_detail="the max_chunks budget (2 chunks) was reached", answer_chars=90)
    manifest.finished_at = manifest.created_at
    manifest.reopen("note", answer_chars=80, reasoning_chars=0)
    assert manifest.status == "running" and not manifest.terminal
    assert (manifest.stop_reason, manifest.last_finish_reason, manifest.incomplete_reason) == (
        None,
        None,
        None,
    )
    assert (manifest.stop_detail, manifest.finished_at, manifest.answer_chars) == (None, None, 80)
    assert manifest.reopened == ["note"]
    # the record survives a round trip through the stored JSON
    assert Manifest.model_validate_json(manifest.model_dump_json()).reopened == ["note"]


@given(
    chunks=st.integers(1, 100),
    tokens=st.integers(1, 100_000),
    new_chunks=st.one_of(st.none(), st.integers(1, 200)),
    new_tokens=st.one_of(st.none(), st.integers(1, 200_000)),
)
def test_an_accepted_reopen_always_leaves_room_to_go_on(
    chunks: int, tokens: int, new_chunks: int | None, new_tokens: int | None
) -> None:
    """Whatever budgets are accepted, the next chunk is not stopped by a budget at once."""
    from longform_core.config import Settings
    from longform_core.continuation import job_budget, next_step

    request = REQUEST.model_copy(update={"max_chunks": chunks, "max_output_tokens": tokens + 5})
    manifest = stopped(chunks=chunks, completion_tokens_total=tokens, estimated_cost_usd=None)
    budgets = NewBudgets(max_chunks=new_chunks, max_output_tokens=new_tokens)
    if reopen_problem(manifest, request, budgets) is not None:
        return
    budget = job_budget(request_with(request, budgets), Settings.model_construct(), manifest)
    finish, stop = next_step("length", manifest, budget, max_reasoning_only_chunks=10**6)
    assert (finish, stop) == ("length", None)
