"""The S3 drop folder on moto S3 + Step Functions (a trivial Pass state machine)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from longform_core.drop_folder import (
    CreatedObject,
    created_objects,
    handle_event,
    request_name,
)
from longform_core.executions import StepFunctionsExecutions
from longform_core.job_store import JobStore
from longform_core.services import Services

GOOD = {"prompt": "Write a history of tides.", "max_chunks": 5}


class Counter:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


def upload(store: JobStore, key: str, body: bytes | str | dict[str, Any]) -> str:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    etag: str = store.s3.put_object(Bucket=store.bucket, Key=key, Body=data)["ETag"]
    return etag.strip('"')


def eventbridge(store: JobStore, key: str, *, detail_type: str = "Object Created") -> dict[str, Any]:
    head = store.s3.head_object(Bucket=store.bucket, Key=key)
    return {
        "version": "0",
        "detail-type": detail_type,
        "source": "aws.s3",
        "detail": {
            "bucket": {"name": store.bucket},
            "object": {"key": key, "size": head["ContentLength"], "etag": head["ETag"].strip('"')},
            "reason": "PutObject",
        },
    }


def record(bucket: str, encoded_key: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {
        "eventSource": "aws:s3",
        "eventName": event_name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": encoded_key, "size": 1, "eTag": "abc"}},
    }


def drop(services: Services, key: str, body: Any) -> dict[str, Any]:
    upload(services.store, key, body)
    (outcome,) = handle_event(eventbridge(services.store, key), services)
    return outcome.model_dump(exclude_none=True)


def executions(services: Services) -> list[dict[str, Any]]:
    arn = services.settings.state_machine_arn
    sfn = services.require_executions().sfn  # type: ignore[attr-defined]
    return list(sfn.list_executions(stateMachineArn=arn)["executions"])


def keys_under(store: JobStore, prefix: str) -> list[str]:
    page = store.s3.list_objects_v2(Bucket=store.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in page.get("Contents", []))


def error_file(store: JobStore, name: str) -> dict[str, Any]:
    text = store.get_text(f"results/{name}.error.json")
    assert text is not None, f"no results/{name}.error.json"
    data: dict[str, Any] = json.loads(text)
    return data


# ---- keys and event shapes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "want"),
    [
        ("requests/essay.json", ("essay", "request")),
        ("requests/essay.JSON", ("essay", "request")),
        ("requests/notes/tides.txt", ("notes/tides", "prompt")),
        ("requests/a/b/c.d.md", ("a/b/c.d", "prompt")),
        ("requests/with space+plus.md", ("with space+plus", "prompt")),
    ],
)
def test_request_names(key: str, want: tuple[str, str]) -> None:
    assert request_name(key) == want


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("results/essay.json", "not under requests/"),
        ("jobs/x/request.json", "not under requests/"),
        ("requests/", "a folder"),
        ("requests/drafts/", "a folder"),
        ("requests/picture.png", "extension '.png'"),
        ("requests/README", "extension '(none)'"),
        ("requests/.json", "extension '(none)'"),  # a hidden file, no extension
        ("requests/drafts/.md", "extension '(none)'"),
    ],
)
def test_keys_that_are_not_requests(key: str, reason: str) -> None:
    got = request_name(key)
    assert isinstance(got, str) and got.startswith(reason), got


def test_eventbridge_shape() -> None:
    event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {
            "bucket": {"name": "b"},
            "object": {"key": "requests/c++.md", "etag": "e1", "version-id": "v1"},
        },
    }
    objects, skipped = created_objects(event)
    assert skipped == []
    # the key as given first; a decoded spelling only as a fallback
    assert objects == [
        CreatedObject(bucket="b", keys=("requests/c++.md", "requests/c  .md"), etag="e1", version_id="v1")
    ]
    deleted = {**event, "detail-type": "Object Deleted"}
    objects, skipped = created_objects(deleted)
    assert objects == [] and skipped[0].action == "ignored" and "Object Deleted" in (skipped[0].reason or "")


def test_s3_notification_records_shape() -> None:
    event = {
        "Records": [
            record("b", "requests/red+flower%281%29.md"),
            record("b", "requests/gone.json", "ObjectRemoved:Delete"),
            record("b", "requests/c%2B%2B.txt", "s3:ObjectCreated:CompleteMultipartUpload"),
        ]
    }
    objects, skipped = created_objects(event)
    assert [o.keys for o in objects] == [
        ("requests/red flower(1).md", "requests/red+flower%281%29.md"),
        ("requests/c++.txt", "requests/c%2B%2B.txt"),
    ]
    assert [(s.key, s.action) for s in skipped] == [("requests/gone.json", "ignored")]


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"},
        {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}},
        {"Records": []},
        {"Records": ["not a record"]},
    ],
)
def test_other_events_are_ignored(event: dict[str, Any]) -> None:
    objects, skipped = created_objects(event)
    assert objects == []
    assert skipped and all(s.action == "ignored" for s in skipped)


# ---- valid requests ------------------------------------------------------------------------------


def test_a_json_request_starts_a_job_with_its_source(services: Services) -> None:
    store = services.store
    etag = upload(store, "requests/essays/tides.json", GOOD)
    counter = Counter()
    (outcome,) = handle_event(eventbridge(store, "requests/essays/tides.json"), services, metrics=counter)
    assert outcome.action == "started"
    assert outcome.name == "essays/tides"
    assert outcome.job_id is not None and outcome.job_id.startswith("k-")
    assert store.get_request(outcome.job_id).prompt == GOOD["prompt"]
    manifest, _ = store.get_manifest(outcome.job_id)
    assert manifest.model == "default/model"
    assert manifest.source is not None
    assert manifest.source.model_dump() == {
        "kind": "s3",
        "key": "requests/essays/tides.json",
        "name": "essays/tides",
        "etag": etag,
    }
    assert [e["name"] for e in executions(services)] == [outcome.job_id]
    assert counter.counts == {"DropFolderJobsStarted": 1}
    assert keys_under(store, "results/") == []


@pytest.mark.parametrize("suffix", [".txt", ".md"])
def test_a_text_file_is_the_prompt_with_the_defaults(services: Services, suffix: str) -> None:
    text = "# Tides\n\nWrite a long history of tide tables.\n"
    out = drop(services, f"requests/prompts/tides{suffix}", ("\ufeff" + text).encode())
    assert out["action"] == "started" and out["name"] == "prompts/tides"
    request = services.store.get_request(out["job_id"])
    assert request.prompt == text  # verbatim, without the byte-order mark
    assert request.model is None  # the deployment's default model applies
    assert request.max_chunks == 200
    assert services.store.get_manifest(out["job_id"])[0].model == "default/model"


def test_a_json_request_may_start_with_a_byte_order_mark(services: Services) -> None:
    out = drop(services, "requests/bom.json", b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    assert out["action"] == "started"


def test_the_same_event_twice_starts_one_job(services: Services) -> None:
    store = services.store
    upload(store, "requests/twice.json", GOOD)
    event = eventbridge(store, "requests/twice.json")
    (first,) = handle_event(event, services)
    (second,) = handle_event(event, services)
    assert first.action == "started"
    assert second.action == "duplicate"
    assert second.job_id == first.job_id
    assert len(executions(services)) == 1


def test_the_same_content_uploaded_again_is_the_same_job(services: Services) -> None:
    first = drop(services, "requests/again.json", GOOD)
    second = drop(services, "requests/again.json", GOOD)
    assert (first["action"], second["action"]) == ("started", "duplicate")
    assert second["job_id"] == first["job_id"]
    assert len(executions(services)) == 1


def test_different_content_is_a_new_job_and_another_key_too(services: Services) -> None:
    first = drop(services, "requests/essay.json", GOOD)
    changed = drop(services, "requests/essay.json", {**GOOD, "seed": 7})
    elsewhere = drop(services, "requests/essay-copy.json", GOOD)
    assert changed["action"] == elsewhere["action"] == "started"
    assert len({first["job_id"], changed["job_id"], elsewhere["job_id"]}) == 3
    assert len(executions(services)) == 3


def test_a_late_duplicate_of_a_finished_job_starts_nothing(services: Services) -> None:
    store = services.store
    first = drop(services, "requests/done.json", GOOD)
    manifest, etag = store.get_manifest(first["job_id"])
    manifest.status = "succeeded"
    store.put_manifest(manifest, if_match=etag)

    class NoStart(StepFunctionsExecutions):
        def start(self, name: str, input_json: str) -> tuple[str, bool]:
            raise AssertionError("a finished job must not be started again")

    executions = services.require_executions()
    services.executions = NoStart(executions.sfn, executions.state_machine_arn)  # type: ignore[attr-defined]
    second = drop(services, "requests/done.json", GOOD)
    assert second["action"] == "duplicate" and second["job_id"] == first["job_id"]


def test_an_s3_notification_record_starts_a_job(services: Services) -> None:
    store = services.store
    upload(store, "requests/red flower.md", b"Describe a red flower at length.")
    event = {"Records": [record(store.bucket, "requests/red+flower.md")]}
    (outcome,) = handle_event(event, services)
    assert outcome.action == "started"
    assert outcome.key == "requests/red flower.md"
    assert outcome.name == "red flower"


# ---- invalid requests ----------------------------------------------------------------------------


def test_bad_json_names_the_problem_and_starts_nothing(services: Services) -> None:
    store = services.store
    counter = Counter()
    etag = upload(store, "requests/broken.json", b'{"prompt": "x",')
    (outcome,) = handle_event(eventbridge(store, "requests/broken.json"), services, metrics=counter)
    assert outcome.action == "rejected"
    assert outcome.error_key == "results/broken.error.json"
    body = error_file(store, "broken")
    assert body["error"] == "RequestInvalid"
    assert body["key"] == "requests/broken.json"
    assert body["etag"] == etag
    (problem,) = body["problems"]
    assert problem["field"] == "(body)" and problem["message"].startswith("not valid JSON")
    assert executions(services) == []
    assert keys_under(store, "jobs/") == []
    assert counter.counts == {"DropFolderRequestsRejected": 1}


def test_bad_fields_are_all_named(services: Services) -> None:
    bad = {
        "messages": [{"role": "robot", "content": "hi"}],
        "temperature": 9,
        "max_output_tokens": 0,
        "colour": "blue",
    }
    out = drop(services, "requests/nested/bad.json", bad)
    assert out["action"] == "rejected" and out["name"] == "nested/bad"
    body = error_file(services.store, "nested/bad")
    fields = {p["field"] for p in body["problems"]}
    assert {"messages[0].role", "temperature", "max_output_tokens", "colour", "messages"} <= fields
    assert body["problems"] == out["problems"]
    assert "unknown role 'robot'" in body["message"]
    assert executions(services) == []


@pytest.mark.parametrize(
    ("key", "body", "field", "message"),
    [
        ("requests/empty.json", b"", "(body)", "the file is empty"),
        ("requests/blank.json", b"  \n", "(body)", "the file is empty"),
        ("requests/empty.txt", b"", "(body)", "the file is empty"),
        ("requests/blank.md", b"\n\t \n", "(body)", "the file is empty"),
        ("requests/list.json", b"[1, 2]", "(body)", "expected a JSON object, got list"),
        ("requests/latin1.txt", "caf\u00e9".encode("latin-1"), "(body)", "not UTF-8 text"),
        ("requests/huge.txt", b"x" * 4097, "(body)", "the object is 4097 bytes; the limit is 4096"),
        ("requests/huge.json", b" " * 5000 + b"{}", "(body)", "the object is 5002 bytes"),
    ],
)
def test_unusable_files_are_rejected(
    services: Services, key: str, body: bytes, field: str, message: str
) -> None:
    out = drop(services, key, body)
    assert out["action"] == "rejected"
    name = key.removeprefix("requests/").rsplit(".", 1)[0]
    (problem,) = error_file(services.store, name)["problems"]
    assert problem["field"] == field
    assert problem["message"].startswith(message), problem
    assert executions(services) == []
    assert keys_under(services.store, "jobs/") == []


def test_a_file_at_the_cap_is_read(services: Services) -> None:
    out = drop(services, "requests/full.txt", b"x" * 4096)
    assert out["action"] == "started"


def test_a_duplicate_bad_delivery_writes_the_same_error_again(services: Services) -> None:
    store = services.store
    upload(store, "requests/dup.json", b"{")
    event = eventbridge(store, "requests/dup.json")
    handle_event(event, services)
    first = store.get_text("results/dup.error.json")
    (again,) = handle_event(event, services)
    assert again.action == "rejected"
    assert store.get_text("results/dup.error.json") == first
    assert executions(services) == []


def test_a_good_upload_clears_the_error_of_a_bad_one(services: Services) -> None:
    store = services.store
    assert drop(services, "requests/fixed.json", {"prompt": ""})["action"] == "rejected"
    assert keys_under(store, "results/") == ["results/fixed.error.json"]
    assert drop(services, "requests/fixed.json", GOOD)["action"] == "started"
    assert keys_under(store, "results/") == []


# ---- ignored -------------------------------------------------------------------------------------


def test_non_request_keys_are_ignored_without_reading_them(services: Services) -> None:
    store = services.store
    counter = Counter()
    for key in ("requests/photo.png", "results/x.json", "requests/drafts/"):
        upload(store, key, b"{}")
        (outcome,) = handle_event(eventbridge(store, key), services, metrics=counter)
        assert outcome.action == "ignored", key
        assert outcome.reason
    assert counter.counts == {"DropFolderObjectsIgnored": 3}
    assert executions(services) == []
    assert keys_under(store, "jobs/") == []


def test_an_object_deleted_before_delivery_is_ignored(services: Services) -> None:
    store = services.store
    upload(store, "requests/gone.json", GOOD)
    event = eventbridge(store, "requests/gone.json")
    store.s3.delete_object(Bucket=store.bucket, Key="requests/gone.json")
    (outcome,) = handle_event(event, services)
    assert outcome.action == "ignored" and outcome.reason == "the object no longer exists"


def test_another_bucket_is_ignored(services: Services) -> None:
    event = {"Records": [record("someone-elses-bucket", "requests/x.json")]}
    (outcome,) = handle_event(event, services)
    assert outcome.action == "ignored" and "not the jobs bucket" in (outcome.reason or "")


def test_without_a_state_machine_a_valid_request_is_an_error(services: Services) -> None:
    services.executions = None  # a deployment without STATE_MACHINE_ARN builds none
    upload(services.store, "requests/x.json", GOOD)
    with pytest.raises(RuntimeError, match="STATE_MACHINE_ARN"):
        handle_event(eventbridge(services.store, "requests/x.json"), services)


# ---- ownership and the deployment's limits ---------------------------------------------------------


def limited(services: Services, **settings: Any) -> Services:
    return Services(
        settings=services.settings.model_copy(update=settings),
        store=services.store,
        provider=services.provider,
        executions=services.executions,
    )


def test_the_bucket_owns_the_drop_folders_jobs(services: Services) -> None:
    """Whoever may write requests/ reads results/: the job is the bucket's, no API caller's."""
    out = drop(services, "requests/owned.json", GOOD)
    manifest, _ = services.store.get_manifest(out["job_id"])
    assert manifest.owner == f"s3://{services.store.bucket}"
    stored = json.loads(services.store.get_text(f"jobs/{out['job_id']}/manifest.json") or "{}")
    assert stored["owner"] == f"s3://{services.store.bucket}"


def test_a_model_the_deployment_does_not_allow_is_rejected_naming_them(services: Services) -> None:
    services = limited(services, allowed_models=("a/one", "b/two"))
    out = drop(services, "requests/other-model.json", {**GOOD, "model": "c/three"})
    assert out["action"] == "rejected"
    assert out["error_key"] == "results/other-model.error.json"
    body = error_file(services.store, "other-model")
    assert body["error"] == "RequestInvalid"
    assert body["problems"] == [
        {"field": "model", "message": "'c/three' is not allowed here; allowed: a/one, b/two, default/model"}
    ]
    assert executions(services) == []
    assert keys_under(services.store, "jobs/") == []
    # an allowed model, and the default model, start
    assert drop(services, "requests/one.json", {**GOOD, "model": "a/one"})["action"] == "started"
    assert drop(services, "requests/default.md", b"Write about tides.")["action"] == "started"


def test_the_default_cost_cap_applies_to_a_dropped_prompt(services: Services) -> None:
    services = limited(services, default_max_cost_usd=1.5)
    out = drop(services, "requests/capped.md", b"Write about tides.")
    assert services.store.get_request(out["job_id"]).max_cost_usd == 1.5
    own = drop(services, "requests/own-cap.json", {**GOOD, "max_cost_usd": 9.0})
    assert services.store.get_request(own["job_id"]).max_cost_usd == 9.0
