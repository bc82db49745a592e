"""``results/``: the two drop folders answer into one folder, and never into each other's files.

A request and a batch dropped under the same name (``requests/x.json``, ``batches/x.jsonl``) each
write, and delete, only their own answers: once both error reports were ``results/x.error.json``,
so a good request deleted the report a bad batch had written (and a good batch a bad request's).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from longform_core.batch.drop_folder import handle_event as handle_batch_event
from longform_core.drop_folder import handle_event as handle_request_event
from longform_core.executions import StepFunctionsExecutions
from longform_core.job_store import JobStore
from longform_core.results import RESULTS_PREFIX, ResultKeys
from longform_core.services import Services

GOOD_REQUEST = {"prompt": "Write a history of tides.", "max_chunks": 5}
GOOD_BATCH = b'{"custom_id": "tides", "prompt": "Write a history of tides."}\n'
BAD_BATCH = b'{"custom_id": "tides", "prompt": "Write a history of tides."}\nnot json\n'


def dropped(store: JobStore, key: str, body: bytes) -> dict[str, Any]:
    """Upload ``key`` and the EventBridge "Object Created" event the bucket sends for it."""
    store.s3.put_object(Bucket=store.bucket, Key=key, Body=body)
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": store.bucket}, "object": {"key": key}, "reason": "PutObject"},
    }


@pytest.fixture
def both(services: Services, sfn: Any, machine: str) -> Services:
    """Services that start jobs and batches (a pass-through machine for each)."""
    services.batch_executions = StepFunctionsExecutions(sfn, machine)
    return services


def test_a_good_request_keeps_the_error_report_of_a_bad_batch_of_the_same_name(both: Services) -> None:
    store = both.store
    (batch,) = handle_batch_event(dropped(store, "batches/tides.jsonl", BAD_BATCH), both)
    assert batch.action == "rejected" and batch.error_key is not None
    report = store.get_text(batch.error_key)
    assert report is not None and json.loads(report)["error"] == "BatchInvalid"

    (job,) = handle_request_event(
        dropped(store, "requests/tides.json", json.dumps(GOOD_REQUEST).encode()), both
    )
    assert job.action == "started"
    assert store.get_text(batch.error_key) == report  # the batch's report is still there, unchanged


def test_a_good_batch_keeps_the_error_report_of_a_bad_request_of_the_same_name(both: Services) -> None:
    store = both.store
    (job,) = handle_request_event(dropped(store, "requests/tides.json", b'{"prompt": ""}'), both)
    assert job.action == "rejected" and job.error_key is not None
    report = store.get_text(job.error_key)
    assert report is not None and json.loads(report)["error"] == "RequestInvalid"

    (batch,) = handle_batch_event(dropped(store, "batches/tides.jsonl", GOOD_BATCH), both)
    assert batch.action == "started"
    assert store.get_text(job.error_key) == report


def test_each_drop_folder_deletes_its_own_stale_error_report(both: Services) -> None:
    """A good upload under a name replaces that folder's earlier error report, as before."""
    store = both.store
    (bad,) = handle_batch_event(dropped(store, "batches/q1.jsonl", BAD_BATCH), both)
    assert bad.error_key == "results/q1.batch-error.json" and store.get_text(bad.error_key) is not None
    (good,) = handle_batch_event(dropped(store, "batches/q1.jsonl", GOOD_BATCH), both)
    assert good.action == "started" and store.get_text("results/q1.batch-error.json") is None

    (bad_job,) = handle_request_event(dropped(store, "requests/q1.json", b'{"prompt": ""}'), both)
    assert bad_job.error_key == "results/q1.error.json" and store.get_text(bad_job.error_key) is not None
    body = json.dumps(GOOD_REQUEST).encode()
    (good_job,) = handle_request_event(dropped(store, "requests/q1.json", body), both)
    assert good_job.action == "started" and store.get_text("results/q1.error.json") is None


@pytest.mark.parametrize("name", ["tides", "essays/tides", "a.b", "x.error", "deep/er/name"])
def test_every_answer_of_one_name_has_its_own_key_under_results(name: str) -> None:
    keys = ResultKeys(name).all()
    assert len(set(keys)) == len(keys) == 6
    assert all(k.startswith(f"{RESULTS_PREFIX}{name}.") for k in keys)
    assert ResultKeys(name).error != ResultKeys(name).batch_error
