"""Whole batches through the real statemachine/batch.asl.json: moto's interpreter runs the Distributed
Map (its ItemReader on the S3 JSON item list, MaxConcurrencyPath) and each line's
``states:startExecution.sync:2`` child execution of the real generation workflow; the emulator counts
the requests it has at once."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from longform_core.batch.finalize import BatchOutputTaskInput, finalize_batch
from longform_core.batch.models import line_job_id
from longform_core.errors import BatchInvalid, IdempotencyConflict
from longform_core.runtime import get_services

from longform.emulator.server import EmulatorServer
from longform.local import batch as local_batch
from longform.local.apigw import api_event, body_of
from longform.local.cloud import BUCKET, LocalCloud

from .conftest import CloudFactory, expected

pytestmark = pytest.mark.integration


def prompt(i: int, tokens: int) -> str:
    return f"A report on company number {i}. [emulator answer_tokens={tokens}]"


def openai_line(i: int, tokens: int = 120, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": f"company-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"messages": [{"role": "user", "content": prompt(i, tokens)}], **body},
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return ("\n".join(json.dumps(line) for line in lines) + "\n").encode()


def request_of(line: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = line.get("body", line)
    return body


def text_of(out: dict[str, Any]) -> str:
    return str(out["response"]["body"]["choices"][0]["message"]["content"])


def batch_cloud(make_cloud: CloudFactory, cap: int) -> Any:
    return make_cloud(extra_env={"BATCH_MAX_CONCURRENCY": str(cap)})


def test_a_batch_runs_every_line_through_the_real_asl_under_the_concurrency_cap(
    make_cloud: CloudFactory, emulator: EmulatorServer
) -> None:
    # every line takes several chunks (cap 40 tokens per request), mixed shapes, one plain prompt
    lines: list[dict[str, Any]] = [openai_line(i, 90 + 10 * i) for i in range(9)]
    lines.append({"custom_id": "plain", "prompt": prompt(99, 70)})
    emulator.configure(cap=40)
    with batch_cloud(make_cloud, cap=3) as cloud:
        batch = local_batch.submit(cloud, jsonl(lines))
        assert (batch.created, batch.lines, batch.max_concurrency) == (True, 10, 3)
        desc = local_batch.wait(cloud, batch.batch_id, timeout=240)
        assert desc["status"] == "SUCCEEDED", desc.get("cause")
        out = local_batch.output_lines(cloud, batch.batch_id)
        # in input order, each line's text the uncapped answer, byte for byte
        assert [o["custom_id"] for o in out] == [f"company-{i}" for i in range(9)] + ["plain"]
        for line, result in zip(lines, out, strict=True):
            assert result["error"] is None
            assert result["response"]["status_code"] == 200
            assert text_of(result) == expected(request_of(line), emulator).answer
            assert result["longform"]["status"] == "succeeded"
            assert result["longform"]["chunks"] >= 2  # continued past the per-request cap
            usage = result["response"]["body"]["usage"]
            assert usage["completion_tokens"] == result["longform"]["output_tokens"] > 0
        # never more requests at the provider than the cap, and the cap was used
        assert 1 <= emulator.concurrency["max"] <= 3
        # one generation execution per line, named after the line's job id
        names = sorted(local_batch.generation_executions(cloud))
        assert names == [line_job_id(batch.batch_id, i) for i in range(10)]
        # each line is a normal job: its own jobs/{id}/, readable as any job
        job = cloud.store.get_result(line_job_id(batch.batch_id, 0))
        assert job is not None and job.status == "succeeded"
        manifest = cloud.store.find_manifest(line_job_id(batch.batch_id, 0))
        assert manifest is not None and manifest.batch_id == batch.batch_id
        # the summary and the batch's view agree
        view = local_batch.view(cloud, batch.batch_id)
        assert view.status == "completed"
        assert view.counts is not None and (view.counts.total, view.counts.succeeded) == (10, 10)
        assert view.tokens is not None
        assert view.tokens.output == sum(o["longform"]["output_tokens"] for o in out)
        summary = get_services().batches.get_summary(batch.batch_id)
        assert summary is not None and summary.wall_seconds is not None and summary.chunks >= 20
        # the history shows the Distributed Map ran over the item list
        history = cloud.sfn.get_execution_history(executionArn=desc["executionArn"])
        events = [e["type"] for e in history["events"]]
        assert "MapRunStarted" in events and "MapRunSucceeded" in events


def test_a_failing_line_never_fails_the_batch(make_cloud: CloudFactory, emulator: EmulatorServer) -> None:
    lines = [openai_line(i) for i in range(3)]
    with batch_cloud(make_cloud, cap=1) as cloud:
        # the first request the provider sees (line 1's, one line at a time) is refused for good
        emulator.inject({"type": "status", "status": 400, "message": "invalid request: no such model"})
        batch = local_batch.submit(cloud, jsonl(lines))
        desc = local_batch.wait(cloud, batch.batch_id, timeout=180)
        assert desc["status"] == "SUCCEEDED"
        out = local_batch.output_lines(cloud, batch.batch_id)
        assert [o["longform"]["status"] for o in out] == ["failed", "succeeded", "succeeded"]
        assert out[0]["error"]["code"] == "failed"
        assert "ProviderRequestInvalid" in out[0]["error"]["message"]
        assert out[0]["response"] is None  # it generated nothing
        for line, result in zip(lines[1:], out[1:], strict=True):
            assert text_of(result) == expected(request_of(line), emulator).answer
        view = local_batch.view(cloud, batch.batch_id)
        assert view.status == "completed"
        assert view.counts is not None and (view.counts.failed, view.counts.succeeded) == (1, 2)


# stopping an execution while a .sync task waits makes moto's own watcher thread for it fail (its
# timeout is read off an evaluation stack the stop left as it was): moto's thread, not an outcome
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_cancel_mid_batch_keeps_finished_lines_and_partial_text(
    make_cloud: CloudFactory, emulator: EmulatorServer
) -> None:
    # line 0 is short; the others are long and slow (10 chunks of 20 tokens at 5 ms a token)
    lines = [openai_line(0, 20)] + [openai_line(i, 200) for i in range(1, 6)]
    emulator.configure(cap=20, token_delay=0.005)
    with batch_cloud(make_cloud, cap=2) as cloud:
        batch = local_batch.submit(cloud, jsonl(lines))
        first = line_job_id(batch.batch_id, 0)
        second = line_job_id(batch.batch_id, 1)
        deadline = time.monotonic() + 120
        while True:  # line 0 finished, line 1 part-way
            done = cloud.store.find_manifest(first)
            running = cloud.store.find_manifest(second)
            if done and done.terminal and running and running.chunks >= 2:
                break
            assert time.monotonic() < deadline, "the batch did not get going"
            time.sleep(0.05)
        view, cancelled = local_batch.cancel(cloud, batch.batch_id)
        assert cancelled is True
        assert view.status == "cancelled"
        local_batch.wait(cloud, batch.batch_id, timeout=60)
        out = local_batch.output_lines(cloud, batch.batch_id)
        assert len(out) == 6
        # the finished line is kept as it was
        assert out[0]["longform"]["status"] == "succeeded"
        assert text_of(out[0]) == expected(request_of(lines[0]), emulator).answer
        # the running line is cancelled with the text it had: a true prefix of its answer
        assert out[1]["longform"]["status"] == "cancelled"
        assert out[1]["error"]["code"] == "cancelled"
        partial = text_of(out[1])
        full = expected(request_of(lines[1]), emulator).answer
        assert partial and full.startswith(partial) and len(partial) < len(full)
        # every line ended cancelled or finished; those never started have no response
        statuses = [o["longform"]["status"] for o in out]
        assert set(statuses) <= {"succeeded", "cancelled"}
        assert statuses[-1] == "cancelled" and out[-1]["response"] is None
        # no line is left running, and nothing more is asked of the provider
        for i in range(6):
            manifest = cloud.store.find_manifest(line_job_id(batch.batch_id, i))
            assert manifest is None or manifest.terminal
        # cancelling again answers the same
        again, cancelled_again = local_batch.cancel(cloud, batch.batch_id)
        assert (again.status, cancelled_again) == ("cancelled", False)


def test_a_bad_batch_starts_nothing_and_names_every_bad_line(make_cloud: CloudFactory) -> None:
    bad = openai_line(1)
    bad["body"]["temperature"] = 7
    data = jsonl([openai_line(0), bad, openai_line(0)])
    with batch_cloud(make_cloud, cap=2) as cloud:
        with pytest.raises(BatchInvalid) as caught:
            local_batch.submit(cloud, data)
        found = {(p.line, p.field) for p in caught.value.line_problems}
        assert found == {(2, "body.temperature"), (3, "custom_id")}
        runs = cloud.sfn.list_executions(stateMachineArn=cloud.batch_state_machine_arn)["executions"]
        assert runs == []
        listing = cloud.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        assert listing == []


def test_the_same_batch_twice_and_a_second_run_start_nothing_twice(
    make_cloud: CloudFactory, emulator: EmulatorServer
) -> None:
    lines = [openai_line(i) for i in range(3)]
    with batch_cloud(make_cloud, cap=2) as cloud:
        first = local_batch.submit(cloud, jsonl(lines))
        again = local_batch.submit(cloud, jsonl(lines))  # same file, same options: same batch
        assert again.batch_id == first.batch_id and again.created is False
        local_batch.wait(cloud, first.batch_id, timeout=120)
        before = local_batch.output_lines(cloud, first.batch_id)
        requests = len(emulator.requests)
        # the workflow run again for the same batch (a redrive, or a replayed start): the lines'
        # executions exist under their names, so none starts again and no request is made
        cloud.sfn.start_execution(
            stateMachineArn=cloud.batch_state_machine_arn,
            name=f"{first.batch_id}-again",
            input=json.dumps({"batch_id": first.batch_id}),
        )
        local_batch.wait(cloud, f"{first.batch_id}-again", timeout=120)
        assert len(local_batch.generation_executions(cloud)) == 3
        assert len(emulator.requests) == requests
        assert local_batch.output_lines(cloud, first.batch_id) == before
        # an Idempotency-Key names the batch: another file under the same key is a conflict
        keyed = local_batch.submit(cloud, jsonl(lines[:1]), idempotency_key="order-7")
        replayed = local_batch.submit(cloud, jsonl(lines[:1]), idempotency_key="order-7")
        assert replayed.batch_id == keyed.batch_id
        with pytest.raises(IdempotencyConflict):
            local_batch.submit(cloud, jsonl(lines[1:2]), idempotency_key="order-7")
        local_batch.wait(cloud, keyed.batch_id, timeout=120)


def test_the_drop_folder_takes_a_jsonl_upload_and_answers_in_results(
    make_cloud: CloudFactory, emulator: EmulatorServer
) -> None:
    lines = [openai_line(i) for i in range(2)]
    bad = openai_line(5)
    bad["body"]["messages"][0]["role"] = "robot"
    with batch_cloud(make_cloud, cap=2) as cloud:
        (outcome,) = local_batch.drop(cloud, "reports/q1", jsonl(lines))
        assert (outcome["action"], outcome["name"], outcome["lines"]) == ("started", "reports/q1", 2)
        local_batch.wait(cloud, outcome["batch_id"], timeout=120)
        cloud.wait_async()
        got = cloud.s3.get_object(Bucket=BUCKET, Key="results/reports/q1.jsonl")["Body"].read()
        out = [json.loads(line) for line in got.decode().splitlines()]
        assert [text_of(o) for o in out] == [expected(request_of(line), emulator).answer for line in lines]
        summary_object = cloud.s3.get_object(Bucket=BUCKET, Key="results/reports/q1.batch.json")
        summary = json.loads(summary_object["Body"].read())
        assert summary["counts"]["succeeded"] == 2 and summary["status"] == "completed"
        # the same upload again: the same batch, nothing new
        (duplicate,) = local_batch.drop(cloud, "reports/q1", jsonl(lines))
        assert (duplicate["action"], duplicate["batch_id"]) == ("duplicate", outcome["batch_id"])
        # a bad upload: results/{name}.batch-error.json names the line and field; nothing starts
        (rejected,) = local_batch.drop(cloud, "broken", jsonl([lines[0], bad]))
        assert rejected["action"] == "rejected"
        error = json.loads(
            cloud.s3.get_object(Bucket=BUCKET, Key="results/broken.batch-error.json")["Body"].read()
        )
        assert error["error"] == "BatchInvalid"
        assert {(p["line"], p["field"]) for p in error["lines"]} == {
            (2, "body.messages[0].role"),
            (2, "body.messages"),  # with no user message left
        }
        assert error["key"] == "batches/broken.jsonl"
        # the batch's own files never look like uploads (they live under batch-runs/)
        uploads = cloud.s3.list_objects_v2(Bucket=BUCKET, Prefix="batches/").get("Contents", [])
        keys = [o["Key"] for o in uploads]
        assert sorted(keys) == ["batches/broken.jsonl", "batches/reports/q1.jsonl"]


def call(cloud: LocalCloud, method: str, path: str, **kwargs: Any) -> tuple[int, Any, dict[str, Any]]:
    response = cloud.invoke("ApiFunction", api_event(method, path, **kwargs))
    return int(response["statusCode"]), body_of(response), response


def test_the_api_submits_shows_lists_and_cancels_batches(
    make_cloud: CloudFactory, emulator: EmulatorServer
) -> None:
    lines = [openai_line(i) for i in range(2)]
    with batch_cloud(make_cloud, cap=2) as cloud:
        status, body, response = call(
            cloud, "POST", "/batches", body=jsonl(lines), headers={"Idempotency-Key": "k1"}
        )
        assert status == 202, body
        batch_id = body["batch_id"]
        assert (body["lines"], body["max_concurrency"]) == (2, 2)
        assert response["multiValueHeaders"]["Location"] == [f"/v1/batches/{batch_id}"]
        status, body, response = call(
            cloud, "POST", "/batches", body=jsonl(lines), headers={"Idempotency-Key": "k1"}
        )
        assert (status, body["batch_id"]) == (202, batch_id)
        assert response["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
        local_batch.wait(cloud, batch_id, timeout=120)
        status, view, _ = call(cloud, "GET", f"/batches/{batch_id}")
        assert status == 200
        assert view["status"] == "completed" and view["counts"]["succeeded"] == 2
        assert view["output_key"] == f"batch-runs/{batch_id}/output.jsonl"
        assert view["output_url"].startswith("https://")
        status, page, _ = call(cloud, "GET", "/batches")
        assert status == 200 and [item["batch_id"] for item in page["items"]] == [batch_id]
        # a finished batch cannot be cancelled
        status, body, _ = call(cloud, "DELETE", f"/batches/{batch_id}")
        assert (status, body["error"]) == (409, "BatchAlreadyFinished")
        # a bad batch is a 400 naming the line
        status, body, _ = call(cloud, "POST", "/batches", body=b'{"prompt": "ok"}\n{"prompt": ""}\n')
        assert status == 400
        assert body["error"] == "BatchInvalid"
        assert [p["field"] for p in body["problems"]] == ["line 2: prompt"]
        # a file already in the bucket, by its S3 URI
        cloud.s3.put_object(Bucket=BUCKET, Key="batch-inputs/big.jsonl", Body=jsonl(lines[:1]))
        status, body, _ = call(
            cloud, "POST", "/batches", body={"input_uri": f"s3://{BUCKET}/batch-inputs/big.jsonl"}
        )
        assert status == 202 and body["lines"] == 1
        local_batch.wait(cloud, body["batch_id"], timeout=120)
        status, body, _ = call(cloud, "POST", "/batches", body={"input_uri": f"s3://{BUCKET}/jobs/x.jsonl"})
        assert status == 400 and body["problems"][0]["field"] == "input_uri"
        # another caller sees none of it
        stranger = {"sourceIp": "198.51.100.7", "userArn": "arn:aws:iam::123456789012:user/mallory"}
        status, _, _ = call(cloud, "GET", f"/batches/{batch_id}", identity=stranger)
        assert status == 404
        status, page, _ = call(cloud, "GET", "/batches", identity=stranger)
        assert page["items"] == []


def test_batch_finished_is_published(make_cloud: CloudFactory, emulator: EmulatorServer) -> None:
    published: list[dict[str, Any]] = []
    lock = threading.Lock()
    with batch_cloud(make_cloud, cap=2) as cloud:
        services = get_services()
        assert services.batch_publisher is not None

        class Recorder:
            def publish_batch(self, detail: dict[str, Any], *, resources: list[str]) -> None:
                with lock:
                    published.append({"detail": detail, "resources": resources})

        batch = local_batch.submit(cloud, jsonl([openai_line(0)]))
        local_batch.wait(cloud, batch.batch_id, timeout=120)
        # the output is derived again (a WriteOutput retried after its summary was lost)
        store = services.batches
        store.objects.delete(f"batch-runs/{batch.batch_id}/summary.json")
        services.batch_publisher = Recorder()
        summary = finalize_batch(BatchOutputTaskInput(batch_id=batch.batch_id), services)
        assert summary.status == "completed"
        (event,) = published
        assert event["detail"]["batch_id"] == batch.batch_id
        assert event["detail"]["counts"]["succeeded"] == 1
        assert event["detail"]["output"]["uri"] == f"s3://{BUCKET}/batch-runs/{batch.batch_id}/output.jsonl"
        assert event["resources"] == [local_batch.batch_execution_arn(cloud, batch.batch_id)]
        # a summary in place: run again, nothing is published twice
        finalize_batch(BatchOutputTaskInput(batch_id=batch.batch_id), services)
        assert len(published) == 1


def test_a_batch_that_fails_in_split_reports_its_lines_failed_not_cancelled(
    make_cloud: CloudFactory, emulator: EmulatorServer
) -> None:
    """A batch stored by a version that accepted a lone surrogate in a line (or any batch whose
    SplitBatch fails): the batch ends failed, and its lines, which nobody cancelled, are failed
    with the reason, not "cancelled before it started"."""
    from longform_core.batch.models import BatchItem, BatchManifest
    from longform_core.batch.request import content_digest

    bad = openai_line(1, stop=["\ud800"])
    data = ("\n".join(json.dumps(line) for line in [openai_line(0), bad]) + "\n").encode()
    batch_id = "b-stored-before-the-check"
    with batch_cloud(make_cloud, cap=2) as cloud:
        store = get_services().batches
        items = [
            BatchItem(job_id=line_job_id(batch_id, i), custom_id=f"company-{i}", line=i + 1) for i in range(2)
        ]
        store.put_input(batch_id, data)
        store.put_items(batch_id, items)
        manifest = BatchManifest(
            batch_id=batch_id,
            lines=2,
            input_sha256=content_digest(data),
            options_fingerprint="-",
            max_concurrency=2,
            execution_arn=local_batch.batch_execution_arn(cloud, batch_id),
        )
        store.put_batch(manifest, only_if_new=True)
        cloud.sfn.start_execution(
            stateMachineArn=cloud.batch_state_machine_arn,
            name=batch_id,
            input=json.dumps({"batch_id": batch_id}),
        )
        local_batch.wait(cloud, batch_id, timeout=120)
        view = local_batch.view(cloud, batch_id)
        assert view.status == "failed"
        assert view.error is not None and "surrogate" in view.error
        assert view.counts is not None and (view.counts.failed, view.counts.cancelled) == (2, 0)
        out = local_batch.output_lines(cloud, batch_id)
        assert [o["error"]["code"] for o in out] == ["failed", "failed"]
        assert [o["longform"]["status"] for o in out] == ["failed", "failed"]
        assert all("the batch failed before this line started" in o["error"]["message"] for o in out)
        assert emulator.requests == []  # nothing ran


def test_a_lone_surrogate_in_a_batch_is_a_400_and_an_error_file_never_a_500(make_cloud: CloudFactory) -> None:
    """``custom_id: "\\ud800"`` was a 500 from POST /batches, and a surrogate in a line's ``stop``
    was accepted and broke SplitBatch: both are validation problems naming the line and field."""
    raw_id = (
        b'{"custom_id": "\\ud800", "method": "POST", "url": "/v1/chat/completions", '
        b'"body": {"messages": [{"role": "user", "content": "Write."}]}}\n'
    )
    bad_stop = jsonl([openai_line(0), openai_line(1, stop=["\ud800"])])
    with batch_cloud(make_cloud, cap=2) as cloud:
        status, body, _ = call(cloud, "POST", "/batches", body=raw_id)
        assert status == 400, body
        assert [p["field"] for p in body["problems"]] == ["line 1: custom_id"]
        assert "surrogate" in body["problems"][0]["message"]
        status, body, _ = call(cloud, "POST", "/batches", body=bad_stop)
        assert status == 400, body
        assert [p["field"] for p in body["problems"]] == ["line 2: body.stop[0]"]
        (rejected,) = local_batch.drop(cloud, "surrogates", bad_stop)
        assert rejected["action"] == "rejected"
        error = json.loads(
            cloud.s3.get_object(Bucket=BUCKET, Key="results/surrogates.batch-error.json")["Body"].read()
        )
        assert [(p["line"], p["field"]) for p in error["lines"]] == [(2, "body.stop[0]")]
        assert cloud.sfn.list_executions(stateMachineArn=cloud.batch_state_machine_arn)["executions"] == []
