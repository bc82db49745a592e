"""Draft checkpoints of the chunk in flight, through the real ASL: a chunk invocation killed
mid-stream (``kill_mid_stream``) loses at most one checkpoint interval, and the job's output is
still exactly the uncapped answer."""

from __future__ import annotations

import pytest
from longform_core.job_store import JobKeys

from longform.local.cloud import BUCKET, LocalCloud
from longform.local.faults import kill_mid_stream

from .conftest import CloudFactory, expected, run_job

pytestmark = pytest.mark.integration

INTERVAL_TOKENS = 100
# checkpoints by token count only (no time condition), so the test does not depend on speed
BY_TOKENS = {"draft_interval_seconds": 0.0, "draft_min_tokens": INTERVAL_TOKENS}


def prompt(tokens: int) -> str:
    return f"Write a field guide to coastal birds. [emulator answer_tokens={tokens}]"


def drafts_left(cloud: LocalCloud, job_id: str) -> list[str]:
    listing = cloud.s3.list_objects_v2(Bucket=BUCKET, Prefix=JobKeys(job_id).prefix + "drafts/")
    return [o["Key"] for o in listing.get("Contents", [])]


def test_a_chunk_killed_mid_stream_resumes_from_its_last_draft(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(2_500), "max_tokens_per_request": 1_000}
    with make_cloud(**BY_TOKENS) as cloud, kill_mid_stream(after_tokens=650) as kills:
        result, desc, output = run_job(cloud, request)
        assert desc["status"] == "SUCCEEDED"
        assert output == expected(request, emulator).answer
        assert kills.at_tokens == [650]
        assert next(i.error_type for i in cloud.invocations if i.function == "GenerateChunkFunction") == (
            "Runtime.ExitError"
        )
        first = cloud.store.get_chunk(result.job_id, 0)
        assert first.from_draft and first.finish_reason == "interrupted"
        lost = kills.at_tokens[0] - first.completion_tokens
        assert 0 <= lost < INTERVAL_TOKENS, lost  # at most one checkpoint interval
        assert first.draft_checkpoints == 6  # checkpoints at 100, 200, ..., 600 tokens
        later = [cloud.store.get_chunk(result.job_id, n) for n in range(1, result.chunks)]
        assert not any(c.from_draft for c in later)
        assert sum(c.draft_checkpoints for c in later) > 0  # the other chunks checkpointed too
        assert drafts_left(cloud, result.job_id) == []  # every commit superseded its draft
        assert result.status == "succeeded"


def test_a_kill_before_the_first_checkpoint_regenerates_the_chunk(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(1_500), "max_tokens_per_request": 1_000}
    with make_cloud(**BY_TOKENS) as cloud, kill_mid_stream(after_tokens=INTERVAL_TOKENS - 40) as kills:
        result, _, output = run_job(cloud, request)
        assert kills.count == 1
        assert output == expected(request, emulator).answer
        first = cloud.store.get_chunk(result.job_id, 0)
        assert not first.from_draft and first.finish_reason == "length"
        assert first.completion_tokens == 1_000


def test_kills_on_an_echoing_server_in_a_later_chunk(make_cloud: CloudFactory, emulator) -> None:
    """llama.cpp echoes the prefill at the start of its reply: the draft holds the echo, and the
    attempt that commits the draft strips it as the dead attempt would have."""
    emulator.configure(echo_prefill="merged")
    request = {"prompt": prompt(3_200), "max_tokens_per_request": 1_000}
    with make_cloud(**BY_TOKENS) as cloud, kill_mid_stream(after_tokens=420, times=2, from_stream=2) as kills:
        result, _, output = run_job(cloud, request)
        assert kills.count == 2
        assert output == expected(request, emulator).answer
        chunks = cloud.store.read_chunks(cloud.store.find_manifest(result.job_id))
        resumed = [c for c in chunks if c.from_draft]
        assert len(resumed) == 2
        assert all(c.echo in ("stripped", "none") for c in resumed)
        assert all(kills.at_tokens[0] - c.completion_tokens < INTERVAL_TOKENS for c in resumed)


def test_drafts_off_lose_the_chunk_but_not_the_job(make_cloud: CloudFactory, emulator) -> None:
    request = {"prompt": prompt(1_500), "max_tokens_per_request": 1_000}
    config = {"extra_env": {"DRAFT_CHECKPOINTS": "false"}}
    with make_cloud(**config) as cloud, kill_mid_stream(after_tokens=600) as kills:
        result, _, output = run_job(cloud, request)
        assert kills.count == 1
        assert output == expected(request, emulator).answer
        first = cloud.store.get_chunk(result.job_id, 0)
        assert not first.from_draft and first.draft_checkpoints == 0
