"""The one S3 object layer under every store (``objects.py``), on moto S3."""

from __future__ import annotations

from typing import Any

import pytest
from longform_core.config import Settings
from longform_core.job_store import JobStore
from longform_core.objects import JSON, Objects, WriteConflict
from longform_core.services import Services


@pytest.fixture
def objects(store: JobStore) -> Objects:
    return store.objects


def test_get_of_a_missing_key_is_none_and_put_returns_the_etag(objects: Objects) -> None:
    assert objects.get("nothing/here.json") is None
    assert objects.get_text("nothing/here.json") is None
    etag = objects.put("a/b.json", b'{"x": 1}', JSON)
    assert objects.get("a/b.json") == (b'{"x": 1}', etag)
    assert objects.s3.head_object(Bucket=objects.bucket, Key="a/b.json")["ContentType"] == JSON


def test_put_if_new_writes_once(objects: Objects) -> None:
    assert objects.put_if_new("once.json", b"first", JSON) is True
    assert objects.put_if_new("once.json", b"second", JSON) is False
    assert objects.get_text("once.json") == "first"


def test_a_put_whose_condition_lost_is_a_write_conflict_and_writes_nothing(objects: Objects) -> None:
    first = objects.put("m.json", b"v1", JSON)
    second = objects.put("m.json", b"v2", JSON, if_match=first)
    with pytest.raises(WriteConflict):
        objects.put("m.json", b"stale", JSON, if_match=first)  # the version it read has gone
    with pytest.raises(WriteConflict):
        objects.put("m.json", b"new?", JSON, if_none_match=True)
    assert objects.get("m.json") == (b"v2", second)


def test_read_capped_reads_the_first_existing_key_up_to_the_cap(objects: Objects) -> None:
    objects.put("big.txt", b"x" * 100, "text/plain")
    objects.put("small.txt", b"hello", "text/plain")
    assert objects.read_capped(("gone.txt",), 10) is None
    small = objects.read_capped(("gone.txt", "small.txt"), 10)
    assert small is not None and (small.key, small.size, small.data) == ("small.txt", 5, b"hello")
    big = objects.read_capped(("big.txt",), 10)
    assert big is not None and (big.size, big.data) == (100, None)  # larger than the cap: not read


def test_copy_and_delete(objects: Objects) -> None:
    objects.put("src.jsonl", b'{"a": 1}\n', "application/jsonl")
    objects.copy("src.jsonl", "dst.jsonl", "application/jsonl")
    assert objects.get_text("dst.jsonl") == '{"a": 1}\n'
    objects.delete("src.jsonl")
    assert objects.get("src.jsonl") is None


def test_presign_names_the_key_and_the_content_type(objects: Objects) -> None:
    url = objects.presign("jobs/j/output.md", content_type="text/markdown", expires_in=60)
    assert "jobs/j/output.md" in url and "response-content-type=text%2Fmarkdown" in url


def test_services_batches_share_the_jobs_bucket_and_client(store: JobStore, s3: Any) -> None:
    services = Services(settings=Settings(jobs_bucket=store.bucket), store=store, provider=object())  # type: ignore[arg-type]
    assert services.batches.bucket == store.bucket
    assert services.batches.objects.s3 is store.objects.s3
