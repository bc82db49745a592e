"""Jobs belong to their caller: two callers of the HTTP API (moto S3 + Step Functions, a Pass state
machine) never see, read, cancel or list each other's jobs, nor share idempotency keys."""

from __future__ import annotations

import json
from typing import Any

import pytest
from longform_core.api.route_helpers import caller_owner
from longform_core.drop_folder import drop_folder_owner
from longform_core.submit import job_id_for

from longform.local.apigw import TEST_IDENTITY, body_of, header

from .api_harness import REQUEST, Api, ApiFactory, seed
from .conftest import BUCKET

ALICE = {
    "sourceIp": "203.0.113.10",
    "caller": "AROAEXAMPLE:alice",
    "userArn": "arn:aws:sts::123456789012:assumed-role/longform-user/alice",
    "accountId": "123456789012",
}
BOB = {
    "sourceIp": "203.0.113.10",  # the same address, another principal
    "caller": "AROAEXAMPLE:bob",
    "userArn": "arn:aws:sts::123456789012:assumed-role/longform-user/bob",
    "accountId": "123456789012",
}
ALICE_OWNER = "iam:arn:aws:sts::123456789012:assumed-role/longform-user/alice"
BOB_OWNER = "iam:arn:aws:sts::123456789012:assumed-role/longform-user/bob"
ONE_JOB_ROUTES = (
    ("GET", "/generations/{id}"),
    ("GET", "/generations/{id}/output"),
    ("DELETE", "/generations/{id}"),
)


def submit(call: Api, identity: dict[str, str], body: Any = REQUEST, **headers: str) -> dict[str, Any]:
    response = call("POST", "/generations", body=body, identity=identity, headers=headers or None)
    assert response["statusCode"] == 202, response
    return response


def listed(call: Api, identity: dict[str, str], limit: int = 100) -> list[str]:
    """Every job id the caller's listing shows, page after page."""
    seen: list[str] = []
    query: dict[str, str] = {"limit": str(limit)}
    while True:
        response = call("GET", "/generations", identity=identity, query=query)
        assert response["statusCode"] == 200
        page = body_of(response)
        seen += [item["job_id"] for item in page["items"]]
        if not page["next_token"]:
            return seen
        query = {"limit": str(limit), "next_token": page["next_token"]}


# ---- the owner of a job ----------------------------------------------------------------------------


def test_submit_records_the_callers_iam_principal_as_the_owner(call: Api) -> None:
    job_id = body_of(submit(call, ALICE))["job_id"]
    manifest = call.store.find_manifest(job_id)
    assert manifest is not None
    assert manifest.owner == ALICE_OWNER
    stored = json.loads(
        call.store.s3.get_object(Bucket=BUCKET, Key=f"jobs/{job_id}/manifest.json")["Body"].read()
    )
    assert stored["owner"] == ALICE_OWNER


def test_caller_owner_follows_the_apis_authorization() -> None:
    assert caller_owner(ALICE, "IAM") == ALICE_OWNER
    # an IAM user's principal without a userArn in the context: the caller's id
    assert caller_owner({"caller": "AIDAEXAMPLE", "sourceIp": "198.51.100.1"}, "IAM") == "iam:AIDAEXAMPLE"
    with_key = {**ALICE, "apiKeyId": "k1a2b3"}
    assert caller_owner(with_key, "API_KEY") == "apikey:k1a2b3"
    assert caller_owner(with_key, "IAM") == ALICE_OWNER  # a key means nothing where IAM authorizes
    # longform serve: nothing authenticates on loopback, every request comes from 127.0.0.1
    assert caller_owner({"sourceIp": "127.0.0.1", "userAgent": "curl"}, "IAM") == "ip:127.0.0.1"
    assert caller_owner({"sourceIp": "127.0.0.1", "apiKeyId": None}, "API_KEY") == "ip:127.0.0.1"
    assert caller_owner({}, "IAM") == caller_owner(None, "IAM") == "anonymous"
    assert caller_owner(TEST_IDENTITY, "IAM").startswith("iam:arn:aws:sts::")


# ---- another caller's job is an unknown job ----------------------------------------------------------


@pytest.mark.parametrize(("method", "route"), ONE_JOB_ROUTES)
def test_another_callers_job_is_a_404_exactly_like_an_unknown_id(call: Api, method: str, route: str) -> None:
    job_id = body_of(submit(call, ALICE))["job_id"]
    foreign = call(method, route.format(id=job_id), identity=BOB)
    unknown_id = "k-" + "0" * 40  # as long as a real id: the bodies differ only in the id
    unknown = call(method, route.format(id=unknown_id), identity=BOB)
    assert foreign["statusCode"] == unknown["statusCode"] == 404
    assert header(foreign, "Content-Type") == header(unknown, "Content-Type") == "application/json"
    assert foreign["body"].replace(job_id, unknown_id) == unknown["body"]
    assert body_of(foreign) == {
        "error": "JobNotFound",
        "message": f"no job {job_id!r}",
        "problems": [{"field": "job_id", "message": "no such job"}],
        "job_id": job_id,
    }
    # and the owner still has it, untouched
    mine = call("GET", f"/generations/{job_id}", identity=ALICE)
    assert mine["statusCode"] == 200
    assert body_of(mine)["status"] == "queued"


def test_another_caller_cannot_cancel_a_job(call: Api) -> None:
    seed(call.store, "job-a", status="queued", owner=ALICE_OWNER)
    assert call("DELETE", "/generations/job-a", identity=BOB)["statusCode"] == 404
    manifest = call.store.find_manifest("job-a")
    assert manifest is not None and manifest.status == "queued"
    assert call.store.get_result("job-a") is None
    assert call.keys() == ["jobs/job-a/manifest.json", "jobs/job-a/request.json"]  # nothing written
    cancelled = call("DELETE", "/generations/job-a", identity=ALICE)
    assert cancelled["statusCode"] == 200
    assert body_of(cancelled)["status"] == "cancelled"


def test_another_caller_cannot_read_the_output(call: Api) -> None:
    seed(call.store, "job-b", text="Alice's secret essay.", owner=ALICE_OWNER)
    foreign = call("GET", "/generations/job-b/output", identity=BOB)
    assert foreign["statusCode"] == 404
    assert "secret essay" not in foreign["body"]
    as_markdown = call("GET", "/generations/job-b/output", identity=BOB, headers={"Accept": "text/markdown"})
    assert as_markdown["statusCode"] == 404
    assert "secret essay" not in as_markdown["body"]
    assert (
        body_of(call("GET", "/generations/job-b/output", identity=ALICE))["text"] == "Alice's secret essay."
    )


@pytest.mark.parametrize(("method", "route"), ONE_JOB_ROUTES)
def test_jobs_without_an_owner_and_drop_folder_jobs_are_no_callers(
    call: Api, method: str, route: str
) -> None:
    """A job the CLI submitted in-process (no owner) or the drop folder started (the bucket's)."""
    seed(call.store, "job-cli", owner=None)
    seed(call.store, "job-drop", owner=drop_folder_owner(BUCKET))
    for job_id in ("job-cli", "job-drop"):
        response = call(method, route.format(id=job_id), identity=ALICE)
        assert response["statusCode"] == 404, job_id
        assert body_of(response)["error"] == "JobNotFound"


# ---- the listing ------------------------------------------------------------------------------------


def test_the_listing_shows_only_the_callers_jobs(call: Api) -> None:
    alices = [body_of(submit(call, ALICE, {**REQUEST, "seed": i}))["job_id"] for i in range(3)]
    bobs = [body_of(submit(call, BOB, {**REQUEST, "seed": i}))["job_id"] for i in range(2)]
    call.sfn.start_execution(stateMachineArn=call.machine, name="started-by-hand", input="{}")
    assert len(call.executions()) == 6
    assert listed(call, ALICE) == list(reversed(alices))
    assert listed(call, BOB) == list(reversed(bobs))
    # one execution per page: the pages of another caller's jobs are empty, the token goes on
    assert listed(call, ALICE, limit=1) == list(reversed(alices))
    assert listed(call, BOB, limit=1) == list(reversed(bobs))
    page = body_of(call("GET", "/generations", identity=BOB))
    assert {item["job_id"] for item in page["items"]} == set(bobs)
    assert "Alice" not in json.dumps(page) and set(alices).isdisjoint(json.dumps(page).split('"'))


def test_a_caller_with_no_jobs_lists_none(call: Api) -> None:
    submit(call, ALICE)
    assert body_of(call("GET", "/generations", identity=BOB)) == {"items": [], "next_token": None}


# ---- idempotency keys are the caller's --------------------------------------------------------------


def test_the_same_idempotency_key_from_two_callers_is_two_jobs(call: Api) -> None:
    alice = submit(call, ALICE, **{"Idempotency-Key": "order-1"})
    bob = submit(call, BOB, **{"Idempotency-Key": "order-1"})
    alice_id, bob_id = body_of(alice)["job_id"], body_of(bob)["job_id"]
    assert alice_id != bob_id
    assert alice_id == job_id_for("order-1", ALICE_OWNER)
    assert bob_id == job_id_for("order-1", BOB_OWNER)
    assert header(bob, "Idempotent-Replayed") is None  # a new job, not Alice's replayed
    assert sorted(e["name"] for e in call.executions()) == sorted([alice_id, bob_id])
    for job_id, owner in ((alice_id, ALICE_OWNER), (bob_id, BOB_OWNER)):
        manifest = call.store.find_manifest(job_id)
        assert manifest is not None and manifest.owner == owner
    # each replays their own
    again = submit(call, ALICE, **{"Idempotency-Key": "order-1"})
    assert body_of(again)["job_id"] == alice_id
    assert header(again, "Idempotent-Replayed") == "true"
    assert len(call.executions()) == 2


def test_another_callers_key_with_another_body_is_no_conflict(call: Api) -> None:
    submit(call, ALICE, **{"Idempotency-Key": "order-2"})
    bob = submit(call, BOB, {**REQUEST, "temperature": 0.3}, **{"Idempotency-Key": "order-2"})
    job_id = body_of(bob)["job_id"]
    assert call.store.get_request(job_id).temperature == 0.3
    assert call.store.get_request(job_id_for("order-2", ALICE_OWNER)).temperature is None


def test_job_ids_stay_valid_execution_names() -> None:
    long_owner = "iam:arn:aws:sts::123456789012:assumed-role/" + "r" * 64 + "/" + "s" * 64
    for key in ("k", "x" * 255):
        job_id = job_id_for(key, long_owner)
        assert len(job_id) <= 80
        assert job_id.startswith("k-") and job_id[2:].isalnum()
    assert job_id_for("k", "iam:a") != job_id_for("k", "iam:b") != job_id_for("k")
    # the owner and the key cannot be shifted into each other
    assert job_id_for("b:c", "iam:a") != job_id_for("c", "iam:a:b")


# ---- API keys ---------------------------------------------------------------------------------------


def test_with_api_keys_the_key_owns_the_job(make_api: ApiFactory) -> None:
    call = make_api(owner_identity="API_KEY")
    key_one = {"sourceIp": "203.0.113.10", "apiKeyId": "key-one", "userArn": None, "caller": None}
    key_two = {"sourceIp": "203.0.113.10", "apiKeyId": "key-two", "userArn": None, "caller": None}
    job_id = body_of(submit(call, key_one))["job_id"]  # type: ignore[arg-type]
    manifest = call.store.find_manifest(job_id)
    assert manifest is not None and manifest.owner == "apikey:key-one"
    assert call("GET", f"/generations/{job_id}", identity=key_two)["statusCode"] == 404  # type: ignore[arg-type]
    assert call("GET", f"/generations/{job_id}", identity=key_one)["statusCode"] == 200  # type: ignore[arg-type]
    assert listed(call, key_two) == []  # type: ignore[arg-type]
    assert listed(call, key_one) == [job_id]  # type: ignore[arg-type]
