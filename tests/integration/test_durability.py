"""Crashes, retries and the S3 cost of a chunk: nothing doubled, nothing dropped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from longform_core.job_store import JobStore
from longform_core.runtime import get_services

from .conftest import CloudFactory, answer_requests, expected, run_job
from .virtual_time import virtual_time

pytestmark = pytest.mark.integration

FAST_RETRIES = {"PROVIDER_RETRY_BASE_SECONDS": "0.001"}


def prompt(tokens: int) -> str:
    return f"Write a field guide to coastal birds. [emulator answer_tokens={tokens}]"


def nth_chunk_invocation(n: int, action: Callable[[], Any], *, after: bool) -> Callable[[str, dict], Any]:
    """A fault hook acting on the n-th GenerateChunk invocation (1-based)."""
    seen = {"count": 0}

    def hook(function: str, event: dict) -> Any:
        if function != "GenerateChunkFunction":
            return None
        seen["count"] += 1
        if seen["count"] != n:
            return None
        if after:
            return action
        action()
        return None

    return hook


def crash() -> None:
    raise RuntimeError("simulated crash")


def test_crash_after_the_commit_is_retried_without_doubling(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(3_200), "max_tokens_per_request": 1_000}
    with make_cloud() as cloud:
        cloud.fault_hook = nth_chunk_invocation(2, crash, after=True)
        result, _, output = run_job(cloud, request)
        assert output == expected(request, emulator).answer
        assert result.chunks == 4
        errors = [i.error_type for i in cloud.invocations if i.error_type]
        assert errors == ["RuntimeError"]


def test_crash_before_the_provider_call_is_retried(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(2_200), "max_tokens_per_request": 1_000}
    with make_cloud() as cloud:
        cloud.fault_hook = nth_chunk_invocation(1, crash, after=False)
        result, _, output = run_job(cloud, request)
        assert output == expected(request, emulator).answer
        assert result.chunks == 3


def test_crash_between_writing_the_chunk_and_the_manifest(make_cloud: CloudFactory, emulator) -> None:
    """The chunk is written, the manifest (the commit point) is not: the retry rewrites the same
    chunk key, and nothing of the lost attempt reaches output.md."""
    request = {"prompt": prompt(3_500), "max_tokens_per_request": 1_000}
    original = JobStore.put_manifest
    state = {"crashed": False}

    def flaky_put_manifest(self: JobStore, manifest: Any, **kwargs: Any) -> str:
        if manifest.chunks == 2 and manifest.status == "running" and not state["crashed"]:
            state["crashed"] = True
            raise ConnectionError("simulated crash before the commit")
        return original(self, manifest, **kwargs)

    with make_cloud() as cloud, mock.patch.object(JobStore, "put_manifest", flaky_put_manifest):
        result, _, output = run_job(cloud, request)
        assert state["crashed"]
        assert output == expected(request, emulator).answer
        assert result.chunks == 4
        keys = cloud.s3.list_objects_v2(Bucket=cloud.store.bucket, Prefix=f"jobs/{result.job_id}/chunks/")
        assert [o["Key"].rsplit("/", 1)[1] for o in keys["Contents"]] == [f"{i:06d}.json" for i in range(4)]


def test_crash_between_the_commit_and_the_text_write(make_cloud: CloudFactory, emulator) -> None:
    """The manifest is committed but output.md is not rewritten: the next chunk finds output.md
    shorter than committed and rebuilds it from the chunks."""
    request = {"prompt": prompt(3_500), "max_tokens_per_request": 1_000}
    original = JobStore.write_running_text
    state = {"calls": 0}

    def flaky_write(self: JobStore, job_id: str, **kwargs: Any) -> None:
        state["calls"] += 1
        if state["calls"] == 2:
            raise ConnectionError("simulated crash after the commit")
        original(self, job_id, **kwargs)

    with make_cloud() as cloud, mock.patch.object(JobStore, "write_running_text", flaky_write):
        result, _, output = run_job(cloud, request)
        assert output == expected(request, emulator).answer
        assert result.chunks == 4
        errors = [i.error_type for i in cloud.invocations if i.error_type]
        assert errors == ["ConnectionError"]


def test_provider_down_for_good_fails_the_job_and_keeps_the_output(
    make_cloud: CloudFactory, emulator
) -> None:
    request = {"prompt": prompt(3_000), "max_tokens_per_request": 1_000}
    with make_cloud(extra_env=FAST_RETRIES) as cloud:

        def outage(function: str, event: dict) -> None:
            if function == "GenerateChunkFunction" and cloud.store.find_manifest(event["job_id"]).chunks == 1:
                emulator.inject(*[{"type": "status", "status": 503}] * 4)

        cloud.fault_hook = outage
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "FAILED"
        assert result.status == "failed"
        assert "ProviderUnavailable" in (result.error or "")
        assert result.chunks == 1
        assert len(output) > 0 and expected(request, emulator).answer.startswith(output)
        gen = [i for i in cloud.invocations if i.function == "GenerateChunkFunction"]
        assert len(gen) == 1 + 1 + 6  # first chunk, then the first try and 6 Step Functions retries


def test_s3_requests_per_chunk_stay_constant(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(12_500), "max_tokens_per_request": 1_000}
    with make_cloud() as cloud:
        services = get_services()
        calls: list[str] = []
        services.store.s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
        per_chunk: list[list[str]] = []

        def hook(function: str, event: dict) -> Any:
            if function != "GenerateChunkFunction":
                return None
            calls.clear()
            return lambda: per_chunk.append(list(calls))

        cloud.fault_hook = hook
        result, _, output = run_job(cloud, request)
        assert output == expected(request, emulator).answer
        assert result.chunks == 13
        counts = [len(c) for c in per_chunk]
        # the first chunk has no text so far to read; from then on 4 GETs (request, manifest, text,
        # the draft a dead attempt may have left) and 4 PUTs (the billed reply, billed.py, then the
        # record, manifest and text), however long the job, but for the first chunk that sends a
        # prefill: it looks up the learned prefill style (styles/{digest}.json, a GET), probes it
        # (one more billed reply, a PUT) and, none being known, stores what it learned (a PUT). These
        # chunks are too short for a draft checkpoint (5 s and 2,000 tokens by default): no draft
        # PUT, no DELETE. The first attempt of all also marks the queued job running (one manifest
        # PUT, once per job)
        assert counts == [8, 11] + [8] * 11, counts
        assert per_chunk[1].count("GetObject") == 5 and per_chunk[1].count("PutObject") == 6
        assert per_chunk[5] == ["GetObject"] * 4 + ["PutObject"] * 4
        assert per_chunk[0].count("GetObject") == 3 and per_chunk[0].count("PutObject") == 5


def test_a_model_that_goes_silent_is_cut_at_the_deadline(
    make_cloud: CloudFactory, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream stalls (no bytes at all) past the invocation's deadline: the chunk is cut at the
    deadline with its text kept, and no invocation reaches its timeout."""
    request = {"prompt": prompt(1_500), "max_tokens_per_request": 1_500}
    # 200 tokens at once, then 30 s of silence: httpx's per-read timeout (fixed at the start of the
    # request) would let that read block past the deadline; the watchdog cuts it there. In virtual
    # time that does not move (virtual_time.py): the handler's work before and after the request
    # takes none of the 2 s before the deadline however loaded the machine, so only the watchdog's
    # real 2 s timer can end the stream, long before the silence does
    emulator.inject({"type": "stall", "after_tokens": 200, "seconds": 30})
    with make_cloud(timeouts={"GenerateChunkFunction": 3.0}, deadline_margin_seconds=1.0) as cloud:
        with virtual_time(cloud, monkeypatch, seconds_per_delta=0.0):
            result, _, output = run_job(cloud, request)
        assert output == expected(request, emulator).answer
        first = cloud.store.get_chunk(result.job_id, 0)
        assert first.finish_reason == "deadline"
        # at most the 200 tokens sent before the silence (fewer if the watchdog fired while the
        # reader was still behind): a test asserts on behaviour, not on this machine's speed
        assert 0 < first.completion_tokens <= 200
        assert all(not i.timed_out for i in cloud.invocations), [
            (i.function, round(i.duration_seconds, 2)) for i in cloud.invocations
        ]


def test_a_stream_cut_after_the_last_token_of_the_answer_ends_succeeded(
    make_cloud: CloudFactory, emulator
) -> None:
    """The final chunk's stream is cut after its last token (before finish_reason): the next
    continuation adds nothing and says stop, which is a normal end, not an outage."""
    request = {"prompt": prompt(1_500), "max_tokens_per_request": 1_000}
    # the first request runs normally; the second is cut after all of its 500 tokens
    emulator.inject({"type": "slow", "token_delay": 0.0}, {"type": "cut", "after_tokens": 500})
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "SUCCEEDED"
        assert result.status == "succeeded", result.error
        assert result.stop_reason == "stop"
        assert output == expected(request, emulator).answer
        chunks = [cloud.store.get_chunk(result.job_id, i) for i in range(result.chunks)]
        assert [c.finish_reason for c in chunks] == ["length", "interrupted", "stop"]
        assert chunks[-1].text == ""
        # no retries of "an outage": one request per chunk
        assert len(answer_requests(emulator)) == 3


def test_a_huge_provider_error_fails_the_job_with_a_bounded_error(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(1_500), "max_tokens_per_request": 1_000}
    emulator.inject(
        {"type": "slow", "token_delay": 0.0}, {"type": "status", "status": 400, "message": "y" * 300_000}
    )
    with make_cloud() as cloud:
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "FAILED"  # through the Catch to Finalize, not stuck
        assert cloud.states_entered(result.job_id)[-4:] == [
            "ChunkFailed",
            "Finalize",
            "JobOutcome",
            "JobFailed",
        ]
        assert result.status == "failed"
        assert result.error is not None and len(result.error) < 5_000
        assert "ProviderRequestInvalid" in result.error
        assert expected(request, emulator).answer.startswith(output) and output
