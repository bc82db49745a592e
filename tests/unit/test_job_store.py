"""The job store on moto S3: keys, conditional writes, running text repair, assembly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from longform_core.errors import JobNotFound, JobStateInvalid
from longform_core.job_store import JobKeys, JobStore
from longform_core.models import ChunkRecord, Manifest
from longform_core.request import parse_request

from .conftest import make_result

JOB = "job-123"
START = "Chapter 1\n\n"
TEXTS = ["It was a dark ", "and stormy ", "night; the rain fell."]
THOUGHTS = ["plan A. ", "", "plan B."]


def chunk(index: int, text: str, reasoning: str = "", duration_ms: int = 100) -> ChunkRecord:
    return ChunkRecord(
        job_id=JOB,
        index=index,
        text=text,
        reasoning=reasoning,
        finish_reason="length",
        max_tokens=100,
        started_at=datetime(2025, 1, 1, tzinfo=UTC),
        duration_ms=duration_ms,
    )


def committed_job(store: JobStore) -> tuple[Manifest, str, str]:
    """Three committed chunks; output.md/reasoning.md exactly as committed."""
    for i, (text, thought) in enumerate(zip(TEXTS, THOUGHTS, strict=True)):
        store.put_chunk(chunk(i, text, thought, duration_ms=100 * (i + 1)))
    answer = START + "".join(TEXTS)
    reasoning = "".join(THOUGHTS)
    manifest = Manifest(
        job_id=JOB,
        model="m/1",
        status="running",
        chunks=3,
        answer_chars=len(answer),
        reasoning_chars=len(reasoning),
    )
    store.write_running_text(JOB, answer=answer, reasoning=reasoning)
    store.put_manifest(manifest)
    return manifest, answer, reasoning


def keys_in_bucket(store: JobStore) -> list[str]:
    return sorted(o["Key"] for o in store.s3.list_objects_v2(Bucket=store.bucket).get("Contents", []))


# ---- keys -------------------------------------------------------------------------------------


def test_keys_layout() -> None:
    keys = JobKeys("abc")
    assert keys.request == "jobs/abc/request.json"
    assert keys.manifest == "jobs/abc/manifest.json"
    assert keys.output == "jobs/abc/output.md"
    assert keys.reasoning == "jobs/abc/reasoning.md"
    assert keys.result == "jobs/abc/result.json"


@pytest.mark.parametrize(
    ("index", "name"), [(0, "000000"), (7, "000007"), (42, "000042"), (123456, "123456")]
)
def test_chunk_keys_are_zero_padded(index: int, name: str) -> None:
    assert JobKeys("abc").chunk(index) == f"jobs/abc/chunks/{name}.json"


def test_chunk_keys_sort_in_order() -> None:
    keys = [JobKeys("j").chunk(i) for i in (0, 1, 2, 9, 10, 99, 100, 1000)]
    assert sorted(keys) == keys


# ---- request ----------------------------------------------------------------------------------


def test_request_round_trip(store: JobStore, s3: Any) -> None:
    req = parse_request(
        {
            "messages": [{"role": "user", "content": "Write"}, {"role": "assistant", "content": "Once"}],
            "temperature": 0.3,
            "stop": "END",
            "max_output_tokens": 5000,
        }
    )
    assert store.put_request(JOB, req) is True
    got = store.get_request(JOB)
    assert got == req
    assert got.fingerprint() == req.fingerprint()
    assert got.answer_start() == "Once"
    stored = json.loads(s3.get_object(Bucket=store.bucket, Key=f"jobs/{JOB}/request.json")["Body"].read())
    assert "prompt" not in stored  # None fields are left out


def test_missing_request_is_job_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        store.get_request("nope")


def test_put_request_only_if_new(store: JobStore) -> None:
    first = parse_request({"prompt": "first"})
    assert store.put_request(JOB, first, only_if_new=True) is True
    assert store.put_request(JOB, parse_request({"prompt": "second"}), only_if_new=True) is False
    assert store.get_request(JOB).prompt == "first"  # the second write did not happen


# ---- manifest ---------------------------------------------------------------------------------


def test_manifest_round_trip(store: JobStore) -> None:
    m = Manifest(
        job_id=JOB, model="m/1", chunks=4, answer_chars=99, context_length=65536, estimated_cost_usd=0.25
    )
    etag = store.put_manifest(m)
    got, got_etag = store.get_manifest(JOB)
    assert got_etag == etag
    assert got.model_dump() == m.model_dump()
    assert store.find_manifest(JOB) == got


def test_missing_manifest(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        store.get_manifest("nope")
    assert store.find_manifest("nope") is None


def test_manifest_if_match(store: JobStore) -> None:
    m = Manifest(job_id=JOB, model="m/1")
    etag1 = store.put_manifest(m)
    m.chunks = 1
    etag2 = store.put_manifest(m, if_match=etag1)
    assert etag2 != etag1
    # a second writer still holding the first ETag loses
    stale = Manifest(job_id=JOB, model="m/1", chunks=99)
    with pytest.raises(JobStateInvalid):
        store.put_manifest(stale, if_match=etag1)
    got, etag = store.get_manifest(JOB)
    assert got.chunks == 1
    assert etag == etag2


def test_manifest_only_if_new(store: JobStore) -> None:
    store.put_manifest(Manifest(job_id=JOB, model="m/1"), only_if_new=True)
    with pytest.raises(JobStateInvalid):
        store.put_manifest(Manifest(job_id=JOB, model="other"), only_if_new=True)
    assert store.get_manifest(JOB)[0].model == "m/1"


# ---- chunks and running text ------------------------------------------------------------------


def test_chunk_round_trip_and_key(store: JobStore, s3: Any) -> None:
    c = chunk(3, "text", "thought")
    store.put_chunk(c)
    assert keys_in_bucket(store) == [f"jobs/{JOB}/chunks/000003.json"]
    assert store.get_chunk(JOB, 3) == c


def test_attempts_of_one_chunk_are_fenced_the_first_stored_wins(store: JobStore, s3: Any) -> None:
    """Two attempts continuing the same manifest version: the second gets the first's record back
    (and so commits exactly what is stored), it never overwrites it."""
    first = chunk(0, "first try").model_copy(update={"base_etag": '"v1"'})
    second = chunk(0, "second try").model_copy(update={"base_etag": '"v1"'})
    assert store.put_chunk(first) == first
    assert store.put_chunk(second) == first
    assert keys_in_bucket(store) == [f"jobs/{JOB}/chunks/000000.json"]
    assert store.get_chunk(JOB, 0).text == "first try"


def test_a_record_left_by_an_older_manifest_version_is_replaced(store: JobStore, s3: Any) -> None:
    """Never committed (a commit moves the job to the next index): the new attempt's record stands."""
    store.put_chunk(chunk(0, "from v1").model_copy(update={"base_etag": '"v1"'}))
    newer = chunk(0, "from v2").model_copy(update={"base_etag": '"v2"'})
    assert store.put_chunk(newer) == newer
    assert store.get_chunk(JOB, 0).text == "from v2"


def test_missing_chunk_is_invalid_state(store: JobStore) -> None:
    with pytest.raises(JobStateInvalid):
        store.get_chunk(JOB, 0)


def test_read_running_text_as_committed(store: JobStore) -> None:
    manifest, answer, reasoning = committed_job(store)
    assert store.read_running_text(manifest, answer_start=START) == (answer, reasoning)


def test_read_running_text_of_a_new_job(store: JobStore) -> None:
    assert store.read_running_text(Manifest(job_id=JOB, model="m"), answer_start=START) == ("", "")


def test_read_running_text_truncates_text_that_outran_its_commit(store: JobStore) -> None:
    """A crash after output.md/reasoning.md were written but before the manifest was."""
    manifest, answer, reasoning = committed_job(store)
    store.write_running_text(
        JOB, answer=answer + " UNCOMMITTED CHUNK", reasoning=reasoning + " uncommitted plan"
    )
    assert store.read_running_text(manifest, answer_start=START) == (answer, reasoning)


def test_read_running_text_rebuilds_when_output_is_shorter(store: JobStore) -> None:
    manifest, answer, reasoning = committed_job(store)
    store.write_running_text(JOB, answer=answer[:-5], reasoning=reasoning)
    assert store.read_running_text(manifest, answer_start=START) == (answer, reasoning)


def test_read_running_text_rebuilds_when_output_is_missing(store: JobStore, s3: Any) -> None:
    manifest, answer, reasoning = committed_job(store)
    s3.delete_object(Bucket=store.bucket, Key=f"jobs/{JOB}/output.md")
    s3.delete_object(Bucket=store.bucket, Key=f"jobs/{JOB}/reasoning.md")
    assert store.read_running_text(manifest, answer_start=START) == (answer, reasoning)


def test_read_running_text_ignores_an_uncommitted_chunk_when_rebuilding(store: JobStore) -> None:
    manifest, answer, reasoning = committed_job(store)
    store.put_chunk(chunk(3, " EXTRA", "extra thought"))  # written, never committed
    store.write_running_text(JOB, answer="", reasoning="")
    assert store.read_running_text(manifest, answer_start=START) == (answer, reasoning)


def test_read_running_text_keeps_non_ascii_lengths(store: JobStore) -> None:
    text = "Ünïcödé — 中文 🙂"
    store.put_chunk(chunk(0, text))
    manifest = Manifest(job_id=JOB, model="m", chunks=1, answer_chars=len(text))
    store.write_running_text(JOB, answer=text + "🙂 more", reasoning=None)
    assert store.read_running_text(manifest, answer_start="") == (text, "")


def test_reading_the_running_text_costs_the_same_however_many_chunks(store: JobStore, s3: Any) -> None:
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    manifest, _, _ = committed_job(store)
    calls.clear()
    store.read_running_text(manifest, answer_start=START)
    few = list(calls)
    for i in range(3, 40):
        store.put_chunk(chunk(i, "x"))
    manifest.chunks = 40
    manifest.answer_chars += 37
    store.write_running_text(JOB, answer=START + "".join(TEXTS) + "x" * 37, reasoning="".join(THOUGHTS))
    calls.clear()
    store.read_running_text(manifest, answer_start=START)
    assert calls == few == ["GetObject", "GetObject"]


# ---- assembly and final outputs ---------------------------------------------------------------


def test_assemble_concatenates_in_order_with_the_answer_start(store: JobStore) -> None:
    manifest, answer, reasoning = committed_job(store)
    assert store.assemble(manifest, answer_start=START) == (answer, reasoning)
    assert store.assemble(manifest, answer_start="") == ("".join(TEXTS), reasoning)
    assert [c.duration_ms for c in store.read_chunks(manifest)] == [100, 200, 300]


def test_assemble_with_a_missing_chunk_fails_loudly(store: JobStore, s3: Any) -> None:
    manifest, _, _ = committed_job(store)
    s3.delete_object(Bucket=store.bucket, Key=f"jobs/{JOB}/chunks/000001.json")
    with pytest.raises(JobStateInvalid):
        store.assemble(manifest, answer_start=START)


def test_final_text_and_result(store: JobStore) -> None:
    result = make_result(JOB)
    assert store.get_result(JOB) is None
    store.write_running_text(JOB, answer="Final", reasoning=None)
    store.put_result(result)
    assert store.get_result(JOB) == result
    assert store.get_text(f"jobs/{JOB}/output.md") == "Final"
    assert store.get_text(f"jobs/{JOB}/reasoning.md") is None
