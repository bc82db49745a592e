"""The HTTP API through its Lambda handler (functions/api/app.py), against whole jobs: the real ASL
under moto's interpreter, the chunk and finalize functions in-process, the emulator as the model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from longform_core.api.route_helpers import caller_owner
from longform_core.submit import job_id_for

from longform.local.apigw import TEST_IDENTITY, api_event, body_of, header
from longform.local.cloud import LocalCloud

from .conftest import CloudFactory, expected

pytestmark = pytest.mark.integration

API = "ApiFunction"
OWNER = caller_owner(TEST_IDENTITY, "IAM")  # whose jobs api_event's default caller submits


def prompt(tokens: int, topic: str = "tide clocks") -> str:
    return f"Write about {topic}. [emulator answer_tokens={tokens}]"


def call(cloud: LocalCloud, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """One request through the deployed handler, as API Gateway's proxy integration invokes it."""
    response: dict[str, Any] = cloud.invoke(API, api_event(method, path, **kwargs))
    return response


def until(condition: Callable[[], Any], *, timeout: float = 60.0, poll: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(poll)


def status(cloud: LocalCloud, job_id: str) -> dict[str, Any]:
    response = call(cloud, "GET", f"/generations/{job_id}")
    assert response["statusCode"] == 200
    view: dict[str, Any] = body_of(response)
    return view


def test_submit_follow_while_running_and_read_the_whole_answer(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(3_000), "max_tokens_per_request": 800}
    want = expected(request, emulator).answer
    emulator.configure(token_delay=0.0005)
    with make_cloud() as cloud:
        submitted = call(cloud, "POST", "/generations", body=request)
        assert submitted["statusCode"] == 202
        job_id = body_of(submitted)["job_id"]
        assert header(submitted, "Location") == f"/v1/generations/{job_id}"
        assert body_of(submitted)["status"] == "queued"

        # status and output are readable while the job runs: tail the output by offsets
        running_views: list[dict[str, Any]] = []
        pages: list[dict[str, Any]] = []
        offset = 0
        while True:
            view = status(cloud, job_id)
            if view["status"] == "running":
                running_views.append(view)
            response = call(cloud, "GET", f"/generations/{job_id}/output", query={"offset": str(offset)})
            assert response["statusCode"] == 200
            page = body_of(response)
            assert page["offset"] == offset
            assert want[offset : page["next_offset"]] == page["text"]  # each page is the next slice
            pages.append(page)
            offset = page["next_offset"]
            if page["complete"]:
                break
            time.sleep(0.01)

        emulator.configure(token_delay=0.0)
        assert "".join(p["text"] for p in pages) == want  # nothing doubled or dropped
        assert running_views, "never saw the job running"
        assert any(0 < v["progress"]["chunks"] < 4 and v["output_chars"] > 0 for v in running_views)
        assert any(0 < p["next_offset"] < len(want) and p["status"] == "running" for p in pages)
        final = status(cloud, job_id)
        assert final["status"] == "succeeded"
        assert final["finish_reason"] == "stop"
        assert final["progress"]["chunks"] == 4
        assert final["progress"]["output_tokens"] == 3_000
        assert final["output_chars"] == len(want)
        assert cloud.wait(job_id)["status"] == "SUCCEEDED"


@pytest.fixture
def aborts_stay_aborted(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto lets a task that fails after StopExecution turn the ABORTED execution FAILED; on AWS an
    aborted execution stays ABORTED (the in-flight chunk's result is discarded)."""
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

    set_error = Environment.set_error

    def keep_stopped(self: Any, error: Any) -> None:
        if not isinstance(self.program_state(), ProgramStopped):
            set_error(self, error)

    monkeypatch.setattr(Environment, "set_error", keep_stopped)


@pytest.mark.usefixtures("aborts_stay_aborted")
def test_cancel_mid_job_keeps_the_partial_output(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(8_000), "max_tokens_per_request": 500}
    want = expected(request, emulator).answer
    emulator.configure(token_delay=0.001)
    with make_cloud() as cloud:
        job_id = body_of(call(cloud, "POST", "/generations", body=request))["job_id"]
        until(lambda: status(cloud, job_id)["progress"]["chunks"] >= 2)
        response = call(cloud, "DELETE", f"/generations/{job_id}")
        assert response["statusCode"] == 200
        view = body_of(response)
        assert view["status"] == "cancelled"
        assert view["finished_at"] is not None
        assert 2 <= view["progress"]["chunks"] < 16

        desc = cloud.wait(job_id, timeout=30)
        emulator.configure(token_delay=0.0)
        assert desc["status"] == "ABORTED"
        result = cloud.store.get_result(job_id)
        assert result is not None
        assert result.status == "cancelled"
        assert result.chunks == view["progress"]["chunks"]
        output = cloud.store.get_text(f"jobs/{job_id}/output.md")
        assert output, "the partial output was not kept"
        assert want.startswith(output)
        assert len(output) < len(want)
        # the API serves exactly the cancelled job's answer, as result.json describes it (a chunk
        # that was in flight may have appended to output.md after the cancel; see the report)
        page = body_of(call(cloud, "GET", f"/generations/{job_id}/output"))
        assert page["text"] == output[: result.output_chars]
        assert len(page["text"]) == result.output_chars == view["output_chars"] > 0
        assert page["complete"] is True
        assert page["status"] == "cancelled"
        assert status(cloud, job_id)["status"] == "cancelled"
        again = call(cloud, "DELETE", f"/generations/{job_id}")
        assert again["statusCode"] == 200
        assert body_of(again)["status"] == "cancelled"


def test_cancel_after_the_job_finished_is_409(make_cloud: CloudFactory, emulator) -> None:
    with make_cloud() as cloud:
        job_id = body_of(call(cloud, "POST", "/generations", body={"prompt": prompt(200)}))["job_id"]
        cloud.wait(job_id)
        response = call(cloud, "DELETE", f"/generations/{job_id}")
        assert response["statusCode"] == 409
        body = body_of(response)
        assert body["error"] == "JobAlreadyFinished"
        assert body["status"] == "succeeded"
        result = cloud.store.get_result(job_id)
        assert result is not None and result.status == "succeeded"  # untouched


def test_idempotency_key_starts_one_execution(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(400)}
    key = {"Idempotency-Key": "invoice-2026-0001"}
    with make_cloud() as cloud:
        first = call(cloud, "POST", "/generations", body=request, headers=key)
        second = call(cloud, "POST", "/generations", body=request, headers=key)
        job_id = job_id_for("invoice-2026-0001", OWNER)
        assert first["statusCode"] == second["statusCode"] == 202
        assert body_of(first)["job_id"] == body_of(second)["job_id"] == job_id
        assert header(second, "Idempotent-Replayed") == "true"
        conflict = call(cloud, "POST", "/generations", body={"prompt": prompt(401)}, headers=key)
        assert conflict["statusCode"] == 409
        assert body_of(conflict)["error"] == "IdempotencyConflict"
        cloud.wait(job_id)
        # after the job ended, the same key still finds it (and its status) and starts nothing
        late = call(cloud, "POST", "/generations", body=request, headers=key)
        assert late["statusCode"] == 202
        assert body_of(late)["status"] == "succeeded"
        executions = cloud.sfn.list_executions(stateMachineArn=cloud.state_machine_arn)["executions"]
        assert [e["name"] for e in executions] == [job_id]
        assert cloud.store.get_text(f"jobs/{job_id}/output.md") == expected(request, emulator).answer


def test_large_output_comes_as_a_presigned_url(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(1_500)}
    want = expected(request, emulator).answer
    with make_cloud(extra_env={"OUTPUT_INLINE_MAX_BYTES": "2000"}) as cloud:
        job_id = body_of(call(cloud, "POST", "/generations", body=request))["job_id"]
        cloud.wait(job_id)
        page = body_of(call(cloud, "GET", f"/generations/{job_id}/output", query={"offset": "100"}))
        assert page["text"] is None
        assert page["complete"] is True
        assert page["next_offset"] == len(want)
        first, last = page["byte_offset"], page["byte_offset"] + page["bytes"] - 1
        fetched = requests.get(page["url"], headers={"Range": f"bytes={first}-{last}"}, timeout=10)
        assert fetched.content.decode() == want[100:]
        near_end = len(want) - 50
        tail = body_of(call(cloud, "GET", f"/generations/{job_id}/output", query={"offset": str(near_end)}))
        assert tail["text"] == want[near_end:]
        assert tail["url"] is None


def test_list_pages_through_jobs_newest_first(make_cloud: CloudFactory, emulator) -> None:
    with make_cloud() as cloud:
        ids = []
        for i in range(3):
            ids.append(
                body_of(call(cloud, "POST", "/generations", body={"prompt": prompt(50 + i)}))["job_id"]
            )
            cloud.wait(ids[-1])
        first = body_of(call(cloud, "GET", "/generations", query={"limit": "2"}))
        assert [item["job_id"] for item in first["items"]] == [ids[2], ids[1]]
        assert all(item["status"] == "succeeded" for item in first["items"])
        assert all(item["finish_reason"] == "stop" for item in first["items"])
        second = body_of(
            call(cloud, "GET", "/generations", query={"limit": "2", "next_token": first["next_token"]})
        )
        assert [item["job_id"] for item in second["items"]] == [ids[0]]
        assert second["next_token"] is None


def test_errors_through_the_handler_are_json(make_cloud: CloudFactory) -> None:
    with make_cloud() as cloud:
        bad = call(cloud, "POST", "/generations", body={"prompt": "", "max_chunks": -1})
        assert bad["statusCode"] == 400
        assert {p["field"] for p in body_of(bad)["problems"]} == {"prompt", "max_chunks"}
        assert call(cloud, "GET", "/generations/unknown-job")["statusCode"] == 404
        assert call(cloud, "PUT", "/generations/unknown-job")["statusCode"] == 405
        assert cloud.sfn.list_executions(stateMachineArn=cloud.state_machine_arn)["executions"] == []


def test_two_callers_see_only_their_own_jobs_through_the_deployed_handler(
    make_cloud: CloudFactory, emulator
) -> None:
    alice = {**TEST_IDENTITY, "caller": "AROAEXAMPLE:alice", "userArn": TEST_IDENTITY["userArn"] + "-alice"}
    bob = {**TEST_IDENTITY, "caller": "AROAEXAMPLE:bob", "userArn": TEST_IDENTITY["userArn"] + "-bob"}
    request = {"prompt": prompt(600, "alice's secret"), "max_tokens_per_request": 250}
    key = {"Idempotency-Key": "shared-key"}
    with make_cloud() as cloud:
        post = {"body": request, "headers": key}
        mine = body_of(call(cloud, "POST", "/generations", identity=alice, **post))["job_id"]
        theirs = body_of(call(cloud, "POST", "/generations", identity=bob, **post))["job_id"]
        assert mine != theirs  # the same key, two callers: two jobs
        for job_id in (mine, theirs):
            assert cloud.wait(job_id)["status"] == "SUCCEEDED"
        want = expected(request, emulator).answer
        output = body_of(call(cloud, "GET", f"/generations/{mine}/output", identity=alice))
        assert output["text"] == want and output["complete"] is True
        for method, path in (
            ("GET", f"/generations/{mine}"),
            ("GET", f"/generations/{mine}/output"),
            ("DELETE", f"/generations/{mine}"),
        ):
            response = call(cloud, method, path, identity=bob)
            assert response["statusCode"] == 404, (method, path)
            assert body_of(response)["error"] == "JobNotFound"
            assert want not in response["body"]
        listed = body_of(call(cloud, "GET", "/generations", identity=bob))
        assert [item["job_id"] for item in listed["items"]] == [theirs]
        listed = body_of(call(cloud, "GET", "/generations", identity=alice))
        assert [item["job_id"] for item in listed["items"]] == [mine]
        # Bob's DELETE changed nothing: Alice's job is still succeeded, its output whole
        assert status_of(cloud, mine, alice)["status"] == "succeeded"
        assert cloud.store.get_text(f"jobs/{mine}/output.md") == want


def status_of(cloud: LocalCloud, job_id: str, identity: dict[str, str]) -> dict[str, Any]:
    response = call(cloud, "GET", f"/generations/{job_id}", identity=identity)
    assert response["statusCode"] == 200
    view: dict[str, Any] = body_of(response)
    return view
