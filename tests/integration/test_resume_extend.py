"""``longform resume``: into the ``--out`` the job was started with, and with new budgets that extend
an ``incomplete`` job (the layer's ``reopen.py``) to the end an uncapped run reaches; the whole job
through the real ASL (the local runner), the emulator as the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from longform_core.models import Manifest, utcnow

from longform.cli import main
from longform.emulator.model import uncapped_answer
from longform.local.cloud import LocalCloud
from longform.local.providers import ProviderOptions
from longform.local.runner import RunOptions, run
from longform.local.state import StateDir

from .conftest import freeze_after_first_chunk

pytestmark = pytest.mark.integration

PROMPT = "Write about kelp [emulator answer_tokens=3000]"
CAP = ["--max-tokens-per-request", "1000"]


def uncapped() -> str:
    return uncapped_answer([{"role": "user", "content": PROMPT}])


def last_json(out: str) -> dict[str, Any]:
    return json.loads(out.strip().splitlines()[-1])


def manifest_of(state: Path, job_id: str) -> Manifest:
    raw = StateDir(state).read_object(f"jobs/{job_id}/manifest.json")
    assert raw is not None
    return Manifest.model_validate_json(raw)


def start_incomplete(tmp_path: Path, capsys: Any, *budget: str) -> tuple[list[str], Path, str]:
    state = ["--state-dir", str(tmp_path / "state")]
    out = tmp_path / "kelp.md"
    code = main(["run", "--emulator", "--prompt", PROMPT, *CAP, *budget, "--out", str(out), "--json", *state])
    summary = last_json(capsys.readouterr().out)
    assert (code, summary["status"]) == (3, "incomplete"), summary
    assert out.read_text() == uncapped()[: len(out.read_text())] and len(out.read_text()) < len(uncapped())
    return state, out, summary["job_id"]


def test_resume_with_a_larger_max_chunks_finishes_the_job_into_its_original_out(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    state, out, job_id = start_incomplete(tmp_path, capsys, "--max-chunks", "2")
    assert main(["resume", job_id, *state]) == 3  # no budget: it stays as it ended, and says how to extend
    assert f"`longform resume {job_id} --max-chunks N` extends it" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path / "state")  # another directory: the recorded --out is absolute
    assert main(["resume", job_id, "--max-chunks", "10", "--json", *state]) == 0  # no --out given
    captured = capsys.readouterr()
    summary = last_json(captured.out)
    assert (summary["status"], summary["chunks"], summary["output_path"]) == ("succeeded", 3, str(out))
    assert "extended (max_chunks 10)" in captured.err
    # billed over both processes: the three chunks and the first run's style probe (a few tokens)
    assert summary["billed"]["requests"] == 4 and 3000 < summary["billed"]["output_tokens"] < 3010
    assert summary["billed"]["prompt_tokens"] > summary["prompt_tokens_total"]
    assert out.read_text() == uncapped()  # the whole answer, in the file the job was started with
    assert json.loads(out.with_suffix(".json").read_text())["status"] == "succeeded"
    manifest = manifest_of(tmp_path / "state", job_id)
    assert manifest.status == "succeeded" and manifest.chunks == 3
    assert len(manifest.reopened) == 1
    assert (
        "incomplete (max_chunks) after 2 chunks, 2000 output tokens; reopened with max_chunks 10"
        in (manifest.reopened[0])
    )


def test_max_output_tokens_extended_twice_reaches_the_uncapped_answer(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    state, out, job_id = start_incomplete(tmp_path, capsys, "--max-output-tokens", "1500")
    assert main(["resume", job_id, "--max-output-tokens", "2200", "--json", *state]) == 3  # still short
    summary = last_json(capsys.readouterr().out)
    assert (summary["status"], summary["output_tokens"]) == ("incomplete", 2200)
    assert out.read_text() == uncapped()[: len(out.read_text())]
    assert main(["resume", job_id, "--max-output-tokens", "9000", "--json", *state]) == 0
    summary = last_json(capsys.readouterr().out)
    assert (summary["status"], summary["output_tokens"]) == ("succeeded", 3000)
    assert out.read_text() == uncapped()
    assert len(manifest_of(tmp_path / "state", job_id).reopened) == 2


def test_a_larger_max_cost_extends_a_job_its_cost_budget_stopped(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    # the emulator's illustrative price: ~$0.0004 a 1,000-token chunk, so $0.0005 stops after 2
    state, out, job_id = start_incomplete(tmp_path, capsys, "--max-cost", "0.0005")
    assert manifest_of(tmp_path / "state", job_id).incomplete_reason == "max_cost"
    assert main(["resume", job_id, "--max-cost", "0.0005", *state]) == 2  # not more than it used
    assert "must be larger than that" in capsys.readouterr().err
    assert main(["resume", job_id, "--max-cost", "1", "--json", *state]) == 0
    assert last_json(capsys.readouterr().out)["status"] == "succeeded"
    assert out.read_text() == uncapped()


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_budgets_that_cannot_extend_a_job_are_refused_in_one_line_changing_nothing(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    state, _, job_id = start_incomplete(tmp_path, capsys, "--max-chunks", "2")
    before = manifest_of(tmp_path / "state", job_id)
    refused = {
        ("--max-chunks", "2"): "has used 2 chunks: a new max_chunks must be larger than that (got 2)",
        ("--max-output-tokens", "9000"): "would stop at once: its max_chunks budget is reached",
        ("--max-chunks", "0"): "max_chunks: Input should be greater than or equal to 1",
    }
    for flag, message in refused.items():
        assert main(["resume", job_id, *flag, *state]) == 2
        line = one_line_error(capsys.readouterr().err)
        assert message in line and f"`longform show {job_id}` says how it ended" in line, line
    after = manifest_of(tmp_path / "state", job_id)
    assert after.model_dump(exclude={"updated_at"}) == before.model_dump(exclude={"updated_at"})
    assert StateDir(tmp_path / "state").read_object(f"jobs/{job_id}/result.json") is not None
    # a job that succeeded cannot be extended
    done = tmp_path / "done.md"
    assert main(["run", "--emulator", "--prompt", PROMPT, *CAP, "--out", str(done), "--json", *state]) == 0
    done_id = last_json(capsys.readouterr().out)["job_id"]
    assert main(["resume", done_id, "--max-chunks", "50", *state]) == 2
    assert "cannot be extended: it succeeded" in one_line_error(capsys.readouterr().err)


def test_resume_after_a_crash_continues_into_the_relative_out_it_was_started_with(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    """A job whose process died after its first chunk (its state copied while it ran) was started with
    a relative ``--out``: ``resume`` without ``--out``, from another directory, writes the whole
    answer there."""
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    state, frozen, work = tmp_path / "state", tmp_path / "frozen", tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    run(
        RunOptions(
            request={"prompt": PROMPT},
            provider=ProviderOptions(emulator=True),
            max_tokens_per_request=1000,
            out=Path("answer.md"),
            state_dir=state,
        ),
        on_cloud=freeze_after_first_chunk(state, frozen),
    )
    assert frozen.is_dir() and (work / "answer.md").read_text() == uncapped()
    (work / "answer.md").write_text(uncapped()[:100])  # what the crashed run had left
    job_id = next((frozen / "bucket" / "jobs").iterdir()).name
    assert manifest_of(frozen, job_id).chunks == 1
    monkeypatch.chdir(tmp_path)
    assert main(["resume", job_id, "--state-dir", str(frozen), "--json"]) == 0
    summary = last_json(capsys.readouterr().out)
    assert (summary["status"], summary["output_path"]) == ("succeeded", str(work / "answer.md"))
    assert (work / "answer.md").read_text() == uncapped()
    assert not (tmp_path / "out").exists()


def test_resume_out_overrides_the_recorded_one(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    state, out, job_id = start_incomplete(tmp_path, capsys, "--max-chunks", "1")
    partial = out.read_text()
    other = tmp_path / "other.md"
    assert main(["resume", job_id, "--max-chunks", "5", "--out", str(other), *state]) == 0
    assert other.read_text() == uncapped() and out.read_text() == partial


def test_reopen_does_not_race_a_second_reopen(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    """Two reopens of one manifest version: the second fails on If-Match (or finds it running)."""
    from longform_core.errors import ManifestConflict
    from longform_core.reopen import CannotReopen, NewBudgets, reopen_job

    from longform.local.cloud import CloudConfig

    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    state, _, job_id = start_incomplete(tmp_path, capsys, "--max-chunks", "1")
    config = CloudConfig(provider_base_url="http://127.0.0.1:9/v1", state_dir=Path(state[1]))
    with LocalCloud(config) as cloud:
        store = cloud.store
        stale, etag = store.get_manifest(job_id)
        reopened = reopen_job(store, job_id, NewBudgets(max_chunks=5), now=utcnow())
        assert reopened.status == "running" and store.get_result(job_id) is None
        assert store.get_request(job_id).max_chunks == 5
        with pytest.raises(CannotReopen, match="has not ended \\(running\\)"):
            reopen_job(store, job_id, NewBudgets(max_chunks=9), now=utcnow())
        with pytest.raises(ManifestConflict):
            store.put_manifest(stale, if_match=etag)


def test_ctrl_c_then_resume_without_out_finishes_the_file_the_run_was_writing(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    """A real Ctrl-C (SIGINT to a `longform run --out answer.md` process) after its first commit, then
    `longform resume ID` from another directory with no --out: answer.md holds the whole answer."""
    import signal

    from .stop_harness import read_manifests, run_longform, signal_and_wait, wait_for

    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    state, work = tmp_path / "state", tmp_path / "work"
    work.mkdir()
    proc = run_longform(
        "run", "--emulator", "--emulator-token-delay", "0.002", "--prompt", PROMPT, *CAP,
        "--out", "answer.md", "--state-dir", str(state), cwd=work,
    )  # fmt: skip
    try:
        wait_for(lambda: any(m["chunks"] >= 1 for m in read_manifests(state)), "committed chunk", proc)
        _, err = signal_and_wait(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    [manifest] = read_manifests(state)
    assert manifest["status"] == "running"
    if (work / "answer.md").exists():  # written if the summary was reached before the forced exit
        kept = (work / "answer.md").read_text()
        assert uncapped().startswith(kept) and len(kept) < len(uncapped())
    monkeypatch.chdir(tmp_path)
    assert main(["resume", manifest["job_id"], "--state-dir", str(state), "--json"]) == 0
    summary = last_json(capsys.readouterr().out)
    assert (summary["status"], summary["output_path"]) == ("succeeded", str(work / "answer.md"))
    assert (work / "answer.md").read_text() == uncapped()
