"""The local bucket on disk (issue 16, item 1): S3's guarantees in one process and across several.

The multi-process tests start real processes (``multiprocessing``, spawn) that each open the same
state directory as a longform process does (``store_workers.open_bucket``), line up on a barrier,
and then race: no timing is assumed, the counts are fixed.
"""

from __future__ import annotations

import errno
import multiprocessing
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError

from longform.local.aws import REGION
from longform.local.cloud import BUCKET

from . import store_workers
from .conftest import CloudFactory

SPAWN = multiprocessing.get_context("spawn")


def _draft(job_id: str, sequence: int, content: str) -> Any:
    from longform_core.draft import Draft

    now = datetime.now(UTC)
    return Draft(
        job_id=job_id, index=0, base_etag='"e"', attempt_id="a", sequence=sequence,
        prefill_style="assistant", max_tokens=100, content=content, tokens=len(content),
        started_at=now, updated_at=now, answer_text=content,
    )  # fmt: skip


def test_a_draft_read_while_a_writer_overwrites_and_deletes_it_is_whole(
    make_cloud: CloudFactory, tmp_path: Path
) -> None:
    """Seen at 50 tokens/s: ``longform run`` died with ``ValueError: I/O operation on closed file``
    (moto's ``FakeKey.value``) when the follower read the draft while the chunk overwrote it. Forced
    here: the reader has found the object, then a writer replaces it and deletes it, then the reader
    reads its body."""
    from longform_core.job_store import JobKeys
    from moto.s3.models import S3Backend

    key = JobKeys("job-race").draft(0)
    with make_cloud(state_dir=tmp_path / "state") as cloud:
        store = cloud.store
        store.put_draft(_draft("job-race", 1, "first version " * 400))
        writer = boto3.client("s3", region_name=REGION)
        real_get = S3Backend.get_object
        raced: list[str] = []
        started: list[bool] = []

        def overwrite_then_delete() -> None:
            store.put_draft(_draft("job-race", 2, "second version " * 400))
            raced.append("overwritten")
            writer.delete_object(Bucket=BUCKET, Key=key)
            raced.append("deleted")

        def get_object(backend: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
            found = real_get(backend, bucket_name, key_name, *args, **kwargs)
            # the GET's own lookup (moto looks the key up once before, for authorisation)
            reading = sys._getframe(1).f_code.co_name != "_key_response"
            if key_name == key and reading and not started:
                started.append(True)
                other = threading.Thread(target=overwrite_then_delete)
                other.start()
                other.join()
            return found

        with mock.patch.object(S3Backend, "get_object", get_object):
            seen = store.get_draft("job-race", 0)
        assert raced == ["overwritten", "deleted"]
        assert seen is not None, "the reader lost the object it had found"
        assert (seen.sequence, seen.content) == (1, "first version " * 400)
        assert store.get_draft("job-race", 0) is None
        assert not (tmp_path / "state" / "bucket" / "jobs" / "job-race").exists()


def test_a_failed_disk_write_fails_the_put_and_leaves_the_object_as_it_was(
    make_cloud: CloudFactory, tmp_path: Path
) -> None:
    """Seen: ``state.py`` stored an object in moto first and on disk second; a failed disk write
    left moto (what the job read) and the disk (what survives) apart. Now the disk is the only copy:
    the PUT fails with S3's 500 and every reader, in this process or another, sees the old object."""
    state = tmp_path / "state"
    with make_cloud(state_dir=state) as cloud:
        cloud.s3.put_object(Bucket=BUCKET, Key="jobs/j/chunks/000001.json", Body=b'{"v": 1}')

        def disk_full(operation: str, key: str) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        cloud.store_dir.disk.write_hook = disk_full
        with pytest.raises(ClientError) as failed:
            cloud.s3.put_object(Bucket=BUCKET, Key="jobs/j/chunks/000001.json", Body=b'{"v": 2}')
        cloud.store_dir.disk.write_hook = None
        assert failed.value.response["Error"]["Code"] == "InternalError"
        assert "ENOSPC" in failed.value.response["Error"]["Message"]
        body = cloud.s3.get_object(Bucket=BUCKET, Key="jobs/j/chunks/000001.json")["Body"].read()
        assert body == b'{"v": 1}'
    assert (state / "bucket" / "jobs" / "j" / "chunks" / "000001.json").read_bytes() == b'{"v": 1}'
    assert not list((state / "bucket").rglob(".tmp-*"))


def test_an_object_written_by_one_process_is_read_by_another_at_once(tmp_path: Path) -> None:
    """No copy loaded at start: what another process writes later is what this one reads."""
    state = str(tmp_path / "state")
    with store_workers.open_bucket(state) as s3:
        with SPAWN.Manager() as manager, ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
            barrier = manager.Barrier(1)
            assert pool.submit(
                store_workers.creator, state, ["jobs/x/manifest.json"], "other", barrier
            ).result() == ["jobs/x/manifest.json"]
        assert s3.get_object(Bucket=BUCKET, Key="jobs/x/manifest.json")["Body"].read() == b"other"
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="jobs/", Delimiter="/")
        assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["jobs/x/"]


def test_readers_in_other_processes_see_whole_objects_while_one_is_overwritten_and_deleted(
    tmp_path: Path,
) -> None:
    state = str(tmp_path / "state")
    key = "jobs/hammered/drafts/000000.json"
    readers, reads, versions = 3, 400, 300
    with SPAWN.Manager() as manager, ProcessPoolExecutor(readers + 1, mp_context=SPAWN) as pool:
        barrier = manager.Barrier(readers + 1)
        writing = pool.submit(store_workers.writer, state, key, versions, 64 * 1024, barrier)
        reading = [pool.submit(store_workers.reader, state, key, reads, barrier) for _ in range(readers)]
        results = [r.result() for r in reading]
        assert writing.result() == versions
    for result in results:
        assert result["errors"] == []
        assert result["whole"] + result["missing"] == reads
    assert sum(r["whole"] for r in results) > 0  # the readers did see objects, whole ones


def test_if_match_holds_across_processes(tmp_path: Path) -> None:
    """Four processes add 1 to one counter 40 times each with If-Match: not one update is lost."""
    state = str(tmp_path / "state")
    key = "jobs/counter/manifest.json"
    with store_workers.open_bucket(state) as s3:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"0")
    processes, increments = 4, 40
    with SPAWN.Manager() as manager, ProcessPoolExecutor(processes, mp_context=SPAWN) as pool:
        barrier = manager.Barrier(processes)
        futures = [
            pool.submit(store_workers.incrementer, state, key, increments, barrier) for _ in range(processes)
        ]
        conflicts = sum(f.result() for f in futures)
    with store_workers.open_bucket(state) as s3:
        assert int(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) == processes * increments
    assert conflicts >= 0  # how often a writer lost the race and retried (a figure, not a bound)


def test_if_none_match_lets_exactly_one_process_create_each_key(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    keys = [f"jobs/j{n:03d}/chunks/000000.json" for n in range(60)]
    processes = 4
    with SPAWN.Manager() as manager, ProcessPoolExecutor(processes, mp_context=SPAWN) as pool:
        barrier = manager.Barrier(processes)
        futures = [
            pool.submit(store_workers.creator, state, keys, f"p{n}", barrier) for n in range(processes)
        ]
        won = [f.result() for f in futures]
    assert sorted(k for keys_won in won for k in keys_won) == keys  # each key created once, none lost
    with store_workers.open_bucket(state) as s3:
        for n, keys_won in enumerate(won):
            for key in keys_won:
                assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == f"p{n}".encode()
