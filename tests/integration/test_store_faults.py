"""Crash and fault recovery of the local store, proven (issue 16, item 3): a job is killed at every
one of its write points, or its disk fills at every one; afterwards ``resume`` (a new execution, or
for an ended job the re-derivation of its files) finishes it with the uncapped answer, or the
submit itself failed and nothing names a job. The coverage is printed as a table (``-s``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from longform.emulator.server import EmulatorServer
from longform.local.runner import rederive_outputs
from longform.local.store_faults import StoreFaults, StoreKilled

from .conftest import CloudFactory, expected

pytestmark = pytest.mark.integration

# three chunks of 120 tokens, no draft checkpoints (their number depends on timing): a fixed list
# of write points
REQUEST = {"prompt": "Notes on tide pools [emulator answer_tokens=300]", "max_tokens_per_request": 120}
NO_DRAFTS = {"draft_interval_seconds": 3600.0, "draft_min_tokens": 10**9}
IDEMPOTENCY_KEY = "tide-pools"


# a billed reply's record is named by a random request id (longform_core.billed): a write point names
# the chunk it was asked for
BILLED_ID = re.compile(r"(/billed/\d{6})-[0-9a-f]+\.json$")


def _point(write: tuple[str, str]) -> tuple[str, str]:
    operation, key = write
    return operation, BILLED_ID.sub(r"\1-*.json", key)


def _writes(make_cloud: CloudFactory, state: Path) -> list[tuple[str, str]]:
    """Every write of the job, in order, from a run without faults."""
    counter = StoreFaults()
    with make_cloud(state_dir=state, **NO_DRAFTS) as cloud:
        cloud.store_dir.disk.write_hook = counter
        job = cloud.submit(REQUEST, idempotency_key=IDEMPOTENCY_KEY)
        assert cloud.wait(job.job_id)["status"] == "SUCCEEDED"
    return [_point(w) for w in counter.writes]


def _recover(cloud: Any, answer: str) -> str:
    """What resume does with the state the fault left; the outcome, checked."""
    ids = cloud.store_dir.job_ids()
    if not ids:
        return "no job: the submit call failed"
    (job_id,) = ids
    manifest = cloud.store.find_manifest(job_id)
    if manifest.terminal:
        how = "re-derived" if rederive_outputs(cloud, job_id) else "whole"
    else:
        cloud.resume(job_id)
        assert cloud.wait(job_id)["status"] == "SUCCEEDED"
        how = f"resumed after {manifest.chunks} chunk(s)"
    result = cloud.store.get_result(job_id)
    assert result is not None and result.status == "succeeded"
    assert cloud.store.get_text(result.output_key) == answer
    return how


def _table(title: str, rows: list[tuple[int, tuple[str, str], str]]) -> None:
    print(f"\n{title}\n| write | operation | key | afterwards |\n| --- | --- | --- | --- |")
    for n, (operation, key), outcome in rows:
        short = key.split("/", 2)[-1] if key.startswith("jobs/") else key.split("/")[0] + "/…"
        print(f"| {n} | {operation} | {short} | {outcome} |")


@pytest.mark.timeout(1200)  # two local clouds per write point, on a loaded machine
def test_a_kill_at_every_write_point_is_finished_by_resume(
    make_cloud: CloudFactory, emulator: EmulatorServer, tmp_path: Path
) -> None:
    writes = _writes(make_cloud, tmp_path / "baseline")
    assert [op for op, _ in writes].count("put") >= 10  # submit, 3 chunks (record, manifest, text), finalize
    answer = expected(REQUEST, emulator).answer
    rows = []
    for n in range(1, len(writes) + 1):
        state = tmp_path / f"kill-{n}"
        faults = StoreFaults(kill_at=n)
        with make_cloud(state_dir=state, **NO_DRAFTS) as cloud:
            cloud.store_dir.disk.write_hook = faults
            try:
                job = cloud.submit(REQUEST, idempotency_key=IDEMPOTENCY_KEY)
            except StoreKilled:
                pass
            else:
                cloud.wait(job.job_id)
        assert faults.dead and _point(faults.writes[n - 1]) == writes[n - 1]  # died exactly there
        with make_cloud(state_dir=state, **NO_DRAFTS) as cloud:  # the next process
            rows.append((n, writes[n - 1], _recover(cloud, answer)))
    _table("kill at write n (the process dies before write n reaches the disk)", rows)
    assert rows[0][2] == "no job: the submit call failed"
    assert all(outcome != "whole" for _, _, outcome in rows)  # each kill left something to do


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("kind", ["full_after", "fail_after"])
def test_a_disk_that_fails_from_every_write_point_on_is_finished_by_resume(
    make_cloud: CloudFactory, emulator: EmulatorServer, tmp_path: Path, kind: str
) -> None:
    """A full disk (ENOSPC) or a failing one (EIO) from write n on: every write fails the call that
    made it; once the disk takes writes again, resume finishes the job with the uncapped answer."""
    writes = _writes(make_cloud, tmp_path / "baseline")
    answer = expected(REQUEST, emulator).answer
    rows = []
    for n in range(1, len(writes) + 1):
        state = tmp_path / f"{kind}-{n}"
        with make_cloud(state_dir=state, **NO_DRAFTS) as cloud:
            cloud.store_dir.disk.write_hook = StoreFaults(**{kind: n - 1})
            try:
                job = cloud.submit(REQUEST, idempotency_key=IDEMPOTENCY_KEY)
            except ClientError as exc:
                refused = exc.response["Error"]["Code"]
            else:
                refused = None
                cloud.wait(job.job_id)
        assert refused in (None, "InternalError")
        # the disk has room again; the next process resumes (an execution's name is taken in the one
        # that ran it, as on AWS)
        with make_cloud(state_dir=state, **NO_DRAFTS) as cloud:
            rows.append((n, writes[n - 1], _recover(cloud, answer)))
        assert not list((state / "bucket").rglob(".tmp-*"))  # no temporary file left behind
    _table(f"{kind} write n - 1 (every write from n on fails)", rows)


def test_run_never_says_done_without_its_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen on a full disk: ``longform run`` exited 0 printing "status done" beside "execution
    FAILED", wrote no --out and left the job succeeded without result.json. Now the run exits non-zero
    and says where the text is; resume, once the disk has room, writes everything."""
    import json

    from longform.cli import main
    from longform.emulator.model import uncapped_answer
    from longform.local import cloud as cloud_module

    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    state, out = tmp_path / "state", tmp_path / "answer.md"
    prompt = "Notes on tide pools [emulator answer_tokens=300]"
    real_start = cloud_module.LocalCloud._start

    def start_with_a_full_disk_at_finalize(cloud: Any) -> None:
        real_start(cloud)

        def full_once_finalizing(operation: str, key: str) -> None:
            if key.endswith("/output.md") and cloud.store.find_manifest(key.split("/")[1]).terminal:
                raise OSError(28, "No space left on device")

        cloud.store_dir.disk.write_hook = full_once_finalizing

    monkeypatch.setattr(cloud_module.LocalCloud, "_start", start_with_a_full_disk_at_finalize)
    args = ["run", "--emulator", "--prompt", prompt, "--state-dir", str(state), "--out", str(out)]
    code = main([*args, "--max-tokens-per-request", "120", "--json"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert code == 1, captured.out
    assert summary["output_written"] is False
    assert "the committed text is in" in summary["error"] and "chunks" in summary["error"]
    assert not out.exists()
    monkeypatch.setattr(cloud_module.LocalCloud, "_start", real_start)  # the disk has room again
    assert main(["resume", summary["job_id"], "--state-dir", str(state), "--out", str(out)]) == 0
    resumed = capsys.readouterr()
    assert "re-derived from the committed chunks" in resumed.out + resumed.err
    assert out.read_text(encoding="utf-8") == uncapped_answer([{"role": "user", "content": prompt}])


@pytest.mark.timeout(1200)
def test_one_failed_write_at_any_write_point_is_retried_and_the_job_finishes(
    make_cloud: CloudFactory, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A write that fails once (EIO, answered as S3's 500) is retried by botocore as S3's would be:
    the job finishes in the same run, with the uncapped answer, wherever the failure falls."""
    writes = _writes(make_cloud, tmp_path / "baseline")
    answer = expected(REQUEST, emulator).answer
    rows = []
    for n in range(1, len(writes) + 1):
        with make_cloud(state_dir=tmp_path / f"once-{n}", **NO_DRAFTS) as cloud:
            faults = StoreFaults(fail_nth=n)
            cloud.store_dir.disk.write_hook = faults
            job = cloud.submit(REQUEST, idempotency_key=IDEMPOTENCY_KEY)
            assert cloud.wait(job.job_id)["status"] == "SUCCEEDED"
            result = cloud.store.get_result(job.job_id)
            assert result is not None and result.status == "succeeded"
            assert cloud.store.get_text(result.output_key) == answer
            assert (
                faults.writes[n - 1] == faults.writes[n] and _point(faults.writes[n]) == writes[n - 1]
            )  # again
            rows.append((n, writes[n - 1], "retried, finished in the same run"))
    _table("fail write n once (EIO)", rows)


# drafts as often as tokens arrive (no interval; a draft every 50 tokens): the draft writes of a
# chunk fall at fixed points of the write list, as the other writes do
DRAFTS = {"draft_interval_seconds": 0.0, "draft_min_tokens": 50}
FAULT_KINDS = {
    "kill": lambda n: StoreFaults(kill_at=n),
    "EIO once": lambda n: StoreFaults(fail_nth=n),
    "EIO from n": lambda n: StoreFaults(fail_after=n - 1),
    "full from n": lambda n: StoreFaults(full_after=n - 1),
}


@pytest.mark.timeout(2400)
def test_every_fault_at_every_draft_write_is_finished_by_resume(
    make_cloud: CloudFactory, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """The draft writes of the chunks in flight (a draft PUT, the commit's DELETE of it), each met by a
    kill, one failed write, a failing disk and a full disk: the job ends with the uncapped answer, in
    the same run or by resume in the next process (which may commit the draft's text as its chunk)."""
    counter = StoreFaults()
    with make_cloud(state_dir=tmp_path / "baseline", **DRAFTS) as cloud:
        cloud.store_dir.disk.write_hook = counter
        job = cloud.submit(REQUEST, idempotency_key=IDEMPOTENCY_KEY)
        assert cloud.wait(job.job_id)["status"] == "SUCCEEDED"
    writes = [_point(w) for w in counter.writes]
    points = [n for n, (_, key) in enumerate(writes, start=1) if "/drafts/" in key]
    assert [writes[n - 1][0] for n in points].count("delete") >= 2  # drafts written and superseded
    answer = expected(REQUEST, emulator).answer
    table = []
    for n in points:
        outcomes = []
        for kind, faults_at in FAULT_KINDS.items():
            state = tmp_path / f"{kind.replace(' ', '-')}-{n}"
            faults = faults_at(n)
            with make_cloud(state_dir=state, **DRAFTS) as cloud:
                cloud.store_dir.disk.write_hook = faults
                job = cloud.submit(REQUEST, idempotency_key=IDEMPOTENCY_KEY)
                cloud.wait(job.job_id)
            assert _point(faults.writes[n - 1]) == writes[n - 1]  # the fault met that very write
            with make_cloud(state_dir=state, **DRAFTS) as cloud:  # the next process
                outcomes.append(_recover(cloud, answer).replace("whole", "finished in the same run"))
        table.append((n, writes[n - 1], outcomes))
    print("\n| write | operation | key | " + " | ".join(FAULT_KINDS) + " |")
    print("| --- | --- | --- |" + " --- |" * len(FAULT_KINDS))
    for n, (operation, key), outcomes in table:
        print(f"| {n} | {operation} | {key.split('/', 2)[-1]} | " + " | ".join(outcomes) + " |")


# A real kill -9 of `longform run` at a write of each phase (LONGFORM_FAULT_SIGKILL_AT: the process
# sends itself SIGKILL before that write reaches the disk), then `longform resume` in a new process.
REAL_KILL_PROMPT = "Notes on tide pools [emulator answer_tokens=300]"
REAL_KILL_POINTS = {
    "submit": "manifest.json:1",  # the job's first manifest: the submit never ended, no job exists
    "start": "manifest.json:2",  # the execution's first write (queued -> running)
    "draft": "drafts/:2",
    "chunk commit": "chunks/:2",
    "finalize": "result.json:1",
}


@pytest.mark.parametrize("phase", list(REAL_KILL_POINTS))
def test_a_real_sigkill_at_a_write_of_each_phase_is_finished_by_resume(tmp_path: Path, phase: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    from longform.emulator.model import uncapped_answer
    from longform.local.store_faults import SIGKILL_ENV

    state, out = tmp_path / "state", tmp_path / "answer.md"
    env = {**os.environ, "DEEPINFRA_API_KEY": "", SIGKILL_ENV: REAL_KILL_POINTS[phase]}
    run = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "longform.cli", "run", "--emulator", "--emulator-token-delay", "0.01",
         "--prompt", REAL_KILL_PROMPT, "--max-tokens-per-request", "120", "--state-dir", str(state),
         "--out", str(out), "--quiet"],
        env=env, capture_output=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    [job_dir] = (state / "bucket" / "jobs").iterdir()
    del env[SIGKILL_ENV]
    resume = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "longform.cli", "resume", job_dir.name, "--emulator", "--state-dir",
         str(state), "--out", str(out), "--quiet"],
        env=env, capture_output=True, timeout=600,
    )  # fmt: skip
    answer = uncapped_answer([{"role": "user", "content": REAL_KILL_PROMPT}])
    print(f"\n{phase}: killed at {REAL_KILL_POINTS[phase]}; resume exit {resume.returncode}")
    if phase == "submit":  # the job was never accepted: resume says so, in one line
        assert resume.returncode == 2
        assert resume.stderr.decode().strip() == (
            f"longform: no job {job_dir.name} in {state} (longform list shows its jobs)"
        )
        assert not (job_dir / "manifest.json").exists() and not out.exists()
        return
    assert resume.returncode == 0, resume.stderr.decode()
    assert out.read_text(encoding="utf-8") == answer
    manifest = (job_dir / "manifest.json").read_text()
    assert '"status":"succeeded"' in manifest.replace(" ", "")
