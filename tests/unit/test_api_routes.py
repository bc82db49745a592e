"""The HTTP API's routes on moto S3 + Step Functions (a Pass state machine: nothing generates here;
whole jobs through the API are in tests/integration/test_api.py)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from longform_core import api
from longform_core.job_store import JobStore
from longform_core.models import utcnow
from longform_core.request import parse_request
from longform_core.submit import job_id_for

from longform.local.apigw import api_event, body_of, header

from .api_harness import OWNER, REQUEST, Api, ApiFactory, problems, seed
from .conftest import make_result

# ---- POST /generations -----------------------------------------------------------------------------


def test_post_answers_202_with_location_links_and_starts_one_execution(call: Api) -> None:
    response = call("POST", "/generations", body=REQUEST)
    assert response["statusCode"] == 202
    body = body_of(response)
    job_id = body["job_id"]
    assert body == {
        "job_id": job_id,
        "status": "queued",
        "model": "default/model",
        "links": {
            "self": f"/v1/generations/{job_id}",
            "output": f"/v1/generations/{job_id}/output",
            "cancel": f"/v1/generations/{job_id}",
        },
    }
    # the stage is part of an execute-api URL, so it is part of the links
    assert header(response, "Location") == f"/v1/generations/{job_id}"
    assert header(response, "Idempotent-Replayed") is None
    assert header(response, "Content-Type") == "application/json"
    assert call.keys() == [f"jobs/{job_id}/manifest.json", f"jobs/{job_id}/request.json"]
    assert call.store.get_request(job_id) == parse_request(REQUEST)
    assert [e["name"] for e in call.executions()] == [job_id]


def test_links_have_no_stage_prefix_outside_execute_api(call: Api) -> None:
    """A custom domain, `sam local start-api` or `longform serve`: the URL has no stage in it."""
    response = call("POST", "/generations", body=REQUEST, domain="longform.example.com")
    job_id = body_of(response)["job_id"]
    assert header(response, "Location") == f"/generations/{job_id}"
    assert body_of(response)["links"]["output"] == f"/generations/{job_id}/output"


def test_post_base64_body(call: Api) -> None:
    response = call("POST", "/generations", body=REQUEST, base64_body=True)
    assert response["statusCode"] == 202
    assert call.store.get_request(body_of(response)["job_id"]).prompt == REQUEST["prompt"]


def test_same_idempotency_key_twice_returns_the_same_job_and_starts_one_execution(call: Api) -> None:
    first = call("POST", "/generations", body=REQUEST, headers={"Idempotency-Key": "order-42"})
    # header names are case-insensitive; the body may be formatted differently
    again = call(
        "POST", "/generations", body=json.dumps(REQUEST, indent=4), headers={"idempotency-key": "order-42"}
    )
    assert first["statusCode"] == again["statusCode"] == 202
    assert body_of(first)["job_id"] == body_of(again)["job_id"] == job_id_for("order-42", OWNER)
    assert body_of(again) == body_of(first)
    assert header(first, "Idempotent-Replayed") is None
    assert header(again, "Idempotent-Replayed") == "true"
    assert header(again, "Location") == header(first, "Location")
    assert [e["name"] for e in call.executions()] == [job_id_for("order-42", OWNER)]


def test_replay_reports_the_jobs_current_status(call: Api) -> None:
    first = body_of(call("POST", "/generations", body=REQUEST, headers={"Idempotency-Key": "k"}))
    manifest, etag = call.store.get_manifest(first["job_id"])
    manifest.status = "running"
    call.store.put_manifest(manifest, if_match=etag)
    again = call("POST", "/generations", body=REQUEST, headers={"Idempotency-Key": "k"})
    assert body_of(again)["status"] == "running"


def test_same_idempotency_key_with_another_body_is_409(call: Api) -> None:
    call("POST", "/generations", body=REQUEST, headers={"Idempotency-Key": "order-43"})
    response = call(
        "POST", "/generations", body={**REQUEST, "temperature": 0.2}, headers={"Idempotency-Key": "order-43"}
    )
    assert response["statusCode"] == 409
    assert body_of(response)["error"] == "IdempotencyConflict"
    assert problems(response) == {"header.Idempotency-Key": "already used with a different body"}
    assert call.store.get_request(job_id_for("order-43", OWNER)).temperature is None  # the original stays
    assert len(call.executions()) == 1


def test_bad_json_is_400(call: Api) -> None:
    response = call("POST", "/generations", body='{"prompt": "unterminated')
    assert response["statusCode"] == 400
    body = body_of(response)
    assert body["error"] == "RequestInvalid"
    (problem,) = body["problems"]
    assert problem["field"] == "(body)"
    assert problem["message"].startswith("not valid JSON")
    assert call.keys() == []
    assert call.executions() == []


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ("", "(body)", "required: a JSON request with messages or prompt"),
        ("[1, 2]", "(body)", "expected a JSON object, got list"),
        ('"text"', "(body)", "expected a JSON object, got str"),
    ],
)
def test_empty_or_non_object_body_is_400(call: Api, raw: str, field: str, message: str) -> None:
    response = call("POST", "/generations", body=raw)
    assert response["statusCode"] == 400
    assert problems(response) == {field: message}


def test_invalid_base64_body_is_400(call: Api) -> None:
    event = api_event("POST", "/generations", body="not base64 at all!")
    event["isBase64Encoded"] = True
    response = call.handle(event)
    assert response["statusCode"] == 400
    assert problems(response) == {"(body)": "not valid base64"}


def test_bad_fields_are_400_naming_every_problem(call: Api) -> None:
    bad = {
        "messages": [{"role": "robot", "content": "hi"}, {"role": "user", "content": ""}],
        "temperature": 9,
        "max_output_tokens": -5,
        "max_chunks": 0,
        "stop": [""],
        "colour": "blue",
    }
    response = call("POST", "/generations", body=bad)
    assert response["statusCode"] == 400
    found = problems(response)
    assert found == {
        "messages[0].role": "unknown role 'robot'; expected one of system, developer, user, assistant",
        "temperature": "Input should be less than or equal to 2",
        "max_output_tokens": "Input should be greater than or equal to 1",
        "max_chunks": "Input should be greater than or equal to 1",
        "stop": "Value error, stop sequences must not be empty strings",
        "colour": "unknown field",
        "messages[1].content": "must not be empty",
    }
    body = body_of(response)
    assert body["message"].startswith("invalid request (7 problem(s)): ")
    assert call.keys() == []
    assert call.executions() == []


def test_prompt_and_messages_together_and_neither(call: Api) -> None:
    both = call("POST", "/generations", body={"prompt": "a", "messages": [{"role": "user", "content": "b"}]})
    assert problems(both) == {"prompt": "give either prompt or messages, not both"}
    neither = call("POST", "/generations", body={"model": "x"})
    assert problems(neither) == {"messages": "required: give messages (a non-empty list) or prompt"}


def test_oversized_body_is_413_and_writes_nothing(make_api: ApiFactory) -> None:
    call = make_api(api_max_body_bytes=1000)
    big = {"prompt": "x" * 2000}
    response = call("POST", "/generations", body=big)
    assert response["statusCode"] == 413
    body = body_of(response)
    size = len(json.dumps(big).encode())
    assert body["error"] == "PayloadTooLarge"
    assert body["message"] == f"the request body is {size} bytes; the limit is 1000"
    assert problems(response) == {"(body)": "larger than 1000 bytes"}
    assert call.keys() == []
    assert call.executions() == []
    # the limit counts bytes, not characters
    accented = {"prompt": "é" * 480}
    assert len(json.dumps(accented, ensure_ascii=False)) < 1000 < len(json.dumps(accented).encode())
    assert call("POST", "/generations", body=json.dumps(accented, ensure_ascii=False))["statusCode"] == 202


def test_idempotency_key_too_long_or_empty_is_400(call: Api) -> None:
    for key in ("k" * 256, ""):
        response = call("POST", "/generations", body=REQUEST, headers={"Idempotency-Key": key})
        assert response["statusCode"] == 400
        (field,) = problems(response)
        assert field == "header.idempotency-key"
    assert call.executions() == []


# ---- GET /generations/{job_id} ---------------------------------------------------------------------


def test_get_a_running_job(call: Api) -> None:
    seed(call.store, "job-1", text="The first part. ")
    response = call("GET", "/generations/job-1")
    assert response["statusCode"] == 200
    view = body_of(response)
    assert view["job_id"] == "job-1"
    assert view["status"] == "running"
    assert view["model"] == "m/1"
    assert view["progress"]["chunks"] == 2
    assert view["output_chars"] == len("The first part. ")
    assert view["finished_at"] is None


def test_get_a_finished_job_has_its_finish_reason(call: Api) -> None:
    manifest = seed(call.store, "job-2", status="succeeded", text="All of it.")
    manifest.last_finish_reason = "stop"  # as the workflow's last chunk leaves it
    call.store.put_manifest(manifest)
    now = utcnow()
    result = make_result(
        "job-2",
        prompt_tokens_total=20,
        output_tokens=5,
        output_chars=10,
        created_at=manifest.created_at,
        started_at=manifest.started_at,
        finished_at=now,
        duration_seconds=1.0,
    )
    call.store.write_running_text("job-2", answer="All of it.", reasoning=None)
    call.store.put_result(result)
    view = body_of(call("GET", "/generations/job-2"))
    assert view["status"] == "succeeded"
    assert view["finish_reason"] == "stop"


def test_unknown_job_is_404(call: Api) -> None:
    for method, path in (
        ("GET", "/generations/no-such-job"),
        ("GET", "/generations/no-such-job/output"),
        ("DELETE", "/generations/no-such-job"),
    ):
        response = call(method, path)
        assert response["statusCode"] == 404, (method, path)
        body = body_of(response)
        assert body["error"] == "JobNotFound"
        assert body["job_id"] == "no-such-job"
        assert problems(response) == {"job_id": "no such job"}


@pytest.mark.parametrize("job_id", ["a.b", "x" * 81, "semi;colon", "%2e%2e"])
def test_malformed_job_id_is_400(call: Api, job_id: str) -> None:
    for method, path in (
        ("GET", f"/generations/{job_id}"),
        ("GET", f"/generations/{job_id}/output"),
        ("DELETE", f"/generations/{job_id}"),
    ):
        response = call(method, path)
        assert response["statusCode"] == 400, (method, path)
        assert list(problems(response)) == ["path.job_id"]


# ---- GET /generations/{job_id}/output --------------------------------------------------------------

TEXT = "# Tide clocks\n\nNaïve sailors read the moon — 月 — and the sea. " * 3


def test_output_shows_the_draft_of_the_chunk_in_flight_beside_the_committed_text(call: Api) -> None:
    from datetime import UTC, datetime

    from longform_core.draft import Draft

    seed(call.store, "job-4", text=TEXT)
    manifest = call.store.find_manifest("job-4")
    assert manifest is not None
    now = datetime.now(UTC)
    call.store.put_draft(
        Draft(
            job_id="job-4",
            index=manifest.chunks,
            base_etag="e",
            attempt_id="a",
            sequence=2,
            prefill_style="assistant",
            max_tokens=100,
            content=" and the tide turns.",
            tokens=5,
            started_at=now,
            updated_at=now,
            answer_text=" and the tide turns.",
        )
    )
    page = body_of(call("GET", "/generations/job-4/output"))
    assert page["text"] == TEXT  # the committed text, as before
    assert page["draft"]["text"] == " and the tide turns."  # beside it, marked as the draft
    assert page["draft"]["offset"] == len(TEXT) and page["draft"]["chunk_index"] == manifest.chunks
    assert page["draft"]["tokens"] == 5
    middle = body_of(call("GET", "/generations/job-4/output", query={"offset": "0"}))
    assert middle["draft"] is not None
    status = body_of(call("GET", "/generations/job-4"))
    assert status["draft"]["tokens"] == 5 and status["draft"]["chars"] == len(" and the tide turns.")


def test_output_from_an_offset_while_running(call: Api) -> None:
    seed(call.store, "job-3", text=TEXT)
    whole = body_of(call("GET", "/generations/job-3/output"))
    assert whole == {
        "job_id": "job-3",
        "status": "running",
        "offset": 0,
        "next_offset": len(TEXT),
        "complete": False,  # still running: more may come
        "text": TEXT,
        "bytes": len(TEXT.encode()),
        "url": None,
        "expires_in": None,
        "byte_offset": None,
        "draft": None,  # no chunk in flight has checkpointed
    }
    tail = body_of(call("GET", "/generations/job-3/output", query={"offset": "20"}))
    assert tail["text"] == TEXT[20:]  # offsets count characters, not bytes
    assert tail["offset"] == 20
    assert tail["next_offset"] == len(TEXT)
    assert tail["bytes"] == len(TEXT[20:].encode())
    at_end = body_of(call("GET", "/generations/job-3/output", query={"offset": str(len(TEXT))}))
    assert at_end["text"] == ""
    assert at_end["next_offset"] == len(TEXT)
    assert at_end["complete"] is False
    beyond = body_of(call("GET", "/generations/job-3/output", query={"offset": str(len(TEXT) + 50)}))
    assert beyond["text"] == ""
    assert beyond["next_offset"] == len(TEXT) + 50  # never moves backwards


def test_output_of_a_finished_job_is_complete(call: Api) -> None:
    seed(call.store, "job-4", status="succeeded", text=TEXT)
    page = body_of(call("GET", "/generations/job-4/output", query={"offset": "5"}))
    assert page["text"] == TEXT[5:]
    assert page["complete"] is True
    assert page["status"] == "succeeded"


def test_output_is_only_what_the_manifest_committed(call: Api) -> None:
    """After a crash output.md may run ahead of the manifest: that part is not the output yet."""
    seed(call.store, "job-5", text=TEXT, committed=30)
    page = body_of(call("GET", "/generations/job-5/output"))
    assert page["text"] == TEXT[:30]
    assert page["next_offset"] == 30


def test_output_of_a_queued_job_is_empty(call: Api) -> None:
    seed(call.store, "job-6", status="queued")
    page = body_of(call("GET", "/generations/job-6/output"))
    assert page["text"] == ""
    assert page["next_offset"] == 0
    assert page["complete"] is False


def test_large_output_comes_as_a_presigned_url(make_api: ApiFactory) -> None:
    call = make_api(output_inline_max_bytes=100)
    seed(call.store, "job-7", status="succeeded", text=TEXT)
    page = body_of(call("GET", "/generations/job-7/output", query={"offset": "10"}))
    assert page["text"] is None
    assert page["expires_in"] == 900
    assert page["offset"] == 10
    assert page["next_offset"] == len(TEXT)
    assert page["byte_offset"] == len(TEXT[:10].encode())
    assert page["bytes"] == len(TEXT[10:].encode())
    assert page["complete"] is True
    url = page["url"]
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]  # SigV4: S3 refuses SigV2 for KMS objects
    assert query["X-Amz-Expires"] == ["900"]
    assert urlsplit(url).path.endswith("/jobs/job-7/output.md")
    fetched = requests.get(url, timeout=10)  # answered by moto
    assert fetched.status_code == 200
    assert fetched.content.decode() == TEXT
    ranged = requests.get(url, headers={"Range": f"bytes={page['byte_offset']}-"}, timeout=10)
    assert ranged.content.decode() == TEXT[10:]
    # small enough: inline again
    small = body_of(call("GET", "/generations/job-7/output", query={"offset": str(len(TEXT) - 10)}))
    assert small["text"] == TEXT[-10:]
    assert small["url"] is None


def test_output_as_markdown(make_api: ApiFactory) -> None:
    call = make_api(output_inline_max_bytes=100)
    seed(call.store, "job-8", text=TEXT)
    response = call(
        "GET",
        "/generations/job-8/output",
        query={"offset": str(len(TEXT) - 12)},
        headers={"Accept": "text/markdown"},
    )
    assert response["statusCode"] == 200
    assert response["body"] == TEXT[-12:]
    assert header(response, "Content-Type") == "text/markdown; charset=utf-8"
    assert header(response, "X-Next-Offset") == str(len(TEXT))
    assert header(response, "X-Job-Status") == "running"
    assert header(response, "X-Output-Complete") == "false"
    large = call("GET", "/generations/job-8/output", headers={"Accept": "text/markdown"})
    assert large["statusCode"] == 303
    assert "X-Amz-Signature=" in (header(large, "Location") or "")


def test_bad_offset_is_400(call: Api) -> None:
    seed(call.store, "job-9", text=TEXT)
    for offset in ("-1", "ten", "1.5"):
        response = call("GET", "/generations/job-9/output", query={"offset": offset})
        assert response["statusCode"] == 400
        assert list(problems(response)) == ["query.offset"]


# ---- DELETE /generations/{job_id} -----------------------------------------------------------------


@pytest.mark.parametrize("status", ["succeeded", "failed", "context_exhausted"])
def test_cancel_a_finished_job_is_409_with_its_status(call: Api, status: str) -> None:
    seed(call.store, "job-10", status=status, text=TEXT)
    response = call("DELETE", "/generations/job-10")
    assert response["statusCode"] == 409
    body = body_of(response)
    assert body["error"] == "JobAlreadyFinished"
    assert body["status"] == status
    assert body["job_id"] == "job-10"
    assert problems(response) == {"job_id": f"already {status}"}
    assert call.store.find_manifest("job-10").status == status  # untouched


def test_cancel_a_queued_job_then_cancel_again(call: Api) -> None:
    seed(call.store, "job-11", status="queued")
    response = call("DELETE", "/generations/job-11")
    assert response["statusCode"] == 200
    view = body_of(response)
    assert view["status"] == "cancelled"
    assert view["finished_at"] is not None
    result = call.store.get_result("job-11")
    assert result is not None and result.status == "cancelled"
    again = call("DELETE", "/generations/job-11")
    assert again["statusCode"] == 200  # what the client asked for holds
    assert body_of(again)["status"] == "cancelled"


# ---- GET /generations ----------------------------------------------------------------------------


def test_list_is_newest_first_and_paginates(call: Api) -> None:
    ids = [body_of(call("POST", "/generations", body={**REQUEST, "seed": i}))["job_id"] for i in range(5)]
    newest_first = list(reversed(ids))
    first = call("GET", "/generations", query={"limit": "2"})
    assert first["statusCode"] == 200
    page = body_of(first)
    assert [item["job_id"] for item in page["items"]] == newest_first[:2]
    assert all(item["status"] == "queued" and item["model"] == "default/model" for item in page["items"])
    seen = [item["job_id"] for item in page["items"]]
    token = page["next_token"]
    while token:
        page = body_of(call("GET", "/generations", query={"limit": "2", "next_token": token}))
        assert len(page["items"]) <= 2
        seen += [item["job_id"] for item in page["items"]]
        token = page["next_token"]
    assert seen == newest_first
    everything = body_of(call("GET", "/generations"))
    assert [item["job_id"] for item in everything["items"]] == newest_first
    assert everything["next_token"] is None


def test_list_skips_executions_that_are_not_jobs(call: Api) -> None:
    job = body_of(call("POST", "/generations", body=REQUEST))["job_id"]
    call.sfn.start_execution(stateMachineArn=call.machine, name="started-by-hand", input="{}")
    page = body_of(call("GET", "/generations"))
    assert [item["job_id"] for item in page["items"]] == [job]


def test_list_empty(call: Api) -> None:
    assert body_of(call("GET", "/generations")) == {"items": [], "next_token": None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "query.limit"),
        ({"limit": "101"}, "query.limit"),
        ({"limit": "many"}, "query.limit"),
        ({"next_token": "not-a-token"}, "query.next_token"),
    ],
)
def test_list_bad_query_is_400(call: Api, query: dict[str, str], field: str) -> None:
    response = call("GET", "/generations", query=query)
    assert response["statusCode"] == 400
    assert list(problems(response)) == [field]


# ---- routing and errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/generations", "GET, POST"),
        ("DELETE", "/generations", "GET, POST"),
        ("POST", "/generations/job-1", "DELETE, GET"),
        ("PATCH", "/generations/job-1", "DELETE, GET"),
        ("DELETE", "/generations/job-1/output", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(call: Api, method: str, path: str, allowed: str) -> None:
    response = call(method, path)
    assert response["statusCode"] == 405
    assert header(response, "Allow") == allowed
    assert body_of(response)["error"] == "MethodNotAllowed"
    assert problems(response) == {"method": f"use one of {allowed}"}


def test_unknown_path_is_404(call: Api) -> None:
    response = call("GET", "/jobs")
    assert response["statusCode"] == 404
    assert body_of(response)["error"] == "NotFound"
    assert problems(response) == {"path": "unknown path; the API serves /generations and /batches"}


def test_an_internal_error_is_a_json_500_without_a_stack_trace(
    call: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: JobStore, job_id: str) -> None:
        raise RuntimeError("secret internals: s3://bucket/key")

    monkeypatch.setattr(JobStore, "find_manifest", boom)
    event = api_event("GET", "/generations/job-1")
    response = call.handle(event)
    assert response["statusCode"] == 500
    body = body_of(response)
    assert body == {
        "error": "InternalError",
        "message": f"internal error; quote request id {event['requestContext']['requestId']} when reporting it",  # noqa: E501
        "problems": [],
    }
    assert "secret internals" not in response["body"]


def test_metrics_are_counted_when_the_handler_passes_them(call: Api) -> None:
    counted: list[str] = []

    class Sink:
        def add_metric(self, name: str, unit: Any, value: float) -> None:
            counted.append(name)

    event = api_event("POST", "/generations", body=REQUEST)
    assert call.handle(event, metrics=Sink())["statusCode"] == 202
    assert counted == ["JobsSubmitted"]
    assert api.app.context == {}  # nothing leaks into the next request
    replay_event = api_event("POST", "/generations", body=REQUEST)
    call.handle(replay_event)
    assert counted == ["JobsSubmitted"]


# ---- the deployment's limits -------------------------------------------------------------------------


def test_a_model_the_deployment_does_not_allow_is_400_naming_the_allowed_ones(make_api: ApiFactory) -> None:
    call = make_api(allowed_models=("a/one", "b/two"))
    response = call("POST", "/generations", body={**REQUEST, "model": "c/three"})
    assert response["statusCode"] == 400
    assert body_of(response)["error"] == "RequestInvalid"
    assert problems(response) == {
        "model": "'c/three' is not allowed here; allowed: a/one, b/two, default/model"
    }
    assert call.keys() == []
    assert call.executions() == []
    allowed = call("POST", "/generations", body={**REQUEST, "model": "a/one"})
    assert allowed["statusCode"] == 202
    assert body_of(allowed)["model"] == "a/one"


def test_the_default_cost_cap_is_stored_with_the_request(make_api: ApiFactory) -> None:
    call = make_api(default_max_cost_usd=3.0)
    job_id = body_of(call("POST", "/generations", body=REQUEST))["job_id"]
    assert call.store.get_request(job_id).max_cost_usd == 3.0
    own = body_of(call("POST", "/generations", body={**REQUEST, "max_cost_usd": 0.5}))["job_id"]
    assert call.store.get_request(own).max_cost_usd == 0.5
