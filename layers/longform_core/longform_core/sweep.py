"""Use case: the sweeper. End a job whose execution ended outside the workflow's Catch paths.

The workflow ends every job through Finalize, but an execution can also end where no Catch
reaches: a Finalize that failed for good, the 25,000-event history limit,
``States.DataLimitExceeded``, an execution timeout, a stop in the console. Its job would stay
``running`` forever (no ``result.json``, no completion event, and a later cancel would call a
finished job ``cancelled``).

Step Functions sends a "Step Functions Execution Status Change" event (source ``aws.states``) to
the default bus when an execution ends; the template's rule sends the FAILED, TIMED_OUT and ABORTED
ones of the generation workflow here. The job (the input's ``job_id``, else the execution name,
which is the job id) is finalized through :func:`finalize.finalize_job` with its output kept:

- ABORTED with the error cancel stops with (``Cancelled``): ``cancelled`` (cancel stops, then
  finalizes; this only does the second half when cancel could not);
- anything else: ``failed``, with the execution's status, error and cause as the reason.

A job that has already ended is left exactly as it is: EventBridge delivers at least once, and
in the common case (``JobFailed``: Finalize ran, then the Fail state) the job ended in the
workflow. A job committed as ended whose ``result.json`` is missing (a Finalize that stopped after
its commit) gets its files written by finalize, its committed status unchanged. An event of
another state machine or execution, or without a job, is ignored, with the reason in the outcome.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import JobNotFound, JobStateInvalid
from .finalize import FinalizeTaskInput, finalize_job
from .models import JOB_ID_PATTERN, JobResult, JobStatus, Manifest, utcnow
from .services import MetricsSink, Services

EVENT_SOURCE = "aws.states"
DETAIL_TYPE = "Step Functions Execution Status Change"
SWEPT_STATUSES: frozenset[str] = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
# the error cancel.py stops an execution with (a test holds the two together)
CANCEL_ERROR = "Cancelled"
MANUAL_ABORT = "the execution was aborted outside longform"
CAUSE_MAX_CHARS = 2000  # a cause may be 32 KB: result.json gets a few KB at most
MAX_FINALIZE_ATTEMPTS = 3  # a chunk still in flight may commit under us (see cancel.py)

# finalized: this event ended the job; completed: the job had ended but its result.json was
# missing, now written; already_ended: nothing to do; ignored: not an execution of one of our jobs
SweepAction = Literal["finalized", "completed", "already_ended", "ignored"]


class ExecutionDetail(BaseModel):
    """The ``detail`` of a status-change event (the fields the sweeper reads)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    execution_arn: str = Field(alias="executionArn")
    state_machine_arn: str = Field(alias="stateMachineArn")
    name: str
    status: str
    input: str | None = None  # a JSON string; left out (null) when input and output are large
    error: str | None = None
    cause: str | None = None


class SweepOutcome(BaseModel):
    """What one event did (returned by the function, logged)."""

    action: SweepAction
    job_id: str | None = None
    execution_arn: str | None = None
    execution_status: str | None = None
    status: JobStatus | None = None  # the job's status after the sweep
    reason: str | None = None  # why it was ignored, or the error the job was finalized with


def sweep_execution(
    event: Mapping[str, Any], services: Services, *, metrics: MetricsSink | None = None
) -> SweepOutcome:
    """Finalize the job of an execution that ended FAILED, TIMED_OUT or ABORTED, unless it ended."""
    if event.get("source") != EVENT_SOURCE or event.get("detail-type") != DETAIL_TYPE:
        return SweepOutcome(action="ignored", reason="not a Step Functions execution status change")
    try:
        detail = ExecutionDetail.model_validate(event.get("detail"))
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "detail" for e in exc.errors())
        return SweepOutcome(action="ignored", reason=f"the event's detail is malformed ({fields})")

    def ignored(reason: str, job_id: str | None = None) -> SweepOutcome:
        return SweepOutcome(
            action="ignored",
            job_id=job_id,
            execution_arn=detail.execution_arn,
            execution_status=detail.status,
            reason=reason,
        )

    if detail.status not in SWEPT_STATUSES:
        return ignored(f"the execution is {detail.status}, not one the sweeper ends jobs for")
    own = services.settings.state_machine_arn
    if own and detail.state_machine_arn != own:
        return ignored(f"an execution of another state machine ({detail.state_machine_arn})")
    job_id = job_id_of(detail)
    if job_id is None:
        return ignored("the execution names no job (no job_id in its input, no job id as its name)")
    manifest = services.store.find_manifest(job_id)
    if manifest is None:
        return ignored(f"no job {job_id!r} in the bucket", job_id)
    if manifest.execution_arn and manifest.execution_arn != detail.execution_arn:
        return ignored(f"job {job_id} belongs to another execution ({manifest.execution_arn})", job_id)

    outcome = SweepOutcome(
        action="already_ended",
        job_id=job_id,
        execution_arn=detail.execution_arn,
        execution_status=detail.status,
        status=manifest.status,
    )
    try:
        return _end(outcome, manifest, finalize_task(job_id, detail), services, metrics)
    except JobNotFound as exc:  # a manifest without its request.json: nothing to assemble
        return ignored(str(exc), job_id)


def _end(
    outcome: SweepOutcome,
    manifest: Manifest,
    task: FinalizeTaskInput,
    services: Services,
    metrics: MetricsSink | None,
) -> SweepOutcome:
    if manifest.terminal:
        if services.store.get_result(task.job_id) is not None:
            return outcome  # ended in the workflow, by cancel or by an earlier delivery: untouched
        # committed as ended, but its files are not all there (a Finalize that stopped after its
        # commit): finalize writes them from the committed manifest, whose status stands
        _, result = finalize_job(task, services, metrics=metrics)
        outcome.action = "completed"
        outcome.reason = result.error if result is not None else None
        _count(metrics)
        return outcome
    started = utcnow()
    committed, result = _finalize(task, services, metrics)
    outcome.status = committed.status
    if committed.finished_at is not None and committed.finished_at >= started:
        outcome.action = "finalized"  # this call ended it (not a cancel or the workflow meanwhile)
        outcome.reason = result.error if result is not None else None
        _count(metrics)
    return outcome


def _count(metrics: MetricsSink | None) -> None:
    if metrics is not None:
        metrics.add_metric(name="JobsSwept", unit="Count", value=1)


def _finalize(
    task: FinalizeTaskInput, services: Services, metrics: MetricsSink | None
) -> tuple[Manifest, JobResult | None]:
    for _ in range(MAX_FINALIZE_ATTEMPTS - 1):
        # a chunk that committed meanwhile makes the commit fail: assemble again, with it
        with contextlib.suppress(JobStateInvalid):
            return finalize_job(task, services, metrics=metrics, unless_ended=True)
    return finalize_job(task, services, metrics=metrics, unless_ended=True)  # errors propagate


def job_id_of(detail: ExecutionDetail) -> str | None:
    """The input's ``job_id``, else the execution name (submit names each execution after its job)."""
    candidates: list[Any] = []
    if detail.input:
        with contextlib.suppress(ValueError):
            data = json.loads(detail.input)
            if isinstance(data, dict):
                candidates.append(data.get("job_id"))
    candidates.append(detail.name)
    for candidate in candidates:
        if isinstance(candidate, str) and re.fullmatch(JOB_ID_PATTERN, candidate):
            return candidate
    return None


def finalize_task(job_id: str, detail: ExecutionDetail) -> FinalizeTaskInput:
    """The Finalize input that ends the job as the execution ended."""
    if detail.status == "ABORTED" and detail.error == CANCEL_ERROR:
        return FinalizeTaskInput(job_id=job_id, status="cancelled")
    return FinalizeTaskInput(job_id=job_id, status="failed", error=failure_error(detail))


def failure_error(detail: ExecutionDetail) -> dict[str, str]:
    """``{"Error": ..., "Cause": ...}`` (as a Catch gives it) naming how the execution ended."""
    said = _said(detail.error, detail.cause)
    if detail.status == "ABORTED":
        name, cause = "ExecutionAborted", MANUAL_ABORT + (f" ({said})" if said else "")
    elif detail.status == "TIMED_OUT":
        name, cause = "ExecutionTimedOut", said or "the execution ran past its timeout"
    else:
        name, cause = "ExecutionFailed", said or "the execution failed without an error"
    return {"Error": name, "Cause": _bounded(cause)}


def _said(error: str | None, cause: str | None) -> str:
    """``error: cause`` of the execution (a Lambda error's cause is JSON with ``errorMessage``)."""
    text = cause or ""
    with contextlib.suppress(TypeError, ValueError):
        parsed = json.loads(text)
        if isinstance(parsed, dict) and isinstance(parsed.get("errorMessage"), str):
            text = parsed["errorMessage"]
    return ": ".join(part for part in (error, text) if part)


def _bounded(text: str) -> str:
    if len(text) <= CAUSE_MAX_CHARS:
        return text
    return text[: CAUSE_MAX_CHARS - 1] + "…"
