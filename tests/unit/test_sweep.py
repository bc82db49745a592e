"""The sweeper (sweep.py) on moto S3: a job whose execution ended where no Catch reaches is ended."""

from __future__ import annotations

import json
from typing import Any

import pytest
from longform_core import sweep
from longform_core.cancel import cancel_job
from longform_core.chunk import ChunkTaskInput, generate_chunk
from longform_core.config import Settings
from longform_core.errors import JobStateInvalid
from longform_core.finalize import FinalizeTaskInput, finalize_job
from longform_core.job_store import JobKeys, JobStore
from longform_core.models import JobResult, Manifest
from longform_core.provider import StreamOutcome
from longform_core.request import parse_request
from longform_core.services import Services
from longform_core.sse import Usage

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:longform-generation"
OTHER_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:someone-elses"
TEXT = "Once upon a time"
FINALIZE_FAILED = (
    "FinalizeFailed",
    "Could not assemble the job's output; every chunk is still in the jobs bucket.",
)


def execution_arn(job_id: str, machine: str = MACHINE) -> str:
    return machine.replace(":stateMachine:", ":execution:") + f":{job_id}"


def status_event(
    job_id: str,
    status: str,
    *,
    error: str | None = None,
    cause: str | None = None,
    machine: str = MACHINE,
    input_json: str | None = "",
    name: str | None = None,
) -> dict[str, Any]:
    """A "Step Functions Execution Status Change" event, shaped as EventBridge delivers it."""
    arn = execution_arn(name or job_id, machine)
    return {
        "version": "0",
        "id": "6c1b2f0e-8d7a-4e0b-9a51-2f7d3c9e1a40",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2025-01-01T12:04:12Z",
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "executionArn": arn,
            "stateMachineArn": machine,
            "name": name or job_id,
            "status": status,
            "startDate": 1735732800123,
            "stopDate": 1735733052456,
            "input": json.dumps({"job_id": job_id}) if input_json == "" else input_json,
            "inputDetails": {"included": input_json is not None},
            "output": None,
            "outputDetails": None,
            "error": error,
            "cause": cause,
        },
    }


class OneReply:
    """A provider that writes TEXT and is cut by its token cap (the job goes on: ``running``)."""

    def chat(
        self, body: dict[str, Any], *, deadline: float, stream: bool = True, on_progress: Any = None
    ) -> StreamOutcome:
        return StreamOutcome(
            content=TEXT,
            reasoning="",
            finish_reason="length",
            ended_by="finished",
            usage=Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
            deltas=5,
            model="m",
            attempts=1,
            ttft_seconds=0.01,
        )


class Published:
    """The completion events finalize published (the services' publisher)."""

    def __init__(self) -> None:
        self.results: list[JobResult] = []

    def publish(self, result: JobResult) -> None:
        self.results.append(result)


class StopRecorder:
    """Executions that only record what they were asked to stop (for cancel)."""

    def __init__(self) -> None:
        self.stopped: list[tuple[str, str, str]] = []

    def arn_for(self, name: str) -> str:
        return execution_arn(name)

    def start(self, name: str, input_json: str) -> tuple[str, bool]:
        raise AssertionError("never started here")

    def stop(self, execution_arn: str, *, error: str, cause: str) -> None:
        self.stopped.append((execution_arn, error, cause))

    def recent(self, limit: int, next_token: str | None = None) -> tuple[list[str], str | None]:
        return [], None


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def services(store: JobStore, published: Published) -> Services:
    settings = Settings(jobs_bucket=store.bucket, state_machine_arn=MACHINE)
    return Services(settings=settings, store=store, provider=OneReply(), publisher=published)


def running_job(services: Services, job_id: str = "job-1") -> str:
    """A submitted job with one chunk committed, as the workflow leaves it mid-way."""
    services.store.put_request(job_id, parse_request({"prompt": "Tell me a story."}))
    services.store.put_manifest(Manifest(job_id=job_id, model="m", execution_arn=execution_arn(job_id)))
    generate_chunk(ChunkTaskInput(job_id=job_id), services, remaining_ms=lambda: 60_000)
    manifest = services.store.find_manifest(job_id)
    assert manifest is not None and manifest.status == "running" and manifest.chunks == 1
    return job_id


def objects(store: JobStore) -> dict[str, bytes]:
    """Every object in the bucket, byte for byte."""
    listing = store.s3.list_objects_v2(Bucket=store.bucket)
    return {
        o["Key"]: store.s3.get_object(Bucket=store.bucket, Key=o["Key"])["Body"].read()
        for o in listing.get("Contents", [])
    }


def assert_ended(store: JobStore, job_id: str, status: str) -> JobResult:
    """result.json and the manifest agree on the end, and the partial output is kept."""
    result = store.get_result(job_id)
    manifest = store.find_manifest(job_id)
    assert result is not None and manifest is not None
    assert result.status == manifest.status == status
    assert result.error == manifest.error
    assert result.finished_at == manifest.finished_at
    assert result.chunks == manifest.chunks == 1
    assert result.output_key == JobKeys(job_id).output
    assert store.get_text(result.output_key) == TEXT
    assert result.output_chars == len(TEXT)
    return result


# ---- ending a job ----------------------------------------------------------------------------------


def test_a_running_job_whose_execution_failed_is_failed_with_its_output_kept(
    services: Services, store: JobStore, published: Published
) -> None:
    job = running_job(services)
    outcome = sweep.sweep_execution(
        status_event(job, "FAILED", error=FINALIZE_FAILED[0], cause=FINALIZE_FAILED[1]), services
    )
    assert outcome.action == "finalized"
    assert (outcome.job_id, outcome.status, outcome.execution_status) == (job, "failed", "FAILED")
    assert outcome.execution_arn == execution_arn(job)
    result = assert_ended(store, job, "failed")
    assert result.error == f"ExecutionFailed: {FINALIZE_FAILED[0]}: {FINALIZE_FAILED[1]}"
    assert outcome.reason == result.error
    assert result.stop_reason == "error"
    assert [r.status for r in published.results] == ["failed"]  # one completion event
    assert published.results[0] == result


def test_an_execution_aborted_by_cancel_ends_the_job_cancelled(
    services: Services, store: JobStore, published: Published
) -> None:
    """Cancel stops the execution, then finalizes; if it could not, the sweeper does the second half."""
    job = running_job(services)
    event = status_event(job, "ABORTED", error=sweep.CANCEL_ERROR, cause="cancelled on request")
    outcome = sweep.sweep_execution(event, services)
    assert (outcome.action, outcome.status) == ("finalized", "cancelled")
    result = assert_ended(store, job, "cancelled")
    assert result.error is None
    assert [r.status for r in published.results] == ["cancelled"]


def test_cancel_stops_with_the_error_the_sweeper_recognises(services: Services, store: JobStore) -> None:
    executions = StopRecorder()
    services.executions = executions
    job = running_job(services)
    cancel_job(job, services)
    assert [error for _, error, _ in executions.stopped] == [sweep.CANCEL_ERROR]


@pytest.mark.parametrize(
    ("error", "cause", "expected"),
    [
        (None, None, f"ExecutionAborted: {sweep.MANUAL_ABORT}"),
        ("Operator", "stuck", f"ExecutionAborted: {sweep.MANUAL_ABORT} (Operator: stuck)"),
    ],
)
def test_an_execution_aborted_in_the_console_fails_the_job(
    services: Services,
    store: JobStore,
    published: Published,
    error: str | None,
    cause: str | None,
    expected: str,
) -> None:
    job = running_job(services)
    outcome = sweep.sweep_execution(status_event(job, "ABORTED", error=error, cause=cause), services)
    assert (outcome.action, outcome.status) == ("finalized", "failed")
    assert assert_ended(store, job, "failed").error == expected
    assert len(published.results) == 1


def test_a_timed_out_execution_fails_the_job(services: Services, store: JobStore) -> None:
    job = running_job(services)
    outcome = sweep.sweep_execution(status_event(job, "TIMED_OUT"), services)
    assert (outcome.action, outcome.status) == ("finalized", "failed")
    assert assert_ended(store, job, "failed").error == "ExecutionTimedOut: the execution ran past its timeout"


def test_the_reason_is_bounded_and_a_lambda_cause_reads_as_its_message(
    services: Services, store: JobStore
) -> None:
    job = running_job(services, "job-long")
    sweep.sweep_execution(status_event(job, "FAILED", error="States.Runtime", cause="x" * 40_000), services)
    long_error = assert_ended(store, job, "failed").error
    assert long_error is not None and long_error.startswith("ExecutionFailed: States.Runtime: xxx")
    assert len(long_error) <= 2100

    job = running_job(services, "job-lambda")
    cause = json.dumps({"errorMessage": "boom", "errorType": "RuntimeError", "stackTrace": ["..."] * 50})
    sweep.sweep_execution(status_event(job, "FAILED", error="RuntimeError", cause=cause), services)
    assert assert_ended(store, job, "failed").error == "ExecutionFailed: RuntimeError: boom"


def test_a_queued_job_that_never_ran_a_chunk_is_failed(services: Services, store: JobStore) -> None:
    store.put_request("job-q", parse_request({"prompt": "q"}))
    store.put_manifest(Manifest(job_id="job-q", model="m", execution_arn=execution_arn("job-q")))
    outcome = sweep.sweep_execution(
        status_event("job-q", "FAILED", error="States.DataLimitExceeded"), services
    )
    assert (outcome.action, outcome.status) == ("finalized", "failed")
    result = store.get_result("job-q")
    assert result is not None and result.chunks == 0 and store.get_text(result.output_key) == ""


def test_a_chunk_committing_under_the_sweeper_is_assembled_again(
    services: Services, store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = running_job(services)
    original = JobStore.put_manifest
    raced = {"done": False}

    def racing_put_manifest(self: JobStore, manifest: Manifest, **kwargs: Any) -> str:
        if manifest.terminal and not raced["done"]:
            raced["done"] = True
            raise JobStateInvalid("manifest changed under us")
        return original(self, manifest, **kwargs)

    monkeypatch.setattr(JobStore, "put_manifest", racing_put_manifest)
    outcome = sweep.sweep_execution(status_event(job, "FAILED"), services)
    assert raced["done"] and (outcome.action, outcome.status) == ("finalized", "failed")
    assert_ended(store, job, "failed")


# ---- idempotency ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ended_as", ["succeeded", "failed", "cancelled"])
def test_a_job_that_has_already_ended_is_left_byte_for_byte(
    services: Services, store: JobStore, published: Published, ended_as: str
) -> None:
    job = running_job(services)
    finalize_job(
        FinalizeTaskInput(job_id=job, status=None if ended_as == "succeeded" else ended_as), services
    )
    before = objects(store)
    published.results.clear()
    for event in (
        status_event(job, "FAILED", error="JobFailed", cause="The generation failed"),
        status_event(job, "ABORTED", error=sweep.CANCEL_ERROR),
        status_event(job, "TIMED_OUT"),
    ):
        outcome = sweep.sweep_execution(event, services)
        assert (outcome.action, outcome.job_id, outcome.status) == ("already_ended", job, ended_as)
    assert objects(store) == before
    assert published.results == []


def test_a_sweep_delivered_twice_writes_the_same_result(
    services: Services, store: JobStore, published: Published
) -> None:
    job = running_job(services)
    event = status_event(job, "FAILED", error=FINALIZE_FAILED[0], cause=FINALIZE_FAILED[1])
    first = sweep.sweep_execution(event, services)
    after_first = objects(store)
    second = sweep.sweep_execution(event, services)
    assert (first.action, second.action) == ("finalized", "already_ended")
    assert first.status == second.status == "failed"
    assert objects(store) == after_first
    assert len(published.results) == 1


# ---- what is not a job of ours ------------------------------------------------------------------


def test_an_execution_of_another_state_machine_is_ignored(
    services: Services, store: JobStore, published: Published
) -> None:
    job = running_job(services)
    before = objects(store)
    outcome = sweep.sweep_execution(status_event(job, "FAILED", machine=OTHER_MACHINE), services)
    assert outcome.action == "ignored"
    assert outcome.reason is not None and "another state machine" in outcome.reason
    assert objects(store) == before and published.results == []


def test_another_execution_of_the_same_name_is_ignored(services: Services, store: JobStore) -> None:
    """The job's manifest names its execution: an event about any other leaves the job alone."""
    job = running_job(services)
    before = objects(store)
    services.settings = Settings(jobs_bucket=store.bucket)  # no state machine configured
    outcome = sweep.sweep_execution(status_event(job, "FAILED", machine=OTHER_MACHINE), services)
    assert outcome.action == "ignored" and outcome.job_id == job
    assert outcome.reason is not None and "another execution" in outcome.reason
    assert objects(store) == before


def test_the_job_is_found_by_the_execution_name_when_the_input_is_left_out(
    services: Services, store: JobStore
) -> None:
    job = running_job(services)
    outcome = sweep.sweep_execution(status_event(job, "FAILED", input_json=None), services)
    assert (outcome.action, outcome.job_id) == ("finalized", job)
    assert_ended(store, job, "failed")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e.update(source="aws.s3"), "not a Step Functions execution status change"),
        (lambda e: e["detail"].update(status="SUCCEEDED"), "the execution is SUCCEEDED"),
        (lambda e: e["detail"].update(status="RUNNING"), "the execution is RUNNING"),
        (lambda e: e["detail"].pop("executionArn"), "malformed (executionArn)"),
        (lambda e: e.pop("detail"), "malformed"),
        (lambda e: e["detail"].update(name="not a job id!", input="{}"), "names no job"),
        (lambda e: e["detail"].update(name="no-such-job", input=None), "no job 'no-such-job'"),
    ],
)
def test_events_without_a_job_to_end_are_ignored_with_the_reason(
    services: Services, store: JobStore, published: Published, change: Any, reason: str
) -> None:
    job = running_job(services)
    event = status_event(job, "FAILED")
    change(event)
    before = objects(store)
    outcome = sweep.sweep_execution(event, services)
    assert outcome.action == "ignored"
    assert outcome.reason is not None and reason in outcome.reason
    assert objects(store) == before and published.results == []


def test_the_input_job_id_wins_over_the_execution_name() -> None:
    detail = sweep.ExecutionDetail.model_validate(
        status_event("from-input", "FAILED", name="from-name")["detail"]
    )
    assert sweep.job_id_of(detail) == "from-input"
    detail.input = '{"job_id": "../etc"}'  # not a job id: the name is the next candidate
    assert sweep.job_id_of(detail) == "from-name"
    detail.input = "not json"
    assert sweep.job_id_of(detail) == "from-name"


def test_a_job_committed_as_ended_without_its_result_gets_it_with_its_status(
    services: Services, store: JobStore, published: Published
) -> None:
    """Finalize commits the terminal manifest first, then writes the files, result.json last: one
    that stopped in between (and failed the execution) leaves the files to the sweeper."""
    job = running_job(services)
    finalize_job(FinalizeTaskInput(job_id=job), services)  # the loop's end: succeeded
    store.s3.delete_object(Bucket=store.bucket, Key=JobKeys(job).result)
    published.results.clear()
    outcome = sweep.sweep_execution(status_event(job, "FAILED", error="FinalizeFailed"), services)
    assert (outcome.action, outcome.status) == ("completed", "succeeded")
    result = assert_ended(store, job, "succeeded")
    assert [r.status for r in published.results] == ["succeeded"]
    assert sweep.sweep_execution(status_event(job, "FAILED"), services).action == "already_ended"
    assert store.get_result(job) == result
