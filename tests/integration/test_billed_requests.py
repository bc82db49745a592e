"""The job's bill through the real workflow (``longform_core.billed``): every reply the provider
billed is recorded by the chunk invocation that asked it, a retried attempt's too, and the bill equals
the emulator's own request log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from longform_core.billed import stored_billed

from longform.local.store_faults import StoreKilled

from .conftest import CloudFactory, expected, run_job

pytestmark = pytest.mark.integration


def test_the_attempt_that_died_before_its_commit_is_billed_too(
    make_cloud: CloudFactory, emulator: Any, tmp_path: Path
) -> None:
    """Chunk 1's first attempt dies as it stores its record (after its reply and the style probe
    were billed); the workflow retries it, and the job's bill counts both attempts' requests."""
    request = {"prompt": "Notes on kelp [emulator answer_tokens=3000]", "max_tokens_per_request": 1000}
    died: list[str] = []

    def kill_once(operation: str, key: str) -> None:
        if operation == "put" and key.endswith("/chunks/000001.json") and not died:
            died.append(key)
            raise StoreKilled(f"the attempt died at {key}")

    with make_cloud(state_dir=tmp_path / "state") as cloud:
        cloud.store_dir.disk.write_hook = kill_once
        result, desc, output = run_job(cloud, request)
        assert died and desc["status"] == "SUCCEEDED" and output == expected(request, emulator).answer
        bill = stored_billed(cloud.store, cloud.store.find_manifest(result.job_id))
        kept = [cloud.store.get_chunk(result.job_id, n).billed_request for n in range(result.chunks)]
    billed = [r for r in emulator.requests if r["status"] == 200]
    # chunk 0; chunk 1's reply and probe, then its retry's; chunk 2
    assert result.chunks == 3 and len(billed) > result.chunks + 2, [r["max_tokens"] for r in billed]
    assert bill.requests == len(billed) and all(kept)
    assert bill.prompt_tokens == sum(r["prompt_tokens"] for r in billed)
    assert bill.cached_tokens == sum(r["cached_tokens"] for r in billed)
    assert bill.output_tokens == sum(r["completion_tokens"] for r in billed)
    assert bill.prompt_tokens > result.prompt_tokens_total  # beyond the kept requests
