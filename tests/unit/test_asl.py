"""Structural checks of the generation workflow (statemachine/generation.asl.json).

They pin the contract the functions and the operators rely on: at most two state transitions per
chunk, no text in the state, the right ending for every error, no retry of a permanent error.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from longform_core import errors
from longform_core.chunk import ChunkTaskOutput
from longform_core.models import CONTINUE_FINISHES, FinishReason, LoopFinish

ROOT = Path(__file__).resolve().parents[2]
ASL_PATH = ROOT / "statemachine" / "generation.asl.json"

CHUNK_TASK = "GenerateChunk"
FINALIZE_TASK = "Finalize"
PERMANENT_ERRORS = ("ContextExhausted", "ProviderAuthenticationFailed", "ProviderRequestInvalid")
TRANSIENT_ERRORS = ("ProviderRateLimited", "ProviderUnavailable")
# what Step Functions reports when Lambda throttles an invocation (normal under MaxConcurrentChunks)
# and the Lambda service errors AWS documents as transient (Step Functions' "Handle Lambda service
# exceptions" best practice): they must wait, not fail
LAMBDA_THROTTLE = "Lambda.TooManyRequestsException"
LAMBDA_SERVICE_ERRORS = (
    LAMBDA_THROTTLE,
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
)


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(ASL_PATH.read_text())
    return loaded


@pytest.fixture(scope="module")
def states(asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    st: dict[str, dict[str, Any]] = asl["States"]
    return st


# ---- helpers -------------------------------------------------------------------------------------


def edges(state: dict[str, Any], *, catches: bool = True) -> list[str]:
    """Every state this one can move to (Next, Default, Choices, and optionally Catch)."""
    targets = [state["Next"]] if "Next" in state else []
    targets += [choice["Next"] for choice in state.get("Choices", [])]
    if "Default" in state:
        targets.append(state["Default"])
    if catches:
        targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return targets


def first_match(rules: list[dict[str, Any]], error: str) -> dict[str, Any] | None:
    """The retrier or catcher Step Functions applies to ``error``: the first that names it."""
    for rule in rules:
        if error in rule["ErrorEquals"] or (
            "States.ALL" in rule["ErrorEquals"] and not error.startswith("States.Runtime")
        ):
            return rule
    return None


def simple_cycles(graph: dict[str, list[str]]) -> Iterator[list[str]]:
    """Every elementary cycle, each once, starting at its smallest state name (the graph is small)."""
    for start in sorted(graph):
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    yield path
                elif nxt > start and nxt not in path:
                    stack.append((nxt, [*path, nxt]))


def follow_to_finalize(states: dict[str, dict[str, Any]], start: str, data: dict[str, Any]) -> dict[str, Any]:
    """Walk Pass states from ``start`` up to the Finalize task, applying their Result/ResultPath."""
    name = start
    for _ in range(len(states)):
        if name == FINALIZE_TASK:
            return data
        state = states[name]
        assert state["Type"] == "Pass", f"{name}: only Pass states may stand between a Catch and Finalize"
        if "Result" in state:
            path = state.get("ResultPath", "$")
            assert re.fullmatch(r"\$\.[A-Za-z_]+", path), f"{name}: ResultPath {path}"
            data = {**data, path[2:]: state["Result"]}
        name = state["Next"]
    raise AssertionError(f"no way from {start} to {FINALIZE_TASK}")


def choose(state: dict[str, Any], data: dict[str, Any]) -> str:
    """Evaluate a Choice state for the simple rules the workflow uses (Variable + StringEquals)."""
    for rule in state["Choices"]:
        value: Any = data
        for part in rule["Variable"].removeprefix("$.").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        assert set(rule) <= {"Variable", "StringEquals", "Next", "Comment"}, rule
        if value == rule["StringEquals"]:
            return str(rule["Next"])
    return str(state["Default"])


# ---- query language ------------------------------------------------------------------------------


def test_query_language_is_jsonpath_everywhere(asl: dict[str, Any], states: dict[str, Any]) -> None:
    assert asl["QueryLanguage"] == "JSONPath"
    for name, state in states.items():
        assert state.get("QueryLanguage", "JSONPath") == "JSONPath", name
        for key in ("Arguments", "Output", "Condition", "Items"):
            assert key not in state, f"{name}: {key} is JSONata-only"
    assert "{%" not in ASL_PATH.read_text(), "JSONata expression in a JSONPath workflow"


# ---- graph ---------------------------------------------------------------------------------------


def test_every_target_exists_and_every_state_is_reachable(
    asl: dict[str, Any], states: dict[str, Any]
) -> None:
    assert asl["StartAt"] in states
    for name, state in states.items():
        for target in edges(state):
            assert target in states, f"{name} -> {target}: no such state"
        if state["Type"] not in ("Choice", "Succeed", "Fail"):
            assert ("Next" in state) != bool(state.get("End")), f"{name}: exactly one of Next/End"
    reachable, frontier = set(), [asl["StartAt"]]
    while frontier:
        name = frontier.pop()
        if name not in reachable:
            reachable.add(name)
            frontier.extend(edges(states[name]))
    assert reachable == set(states), f"unreachable: {sorted(set(states) - reachable)}"


def test_the_chunk_loop_costs_two_transitions_per_chunk(states: dict[str, Any]) -> None:
    graph = {name: edges(state) for name, state in states.items()}
    cycles = list(simple_cycles(graph))
    assert cycles, "no chunk loop"
    for cycle in cycles:
        assert len(cycle) <= 2, f"a loop of {len(cycle)} states per chunk: {cycle}"
        assert CHUNK_TASK in cycle, f"a loop without the chunk task: {cycle}"
    loop_states = {name for cycle in cycles for name in cycle}
    assert loop_states == {CHUNK_TASK, states[CHUNK_TASK]["Next"]}
    choice = states[states[CHUNK_TASK]["Next"]]
    assert choice["Type"] == "Choice"


@pytest.mark.parametrize(
    ("finish_reason", "expected"),
    [
        ("length", CHUNK_TASK),
        ("deadline", CHUNK_TASK),
        ("interrupted", CHUNK_TASK),
        ("stop", FINALIZE_TASK),
        ("budget", FINALIZE_TASK),
        ("cancelled", FINALIZE_TASK),
        ("reasoning_loop", FINALIZE_TASK),
        (None, FINALIZE_TASK),
    ],
)
def test_the_loop_continues_only_while_the_model_was_cut(
    states: dict[str, Any], finish_reason: str | None, expected: str
) -> None:
    choice = states[states[CHUNK_TASK]["Next"]]
    result_path = states[CHUNK_TASK]["ResultPath"]
    data = {"job_id": "j", result_path.removeprefix("$."): {"finish_reason": finish_reason}}
    assert choose(choice, data) == expected


def test_the_choice_loops_on_exactly_the_finish_reasons_the_code_says_loop(states: dict[str, Any]) -> None:
    """Read from the type (models.LoopFinish), not from a second list: the two cannot drift apart."""
    choice = states[states[CHUNK_TASK]["Next"]]
    result_path = states[CHUNK_TASK]["ResultPath"].removeprefix("$.")
    looping = {
        finish
        for finish in get_args(FinishReason)
        if choose(choice, {"job_id": "j", result_path: {"finish_reason": finish}}) == CHUNK_TASK
    }
    assert looping == set(get_args(LoopFinish)) == CONTINUE_FINISHES
    # the Choice compares exactly the field the task returns
    variables = {rule["Variable"] for rule in choice["Choices"]}
    assert variables == {f"$.{result_path}.finish_reason"}
    assert "finish_reason" in ChunkTaskOutput.model_fields
    # and nothing outside the vocabulary is compared at all
    compared = {rule["StringEquals"] for rule in choice["Choices"]}
    assert compared <= set(get_args(FinishReason))


def test_finalize_ends_the_execution(states: dict[str, Any]) -> None:
    def ends(name: str, seen: frozenset[str] = frozenset()) -> bool:
        state = states[name]
        if state["Type"] in ("Succeed", "Fail") or state.get("End"):
            return True
        return all(t not in seen and ends(t, seen | {name}) for t in edges(state))

    finalize = states[FINALIZE_TASK]
    assert finalize["Type"] == "Task"
    assert CHUNK_TASK not in edges(finalize)
    assert ends(FINALIZE_TASK)


# ---- the chunk task ------------------------------------------------------------------------------


def test_chunk_task_input_is_only_the_job_reference(states: dict[str, Any]) -> None:
    task = states[CHUNK_TASK]
    assert task["Type"] == "Task"
    assert task["Resource"] == "${GenerateChunkFunctionArn}"
    assert task["Parameters"] == {"job_id.$": "$.job_id"}
    # the result goes beside the job reference, never over it
    assert task["ResultPath"].startswith("$.")
    assert task["ResultPath"] != "$.job_id"
    assert "OutputPath" not in task
    assert "ResultSelector" not in task


def test_context_exhausted_is_caught_and_finalized_as_context_exhausted(states: dict[str, Any]) -> None:
    catcher = first_match(states[CHUNK_TASK]["Catch"], "ContextExhausted")
    assert catcher is not None
    assert "ContextExhausted" in catcher["ErrorEquals"]
    assert catcher["ResultPath"].startswith("$.")
    assert catcher["ResultPath"] != "$.job_id"
    data = follow_to_finalize(states, catcher["Next"], {"job_id": "j"})
    assert data["job_id"] == "j"
    assert data["status"] == "context_exhausted"


@pytest.mark.parametrize("error", ["States.ALL", "States.TaskFailed", "ProviderAuthenticationFailed", "Boom"])
def test_every_other_error_is_finalized_as_failed(states: dict[str, Any], error: str) -> None:
    catchers = states[CHUNK_TASK]["Catch"]
    assert catchers[-1]["ErrorEquals"] == ["States.ALL"], "States.ALL must be the last catcher"
    catcher = first_match(catchers, error)
    assert catcher is not None
    assert catcher["ResultPath"].startswith("$.")
    assert catcher["ResultPath"] != "$.job_id"
    data = follow_to_finalize(states, catcher["Next"], {"job_id": "j"})
    assert data["status"] == "failed"


@pytest.mark.parametrize("error", PERMANENT_ERRORS)
def test_permanent_errors_are_never_retried(states: dict[str, Any], error: str) -> None:
    retrier = first_match(states[CHUNK_TASK]["Retry"], error)
    assert retrier is not None, f"{error} falls through to no retrier (make it explicit)"
    assert error in retrier["ErrorEquals"]
    assert retrier["MaxAttempts"] == 0


@pytest.mark.parametrize("error", TRANSIENT_ERRORS)
def test_transient_provider_errors_are_retried_with_full_jitter(states: dict[str, Any], error: str) -> None:
    retrier = first_match(states[CHUNK_TASK]["Retry"], error)
    assert retrier is not None
    assert error in retrier["ErrorEquals"]
    assert retrier["MaxAttempts"] >= 1
    assert retrier["JitterStrategy"] == "FULL"
    assert retrier.get("BackoffRate", 2.0) > 1


def worst_case_wait(retrier: dict[str, Any]) -> float:
    """Seconds of backoff before a retrier gives up, without jitter (FULL jitter waits up to this)."""
    interval, rate = retrier.get("IntervalSeconds", 1), retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    return float(sum(min(interval * rate**n, cap) for n in range(retrier["MaxAttempts"])))


@pytest.mark.parametrize("task", [CHUNK_TASK, FINALIZE_TASK])
@pytest.mark.parametrize("error", LAMBDA_SERVICE_ERRORS)
def test_lambda_throttles_and_service_errors_wait_long_before_failing(
    states: dict[str, Any], task: str, error: str
) -> None:
    retriers = states[task]["Retry"]
    retrier = first_match(retriers, error)
    assert retrier is not None
    # its own retrier, listed before States.ALL (Step Functions takes the first that names the error)
    assert error in retrier["ErrorEquals"], f"{task}: {error} falls to {retrier['ErrorEquals']}"
    assert retrier["ErrorEquals"] != ["States.ALL"]
    assert retriers.index(retrier) < len(retriers) - 1
    assert retrier["JitterStrategy"] == "FULL"  # a cap's waiting chunks do not come back in step
    assert retrier["IntervalSeconds"] >= 1
    assert retrier["BackoffRate"] >= 1.5
    assert 30 <= retrier["MaxDelaySeconds"] <= 300
    assert retrier["MaxAttempts"] >= 15
    # a busy cap is outlasted for minutes, where the generic retrier gives up within seconds
    assert worst_case_wait(retrier) >= 600
    assert worst_case_wait(retriers[-1]) < worst_case_wait(retrier) / 10


def test_every_transient_lambda_error_of_the_docs_is_named_in_both_tasks(states: dict[str, Any]) -> None:
    for task in (CHUNK_TASK, FINALIZE_TASK):
        named = {error for rule in states[task]["Retry"] for error in rule["ErrorEquals"]}
        assert set(LAMBDA_SERVICE_ERRORS) <= named, task
        # and none of them is mistaken for a permanent error
        for rule in states[task]["Retry"]:
            if rule.get("MaxAttempts", 3) == 0:
                assert not set(rule["ErrorEquals"]) & set(LAMBDA_SERVICE_ERRORS), task


def test_retriers_are_well_formed(states: dict[str, Any]) -> None:
    for name, state in states.items():
        for key in ("Retry", "Catch"):
            rules = state.get(key, [])
            for i, rule in enumerate(rules):
                if "States.ALL" in rule["ErrorEquals"]:
                    assert rule["ErrorEquals"] == ["States.ALL"], f"{name}.{key}[{i}]"
                    assert i == len(rules) - 1, f"{name}.{key}: States.ALL must come last"
            if key == "Retry":
                for rule in rules:
                    attempts = rule.get("MaxAttempts", 3)
                    # many attempts only for the Lambda service's throttles and hiccups, and only
                    # with a ceiling on the wait
                    limit = 30 if set(rule["ErrorEquals"]) <= set(LAMBDA_SERVICE_ERRORS) else 10
                    assert 0 <= attempts <= limit, name
                    if attempts > 10:
                        assert 0 < rule["MaxDelaySeconds"] <= 300, name
                    if attempts > 0:
                        assert rule.get("JitterStrategy") == "FULL", f"{name}: retry without jitter"


def test_error_names_exist_in_the_error_taxonomy(states: dict[str, Any]) -> None:
    """A Retry/Catch name is the class name a function raises: a typo would never match."""
    classes = {
        name for name, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, Exception)
    }
    for name, state in states.items():
        for rule in [*state.get("Retry", []), *state.get("Catch", [])]:
            for error in rule["ErrorEquals"]:
                if error in LAMBDA_SERVICE_ERRORS:
                    continue  # the Lambda service's, as Step Functions names them
                if not error.startswith("States."):
                    assert error in classes, f"{name}: {error} is not a class of longform_core.errors"


def test_tasks_reference_functions_only_through_substitutions(states: dict[str, Any]) -> None:
    for name, state in states.items():
        if state["Type"] == "Task":
            resource = state["Resource"]
            assert re.fullmatch(r"\$\{[A-Za-z0-9_]+\}", resource), f"{name}: hard-coded {resource}"


def test_a_lost_commit_is_retried_but_an_ended_job_is_not(states: dict[str, Any]) -> None:
    """ManifestConflict (another attempt committed first) is worth a retry: the next attempt reads
    the new state; JobStateInvalid (the job already ended) is not."""
    retry = states[CHUNK_TASK]["Retry"]

    def attempts_for(error: str) -> int:
        for rule in retry:
            if error in rule["ErrorEquals"] or "States.ALL" in rule["ErrorEquals"]:
                return int(rule.get("MaxAttempts", 3))
        return 0

    assert issubclass(errors.ManifestConflict, errors.JobStateInvalid)
    assert attempts_for("ManifestConflict") > 0
    assert attempts_for("JobStateInvalid") == 0
