"""The one submit path, on moto S3 + Step Functions (a trivial Pass state machine)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from longform_core.config import Settings
from longform_core.errors import IdempotencyConflict, RequestInvalid
from longform_core.executions import StepFunctionsExecutions, execution_arn_for
from longform_core.job_store import JobStore
from longform_core.request import parse_request
from longform_core.services import Services
from longform_core.submit import job_id_for, submit_job

from .conftest import NoProvider


@pytest.fixture
def settings(store: JobStore) -> Settings:
    return Settings(jobs_bucket=store.bucket, default_model="default/model")


def submit(
    raw: Any, store: JobStore, sfn: Any, machine: str, settings: Settings, key: str | None = None
) -> Any:
    services = Services(
        settings=settings,
        store=store,
        provider=NoProvider(),
        executions=StepFunctionsExecutions(sfn, machine),
    )
    return submit_job(raw, services, idempotency_key=key)


def bucket_keys(store: JobStore) -> list[str]:
    return sorted(o["Key"] for o in store.s3.list_objects_v2(Bucket=store.bucket).get("Contents", []))


def executions(sfn: Any, machine: str) -> list[dict[str, Any]]:
    return list(sfn.list_executions(stateMachineArn=machine)["executions"])


def test_job_ids() -> None:
    assert job_id_for("abc") == job_id_for("abc")
    assert job_id_for("abc") != job_id_for("abd")
    assert job_id_for("abc").startswith("k-")
    assert len(job_id_for("x" * 1000)) <= 80  # a valid execution name
    assert job_id_for(None) != job_id_for(None)
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:longform"
    assert execution_arn_for(arn, "j1") == "arn:aws:states:us-east-1:123456789012:execution:longform:j1"


def test_new_job(store: JobStore, sfn: Any, machine: str, settings: Settings) -> None:
    job = submit({"prompt": "Write a novel."}, store, sfn, machine, settings)
    assert job.created is True
    assert job.model == "default/model"
    assert bucket_keys(store) == [f"jobs/{job.job_id}/manifest.json", f"jobs/{job.job_id}/request.json"]
    assert store.get_request(job.job_id).prompt == "Write a novel."
    manifest, _ = store.get_manifest(job.job_id)
    assert manifest.status == "queued"
    assert manifest.model == "default/model"
    assert manifest.chunks == 0
    assert manifest.execution_arn == job.execution_arn
    assert manifest.reasoning_phase == "start"
    runs = executions(sfn, machine)
    assert [r["name"] for r in runs] == [job.job_id]
    assert runs[0]["executionArn"] == job.execution_arn
    assert job.execution_arn == execution_arn_for(machine, job.job_id)
    described = sfn.describe_execution(executionArn=job.execution_arn)
    assert json.loads(described["input"]) == {"job_id": job.job_id}  # a reference, never the text


def test_model_from_the_request_and_answer_start(
    store: JobStore, sfn: Any, machine: str, settings: Settings
) -> None:
    raw = {
        "model": "chosen/model",
        "messages": [{"role": "user", "content": "Go"}, {"role": "assistant", "content": "Once upon"}],
    }
    job = submit(raw, store, sfn, machine, settings, key="k1")
    assert job.model == "chosen/model"
    manifest, _ = store.get_manifest(job.job_id)
    assert manifest.model == "chosen/model"
    assert manifest.reasoning_phase == "answer"  # the user started the answer: no think block to come


def test_same_key_twice_starts_one_execution(
    store: JobStore, sfn: Any, machine: str, settings: Settings
) -> None:
    first = submit({"prompt": "Hello"}, store, sfn, machine, settings, key="idem-1")
    second = submit(json.dumps({"prompt": "Hello"}), store, sfn, machine, settings, key="idem-1")
    assert first.created is True
    assert second.created is False
    assert second.job_id == first.job_id == job_id_for("idem-1")
    assert second.execution_arn == first.execution_arn
    assert len(executions(sfn, machine)) == 1
    assert len(bucket_keys(store)) == 2


def test_same_key_different_body_conflicts(
    store: JobStore, sfn: Any, machine: str, settings: Settings
) -> None:
    first = submit({"prompt": "Hello"}, store, sfn, machine, settings, key="idem-2")
    with pytest.raises(IdempotencyConflict):
        submit({"prompt": "Hello", "temperature": 1.0}, store, sfn, machine, settings, key="idem-2")
    assert store.get_request(first.job_id).temperature is None  # the original stays
    assert len(executions(sfn, machine)) == 1


def test_different_keys_are_different_jobs(
    store: JobStore, sfn: Any, machine: str, settings: Settings
) -> None:
    a = submit({"prompt": "Hello"}, store, sfn, machine, settings, key="a")
    b = submit({"prompt": "Hello"}, store, sfn, machine, settings, key="b")
    assert a.job_id != b.job_id
    assert a.created
    assert b.created
    assert len(executions(sfn, machine)) == 2


def test_invalid_request_writes_nothing(store: JobStore, sfn: Any, machine: str, settings: Settings) -> None:
    with pytest.raises(RequestInvalid) as info:
        submit({"messages": [], "max_chunks": 0, "bogus": True}, store, sfn, machine, settings, key="bad")
    assert {p.field for p in info.value.problems} >= {"messages", "max_chunks", "bogus"}
    assert bucket_keys(store) == []
    assert executions(sfn, machine) == []


def test_resubmit_after_a_crash_before_start_execution(
    store: JobStore, sfn: Any, machine: str, settings: Settings
) -> None:
    """request.json was written but the execution never started: the retry starts it."""
    req_id = job_id_for("crashy")
    store.put_request(req_id, parse_request({"prompt": "Hello"}))
    job = submit({"prompt": "Hello"}, store, sfn, machine, settings, key="crashy")
    assert job.job_id == req_id
    assert [r["name"] for r in executions(sfn, machine)] == [req_id]
    assert store.find_manifest(req_id) is not None


class ForgetfulExecutions(StepFunctionsExecutions):
    """Step Functions 90 days after an execution closed: its name can be started again."""

    def __init__(self, sfn: Any, machine: str):
        super().__init__(sfn, machine)
        self.started: list[str] = []

    def start(self, name: str, input_json: str) -> tuple[str, bool]:
        self.started.append(name)
        return self.arn_for(name), True


def test_replaying_a_key_of_a_finished_job_returns_it_as_it_is(
    store: JobStore, sfn: Any, machine: str, settings: Settings
) -> None:
    first = submit({"prompt": "Write"}, store, sfn, machine, settings, key="novella-1")
    manifest, etag = store.get_manifest(first.job_id)
    manifest.status = "succeeded"
    store.put_manifest(manifest, if_match=etag)
    before = store.s3.get_object(Bucket=store.bucket, Key=f"jobs/{first.job_id}/manifest.json")["Body"].read()
    forgetful = ForgetfulExecutions(sfn, machine)
    services = Services(settings=settings, store=store, provider=NoProvider(), executions=forgetful)
    again = submit_job({"prompt": "Write"}, services, idempotency_key="novella-1")
    assert forgetful.started == []  # nothing started, whatever Step Functions would allow
    assert (again.job_id, again.created, again.execution_arn) == (first.job_id, False, first.execution_arn)
    after = store.s3.get_object(Bucket=store.bucket, Key=f"jobs/{first.job_id}/manifest.json")["Body"].read()
    assert after == before  # the finished job's records are untouched


# ---- owners and the deployment's limits -------------------------------------------------------------


def submit_as(services: Services, raw: Any, *, owner: str | None, key: str | None = None) -> Any:
    return submit_job(raw, services, idempotency_key=key, owner=owner)


@pytest.fixture
def services(store: JobStore, sfn: Any, machine: str, settings: Settings) -> Services:
    executions = StepFunctionsExecutions(sfn, machine)
    return Services(settings=settings, store=store, provider=NoProvider(), executions=executions)


def with_settings(services: Services, **changes: Any) -> Services:
    return Services(
        settings=services.settings.model_copy(update=changes),
        store=services.store,
        provider=services.provider,
        executions=services.executions,
    )


def test_the_owner_is_recorded_and_namespaces_the_key(services: Services, sfn: Any, machine: str) -> None:
    alice = submit_as(services, {"prompt": "Write."}, owner="iam:alice", key="k1")
    bob = submit_as(services, {"prompt": "Write."}, owner="iam:bob", key="k1")
    again = submit_as(services, {"prompt": "Write."}, owner="iam:alice", key="k1")
    assert alice.job_id == again.job_id == job_id_for("k1", "iam:alice")
    assert bob.job_id == job_id_for("k1", "iam:bob") != alice.job_id
    assert (alice.created, bob.created, again.created) == (True, True, False)
    assert services.store.get_manifest(alice.job_id)[0].owner == "iam:alice"
    assert services.store.get_manifest(bob.job_id)[0].owner == "iam:bob"
    assert sorted(e["name"] for e in executions(sfn, machine)) == sorted([alice.job_id, bob.job_id])
    # without an owner (a trusted local tool), the key alone, as before owners existed
    local = submit_as(services, {"prompt": "Write."}, owner=None, key="k1")
    assert local.job_id == job_id_for("k1") not in (alice.job_id, bob.job_id)
    assert services.store.get_manifest(local.job_id)[0].owner is None


def test_a_model_outside_allowed_models_is_refused_and_writes_nothing(
    services: Services, store: JobStore, sfn: Any, machine: str
) -> None:
    services = with_settings(services, allowed_models=("a/one", "b/two"))
    with pytest.raises(RequestInvalid) as info:
        submit_as(services, {"prompt": "Write.", "model": "c/three"}, owner="iam:alice")
    assert [p.to_dict() for p in info.value.problems] == [
        {"field": "model", "message": "'c/three' is not allowed here; allowed: a/one, b/two, default/model"}
    ]
    assert bucket_keys(store) == []
    assert executions(sfn, machine) == []
    assert submit_as(services, {"prompt": "Write.", "model": "b/two"}, owner="iam:alice").model == "b/two"
    # the deployment's default model is always allowed
    assert submit_as(services, {"prompt": "Write."}, owner="iam:alice").model == "default/model"


def test_no_allowed_models_means_any(services: Services) -> None:
    assert submit_as(services, {"prompt": "Write.", "model": "any/model"}, owner=None).model == "any/model"


def test_the_default_cost_cap_applies_only_to_requests_without_one(
    services: Services, store: JobStore
) -> None:
    uncapped = submit_as(services, {"prompt": "Write."}, owner=None)
    assert store.get_request(uncapped.job_id).max_cost_usd is None
    services = with_settings(services, default_max_cost_usd=1.25)
    capped = submit_as(services, {"prompt": "Write."}, owner=None)
    stored = json.loads(store.get_text(f"jobs/{capped.job_id}/request.json") or "{}")
    assert stored["max_cost_usd"] == 1.25  # in request.json, where the chunks' budget reads it
    own = submit_as(services, {"prompt": "Write.", "max_cost_usd": 9.5}, owner=None)
    assert store.get_request(own.job_id).max_cost_usd == 9.5
    # a replayed key finds its job: the default is applied the same way both times
    first = submit_as(services, {"prompt": "Write."}, owner="iam:a", key="cap")
    again = submit_as(services, {"prompt": "Write."}, owner="iam:a", key="cap")
    assert (first.job_id, first.created, again.created) == (again.job_id, True, False)
