"""OpenAI's Files and Batch APIs on ``longform serve`` (the API function's routes, in-process), judged
by the official ``openai`` package, unchanged: every line's answer whole, in OpenAI's output shape,
past the provider's per-request cap; cancel mid-batch keeps the finished lines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from longform.local.serve import LocalApi

from .conftest import WRITER, CloudFactory, expected

pytestmark = pytest.mark.integration

CAP = 300  # the emulator's per-request cap
TERMINAL = {"completed", "failed", "cancelled", "expired"}


def line(i: int, tokens: int, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": f"report-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": WRITER,
            "messages": [{"role": "user", "content": prompt(i, tokens)}],
            "max_tokens": 40000,
            **body,
        },
    }


def prompt(i: int, tokens: int) -> str:
    return f"A report on harbour number {i}. [emulator answer_tokens={tokens}]"


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.fixture
def client(make_cloud: CloudFactory, emulator) -> Iterator[openai.OpenAI]:
    emulator.configure(cap=CAP)
    with make_cloud(extra_env={"API_MAX_BODY_BYTES": "65536"}) as cloud, LocalApi(cloud, port=0) as api:
        yield openai.OpenAI(base_url=f"{api.url}/v1", api_key="unused-locally", max_retries=0)


def wait(client: openai.OpenAI, batch_id: str, until: Any = lambda b: b.status in TERMINAL) -> Any:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if until(batch):
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not get there: {batch}")


def test_files_and_a_batch_end_to_end(client, emulator, tmp_path: Path) -> None:
    lines = [line(1, 700), line(2, 400), line(3, 900)]
    path = write_jsonl(tmp_path / "in.jsonl", lines)
    with path.open("rb") as f:
        uploaded = client.files.create(file=f, purpose="batch")
    assert uploaded.object == "file" and uploaded.purpose == "batch"
    assert uploaded.bytes == path.stat().st_size and uploaded.filename == "in.jsonl"
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert client.files.content(uploaded.id).content == path.read_bytes()
    assert uploaded.id in [f.id for f in client.files.list()]

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "harbours"},
    )
    assert batch.object == "batch" and batch.input_file_id == uploaded.id
    assert batch.status in ("validating", "in_progress", "finalizing", "completed")
    done = wait(client, batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 3, 0)
    assert done.metadata == {"run": "harbours"}
    assert done.error_file_id is None and done.output_file_id is not None
    assert done.completed_at is not None and done.usage is not None and done.usage.output_tokens == 2000

    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert [o["custom_id"] for o in out] == ["report-1", "report-2", "report-3"]
    for o, source in zip(out, lines, strict=True):
        completion = openai.types.chat.ChatCompletion.model_validate(o["response"]["body"])
        assert o["response"]["status_code"] == 200 and o["error"] is None
        want = expected(source["body"], emulator).answer
        assert completion.choices[0].message.content == want
        assert len(want.split()) > CAP
        assert completion.choices[0].finish_reason == "stop"
    output_file = client.files.retrieve(done.output_file_id)
    assert output_file.purpose == "batch_output"
    assert done.id in [b.id for b in client.batches.list()]

    assert client.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_cancel_mid_batch_keeps_finished_lines(client, emulator, tmp_path: Path) -> None:
    """One short line finishes; the long ones are still generating when the batch is cancelled:
    the short one is in the output file, the others in the error file with their partial text."""
    emulator.configure(token_delay=0.002)
    lines = [line(1, 60), line(2, 30000), line(3, 30000)]
    with write_jsonl(tmp_path / "in.jsonl", lines).open("rb") as f:
        uploaded = client.files.create(file=f, purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait(client, batch.id, until=lambda b: b.request_counts and b.request_counts.completed >= 1)
    cancelled = client.batches.cancel(batch.id)
    emulator.configure(token_delay=0.0)
    assert cancelled.status in ("cancelling", "cancelled")
    done = wait(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at is not None
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 2)
    assert done.output_file_id and done.error_file_id
    ok = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert [o["custom_id"] for o in ok] == ["report-1"]
    assert (
        ok[0]["response"]["body"]["choices"][0]["message"]["content"]
        == expected(lines[0]["body"], emulator).answer
    )
    bad = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert [o["custom_id"] for o in bad] == ["report-2", "report-3"]
    assert all(o["error"]["code"] == "cancelled" for o in bad)


def test_bad_requests_raise_bad_request_error(client, tmp_path: Path) -> None:
    with write_jsonl(tmp_path / "in.jsonl", [line(1, 100)]).open("rb") as f:
        uploaded = client.files.create(file=f, purpose="batch")
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    assert "endpoint: must be /v1/chat/completions" in info.value.message
    assert info.value.body["param"] == "endpoint"  # type: ignore[index]
    bad = [line(1, 100), {"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": {}}]
    with write_jsonl(tmp_path / "bad.jsonl", bad).open("rb") as f:
        bad_file = client.files.create(file=f, purpose="batch")
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(
            input_file_id=bad_file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert "line 2" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert "input_file_id" in info.value.message
    with tmp_path.joinpath("in.jsonl").open("rb") as f, pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=f, purpose="fine-tune")
    assert "purpose" in info.value.message


def test_unknown_ids_raise_not_found_error(client) -> None:
    for batch_id in ("b-" + "0" * 40, "batch_abc123"):
        with pytest.raises(openai.NotFoundError) as info:
            client.batches.retrieve(batch_id)
        assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.batches.cancel("b-" + "1" * 40)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-" + "0" * 24)
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-out-b-" + "2" * 40)


def test_an_upload_past_the_body_limit_is_a_413_in_openai_shape(client, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "big.jsonl", [line(i, 100, padding="x" * 1000) for i in range(80)])
    with path.open("rb") as f, pytest.raises(openai.APIStatusError) as info:
        client.files.create(file=f, purpose="batch")
    assert info.value.status_code == 413
    error = info.value.body
    assert isinstance(error, dict) and error["code"] == "payload_too_large"
    assert "the limit is 65536" in error["message"]


def test_files_and_batches_are_their_callers_own(make_cloud: CloudFactory, emulator) -> None:
    """Through the deployed API's handler in-process: alice's file and batch are a 404 for bob, as
    for an unknown id, and bob's listing does not show them."""
    from longform.local.apigw import TEST_IDENTITY, api_event, body_of

    alice = dict(TEST_IDENTITY)
    bob = {**TEST_IDENTITY, "userArn": "arn:aws:sts::123456789012:assumed-role/longform-user/bob"}
    content = json.dumps(line(1, 50)).encode() + b"\n"
    form = (
        b'--B\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
        + content
        + b"\r\n--B--\r\n"
    )
    with make_cloud() as cloud:

        def call(method: str, path: str, who: dict[str, str], **kw: Any) -> dict[str, Any]:
            return dict(cloud.invoke("ApiFunction", api_event(method, path, identity=who, **kw)))

        uploaded = call(
            "POST",
            "/v1/files",
            alice,
            body=form,
            base64_body=True,
            headers={"Content-Type": "multipart/form-data; boundary=B"},
        )
        assert uploaded["statusCode"] == 200, uploaded
        file_id = body_of(uploaded)["id"]
        assert call("GET", f"/v1/files/{file_id}/content", alice)["body"] == content.decode()
        for path in (f"/v1/files/{file_id}", f"/v1/files/{file_id}/content"):
            answer = call("GET", path, bob)
            assert answer["statusCode"] == 404 and body_of(answer)["error"]["code"] == "file_not_found"
        assert body_of(call("GET", "/v1/files", bob))["data"] == []
        created = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        assert call("POST", "/v1/batches", bob, body=created)["statusCode"] == 400  # not bob's file
        batch = call("POST", "/v1/batches", alice, body=created)
        assert batch["statusCode"] == 200, batch
        batch_id = body_of(batch)["id"]
        assert call("GET", f"/v1/batches/{batch_id}", bob)["statusCode"] == 404
        assert call("POST", f"/v1/batches/{batch_id}/cancel", bob)["statusCode"] == 404
        assert body_of(call("GET", "/v1/batches", bob))["data"] == []
        assert [b["id"] for b in body_of(call("GET", "/v1/batches", alice))["data"]] == [batch_id]
        deadline = time.monotonic() + 120
        while body_of(call("GET", f"/v1/batches/{batch_id}", alice))["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.1)
